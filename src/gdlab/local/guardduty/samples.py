"""CreateSampleFindings: findings shaped like GuardDuty's own samples for EC2 network
findings (fake instance i-99999999, GeneratedFinding* values) and for API-call findings of
IAM users and S3 buckets (GeneratedFindingAccessKeyId, GeneratedFindingS3Bucket...)."""

from __future__ import annotations

import uuid
from typing import Any

from gdlab.local.guardduty.common import now_iso

SAMPLE_INSTANCE = "i-99999999"

SAMPLE_SEVERITY = {
    "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom": 5.0,
    "Recon:EC2/PortProbeUnprotectedPort": 2.0,
    "Backdoor:EC2/C&CActivity.B": 8.0,
    "CryptoCurrency:EC2/BitcoinTool.B": 5.0,
    "Trojan:EC2/BlackholeTraffic": 5.0,
    "UnauthorizedAccess:EC2/SSHBruteForce": 2.0,
    "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom": 5.0,
    "Discovery:S3/MaliciousIPCaller.Custom": 8.0,
    "Policy:S3/BucketBlockPublicAccessDisabled": 2.0,
    "Stealth:S3/ServerAccessLoggingDisabled": 2.0,
}
# API-call types: the call GuardDuty's sample shows.
SAMPLE_APIS = {
    "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom": ("GeneratedFindingAPIName",
                                                            "GeneratedFindingAPIServiceName"),
    "Discovery:S3/MaliciousIPCaller.Custom": ("ListObjects", "s3.amazonaws.com"),
    "Policy:S3/BucketBlockPublicAccessDisabled": ("DeleteBucketPublicAccessBlock",
                                                  "s3.amazonaws.com"),
    "Stealth:S3/ServerAccessLoggingDisabled": ("PutBucketLogging", "s3.amazonaws.com"),
}
SAMPLE_BUCKET = "GeneratedFindingS3Bucket"


def sample_finding(backend: Any, detector_id: str, finding_type: str) -> dict[str, Any]:
    """A finding shaped like GuardDuty's own samples for EC2 network findings."""
    if finding_type in SAMPLE_APIS:
        return api_call_sample(backend, detector_id, finding_type)
    stamp = now_iso()
    remote_ip = "198.51.100.0"
    list_name = "GeneratedFindingCustomerListName"
    custom = finding_type.endswith(".Custom")
    finding: dict[str, Any] = {
        "Id": uuid.uuid4().hex,
        "Type": finding_type,
        "Severity": SAMPLE_SEVERITY.get(finding_type, 5.0),
        "Confidence": 5.0 if custom else 8.0,
        "CreatedAt": stamp,
        "UpdatedAt": stamp,
        "Title": f"[SAMPLE] EC2 instance {SAMPLE_INSTANCE} communicating with "
                 + ("disallowed IP address." if custom else f"{remote_ip}."),
        "Description": f"[SAMPLE] EC2 instance {SAMPLE_INSTANCE} is communicating with "
                       + (f"a disallowed IP address {remote_ip} on the list {list_name}."
                          if custom else f"{remote_ip}, matching finding type {finding_type}."),
        "Resource": {
            "ResourceType": "Instance",
            "InstanceDetails": {
                "InstanceId": SAMPLE_INSTANCE,
                "InstanceType": "m3.xlarge",
                "InstanceState": "running",
                "AvailabilityZone": "GeneratedFindingInstanceAvailabilityZone",
                "ImageId": "ami-99999999",
                "ImageDescription": "GeneratedFindingInstanceImageDescription",
                "LaunchTime": "2016-08-02T02:05:06.000Z",
                "IamInstanceProfile": {
                    "Arn": f"arn:{backend.partition}:iam::{backend.account_id}:example/"
                           "instance/profile",
                    "Id": "GeneratedFindingInstanceProfileId",
                },
                "NetworkInterfaces": [{
                    "NetworkInterfaceId": "eni-abcdef00",
                    "PrivateIpAddress": "10.0.0.1",
                    "PrivateDnsName": "GeneratedFindingPrivateDnsName",
                    "PublicIp": "198.51.100.0",
                    "PublicDnsName": "GeneratedFindingPublicDNSName",
                    "SubnetId": "GeneratedFindingSubnetId",
                    "VpcId": "GeneratedFindingVPCId",
                    "SecurityGroups": [{"GroupId": "GeneratedFindingSecurityId",
                                        "GroupName": "GeneratedFindingSecurityGroupName"}],
                    "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.1",
                                            "PrivateDnsName": "GeneratedFindingPrivateName"}],
                    "Ipv6Addresses": [],
                }],
                "ProductCodes": [],
                "Tags": [{"Key": "GeneratedFindingInstanceTag1",
                          "Value": "GeneratedFindingInstanceValue1"}],
            },
        },
        "Service": {
            "ServiceName": "guardduty",
            "DetectorId": detector_id,
            "Archived": False,
            "Count": 1,
            "EventFirstSeen": stamp,
            "EventLastSeen": stamp,
            "ResourceRole": "ACTOR" if custom else "TARGET",
            "AdditionalInfo": {"Value": '{"sample":true}', "Type": "default"},
            "Action": {
                "ActionType": "NETWORK_CONNECTION",
                "NetworkConnectionAction": {
                    "ConnectionDirection": "OUTBOUND" if custom else "INBOUND",
                    "Protocol": "TCP",
                    "Blocked": False,
                    "LocalPortDetails": {"Port": 39677, "PortName": "Unknown"},
                    "RemotePortDetails": {"Port": 80, "PortName": "HTTP"},
                    "LocalIpDetails": {"IpAddressV4": "10.0.0.23"},
                    "RemoteIpDetails": {
                        "IpAddressV4": remote_ip,
                        "Organization": {"Asn": "-1", "AsnOrg": "GeneratedFindingASNOrg",
                                         "Isp": "GeneratedFindingISP",
                                         "Org": "GeneratedFindingORG"},
                        "Country": {"CountryName": "GeneratedFindingCountryName"},
                        "City": {"CityName": "GeneratedFindingCityName"},
                        "GeoLocation": {"Lat": 0.0, "Lon": 0.0},
                    },
                },
            },
        },
    }
    if custom:
        finding["Service"]["Evidence"] = {
            "ThreatIntelligenceDetails": [{"ThreatListName": list_name,
                                           "ThreatNames": []}]
        }
    return finding



def _sample_remote() -> dict[str, Any]:
    return {"IpAddressV4": "198.51.100.0",
            "Organization": {"Asn": "-1", "AsnOrg": "GeneratedFindingASNOrg",
                             "Isp": "GeneratedFindingISP", "Org": "GeneratedFindingORG"},
            "Country": {"CountryName": "GeneratedFindingCountryName"},
            "City": {"CityName": "GeneratedFindingCityName"},
            "GeoLocation": {"Lat": 0.0, "Lon": 0.0}}


def _sample_bucket(backend: Any) -> dict[str, Any]:
    block = {"IgnorePublicAcls": False, "RestrictPublicBuckets": False,
             "BlockPublicAcls": False, "BlockPublicPolicy": False}
    return {
        "Arn": f"arn:{backend.partition}:s3:::{SAMPLE_BUCKET}",
        "Name": SAMPLE_BUCKET,
        "Type": "Destination",
        "CreatedAt": 1513612691.551,
        "Owner": {"Id": "CanonicalId of Owner"},
        "Tags": [{"Key": "foo", "Value": "bar"}],
        "DefaultServerSideEncryption": {"EncryptionType": "SSEAlgorithm",
                                        "KmsMasterKeyArn": "arn:aws:kms:region:123456789012"
                                                           ":key/key-id"},
        "PublicAccess": {
            "PermissionConfiguration": {
                "BucketLevelPermissions": {
                    "AccessControlList": {"AllowsPublicReadAccess": False,
                                          "AllowsPublicWriteAccess": False},
                    "BucketPolicy": {"AllowsPublicReadAccess": False,
                                     "AllowsPublicWriteAccess": False},
                    "BlockPublicAccess": dict(block),
                },
                "AccountLevelPermissions": {"BlockPublicAccess": dict(block)},
            },
            "EffectivePermission": "NOT_PUBLIC",
        },
    }


def api_call_sample(backend: Any, detector_id: str, finding_type: str) -> dict[str, Any]:
    """A sample of an AWS_API_CALL finding: an IAM user's access key, the S3 bucket when the
    type is about one, the threat list when the type is a custom-list one."""
    stamp = now_iso()
    api, service_name = SAMPLE_APIS[finding_type]
    custom = finding_type.endswith(".Custom")
    list_name = "GeneratedFindingCustomerListName"
    resource: dict[str, Any] = {
        "ResourceType": "AccessKey",
        "AccessKeyDetails": {"AccessKeyId": "GeneratedFindingAccessKeyId",
                             "PrincipalId": "GeneratedFindingPrincipalId",
                             "UserName": "GeneratedFindingUserName", "UserType": "IAMUser"},
    }
    if finding_type.split(":")[1].startswith("S3/"):
        resource["ResourceType"] = "S3Bucket"
        resource["S3BucketDetails"] = [_sample_bucket(backend)]
    what = f"S3 bucket {SAMPLE_BUCKET}" if "S3BucketDetails" in resource else \
        "user GeneratedFindingUserName"
    finding: dict[str, Any] = {
        "Id": uuid.uuid4().hex,
        "Type": finding_type,
        "Severity": SAMPLE_SEVERITY[finding_type],
        "CreatedAt": stamp,
        "UpdatedAt": stamp,
        "Title": f"[SAMPLE] API {api} was invoked for {what}.",
        "Description": f"[SAMPLE] API {api} was invoked for {what}, matching finding type "
                       f"{finding_type}.",
        "Resource": resource,
        "Service": {
            "ServiceName": "guardduty",
            "DetectorId": detector_id,
            "Archived": False,
            "Count": 1,
            "EventFirstSeen": stamp,
            "EventLastSeen": stamp,
            "ResourceRole": "TARGET",
            "AdditionalInfo": {"Value": '{"sample":true}', "Type": "default"},
            "Action": {"ActionType": "AWS_API_CALL", "AwsApiCallAction": {
                "Api": api, "ServiceName": service_name, "CallerType": "Remote IP",
                "UserAgent": "GeneratedFindingUserAgent",
                "RemoteIpDetails": _sample_remote()}},
        },
    }
    if custom:
        finding["Service"]["Evidence"] = {
            "ThreatIntelligenceDetails": [{"ThreatListName": list_name, "ThreatNames": []}]}
    return finding
