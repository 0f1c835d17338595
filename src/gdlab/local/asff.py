"""GuardDuty findings in the AWS Security Finding Format, as GuardDuty sends them to
Security Hub, and the hook that imports them into the local Security Hub.

The mapping follows what GuardDuty's integration produces: ``Id`` is the finding ARN,
``GeneratorId`` the detector ARN, ``Types`` the finding type under its ASFF namespace with
``/`` turned into ``-``, severity 5 as label MEDIUM / normalized 50 / product 5, and the
GuardDuty ``service`` block flattened into ``ProductFields`` keys such as
``aws/guardduty/service/additionalInfo/threatListName`` (list items as ``name.0_``).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

log = logging.getLogger("gdlab.local.asff")

# ASFF namespaces GuardDuty uses for the threat purposes of its finding types.
TYPE_NAMESPACES = {
    "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom": "TTPs/Command and Control",
    "UnauthorizedAccess:EC2/SSHBruteForce": "TTPs/Initial Access",
    "Recon:EC2/PortProbeUnprotectedPort": "TTPs/Discovery",
    "Backdoor:EC2/C&CActivity.B": "TTPs/Command and Control",
    "CryptoCurrency:EC2/BitcoinTool.B": "Effects/Resource Consumption",
    "Trojan:EC2/BlackholeTraffic": "TTPs/Command and Control",
    # Namespaces of the finding types' threat purposes (ASFF "Types taxonomy"): Discovery
    # and Stealth (Defense Evasion) are ATT&CK tactics under TTPs; an S3 policy finding is
    # the data exposure it allows; a listed caller's API call is Initial Access.
    "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom": "TTPs/Initial Access",
    "Discovery:S3/MaliciousIPCaller.Custom": "TTPs/Discovery",
    "Policy:S3/BucketBlockPublicAccessDisabled": "Effects/Data Exposure",
    "Stealth:S3/ServerAccessLoggingDisabled": "TTPs/Defense Evasion",
}
PREFIX_NAMESPACES = {
    "Recon": "TTPs/Discovery",
    "Backdoor": "TTPs/Command and Control",
    "Trojan": "TTPs/Command and Control",
    "CryptoCurrency": "Effects/Resource Consumption",
    "UnauthorizedAccess": "TTPs/Command and Control",
}
# ASFF allows 50 ProductFields; Security Hub adds three aws/securityhub/* keys on import.
MAX_PRODUCT_FIELDS = 47


def severity_label(severity: float) -> str:
    if severity >= 9.0:
        return "CRITICAL"
    if severity >= 7.0:
        return "HIGH"
    if severity >= 4.0:
        return "MEDIUM"
    return "LOW"


def asff_type(finding_type: str) -> str:
    namespace = TYPE_NAMESPACES.get(finding_type) or PREFIX_NAMESPACES.get(
        finding_type.split(":")[0], "Unusual Behaviors/VM"
    )
    return f"{namespace}/{finding_type.replace('/', '-')}"


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}/{key}", out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}.{index}_", out)
    elif value is not None:
        if isinstance(value, bool):
            out[prefix] = "true" if value else "false"
        else:
            out[prefix] = str(value)


def product_fields(finding: dict[str, Any]) -> dict[str, str]:
    from gdlab.local.analyzer import to_event_detail

    detail = to_event_detail(finding)
    fields: dict[str, str] = {}
    _flatten(detail.get("service", {}), "aws/guardduty/service", fields)
    return dict(list(fields.items())[:MAX_PRODUCT_FIELDS])


def _instance_resource(finding: dict[str, Any], region: str, account: str,
                       partition: str) -> dict[str, Any]:
    details = finding.get("Resource", {}).get("InstanceDetails", {})
    instance_id = details.get("InstanceId", "")
    interfaces = details.get("NetworkInterfaces") or []
    primary = interfaces[0] if interfaces else {}
    addresses = [a for i in interfaces for a in (i.get("PrivateIpAddress"), i.get("PublicIp"))
                 if a]
    ec2: dict[str, Any] = {
        "Type": details.get("InstanceType"),
        "ImageId": details.get("ImageId"),
        "IpV4Addresses": addresses,
        "IamInstanceProfileArn": (details.get("IamInstanceProfile") or {}).get("Arn"),
        "VpcId": primary.get("VpcId"),
        "SubnetId": primary.get("SubnetId"),
        "LaunchedAt": details.get("LaunchTime"),
    }
    resource: dict[str, Any] = {
        "Type": "AwsEc2Instance",
        "Id": f"arn:{partition}:ec2:{region}:{account}:instance/{instance_id}",
        "Partition": partition,
        "Region": region,
        "Details": {"AwsEc2Instance": {k: v for k, v in ec2.items() if v}},
    }
    tags = {t["Key"]: t["Value"] for t in details.get("Tags") or [] if "Key" in t}
    if tags:
        resource["Tags"] = tags
    return resource


def _remote_ip(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"IpAddressV4": details.get("IpAddressV4")}
    org = details.get("Organization")
    if org:
        converted: dict[str, Any] = {k: org[k] for k in ("AsnOrg", "Isp", "Org") if k in org}
        with contextlib.suppress(TypeError, ValueError):
            converted["Asn"] = int(org.get("Asn"))
        out["Organization"] = converted
    if details.get("Country"):
        out["Country"] = {k: v for k, v in details["Country"].items()
                          if k in ("CountryCode", "CountryName")}
    if details.get("City"):
        out["City"] = {"CityName": details["City"].get("CityName")}
    if details.get("GeoLocation"):
        out["GeoLocation"] = {k: float(v) for k, v in details["GeoLocation"].items()}
    return out


def _action(finding: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    action = finding.get("Service", {}).get("Action", {})
    conn = action.get("NetworkConnectionAction")
    if action.get("ActionType") != "NETWORK_CONNECTION" or not conn:
        return None, None
    asff_action: dict[str, Any] = {
        "ActionType": "NETWORK_CONNECTION",
        "NetworkConnectionAction": {
            "ConnectionDirection": conn.get("ConnectionDirection"),
            "Protocol": conn.get("Protocol"),
            "Blocked": bool(conn.get("Blocked", False)),
            "RemoteIpDetails": _remote_ip(conn.get("RemoteIpDetails") or {}),
        },
    }
    for key in ("LocalPortDetails", "RemotePortDetails"):
        if conn.get(key):
            asff_action["NetworkConnectionAction"][key] = dict(conn[key])
    outbound = conn.get("ConnectionDirection") == "OUTBOUND"
    local_ip = (conn.get("LocalIpDetails") or {}).get("IpAddressV4")
    remote_ip = (conn.get("RemoteIpDetails") or {}).get("IpAddressV4")
    network: dict[str, Any] = {"Direction": "OUT" if outbound else "IN",
                               "Protocol": conn.get("Protocol")}
    source, destination = (local_ip, remote_ip) if outbound else (remote_ip, local_ip)
    if source:
        network["SourceIpV4"] = source
    if destination:
        network["DestinationIpV4"] = destination
    return asff_action, network


def console_url(region: str, finding_id: str) -> str:
    """The GuardDuty console page of a finding, GuardDuty's SourceUrl in Security Hub."""
    return (f"https://{region}.console.aws.amazon.com/guardduty/home?region={region}"
            f"#/findings?macros=current&fId={finding_id}")


def to_asff(finding: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    """The ASFF record Security Hub holds for this GuardDuty finding."""
    import json

    partition = finding.get("Partition", "aws")
    service = finding.get("Service", {})
    detector_id = service.get("DetectorId", "")
    severity = float(finding.get("Severity", 0))
    label = severity_label(severity)
    types = [asff_type(finding.get("Type", ""))]
    try:
        extra = json.loads((service.get("AdditionalInfo") or {}).get("Value") or "{}")
    except ValueError:
        extra = {}
    record: dict[str, Any] = {
        "SchemaVersion": "2018-10-08",
        "Id": finding["Arn"],
        "ProductArn": f"arn:{partition}:securityhub:{region}::product/aws/guardduty",
        "ProductName": "GuardDuty",
        "CompanyName": "Amazon",
        "Region": region,
        "GeneratorId": f"arn:{partition}:guardduty:{region}:{account}:detector/{detector_id}",
        "AwsAccountId": account,
        "Types": types,
        "FirstObservedAt": service.get("EventFirstSeen") or finding.get("CreatedAt"),
        "LastObservedAt": service.get("EventLastSeen") or finding.get("UpdatedAt"),
        "CreatedAt": finding.get("CreatedAt"),
        "UpdatedAt": finding.get("UpdatedAt"),
        "Severity": {"Label": label, "Normalized": int(round(severity * 10)),
                     "Product": severity},
        "Title": finding.get("Title", ""),
        "Description": finding.get("Description", ""),
        "ProductFields": product_fields(finding),
        "Resources": [_instance_resource(finding, region, account, partition)],
        "SourceUrl": console_url(region, finding.get("Id", "")),
        "RecordState": "ARCHIVED" if service.get("Archived") else "ACTIVE",
        "FindingProviderFields": {"Severity": {"Label": label, "Original": f"{severity:g}"},
                                  "Types": types},
        "Sample": bool(extra.get("sample", False)),
    }
    action, network = _action(finding)
    if action:
        record["Action"] = action
        record["Network"] = network
    return record


def import_finding(backend: Any, detector_id: str, finding: dict[str, Any]) -> None:
    """``on_new_finding`` hook: GuardDuty findings flow into an enabled Security Hub. GuardDuty
    calls it again when it publishes an update of the finding (same Id, later UpdatedAt);
    Security Hub then updates its copy and keeps what customers set on it."""
    from moto.backends import get_backend

    account, region = backend.account_id, backend.region_name
    hub = get_backend("securityhub")[account][region]
    if not getattr(hub, "enabled", False):
        return
    failed, _ok, errors = hub.batch_import_findings([to_asff(finding, region, account)])
    if failed:
        log.warning("Security Hub refused finding %s: %s", finding.get("Id"), errors)


def install() -> None:
    from gdlab.local import patches
    from gdlab.local.guardduty import on_new_finding

    patches.once("on_new_finding", "GuardDuty findings flow into an enabled Security Hub",
                 lambda: on_new_finding.append(import_finding))
