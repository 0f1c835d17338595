"""GuardDuty's analysis of the local trail (CloudTrail management events, one of its
foundational data sources) for instance credentials used away from their instance.

"UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS: Credentials that
were created exclusively for an EC2 instance through an Instance launch role are being used
from an external IP address" (GuardDuty user guide, "GuardDuty IAM finding types"; default
severity High). The local cloud raises it for a record that:

- is signed by a session some instance's IMDS delivered (``imds.session_of``),
- comes from a public IPv4 address that is none of that instance's own (public or private)
  addresses,
- and from an address on an ACTIVE threat list of the region's enabled detector, unless a
  trusted IP list of the detector holds it ("GuardDuty doesn't generate findings for IP
  addresses on trusted IP lists"). The lab's attacker works from an Elastic IP the lab put on
  its threat list; GuardDuty's learned "expected remote" behaviour is not modelled.

The finding follows AWS's schema for this type (Resource.ResourceType "AccessKey" with
AccessKeyDetails of the role session and the InstanceDetails of the instance the credentials
belong to; Service.Action AWS_API_CALL with the call, its service, CallerType "Remote IP" and
the remote address; the threat list in Evidence and AdditionalInfo). One finding per
(instance, role, remote address): repeats go through ``FindingsMixin.upsert_finding``, so
Count, EventLastSeen and publishing follow the detector's lifecycle.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("gdlab.local.guardduty")

FINDING_TYPE = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
SEVERITY = 8.0


def _iso_ms(stamp: str) -> str:
    """A CloudTrail eventTime (seconds) as GuardDuty writes times (milliseconds)."""
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        moment = datetime.now(timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def own_addresses(instance: Any) -> set[str]:
    """Every address of the instance's ENIs, public and private."""
    found: set[str] = set()
    for eni in list(getattr(instance, "nics", {}).values()):
        found.add(str(eni.private_ip_address))
        for extra in getattr(eni, "private_ip_addresses", None) or []:
            if isinstance(extra, dict) and extra.get("PrivateIpAddress"):
                found.add(str(extra["PrivateIpAddress"]))
        if eni.public_ip:
            found.add(str(eni.public_ip))
    return found


def build_finding(ec2: Any, detector_id: str, instance: Any, session: Any,
                  record: dict[str, Any], list_name: str) -> dict[str, Any]:
    from gdlab.local.analyzer import finding_id, instance_details, remote_details

    account, region = ec2.account_id, ec2.region_name
    source = str(record["sourceIPAddress"])
    role = session.role_name
    fid = finding_id(account, region, detector_id, FINDING_TYPE,
                     f"{instance.id}/{role}", source)
    seen = _iso_ms(str(record.get("eventTime")))
    # GuardDuty writes the finding after the call it judges: its CreatedAt/UpdatedAt are the
    # analysis' time (milliseconds), later than the call's second-precise eventTime. A
    # responder's cut-off from UpdatedAt then covers a session issued within that second.
    from gdlab.local.guardduty.common import now_iso

    analysed = max(now_iso(), seen)
    identity = record.get("userIdentity") or {}
    call: dict[str, Any] = {
        "Api": str(record.get("eventName")),
        "ServiceName": str(record.get("eventSource")),
        "CallerType": "Remote IP",
        "RemoteIpDetails": remote_details(ec2, source),
    }
    if record.get("errorCode"):
        call["ErrorCode"] = str(record["errorCode"])
    if record.get("userAgent"):
        call["UserAgent"] = str(record["userAgent"])
    return {
        "Id": fid,
        "Type": FINDING_TYPE,
        "Severity": SEVERITY,
        "CreatedAt": analysed,
        "UpdatedAt": analysed,
        "Title": f"Credentials for instance role {role} used from external IP address.",
        "Description": f"Credentials created exclusively for an EC2 instance using instance "
                       f"role {role} have been used from external IP address {source}.",
        "Resource": {
            "ResourceType": "AccessKey",
            "AccessKeyDetails": {
                "AccessKeyId": session.access_key_id,
                "PrincipalId": str(identity.get("principalId") or ""),
                "UserName": role,
                "UserType": "AssumedRole",
            },
            "InstanceDetails": instance_details(ec2, instance),
        },
        "Service": {
            "ServiceName": "guardduty",
            "DetectorId": detector_id,
            "Action": {"ActionType": "AWS_API_CALL", "AwsApiCallAction": call},
            "Evidence": {"ThreatIntelligenceDetails": [
                {"ThreatListName": list_name, "ThreatNames": []}]},
            "AdditionalInfo": {"Value": json.dumps({"threatListName": list_name}),
                               "Type": "default"},
            "ResourceRole": "TARGET",
            "Count": 1,
            "EventFirstSeen": seen,
            "EventLastSeen": seen,
            "Archived": False,
        },
    }


def analyze(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Judge one trail record; returns the findings stored for it (new or updated)."""
    from moto.ec2.models import ec2_backends

    from gdlab.local import imds
    from gdlab.local.analyzer import publicly_routable
    from gdlab.local.guardduty.models import backend

    key = (record.get("userIdentity") or {}).get("accessKeyId")
    session = imds.session_of(str(key)) if key else None
    if session is None:
        return []
    source = str(record.get("sourceIPAddress") or "")
    if not publicly_routable(source):
        return []
    ec2 = ec2_backends[session.account][session.region]
    instance = next((i for r in list(ec2.reservations.values()) for i in list(r.instances)
                     if i.id == session.instance_id), None)
    if instance is None or source in own_addresses(instance):
        return []
    region = str(record.get("awsRegion") or session.region)
    gd = backend(session.account, region)
    ip = ipaddress.ip_address(source)
    stored = []
    for detector_id, detector in list(gd.detectors.items()):
        if not getattr(detector, "enabled", True):
            continue
        if any(ip in net for net in gd.trusted_entries(detector_id)):
            continue
        listed = next((name for net, _set_id, name in gd.threat_entries(detector_id)
                       if ip in net), None)
        if listed is None:
            continue
        finding = build_finding(ec2, detector_id, instance, session, record, listed)
        result, new = gd.upsert_finding(detector_id, finding)
        if new:
            log.info("%s: %s used from %s", FINDING_TYPE, session.access_key_id, source)
        stored.append(result)
    return stored
