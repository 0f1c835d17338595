"""EC2 corrections: where moto differs from AWS in a way the lab relies on, behave like AWS.

- An instance's security groups are its primary ENI's groups, so isolating the ENI with
  ModifyNetworkInterfaceAttribute shows in DescribeInstances (moto keeps two lists and
  reports their union on the ENI).
- ModifyInstanceAttribute(Groups) refuses instances with several ENIs, as AWS does.
- ModifyInstanceAttribute and ModifyNetworkInterfaceAttribute refuse a group that does not
  exist or lives in another VPC (InvalidGroup.NotFound), leaving the groups unchanged; moto
  accepted an unknown id and left the ENI with no groups.
- ENIs created at launch are deleted with the instance (AWS's DeleteOnTermination default)
  and carry RunInstances' "network-interface" TagSpecifications.
- DeleteSecurityGroup of a group still attached to an ENI raises DependencyViolation.
- Elastic IPs are public addresses (moto hands out 127.x; GuardDuty ignores non-public IPs),
  unique per allocation.
- AllocateAddress beyond the account's Elastic IP quota (the `vpc-max-elastic-ips` that
  DescribeAccountAttributes reports: 5, AWS's default) fails with AddressLimitExceeded, as
  AWS does; moto allocates without limit.
"""

from __future__ import annotations

import ipaddress
import random
import threading
from typing import Any

from moto.ec2.exceptions import DependencyViolationError, EC2ClientError
from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend
from moto.ec2.models.elastic_network_interfaces import NetworkInterface, NetworkInterfaceBackend
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.models.subnets import Subnet

# AWS-owned public ranges that EC2 really allocates Elastic IPs from.
EIP_RANGES = [ipaddress.ip_network(n) for n in ("3.208.0.0/12", "18.204.0.0/14",
                                                "54.80.0.0/12")]
# What moto's DescribeAccountAttributes reports as vpc-max-elastic-ips (AWS's default quota).
EIP_LIMIT = 5
_rng = random.Random()
_rng_lock = threading.Lock()
_eip_lock = threading.Lock()


def public_ip(taken: set[str]) -> str:
    """A public IPv4 address from EIP_RANGES not in `taken`."""
    with _rng_lock:
        while True:
            network = _rng.choice(EIP_RANGES)
            # skip the network and broadcast-looking ends of each /24
            offset = _rng.randrange(1, network.num_addresses - 1)
            address = network.network_address + offset
            if address.packed[-1] in (0, 255):
                continue
            candidate = str(address)
            if candidate not in taken and address.is_global:
                return candidate


def _primary(instance: Any) -> NetworkInterface | None:
    nics = instance.__dict__.get("nics")
    return nics.get(0) if nics else None


def _get_groups(instance: Any) -> list[Any]:
    eni = _primary(instance)
    if eni is not None:
        return list(eni._group_set)
    return list(instance.__dict__.get("_gdlab_security_groups", []))


def _set_groups(instance: Any, groups: list[Any]) -> None:
    eni = _primary(instance)
    if eni is not None:
        eni._group_set = list(groups)
    else:  # during __init__, before the ENIs exist: prep_nics copies them to the ENI
        instance.__dict__["_gdlab_security_groups"] = list(groups)


def _eni_group_set(eni: Any) -> list[Any]:
    return list(eni._group_set)


_orig_prep_nics = Instance.prep_nics
_orig_run_instances = InstanceBackend.run_instances
_orig_allocate_address = ElasticAddressBackend.allocate_address
_orig_modify_eni_attribute = NetworkInterfaceBackend.modify_network_interface_attribute
_orig_delete_security_group = SecurityGroupBackend.delete_security_group
_orig_terminate = Instance.terminate
_orig_get_available_subnet_ip = Subnet.get_available_subnet_ip
_subnet_ip_lock = threading.Lock()


def _get_available_subnet_ip(self: Any, instance: Any) -> str:
    """One address at a time: moto hands out a subnet's addresses from one shared generator,
    and two RunInstances in one subnet at once (setup launches both instances side by side
    on the threaded server) would fail with 'generator already executing'."""
    with _subnet_ip_lock:
        return _orig_get_available_subnet_ip(self, instance)


def _terminate(self: Any) -> Any:
    """Terminating a terminated instance changes nothing and succeeds, as on AWS (moto would
    delete its already deleted interfaces again and answer InvalidNetworkInterfaceID.NotFound,
    so a teardown interrupted after TerminateInstances could never finish)."""
    if self._state.name == "terminated":
        import copy

        return copy.copy(self._state)
    return _orig_terminate(self)


def _prep_nics(self: Any, nic_spec: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
    given = {int(n.get("DeviceIndex", 0)): dict(n) for n in nic_spec or []}
    _orig_prep_nics(self, nic_spec, *args, **kwargs)
    for index, eni in self.nics.items():
        spec = given.get(index, {})
        if spec.get("NetworkInterfaceId"):
            continue  # an existing ENI keeps its own setting
        if str(spec.get("DeleteOnTermination", True)).lower() != "false":
            eni.delete_on_termination = True


def _run_instances(self: Any, image_id: str, count: int, user_data: Any,
                   security_group_names: list[str], **kwargs: Any) -> Any:
    eni_tags = dict((kwargs.get("tags") or {}).get("network-interface") or {})
    given = {n.get("NetworkInterfaceId") for n in kwargs.get("nics") or []}
    reservation = _orig_run_instances(self, image_id, count, user_data, security_group_names,
                                      **kwargs)
    if eni_tags:
        for instance in reservation.instances:
            for eni in instance.nics.values():
                if eni.id not in given:  # AWS tags only the interfaces it creates
                    eni.add_tags(eni_tags)
    return reservation


def _groups_in_vpc(backend: Any, group_ids: list[str], vpc_id: str | None) -> list[Any]:
    """The groups named by id, all of them existing in `vpc_id`, or the EC2 error AWS gives:
    InvalidGroup.NotFound for an unknown id, and for another VPC's group "You have specified
    two resources that belong to different networks." (the code AWS answers there too)."""
    from moto.ec2.exceptions import InvalidSecurityGroupNotFoundError

    groups = []
    for group_id in group_ids:
        group = backend.get_security_group_from_id(group_id)
        if group is None:
            raise InvalidSecurityGroupNotFoundError(group_id)
        if vpc_id and group.vpc_id and group.vpc_id != vpc_id:
            raise EC2ClientError("InvalidGroup.NotFound",
                                 "You have specified two resources that belong to different "
                                 "networks.")
        groups.append(group)
    return groups


def _modify_instance_security_groups(self: Any, instance_id: str,
                                     new_group_id_list: list[str]) -> Any:
    instance = self.get_instance(instance_id)
    if len(instance.nics) > 1:
        raise EC2ClientError(
            "InvalidInstanceID",
            f"There are multiple interfaces attached to instance '{instance_id}'. "
            "Please specify an interface ID for the operation instead.",
        )
    instance.security_groups = _groups_in_vpc(self, new_group_id_list, instance.vpc_id)
    return instance


def _modify_network_interface_attribute(self: Any, eni_id: str, group_ids: list[str],
                                        *args: Any, **kwargs: Any) -> None:
    # Every group is checked before anything changes, so a refused call leaves the ENI as
    # it was (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
    eni = self.get_network_interface(eni_id)
    _groups_in_vpc(self, group_ids or [], eni.subnet.vpc_id if eni.subnet else None)
    return _orig_modify_eni_attribute(self, eni_id, group_ids, *args, **kwargs)


def _delete_security_group(self: Any, name: str | None = None,
                           group_id: str | None = None) -> None:
    group = None
    if group_id:
        group = self.get_security_group_from_id(group_id)
    elif name:
        group = self.get_security_group_by_name_or_id(name)
    if group is not None:
        for eni in list(getattr(self, "enis", {}).values()):
            instance = eni.instance
            if instance is not None and instance.state == "terminated":
                continue
            if any(g is group or getattr(g, "id", None) == group.id for g in eni._group_set):
                raise DependencyViolationError(f"resource {group.id} has a dependent object")
    return _orig_delete_security_group(self, name=name, group_id=group_id)


class AddressLimitExceeded(EC2ClientError):
    def __init__(self) -> None:
        super().__init__("AddressLimitExceeded",
                         "The maximum number of addresses has been reached.")


def _allocate_address(self: Any, domain: str, address: str | None = None,
                      tags: dict[str, str] | None = None) -> Any:
    with _eip_lock:  # the server is threaded: count and allocate as one step
        if len(self.addresses) >= EIP_LIMIT:  # the quota counts every address of the region
            raise AddressLimitExceeded()
        if not address:
            taken = {a.public_ip for a in self.addresses}
            address = public_ip(taken)
        return _orig_allocate_address(self, domain, address=address, tags=tags)


def install() -> None:
    """Patch moto's EC2 classes in place (all backends, existing and future). Idempotent."""
    from gdlab.local import patches

    # moto keeps an instance's groups in an attribute of its own; gdlab's property reads the
    # primary ENI's groups instead.
    patches.patch(Instance, "security_groups", property(_get_groups, _set_groups),
                  "an instance's groups are its primary ENI's", add=True)
    patches.patch(NetworkInterface, "group_set", property(_eni_group_set),
                  "an ENI's groups are its own, not a union with its instance's")
    for owner, name, replacement, why in (
        (Instance, "prep_nics", _prep_nics,
         "ENIs created at launch are deleted with the instance"),
        (Instance, "terminate", _terminate, "terminating a terminated instance succeeds"),
        (Subnet, "get_available_subnet_ip", _get_available_subnet_ip,
         "one address at a time from a subnet's shared generator"),
        (InstanceBackend, "run_instances", _run_instances,
         "RunInstances' network-interface TagSpecifications reach the launch ENIs"),
        (InstanceBackend, "modify_instance_security_groups", _modify_instance_security_groups,
         "ModifyInstanceAttribute(Groups) checks groups and ENIs as AWS does"),
        (SecurityGroupBackend, "delete_security_group", _delete_security_group,
         "a group still attached to an ENI is a DependencyViolation"),
        (ElasticAddressBackend, "allocate_address", _allocate_address,
         "Elastic IPs are unique public addresses within the account's quota"),
        (NetworkInterfaceBackend, "modify_network_interface_attribute",
         _modify_network_interface_attribute, "an ENI's new groups must exist in its VPC"),
    ):
        patches.patch(owner, name, replacement, why)
