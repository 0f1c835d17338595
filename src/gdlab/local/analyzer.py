"""The local GuardDuty's flow-log analyzer: VPC Flow Log records against the region's
ACTIVE threat lists, and the findings it raises.

What it follows from AWS:

- GuardDuty reads flow logs on its own feed, including REJECT records: the finding model
  has ``NetworkConnectionAction.Blocked`` precisely to say that the connection was
  attempted but blocked. An instance whose pings to a listed IP are rejected by its (now
  empty) security group is still an instance trying to reach that IP, so REJECT records are
  analyzed like ACCEPT ones and their findings say ``Blocked: true``.
- A trusted IP list (IPSet) entry wins over any threat list entry.
- Only publicly routable IPv4 addresses count; IPv6 is ignored (the local cloud's Elastic
  IPs are public addresses, see ``ec2.py``).
- One finding per (type, instance, remote IP); its Id is deterministic, so repeats add to
  ``Service.Count`` and move ``EventLastSeen`` instead of creating new findings.
- A new finding is published at once (to EventBridge and Security Hub, by the hooks of
  ``guardduty.on_new_finding``); its repeats at most every FindingPublishingFrequency of
  the detector, scaled by ``gdlab.local.clock`` (see ``FindingsMixin.publish_due``).
  gdlab's detector uses FIFTEEN_MINUTES: 15 local seconds. A re-published finding fires
  the EventBridge rule again, as on AWS; the responder then finds the instance already
  isolated and skips it.
- ``EventFirstSeen`` / ``EventLastSeen`` come from the record's start and end, never later
  than the analysis (a ping's record ends after its last echo, which has not left yet).
- A finding that a suppression rule (a filter with Action ARCHIVE) matches is stored
  archived and never published.
- The finding is GuardDuty's GetFindings shape (botocore's ``Finding``); the EventBridge
  ``detail`` is the same finding with the wire's camelCase names and
  ``service.additionalInfo`` as an object.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

FINDING_TYPE = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
SEVERITY = 5.0
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP"}
PORT_NAMES = {22: "SSH", 53: "DNS", 80: "HTTP", 443: "HTTPS", 3389: "RDP"}
# Addresses of the local cloud belong to Amazon; its ASN and where its regions are.
AMAZON_ORG = {"Asn": "16509", "AsnOrg": "AMAZON-02", "Isp": "Amazon.com",
              "Org": "Amazon.com"}
REGION_PLACES = {
    "us-east-1": ("United States", "Ashburn", 39.0438, -77.4874),
    "us-east-2": ("United States", "Columbus", 39.9612, -82.9988),
    "us-west-1": ("United States", "San Jose", 37.3394, -121.895),
    "us-west-2": ("United States", "Boardman", 45.8399, -119.7006),
    "eu-west-1": ("Ireland", "Dublin", 53.3498, -6.2603),
    "eu-west-2": ("United Kingdom", "London", 51.5074, -0.1278),
    "eu-central-1": ("Germany", "Frankfurt am Main", 50.1109, 8.6821),
    "ap-southeast-1": ("Singapore", "Singapore", 1.3521, 103.8198),
    "ap-southeast-2": ("Australia", "Sydney", -33.8688, 151.2093),
    "ap-northeast-1": ("Japan", "Tokyo", 35.6762, 139.6503),
}


def iso(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc) if epoch is not None else \
        datetime.now(timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def publicly_routable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if not isinstance(ip, ipaddress.IPv4Address):
        return False
    return ip.is_global


def finding_id(account: str, region: str, detector_id: str, finding_type: str,
               instance_id: str, remote_ip: str) -> str:
    """32 hex characters, the same for every repeat of the same activity."""
    key = "|".join((account, region, detector_id, finding_type, instance_id, remote_ip))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


# --- the resource, as GuardDuty describes an instance -----------------------------------
def _tags(resource: Any) -> list[dict[str, str]]:
    return [{"Key": t["key"], "Value": t["value"]} for t in resource.get_tags()]


def _launch_time(instance: Any) -> str:
    value = instance.launch_time
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def _profile(ec2: Any, instance: Any) -> dict[str, str] | None:
    association = ec2.iam_instance_profile_associations.get(instance.id)
    if association is not None:
        profile = association.iam_instance_profile
        return {"Arn": profile.arn, "Id": profile.id}
    return None


def private_dns(address: str, region: str) -> str:
    """The EC2 private DNS name of an address, as DescribeInstances gives it (the ENI's own
    attribute in moto is set only in VPCs with DNS hostnames, without the region)."""
    zone = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    return f"ip-{address.replace('.', '-')}.{zone}"


def _interface(eni: Any) -> dict[str, Any]:
    region = eni.ec2_backend.region_name
    private_dns_name = private_dns(eni.private_ip_address, region)
    details: dict[str, Any] = {
        "NetworkInterfaceId": eni.id,
        "PrivateIpAddress": eni.private_ip_address,
        "PrivateDnsName": private_dns_name,
        "PrivateIpAddresses": [
            {"PrivateIpAddress": a["PrivateIpAddress"],
             "PrivateDnsName": private_dns(a["PrivateIpAddress"], region)}
            for a in eni.private_ip_addresses
            if isinstance(a, dict) and a.get("PrivateIpAddress")
        ],
        "Ipv6Addresses": list(eni.ipv6_addresses or []),
        "SecurityGroups": [{"GroupId": g.id, "GroupName": g.name}
                           for g in sorted(eni.group_set, key=lambda g: g.id)],
        "SubnetId": eni.subnet.id,
        "VpcId": eni.subnet.vpc_id,
    }
    if eni.public_ip:
        details["PublicIp"] = eni.public_ip
        details["PublicDnsName"] = public_dns(eni.public_ip, eni.ec2_backend.region_name)
    return details


def public_dns(address: str, region: str) -> str:
    zone = "compute-1" if region == "us-east-1" else f"{region}.compute"
    return f"ec2-{address.replace('.', '-')}.{zone}.amazonaws.com"


def instance_details(ec2: Any, instance: Any) -> dict[str, Any]:
    details: dict[str, Any] = {
        "InstanceId": instance.id,
        "InstanceType": instance.instance_type,
        "InstanceState": instance.state,
        "ImageId": instance.image_id,
        "LaunchTime": _launch_time(instance),
        "AvailabilityZone": instance.placement.zone,
        "NetworkInterfaces": [_interface(eni) for _, eni in sorted(instance.nics.items())],
        "ProductCodes": [],
        "Tags": _tags(instance),
    }
    image = ec2.amis.get(instance.image_id)
    if image is not None and getattr(image, "description", None):
        details["ImageDescription"] = image.description
    profile = _profile(ec2, instance)
    if profile:
        details["IamInstanceProfile"] = profile
    # DescribeInstances' Platform: "windows" for Windows instances, absent otherwise.
    platform = getattr(instance, "platform", None) or getattr(image, "platform", None)
    if platform:
        details["Platform"] = platform
    return details


# --- where an address is ----------------------------------------------------------------
def locate(ec2: Any, address: str) -> Any:
    """The local ENI answering at this address (public or private), or None."""
    for eni in ec2.enis.values():
        if eni.public_ip == address or eni.private_ip_address == address:
            return eni
    return None


def remote_details(ec2: Any, address: str) -> dict[str, Any]:
    details: dict[str, Any] = {"IpAddressV4": address}
    if locate(ec2, address) is not None or any(
        a.public_ip == address for a in ec2.addresses
    ):
        details["Organization"] = dict(AMAZON_ORG)
        place = REGION_PLACES.get(ec2.region_name)
        if place:
            country, city, lat, lon = place
            details["Country"] = {"CountryName": country}
            details["City"] = {"CityName": city}
            details["GeoLocation"] = {"Lat": lat, "Lon": lon}
    return details


def _port(port: int) -> dict[str, Any]:
    return {"Port": port, "PortName": PORT_NAMES.get(port, "Unknown")}


# --- analysis -------------------------------------------------------------------------------
def build_finding(ec2: Any, detector_id: str, instance: Any, eni: Any, record: dict[str, Any],
                  direction: str, remote_ip: str, list_name: str) -> dict[str, Any]:
    account, region = ec2.account_id, ec2.region_name
    fid = finding_id(account, region, detector_id, FINDING_TYPE, instance.id, remote_ip)
    now = iso()
    seen = time.time()  # what was seen by now: a record may end after its analysis
    outbound = direction == "OUTBOUND"
    local_port = int(record["srcport"] if outbound else record["dstport"])
    remote_port = int(record["dstport"] if outbound else record["srcport"])
    return {
        "AccountId": account,
        "Arn": f"arn:{ec2.partition}:guardduty:{region}:{account}:detector/{detector_id}"
               f"/finding/{fid}",
        "CreatedAt": now,
        "UpdatedAt": now,
        "Id": fid,
        "Partition": ec2.partition,
        "Region": region,
        "SchemaVersion": "2.0",
        "Severity": SEVERITY,
        "Type": FINDING_TYPE,
        "Title": f"EC2 instance {instance.id} communicating with disallowed IP address.",
        "Description": f"EC2 instance {instance.id} is communicating with a disallowed IP "
                       f"address {remote_ip} on the list {list_name}.",
        "Resource": {"ResourceType": "Instance",
                     "InstanceDetails": instance_details(ec2, instance)},
        "Service": {
            "ServiceName": "guardduty",
            "DetectorId": detector_id,
            "Action": {
                "ActionType": "NETWORK_CONNECTION",
                "NetworkConnectionAction": {
                    "ConnectionDirection": direction,
                    "Protocol": PROTOCOLS.get(int(record["protocol"]), "Unknown"),
                    "Blocked": record["action"] == "REJECT",
                    "LocalIpDetails": {"IpAddressV4": eni.private_ip_address},
                    "RemoteIpDetails": remote_details(ec2, remote_ip),
                    "LocalPortDetails": _port(local_port),
                    "RemotePortDetails": _port(remote_port),
                },
            },
            "Evidence": {"ThreatIntelligenceDetails": [
                {"ThreatListName": list_name, "ThreatNames": []}
            ]},
            "AdditionalInfo": {"Value": json.dumps({"threatListName": list_name}),
                               "Type": "default"},
            "ResourceRole": "ACTOR" if outbound else "TARGET",
            "Count": 1,
            "EventFirstSeen": iso(min(float(record["start"]), seen)),
            "EventLastSeen": iso(min(float(record["end"]), seen)),
            "Archived": False,
        },
    }


def analyze(account: str, region: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check flow records against the region's detector; returns the stored findings (new
    or updated) in record order. Nothing happens without an enabled detector."""
    from moto.ec2.models import ec2_backends

    from gdlab.local import guardduty

    gd = guardduty.backend(account, region)
    detectors = [d for d_id, d in gd.detectors.items() if getattr(d, "enabled", True)]
    if not detectors or not records:
        return []
    ec2 = ec2_backends[account][region]
    results = []
    for detector in detectors:
        detector_id = detector.id
        threats = gd.threat_entries(detector_id)
        if not threats:
            continue
        trusted = gd.trusted_entries(detector_id)
        for record in records:
            if str(record.get("log-status", "OK")) != "OK":
                continue
            eni = ec2.enis.get(record["interface-id"])
            if eni is None or eni.instance is None:
                continue
            local = {eni.private_ip_address, eni.public_ip}
            if record["srcaddr"] in local:
                direction, remote = "OUTBOUND", record["dstaddr"]
            else:
                direction, remote = "INBOUND", record["srcaddr"]
            if not publicly_routable(remote):
                continue
            ip = ipaddress.ip_address(remote)
            if any(ip in net for net in trusted):
                continue
            listed = next(((net, name) for net, _set_id, name in threats if ip in net), None)
            if listed is None:
                continue
            finding = build_finding(ec2, detector_id, eni.instance, eni, record, direction,
                                    remote, listed[1])
            stored, _new = gd.upsert_finding(detector_id, finding)
            results.append(stored)
    return results


# --- the EventBridge shape --------------------------------------------------------------
def _shape() -> Any:
    import botocore.session

    global _FINDING_SHAPE
    if _FINDING_SHAPE is None:
        model = botocore.session.get_session().get_service_model("guardduty")
        _FINDING_SHAPE = model.shape_for("Finding")
    return _FINDING_SHAPE


_FINDING_SHAPE: Any = None


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _plain_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _camel(value: Any, shape: Any) -> Any:
    if shape is not None and shape.type_name == "structure" and isinstance(value, dict):
        out = {}
        for key, item in value.items():
            member = shape.members.get(key)
            name = member.serialization.get("name", _lower_first(key)) if member else \
                _lower_first(key)
            if key == "AdditionalInfo" and isinstance(item, dict) and "Value" in item:
                try:
                    out[name] = json.loads(item.get("Value") or "{}")
                except ValueError:
                    out[name] = {}
                continue
            out[name] = _camel(item, member)
        return out
    if shape is not None and shape.type_name == "list" and isinstance(value, list):
        return [_camel(item, shape.member) for item in value]
    if isinstance(value, dict):
        return {_lower_first(k): _camel(v, None) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v, None) for v in value]
    return _plain_number(value)


def to_event_detail(finding: dict[str, Any]) -> dict[str, Any]:
    """A GetFindings finding as the ``detail`` of GuardDuty's EventBridge event."""
    return _camel(finding, _shape())


def to_event(finding: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    """The whole EventBridge event GuardDuty sends for a finding."""
    stamp = finding.get("UpdatedAt") or iso()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": account,
        "time": stamp[:19] + "Z",
        "region": region,
        "resources": [],
        "detail": to_event_detail(finding),
    }
