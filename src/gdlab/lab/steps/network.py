"""The lab's own network: VPC, internet gateway, public subnet, route table, security groups.
Never the user's default VPC."""

from __future__ import annotations

from typing import Any

from gdlab.lab.awsutil import code_in, ignore_code, ignore_not_found, retry
from gdlab.lab.state import Resource
from gdlab.lab.steps import Found, LabContext, Step

# After instances terminate, their ENIs linger for a while; groups and the IGW wait for them.
IN_USE = code_in("DependencyViolation", "InvalidGroup.InUse", "InvalidNetworkInterface.InUse")


def _ec2(ctx: LabContext) -> Any:
    return ctx.cloud.client("ec2")


class Vpc(Step):
    key, type, label = "vpc", "AWS::EC2::VPC", "Lab VPC"

    def display_name(self, ctx: LabContext) -> str:
        return ctx.name("vpc")

    def create(self, ctx: LabContext) -> None:
        vpc = _ec2(ctx).create_vpc(
            CidrBlock=ctx.scenario.vpc_cidr,
            TagSpecifications=ctx.tag_specs("vpc", name=self.display_name(ctx)),
        )["Vpc"]
        ctx.created(self, vpc["VpcId"], cidr=vpc["CidrBlock"])

    def find(self, ctx: LabContext) -> list[Found]:
        vpcs = _ec2(ctx).describe_vpcs(Filters=ctx.lab_filter())["Vpcs"]
        return [Found(v["VpcId"]) for v in vpcs]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        retry(
            lambda: ignore_not_found(_ec2(ctx).delete_vpc, VpcId=res.id),
            when=IN_USE,
            deadline_seconds=ctx.patience_seconds,
        )


class InternetGateway(Step):
    key, type, label = "igw", "AWS::EC2::InternetGateway", "Internet gateway"
    needs = ("vpc",)
    # AWS refuses to detach a gateway while instances in its VPC hold public addresses.
    outlives = ("instance-malicious", "instance-compromised")

    def create(self, ctx: LabContext) -> None:
        ec2 = _ec2(ctx)
        igw = ec2.create_internet_gateway(
            TagSpecifications=ctx.tag_specs("internet-gateway", name=ctx.name("vpc"))
        )["InternetGateway"]
        ctx.created(self, igw["InternetGatewayId"], vpc_id=ctx.id_of("vpc"))

    def configure(self, ctx: LabContext, res: Resource) -> None:
        ignore_code(
            "Resource.AlreadyAssociated",
            _ec2(ctx).attach_internet_gateway,
            InternetGatewayId=res.id,
            VpcId=ctx.id_of("vpc"),
        )

    def find(self, ctx: LabContext) -> list[Found]:
        igws = _ec2(ctx).describe_internet_gateways(Filters=ctx.lab_filter())["InternetGateways"]
        return [
            Found(g["InternetGatewayId"], attrs={"vpc_id": a["VpcId"]})
            if (a := next(iter(g.get("Attachments", [])), None))
            else Found(g["InternetGatewayId"])
            for g in igws
        ]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ec2 = _ec2(ctx)
        described = ignore_not_found(ec2.describe_internet_gateways, InternetGatewayIds=[res.id])
        if not described:
            return
        for gateway in described["InternetGateways"]:
            for attachment in gateway.get("Attachments", []):
                # Detaching fails while the VPC still has mapped public addresses.
                retry(
                    lambda a=attachment: ignore_not_found(
                        ec2.detach_internet_gateway,
                        InternetGatewayId=res.id,
                        VpcId=a["VpcId"],
                    ),
                    when=IN_USE,
                    deadline_seconds=ctx.patience_seconds,
                )
        ignore_not_found(ec2.delete_internet_gateway, InternetGatewayId=res.id)


class Subnet(Step):
    key, type, label = "subnet", "AWS::EC2::Subnet", "Public subnet"
    needs = ("vpc",)

    def create(self, ctx: LabContext) -> None:
        ec2 = _ec2(ctx)
        zone = _zone_offering(ctx)
        kwargs: dict[str, Any] = {}
        if zone:
            kwargs["AvailabilityZone"] = zone
        subnet = ec2.create_subnet(
            VpcId=ctx.id_of("vpc"),
            CidrBlock=ctx.scenario.subnet_cidr,
            TagSpecifications=ctx.tag_specs("subnet", name=ctx.name("vpc")),
            **kwargs,
        )["Subnet"]
        ctx.created(self, subnet["SubnetId"], availability_zone=subnet["AvailabilityZone"])

    def find(self, ctx: LabContext) -> list[Found]:
        subnets = _ec2(ctx).describe_subnets(Filters=ctx.lab_filter())["Subnets"]
        return [Found(s["SubnetId"]) for s in subnets]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        retry(
            lambda: ignore_not_found(_ec2(ctx).delete_subnet, SubnetId=res.id),
            when=IN_USE,
            deadline_seconds=ctx.patience_seconds,
        )


def _zone_offering(ctx: LabContext) -> str | None:
    """A zone that offers the lab's instance type (t3.micro is missing from a few zones);
    a standard Availability Zone, never a Local or Wavelength Zone, where the region's
    Elastic IPs cannot be associated."""
    ec2 = _ec2(ctx)
    offerings = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [ctx.scenario.instance_type]}],
    )["InstanceTypeOfferings"]
    standard = {
        z["ZoneName"]
        for z in ec2.describe_availability_zones(
            Filters=[
                {"Name": "zone-type", "Values": ["availability-zone"]},
                {"Name": "state", "Values": ["available"]},
            ]
        )["AvailabilityZones"]
    }
    zones = sorted(o["Location"] for o in offerings if o["Location"] in standard)
    return zones[0] if zones else None


class RouteTable(Step):
    key, type, label = "route-table", "AWS::EC2::RouteTable", "Route table with default route"
    needs = ("vpc", "igw", "subnet")

    def create(self, ctx: LabContext) -> None:
        ec2 = _ec2(ctx)
        table = ec2.create_route_table(
            VpcId=ctx.id_of("vpc"),
            TagSpecifications=ctx.tag_specs("route-table", name=ctx.name("vpc")),
        )["RouteTable"]
        ctx.created(self, table["RouteTableId"])

    def configure(self, ctx: LabContext, res: Resource) -> None:
        ec2 = _ec2(ctx)
        ignore_code(
            "RouteAlreadyExists",
            ec2.create_route,
            RouteTableId=res.id,
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=ctx.id_of("igw"),
        )
        assoc = ignore_code(
            "Resource.AlreadyAssociated",
            ec2.associate_route_table,
            RouteTableId=res.id,
            SubnetId=ctx.id_of("subnet"),
        )
        if assoc:
            ctx.state.update(res, association_id=assoc["AssociationId"])

    def find(self, ctx: LabContext) -> list[Found]:
        tables = _ec2(ctx).describe_route_tables(Filters=ctx.lab_filter())["RouteTables"]
        return [Found(t["RouteTableId"]) for t in tables]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        ec2 = _ec2(ctx)
        described = ignore_not_found(ec2.describe_route_tables, RouteTableIds=[res.id])
        if not described:
            return
        for table in described["RouteTables"]:
            for assoc in table.get("Associations", []):
                if not assoc.get("Main"):
                    ignore_not_found(
                        ec2.disassociate_route_table,
                        AssociationId=assoc["RouteTableAssociationId"],
                    )
        ignore_not_found(ec2.delete_route_table, RouteTableId=res.id)


class SecurityGroup(Step):
    """A group with exactly the given rules: AWS's default allow-all egress is revoked."""

    name_key: str = ""
    description: str = ""

    def display_name(self, ctx: LabContext) -> str:
        if self.name_key in ctx.scenario.names:
            return ctx.name(self.name_key)
        return f"{self.name_key}-{ctx.lab}"

    def ingress(self, ctx: LabContext) -> list[dict[str, Any]]:
        return []

    def egress(self, ctx: LabContext) -> list[dict[str, Any]]:
        return []

    def create(self, ctx: LabContext) -> None:
        ec2 = _ec2(ctx)
        name = self.display_name(ctx)
        group = ec2.create_security_group(
            GroupName=name,
            Description=self.description,
            VpcId=ctx.id_of("vpc"),
            TagSpecifications=ctx.tag_specs("security-group", name=name),
        )
        ctx.created(self, group["GroupId"], group_name=name)

    # AWS's default rule: allow all egress. Most lab groups revoke it.
    keeps_default_egress = False

    def configure(self, ctx: LabContext, res: Resource) -> None:
        ec2 = _ec2(ctx)
        if not self.keeps_default_egress:
            ignore_code(
                "InvalidPermission.NotFound",
                ec2.revoke_security_group_egress,
                GroupId=res.id,
                IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
            )
        if ingress := self.ingress(ctx):
            ignore_code(
                "InvalidPermission.Duplicate",
                ec2.authorize_security_group_ingress,
                GroupId=res.id,
                IpPermissions=ingress,
            )
        if egress := self.egress(ctx):
            ignore_code(
                "InvalidPermission.Duplicate",
                ec2.authorize_security_group_egress,
                GroupId=res.id,
                IpPermissions=egress,
            )

    def find(self, ctx: LabContext) -> list[Found]:
        groups = _ec2(ctx).describe_security_groups(
            Filters=[*ctx.lab_filter(), {"Name": "group-name", "Values": [self.display_name(ctx)]}]
        )["SecurityGroups"]
        return [Found(g["GroupId"]) for g in groups]

    def delete(self, ctx: LabContext, res: Resource) -> None:
        retry(
            lambda: ignore_not_found(_ec2(ctx).delete_security_group, GroupId=res.id),
            when=IN_USE,
            deadline_seconds=ctx.patience_seconds,
        )


def _icmp(cidr: str, description: str, icmp_type: int = -1) -> dict[str, Any]:
    return {
        "IpProtocol": "icmp",
        "FromPort": icmp_type,
        "ToPort": -1,
        "IpRanges": [{"CidrIp": cidr, "Description": description}],
    }


class MaliciousGroup(SecurityGroup):
    key, type, label = "sg-malicious", "AWS::EC2::SecurityGroup", "Malicious instance's group"
    needs = ("vpc",)
    name_key = "gdlab-malicious"
    description = "gdlab: the malicious instance answers pings; no other traffic"

    def ingress(self, ctx: LabContext) -> list[dict[str, Any]]:
        # Echo requests only; replies leave through connection tracking, so no egress rule.
        return [_icmp("0.0.0.0/0", "ping from the compromised instance", icmp_type=8)]


class CompromisedGroup(SecurityGroup):
    key, type, label = "sg-compromised", "AWS::EC2::SecurityGroup", "Compromised instance's group"
    needs = ("vpc", "eip")
    name_key = "gdlab-compromised"
    description = "gdlab: the compromised instance pings out and reaches SSM; no ingress"

    def egress(self, ctx: LabContext) -> list[dict[str, Any]]:
        eip = ctx.attr("eip", "public_ip")
        return [
            _icmp(f"{eip}/32", "ping the malicious Elastic IP"),
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "SSM agent (HTTPS)"}],
            },
        ]


def _https_out(description: str) -> dict[str, Any]:
    return {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
            "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": description}]}


class ApiCallerGroup(SecurityGroup):
    """A compromised instance that only calls AWS (SSM's agent, its application's API calls),
    for scenarios whose attack is not traffic to the malicious address."""

    key, type, label = "sg-compromised", "AWS::EC2::SecurityGroup", "Compromised instance's group"
    needs = ("vpc",)
    name_key = "gdlab-compromised"
    description = "gdlab: the compromised instance reaches SSM and AWS APIs (HTTPS); no ingress"

    def egress(self, ctx: LabContext) -> list[dict[str, Any]]:
        return [_https_out("SSM agent and AWS APIs (HTTPS)")]


class AttackerGroup(SecurityGroup):
    """A malicious instance that attacks through AWS's APIs (with what it stole) and is run
    through SSM: HTTPS out, nothing in."""

    key, type, label = "sg-malicious", "AWS::EC2::SecurityGroup", "Malicious instance's group"
    needs = ("vpc",)
    name_key = "gdlab-malicious"
    description = "gdlab: the malicious instance calls AWS APIs (HTTPS); no ingress"

    def egress(self, ctx: LabContext) -> list[dict[str, Any]]:
        return [_https_out("SSM agent and AWS APIs (HTTPS)")]


class ForensicGroup(SecurityGroup):
    key, type, label = "sg-forensic", "AWS::EC2::SecurityGroup", "Forensic group (no rules)"
    needs = ("vpc",)
    outlives = ("instance-compromised",)  # the responder moves its ENIs in
    name_key = "forensic_group"
    description = "gdlab: isolation - no ingress, no egress"


class UntrackingGroup(SecurityGroup):
    """AWS's containment guidance: moving an ENI through a group that allows all traffic
    both ways turns tracked TCP/UDP flows untracked, so the next change cuts them. The
    responder keeps an ENI here only for the moment between its two group changes."""

    key, type, label = "sg-untracking", "AWS::EC2::SecurityGroup", "Untracking group (step 1 of 2)"
    needs = ("vpc",)
    outlives = ("instance-compromised",)  # the responder moves its ENIs in
    name_key = "untracking_group"
    description = "gdlab: containment step - makes tracked flows untracked before isolation"

    keeps_default_egress = True  # all egress: the rule AWS gives every new group

    def ingress(self, ctx: LabContext) -> list[dict[str, Any]]:
        return [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
