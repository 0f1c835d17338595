"""The two instances, the Elastic IP, and the compromised instance's SSM identity."""

from __future__ import annotations

import json
from typing import Any

from gdlab.errors import PreflightError
from gdlab.lab import locks
from gdlab.lab.awsutil import (
    code_in,
    error_code,
    ignore_not_found,
    is_not_found,
    message_has,
    retry,
    tag_list,
)
from gdlab.lab.state import Resource
from gdlab.lab.steps import LAB_TAG, Found, LabContext, Step

IAM_PATH = "/gdlab/"
SSM_POLICY = "AmazonSSMManagedInstanceCore"


def _ec2(ctx: LabContext) -> Any:
    return ctx.cloud.client("ec2")


def _iam(ctx: LabContext) -> Any:
    return ctx.cloud.client("iam")


def role_tagged_for(ctx: LabContext, client: Any, role_name: str) -> bool:
    """An existing role belongs to this lab only if it carries the lab's tag."""
    from botocore.exceptions import ClientError

    try:
        tags = client.list_role_tags(RoleName=role_name)["Tags"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return False
        raise
    return any(t["Key"] == LAB_TAG and t["Value"] == ctx.lab for t in tags)


def find_role(ctx: LabContext, role_name: str) -> list[Found]:
    """The lab's role of that name, with the ARN later steps need."""
    iam = _iam(ctx)
    if not role_tagged_for(ctx, iam, role_name):
        return []
    return [Found(role_name, attrs={"arn": iam.get_role(RoleName=role_name)["Role"]["Arn"]})]


def create_role(ctx: LabContext, step: Step, name: str, trust: dict[str, Any],
                description: str) -> None:
    """A lab role under gdlab's IAM path, tagged at creation; its ARN journaled with its id."""
    role = _iam(ctx).create_role(
        RoleName=name,
        Path=IAM_PATH,
        AssumeRolePolicyDocument=json.dumps(trust),
        Description=description,
        Tags=tag_list(ctx.tags(name)),
    )["Role"]
    ctx.created(step, name, arn=role["Arn"])


def delete_role(client: Any, role_name: str) -> None:
    """Detach managed policies, delete inline ones, then the role; absent is fine."""
    from botocore.exceptions import ClientError

    try:
        attached = client.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
        inline = client.list_role_policies(RoleName=role_name)["PolicyNames"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return
        raise
    for policy in attached:
        ignore_not_found(
            client.detach_role_policy, RoleName=role_name, PolicyArn=policy["PolicyArn"]
        )
    for policy_name in inline:
        ignore_not_found(client.delete_role_policy, RoleName=role_name, PolicyName=policy_name)
    ignore_not_found(client.delete_role, RoleName=role_name)


class InstanceRole(Step):
    key, type, label = "instance-role", "AWS::IAM::Role", "SSM role of the compromised instance"
    suffix = "instance"  # gdlab-<lab>-<suffix>
    description = "gdlab: lets SSM manage the lab's compromised instance"

    def display_name(self, ctx: LabContext) -> str:
        return f"gdlab-{ctx.lab}-{self.suffix}"

    def create(self, ctx: LabContext) -> None:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        create_role(ctx, self, self.display_name(ctx), trust, self.description)

    def configure(self, ctx: LabContext, res: Resource) -> None:
        _iam(ctx).attach_role_policy(  # attaching twice is a no-op for IAM
            RoleName=res.id,
            PolicyArn=f"arn:{ctx.cloud.partition()}:iam::aws:policy/{SSM_POLICY}",
        )

    def find(self, ctx: LabContext) -> list[Found]:
        return find_role(ctx, self.display_name(ctx))

    def delete(self, ctx: LabContext, res: Resource) -> None:
        delete_role(_iam(ctx), res.id or self.display_name(ctx))


# What the application on scenario 2's compromised instance may do with its role, and so what
# a thief of its credentials can do too: look at the account's instances (DescribeInstances
# has no resource-level permissions).
APPLICATION_POLICY = "gdlab-application"
APPLICATION_ACTIONS = ("ec2:DescribeInstances",)


class ApplicationInstanceRole(InstanceRole):
    """The compromised instance's role when its credentials are what the attacker steals: SSM,
    plus the little its application reads (APPLICATION_ACTIONS)."""

    label = "Role of the compromised instance (SSM, reads instances)"
    description = "gdlab: SSM and the read-only calls of the lab's compromised instance"

    def configure(self, ctx: LabContext, res: Resource) -> None:
        super().configure(ctx, res)
        _iam(ctx).put_role_policy(RoleName=res.id, PolicyName=APPLICATION_POLICY,
                                  PolicyDocument=json.dumps({
                                      "Version": "2012-10-17",
                                      "Statement": [{"Sid": "ApplicationReadsInstances",
                                                     "Effect": "Allow",
                                                     "Action": list(APPLICATION_ACTIONS),
                                                     "Resource": "*"}]}))


class AttackerRole(InstanceRole):
    key, label = "attacker-role", "SSM role of the malicious instance"
    suffix = "attacker"
    description = "gdlab: lets SSM run the attack on the lab's malicious instance"


class InstanceProfile(Step):
    key, type = "instance-profile", "AWS::IAM::InstanceProfile"
    needs = ("instance-role",)
    label = "Instance profile of the compromised instance"
    suffix = "instance"

    def display_name(self, ctx: LabContext) -> str:
        return f"gdlab-{ctx.lab}-{self.suffix}"

    def create(self, ctx: LabContext) -> None:
        iam = _iam(ctx)
        name = self.display_name(ctx)
        profile = iam.create_instance_profile(
            InstanceProfileName=name, Path=IAM_PATH, Tags=tag_list(ctx.tags(name))
        )["InstanceProfile"]
        ctx.created(self, name, arn=profile["Arn"])

    def configure(self, ctx: LabContext, res: Resource) -> None:
        iam = _iam(ctx)
        role = ctx.id_of(self.needs[0])
        roles = iam.get_instance_profile(InstanceProfileName=res.id)["InstanceProfile"]["Roles"]
        if role not in {r["RoleName"] for r in roles}:
            iam.add_role_to_instance_profile(InstanceProfileName=res.id, RoleName=role)

    def find(self, ctx: LabContext) -> list[Found]:
        from botocore.exceptions import ClientError

        name = self.display_name(ctx)
        try:
            profile = _iam(ctx).get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return []
            raise
        tags = profile.get("Tags", [])
        if not any(t["Key"] == LAB_TAG and t["Value"] == ctx.lab for t in tags):
            return []
        return [Found(name, attrs={"arn": profile["Arn"]})]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        from botocore.exceptions import ClientError

        iam = _iam(ctx)
        name = res.id or self.display_name(ctx)
        try:
            roles = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return
            raise
        for role in roles:
            ignore_not_found(
                iam.remove_role_from_instance_profile,
                InstanceProfileName=name,
                RoleName=role["RoleName"],
            )
        ignore_not_found(iam.delete_instance_profile, InstanceProfileName=name)


class AttackerProfile(InstanceProfile):
    key, label = "attacker-profile", "Instance profile of the malicious instance"
    needs = ("attacker-role",)
    suffix = "attacker"


class ElasticIp(Step):
    key, type, label = "eip", "AWS::EC2::EIP", "Elastic IP of the malicious instance"
    elastic_ips = 1

    def create(self, ctx: LabContext) -> None:
        # Check and allocate as one step among gdlab's processes: two setups that both passed
        # the preflight must not both allocate the last address of the quota.
        store = ctx.state._store
        if store is None:
            return self._allocate(ctx)
        cloud = ctx.cloud
        where = f"{cloud.target}-{cloud.account}-{cloud.region}"
        with locks.locked(store.home / "locks" / f"eip-{where}.lock", "the Elastic IP quota",
                          wait_seconds=max(30.0, ctx.patience_seconds)):
            cloud.preflight(eips_needed=self.elastic_ips)
            self._allocate(ctx)

    def _allocate(self, ctx: LabContext) -> None:
        from botocore.exceptions import ClientError

        try:
            address = _ec2(ctx).allocate_address(
                Domain="vpc",
                TagSpecifications=ctx.tag_specs("elastic-ip", name=ctx.name("malicious_instance")),
            )
        except ClientError as exc:
            if error_code(exc) != "AddressLimitExceeded":
                raise
            raise PreflightError(
                f"Elastic IP quota exhausted in {ctx.cloud.region}: AWS refused a new address",
                "release an unused Elastic IP or request a quota increase, then rerun setup",
            ) from exc
        ctx.created(self, address["AllocationId"], public_ip=address["PublicIp"])

    def find(self, ctx: LabContext) -> list[Found]:
        addresses = _ec2(ctx).describe_addresses(Filters=ctx.lab_filter())["Addresses"]
        return [Found(a["AllocationId"], attrs={"public_ip": a["PublicIp"]}) for a in addresses]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ec2 = _ec2(ctx)
        described = ignore_not_found(ec2.describe_addresses, AllocationIds=[res.id])
        for address in (described or {}).get("Addresses", []):
            if address.get("AssociationId"):
                ignore_not_found(ec2.disassociate_address, AssociationId=address["AssociationId"])
        if described:
            ignore_not_found(ec2.release_address, AllocationId=res.id)


class EipAssociation(Step):
    key, type = "eip-association", "AWS::EC2::EIPAssociation"
    needs = ("eip", "instance-malicious", "igw")
    label = "Elastic IP on the malicious instance"

    def create(self, ctx: LabContext) -> None:
        assoc = _ec2(ctx).associate_address(
            AllocationId=ctx.id_of("eip"), InstanceId=ctx.id_of("instance-malicious")
        )
        ctx.created(self, assoc["AssociationId"])

    def find(self, ctx: LabContext) -> list[Found]:
        addresses = _ec2(ctx).describe_addresses(Filters=ctx.lab_filter())["Addresses"]
        return [Found(a["AssociationId"]) for a in addresses if a.get("AssociationId")]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ignore_not_found(_ec2(ctx).disassociate_address, AssociationId=res.id)


def latest_ami(ctx: LabContext) -> dict[str, Any]:
    """The AMI from SSM's public parameter, with its root device (to encrypt it at launch)."""
    image_id = ctx.cloud.client("ssm").get_parameter(Name=ctx.scenario.ami_parameter)["Parameter"][
        "Value"
    ]
    image = _ec2(ctx).describe_images(ImageIds=[image_id])["Images"][0]
    root = image.get("RootDeviceName", "/dev/xvda")
    size = next(
        (
            m["Ebs"].get("VolumeSize")
            for m in image.get("BlockDeviceMappings", [])
            if m.get("DeviceName") == root and "Ebs" in m
        ),
        None,
    )
    return {"image_id": image_id, "root_device": root, "root_size": size or 8}


class Instance(Step):
    role_key: str = ""  # "malicious_instance" or "compromised_instance"
    group_key: str = ""

    def display_name(self, ctx: LabContext) -> str:
        return ctx.name(self.role_key)

    def launch_options(self, ctx: LabContext) -> dict[str, Any]:
        return {}

    def create(self, ctx: LabContext) -> None:
        ec2 = _ec2(ctx)
        image = ctx.once("ami", lambda: latest_ami(ctx))
        options = self.launch_options(ctx)
        public_ip = options.pop("public_ip", False)
        launch = lambda: ec2.run_instances(  # noqa: E731
            ImageId=image["image_id"],
            InstanceType=ctx.scenario.instance_type,
            MinCount=1,
            MaxCount=1,
            NetworkInterfaces=[
                {
                    "DeviceIndex": 0,
                    "SubnetId": ctx.id_of("subnet"),
                    "Groups": [ctx.id_of(self.group_key)],
                    "AssociatePublicIpAddress": public_ip,
                    "DeleteOnTermination": True,
                }
            ],
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
            BlockDeviceMappings=[
                {
                    "DeviceName": image["root_device"],
                    "Ebs": {
                        "Encrypted": True,
                        "VolumeSize": image["root_size"],
                        "VolumeType": "gp3",
                        "DeleteOnTermination": True,
                    },
                }
            ],
            TagSpecifications=ctx.tag_specs(
                "instance", "volume", "network-interface", name=self.display_name(ctx)
            ),
            **options,
        )
        # A new instance profile takes a few seconds to be usable by EC2.
        reservation = retry(
            launch,
            when=message_has("Invalid IAM Instance Profile", "iamInstanceProfile"),
            deadline_seconds=ctx.patience_seconds,
            first_delay=2.0,
        )
        instance = reservation["Instances"][0]
        ctx.created(
            self,
            instance["InstanceId"],
            image=image,
            private_ip=instance.get("PrivateIpAddress"),
        )

    def configure(self, ctx: LabContext, res: Resource) -> None:
        _ec2(ctx).get_waiter("instance_running").wait(
            InstanceIds=[res.id], WaiterConfig=ctx.waiter_config()
        )

    def find(self, ctx: LabContext) -> list[Found]:
        reservations = _ec2(ctx).describe_instances(
            Filters=[
                *ctx.lab_filter(),
                {"Name": "tag:Name", "Values": [self.display_name(ctx)]},
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped", "shutting-down"],
                },
            ]
        )["Reservations"]
        return [Found(i["InstanceId"]) for r in reservations for i in r["Instances"]]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        # Right after RunInstances, EC2 may answer NotFound for an instance that exists and
        # will run: ask again for a while before believing it is gone.
        from botocore.exceptions import ClientError

        ec2 = _ec2(ctx)
        try:
            retry(
                lambda: ec2.terminate_instances(InstanceIds=[res.id]),
                when=code_in("InvalidInstanceID.NotFound"),
                deadline_seconds=min(ctx.patience_seconds, 60.0),
            )
        except ClientError as exc:
            if not is_not_found(exc):
                raise  # InvalidInstanceID.NotFound after the window: never ran, or long gone

    def finish_delete(self, ctx: LabContext, res: Resource) -> None:
        from botocore.exceptions import WaiterError

        try:
            _ec2(ctx).get_waiter("instance_terminated").wait(
                InstanceIds=[res.id],
                WaiterConfig=ctx.waiter_config(),
            )
        except WaiterError as exc:
            if "InvalidInstanceID.NotFound" not in str(exc):
                raise


class MaliciousInstance(Instance):
    key, type, label = "instance-malicious", "AWS::EC2::Instance", "Malicious instance"
    needs = ("subnet", "sg-malicious")
    typical_seconds = 20.0  # running, then its SSM agent online
    role_key, group_key = "malicious_instance", "sg-malicious"


class ManagedMaliciousInstance(MaliciousInstance):
    """A malicious instance the attack runs on through SSM (its own profile, AttackerRole)."""

    needs = ("subnet", "sg-malicious", "attacker-profile")

    def launch_options(self, ctx: LabContext) -> dict[str, Any]:
        return {"IamInstanceProfile": {"Name": ctx.id_of("attacker-profile")}}


class CompromisedInstance(Instance):
    key, type, label = "instance-compromised", "AWS::EC2::Instance", "Compromised instance"
    needs = ("subnet", "sg-compromised", "instance-profile", "eip")
    typical_seconds = 20.0  # running, then its SSM agent online
    # Deleted in the same group as the malicious instance (after the EIP association): the
    # two terminations are awaited together.
    outlives = ("eip-association",)
    role_key, group_key = "compromised_instance", "sg-compromised"

    def launch_options(self, ctx: LabContext) -> dict[str, Any]:
        eip = ctx.attr("eip", "public_ip") if "eip" in self.needs else ""
        options: dict[str, Any] = {
            "public_ip": True,  # reaches SSM (and the malicious EIP) through the IGW
            "IamInstanceProfile": {"Name": ctx.id_of("instance-profile")},
        }
        user_data = ctx.scenario.render_user_data(ctx.lab, eip)
        if user_data is not None:
            options["UserData"] = user_data
        return options


class ApiCallerInstance(CompromisedInstance):
    """A compromised instance whose incident is its credentials, not its traffic: it needs no
    Elastic IP to aim at."""

    needs = ("subnet", "sg-compromised", "instance-profile")
