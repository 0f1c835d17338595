"""EC2 corrections of moto that the lab relies on (behave like AWS)."""

from __future__ import annotations

import ipaddress

import pytest
from botocore.exceptions import ClientError

from gdlab.local import ec2 as ec2_local

IMAGE = "ami-12c6146b"  # one of moto's built-in AMIs; listing them all is slow


@pytest.fixture
def ec2(shared_aws):
    # no reset: every test builds its own VPC, and an EC2 reset costs seconds
    return shared_aws("ec2")


@pytest.fixture
def net(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/24")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/26")["Subnet"]["SubnetId"]
    app = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    forensic = ec2.create_security_group(GroupName="ForensicSecurityGroup",
                                         Description="isolation", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnet": subnet, "app": app, "forensic": forensic}


def launch(ec2, net, **extra):
    args = {"ImageId": IMAGE, "MinCount": 1, "MaxCount": 1, "SubnetId": net["subnet"],
            "SecurityGroupIds": [net["app"]], **extra}
    return ec2.run_instances(**args)["Instances"][0]


def groups_of(ec2, instance_id):
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return ([g["GroupId"] for g in inst["SecurityGroups"]],
            [g["GroupId"] for g in inst["NetworkInterfaces"][0]["Groups"]])


def test_instance_groups_follow_primary_eni(ec2, net):
    instance = launch(ec2, net)
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert groups_of(ec2, instance["InstanceId"]) == ([net["app"]], [net["app"]])
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[net["forensic"]])
    assert groups_of(ec2, instance["InstanceId"]) == ([net["forensic"]], [net["forensic"]])
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])
    assert [g["GroupId"] for g in described["NetworkInterfaces"][0]["Groups"]] == [
        net["forensic"]]


def test_launch_eni_gets_network_interface_tags(ec2, net):
    instance = launch(ec2, net, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "gdlab:lab", "Value": "gd-t"}]},
        {"ResourceType": "network-interface", "Tags": [{"Key": "gdlab:lab", "Value": "gd-t"}]},
    ])
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    tags = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0][
        "TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"gdlab:lab": "gd-t"}


def test_instance_attribute_groups_move_the_primary_eni(ec2, net):
    instance = launch(ec2, net)
    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], Groups=[net["forensic"]])
    assert groups_of(ec2, instance["InstanceId"]) == ([net["forensic"]], [net["forensic"]])


def test_instance_attribute_groups_refused_with_two_enis(ec2, net):
    instance = launch(ec2, net)
    second = ec2.create_network_interface(SubnetId=net["subnet"], Groups=[net["app"]])
    ec2.attach_network_interface(NetworkInterfaceId=second["NetworkInterface"][
        "NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1)
    with pytest.raises(ClientError) as excinfo:
        ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], Groups=[net["forensic"]])
    assert excinfo.value.response["Error"]["Code"] == "InvalidInstanceID"


def test_instance_without_groups_shows_the_vpc_default(ec2, net):
    instance = ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1,
                                 SubnetId=net["subnet"])["Instances"][0]
    default = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [net["vpc"]]},
        {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    assert groups_of(ec2, instance["InstanceId"])[0] == [default]


def test_terminating_a_terminated_instance_succeeds(ec2, net):
    """AWS: TerminateInstances on a terminated instance is a no-op that succeeds (a teardown
    killed after the call and before its journal entry must be able to finish)."""
    instance = launch(ec2, net)["InstanceId"]
    ec2.terminate_instances(InstanceIds=[instance])
    (again,) = ec2.terminate_instances(InstanceIds=[instance])["TerminatingInstances"]
    assert again["PreviousState"]["Name"] == "terminated"  # (moto's template always says
    # CurrentState shutting-down; gdlab waits for 'terminated' with DescribeInstances)


def test_delete_group_in_use_is_a_dependency_violation(ec2, net):
    instance = launch(ec2, net)
    with pytest.raises(ClientError) as excinfo:
        ec2.delete_security_group(GroupId=net["app"])
    err = excinfo.value.response["Error"]
    assert err["Code"] == "DependencyViolation"
    assert err["Message"] == f"resource {net['app']} has a dependent object"
    ec2.delete_security_group(GroupId=net["forensic"])  # unused: deleted
    # Terminating the instance deletes its launch ENI, which frees the group.
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    ec2.delete_security_group(GroupId=net["app"])


def release_all(ec2):
    for address in ec2.describe_addresses()["Addresses"]:
        ec2.release_address(AllocationId=address["AllocationId"])


def test_elastic_ips_are_public_and_unique(ec2):
    seen = set()
    for _ in range(4):  # several rounds, as the quota allows 5 at a time
        release_all(ec2)
        addresses = [ec2.allocate_address(Domain="vpc")["PublicIp"] for _ in range(5)]
        assert len(set(addresses)) == len(addresses)
        seen.update(addresses)
        for address in addresses:
            ip = ipaddress.ip_address(address)
            assert ip.is_global and not ip.is_private and not ip.is_loopback
    assert len(seen) > 5
    release_all(ec2)
    assert ec2.allocate_address(Domain="vpc", Address="54.80.0.10")["PublicIp"] == "54.80.0.10"
    release_all(ec2)


def eip_quota(ec2) -> int:
    attrs = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])
    (value,) = [a["AttributeValues"][0]["AttributeValue"] for a in attrs["AccountAttributes"]
                if a["AttributeName"] == "vpc-max-elastic-ips"]
    return int(value)


def assert_address_limit(ec2):
    """Allocating up to the quota works; one more fails as AWS fails it."""
    limit = eip_quota(ec2)
    assert limit == ec2_local.EIP_LIMIT == 5  # what the correction enforces is what is told
    release_all(ec2)
    held = [ec2.allocate_address(Domain="vpc") for _ in range(limit)]
    with pytest.raises(ClientError) as excinfo:
        ec2.allocate_address(Domain="vpc")
    error = excinfo.value.response
    assert error["Error"]["Code"] == "AddressLimitExceeded"
    assert error["Error"]["Message"] == "The maximum number of addresses has been reached."
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError):  # a given address counts too
        ec2.allocate_address(Domain="vpc", Address="54.80.0.11")
    assert len(ec2.describe_addresses()["Addresses"]) == limit
    # releasing one makes room for one
    ec2.release_address(AllocationId=held[0]["AllocationId"])
    ec2.allocate_address(Domain="vpc")
    release_all(ec2)


def test_elastic_ip_quota_in_process(ec2):
    assert_address_limit(ec2)


def test_elastic_ip_quota_is_per_region(shared_aws):
    east, west = shared_aws("ec2"), shared_aws("ec2", region="eu-west-1")
    release_all(east)
    for _ in range(5):
        east.allocate_address(Domain="vpc")
    assert west.allocate_address(Domain="vpc")["PublicIp"]
    release_all(east)
    release_all(west)


def test_elastic_ip_quota_over_http(local_client, local_server):
    from gdlab.cloud import Cloud, CloudSettings
    from gdlab.errors import PreflightError

    ec2 = local_client("ec2")
    assert_address_limit(ec2)
    # gdlab's own preflight reads the same quota, so on a full region it stops before
    # creating anything, as on AWS
    for _ in range(5):
        ec2.allocate_address(Domain="vpc")
    cloud = Cloud(CloudSettings(target="local", region="us-east-1",
                                endpoint_url=local_server.endpoint))
    with pytest.raises(PreflightError, match="5 of 5 in use"):
        cloud.preflight(eips_needed=1)


def test_instances_launched_at_once_in_one_subnet_get_distinct_addresses(ec2, net):
    """The threaded local cloud launches setup's two instances side by side: moto's shared
    address generator is taken one caller at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        launched = list(pool.map(lambda _: launch(ec2, net), range(16)))
    addresses = [i["PrivateIpAddress"] for i in launched]
    assert len(set(addresses)) == 16


def _other_vpc_group(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/24")["Vpc"]["VpcId"]
    return ec2.create_security_group(GroupName="elsewhere", Description="other vpc",
                                     VpcId=vpc)["GroupId"]


def test_eni_groups_refuse_an_unknown_group_and_stay_unchanged(ec2, net):
    instance = launch(ec2, net)
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    with pytest.raises(ClientError) as caught:
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni,
                                               Groups=[net["forensic"], "sg-0000000000deadbee"])
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidGroup.NotFound"
    assert error["Message"] == "The security group 'sg-0000000000deadbee' does not exist"
    assert groups_of(ec2, instance["InstanceId"]) == ([net["app"]], [net["app"]])


def test_eni_groups_refuse_another_vpcs_group(ec2, net):
    instance = launch(ec2, net)
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    with pytest.raises(ClientError) as caught:
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni,
                                               Groups=[_other_vpc_group(ec2)])
    assert caught.value.response["Error"]["Code"] == "InvalidGroup.NotFound"
    assert "belong to different networks" in caught.value.response["Error"]["Message"]
    assert groups_of(ec2, instance["InstanceId"]) == ([net["app"]], [net["app"]])


def test_instance_groups_refuse_unknown_and_other_vpc_groups(ec2, net):
    instance = launch(ec2, net)
    for bad in ("sg-0000000000deadbee", _other_vpc_group(ec2)):
        with pytest.raises(ClientError) as caught:
            ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], Groups=[bad])
        assert caught.value.response["Error"]["Code"] == "InvalidGroup.NotFound"
        assert groups_of(ec2, instance["InstanceId"]) == ([net["app"]], [net["app"]])


def test_eni_source_dest_check_alone_keeps_the_groups(ec2, net):
    from wire_shapes import assert_wire_shape, capture_raw

    instance = launch(ec2, net)
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    calls = capture_raw(ec2)
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni,
                                           SourceDestCheck={"Value": False})
    operation, status, body = calls[-1]
    assert status == 200
    assert_wire_shape("ec2", operation, body)
    assert groups_of(ec2, instance["InstanceId"]) == ([net["app"]], [net["app"]])
