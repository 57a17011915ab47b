"""Tags, waits and the network part (VPC to key pair) of the `aws` provider (see `aws`).

Every `ensure_*` finds its resource by the provision's tag before it creates one (tagged at
creation), so a create that failed midway resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.aws_config import AwsSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.literals import ResourceTypeType
    from mypy_boto3_ec2.type_defs import (
        FilterTypeDef,
        IpPermissionTypeDef,
        TagSpecificationTypeDef,
        TagTypeDef,
    )

TAG = "edgecloud-provision"  # every resource: edgecloud-provision = <provision id>
INDEX_TAG = "edgecloud-index"  # instances and Elastic IPs: the host's index; Name: its name
DEFAULT_ROUTE = "0.0.0.0/0"
# (protocol, port, "ssh" for the ssh_cidr setting or "vpc" for the VPC's CIDR)
INGRESS = (("tcp", 22, "ssh"), ("tcp", 179, "vpc"), ("udp", 4789, "vpc"), ("udp", 8472, "vpc"))
_PURPOSE = {22: "ssh", 179: "bgp (evpn)", 4789: "vxlan", 8472: "vxlan (linux)"}

T = TypeVar("T")


def resource_name(provision_id: str) -> str:
    """The Name tag of the provision's network resources, and its key pair's name."""
    return f"edgecloud-{provision_id}"


def tagged(provision_id: str, *more: FilterTypeDef) -> list[FilterTypeDef]:
    """Filters for describe_*: carrying the provision's tag (and `more`)."""
    return [{"Name": f"tag:{TAG}", "Values": [provision_id]}, *more]


def tag_spec(
    kind: ResourceTypeType, provision_id: str, name: str, index: int | None = None
) -> list[TagSpecificationTypeDef]:
    """TagSpecifications: the provision's tag, Name and (for hosts) the index tag."""
    tags: list[TagTypeDef] = [{"Key": TAG, "Value": provision_id}, {"Key": "Name", "Value": name}]
    if index is not None:
        tags.append({"Key": INDEX_TAG, "Value": str(index)})
    return [{"ResourceType": kind, "Tags": tags}]


def tags_of(item: Mapping[str, Any]) -> dict[str, str]:
    """A described resource's tags as a dict."""
    return {t["Key"]: t["Value"] for t in item.get("Tags", []) if "Key" in t}


def only(kind: str, provision_id: str, ids: Sequence[str]) -> str | None:
    """The one resource of `kind` the provision has (None: none; two: an error)."""
    if len(ids) > 1:
        raise DriverError(
            f"aws: provision {provision_id} has {len(ids)} {kind}s ({', '.join(ids)}): "
            "delete_all removes them"
        )
    return ids[0] if ids else None


def poll(check: Callable[[], T | None], timeout: float, what: Callable[[], str]) -> T:
    """Call `check` until it returns something (0.2 s, growing to 5 s, between calls)."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise DriverError(f"aws: timed out after {timeout:.0f} s waiting for {what()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


# --- the network ----------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """Where the provision's instances go."""

    vpc_id: str
    subnet_id: str
    security_group_id: str
    key_name: str


def ensure_network(
    ec2: EC2Client, provision_id: str, settings: AwsSettings, authorized_key: str
) -> Network:
    """Make (or find) the VPC, subnet, internet gateway, routes, security group, key pair."""
    vpc_id = _ensure_vpc(ec2, provision_id, settings)
    subnet_id = _ensure_subnet(ec2, provision_id, settings, vpc_id)
    igw_id = _ensure_internet_gateway(ec2, provision_id, vpc_id)
    _ensure_routes(ec2, provision_id, vpc_id, subnet_id, igw_id)
    group_id = _ensure_security_group(ec2, provision_id, settings, vpc_id)
    key_name = _ensure_key_pair(ec2, provision_id, authorized_key)
    return Network(vpc_id, subnet_id, group_id, key_name)


def _ensure_vpc(ec2: EC2Client, provision_id: str, settings: AwsSettings) -> str:
    vpcs = ec2.describe_vpcs(Filters=tagged(provision_id))["Vpcs"]
    vpc_id = only("VPC", provision_id, [v["VpcId"] for v in vpcs])
    if vpc_id is not None:
        cidr = vpcs[0].get("CidrBlock")
        if cidr != settings.vpc_cidr:
            raise DriverError(
                f"aws: VPC {vpc_id} of provision {provision_id} is {cidr}, "
                f"not vpc_cidr {settings.vpc_cidr}"
            )
        return vpc_id
    vpc = ec2.create_vpc(
        CidrBlock=settings.vpc_cidr,
        TagSpecifications=tag_spec("vpc", provision_id, resource_name(provision_id)),
    )["Vpc"]
    return vpc["VpcId"]


def _ensure_subnet(ec2: EC2Client, provision_id: str, settings: AwsSettings, vpc_id: str) -> str:
    in_vpc: FilterTypeDef = {"Name": "vpc-id", "Values": [vpc_id]}
    subnets = ec2.describe_subnets(Filters=tagged(provision_id, in_vpc))["Subnets"]
    subnet_id = only("subnet", provision_id, [s["SubnetId"] for s in subnets])
    if subnet_id is not None:
        cidr = subnets[0].get("CidrBlock")
        if cidr != settings.subnet_cidr:
            raise DriverError(
                f"aws: subnet {subnet_id} of provision {provision_id} is {cidr}, "
                f"not subnet_cidr {settings.subnet_cidr}"
            )
        return subnet_id
    tags = tag_spec("subnet", provision_id, resource_name(provision_id))
    if settings.availability_zone:
        subnet = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=settings.subnet_cidr,
            AvailabilityZone=settings.availability_zone,
            TagSpecifications=tags,
        )["Subnet"]
    else:
        subnet = ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=settings.subnet_cidr, TagSpecifications=tags
        )["Subnet"]
    return subnet["SubnetId"]


def _ensure_internet_gateway(ec2: EC2Client, provision_id: str, vpc_id: str) -> str:
    gateways = ec2.describe_internet_gateways(Filters=tagged(provision_id))["InternetGateways"]
    igw_id = only("internet gateway", provision_id, [g["InternetGatewayId"] for g in gateways])
    attached: list[str] = []
    if igw_id is None:
        igw_id = ec2.create_internet_gateway(
            TagSpecifications=tag_spec(
                "internet-gateway", provision_id, resource_name(provision_id)
            )
        )["InternetGateway"]["InternetGatewayId"]
    else:
        attached = [a["VpcId"] for a in gateways[0].get("Attachments", []) if "VpcId" in a]
    if vpc_id not in attached:
        for other in attached:  # a gateway has one VPC at most
            ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=other)
        ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    return igw_id


def _ensure_routes(
    ec2: EC2Client, provision_id: str, vpc_id: str, subnet_id: str, igw_id: str
) -> None:
    in_vpc: FilterTypeDef = {"Name": "vpc-id", "Values": [vpc_id]}
    tables = ec2.describe_route_tables(Filters=tagged(provision_id, in_vpc))["RouteTables"]
    table_id = only("route table", provision_id, [t["RouteTableId"] for t in tables])
    routes: list[Mapping[str, Any]] = []
    associated: list[str] = []
    if table_id is None:
        table_id = ec2.create_route_table(
            VpcId=vpc_id,
            TagSpecifications=tag_spec("route-table", provision_id, resource_name(provision_id)),
        )["RouteTable"]["RouteTableId"]
    else:
        routes = list(tables[0].get("Routes", []))
        associated = [a["SubnetId"] for a in tables[0].get("Associations", []) if "SubnetId" in a]
    default = [r for r in routes if r.get("DestinationCidrBlock") == DEFAULT_ROUTE]
    if not default:
        ec2.create_route(
            RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE, GatewayId=igw_id
        )
    elif default[0].get("GatewayId") != igw_id:
        ec2.replace_route(
            RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE, GatewayId=igw_id
        )
    if subnet_id not in associated:
        ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)


def wanted_ingress(settings: AwsSettings) -> set[tuple[str, int, str]]:
    """(protocol, port, source CIDR) of each rule the security group must have."""
    sources = {"ssh": settings.ssh_cidr, "vpc": settings.vpc_cidr}
    return {(protocol, port, sources[source]) for protocol, port, source in INGRESS}


def ingress_of(group: Mapping[str, Any]) -> set[tuple[str, int, str]]:
    """(protocol, port, source CIDR) of each single-port IPv4 rule of a described group."""
    found: set[tuple[str, int, str]] = set()
    for permission in group.get("IpPermissions", []):
        port = permission.get("FromPort")
        if port is None or permission.get("ToPort") != port:
            continue
        for ip_range in permission.get("IpRanges", []):
            found.add((str(permission.get("IpProtocol")), int(port), str(ip_range.get("CidrIp"))))
    return found


def _ensure_security_group(
    ec2: EC2Client, provision_id: str, settings: AwsSettings, vpc_id: str
) -> str:
    in_vpc: FilterTypeDef = {"Name": "vpc-id", "Values": [vpc_id]}
    groups = ec2.describe_security_groups(Filters=tagged(provision_id, in_vpc))["SecurityGroups"]
    group_id = only("security group", provision_id, [g["GroupId"] for g in groups])
    present: set[tuple[str, int, str]] = set()
    if group_id is None:
        group_id = ec2.create_security_group(
            GroupName=resource_name(provision_id),
            Description=f"edgecloud provision {provision_id}: ssh, bgp, vxlan",
            VpcId=vpc_id,
            TagSpecifications=tag_spec("security-group", provision_id, resource_name(provision_id)),
        )["GroupId"]
    else:
        present = ingress_of(groups[0])
    missing = sorted(wanted_ingress(settings) - present, key=lambda r: (r[1], r[0], r[2]))
    if missing:
        permissions: list[IpPermissionTypeDef] = [
            {
                "IpProtocol": protocol,
                "FromPort": port,
                "ToPort": port,
                "IpRanges": [{"CidrIp": cidr, "Description": f"edgecloud {_PURPOSE[port]}"}],
            }
            for protocol, port, cidr in missing
        ]
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=permissions)
    return group_id


def _key_fields(line: str) -> list[str]:
    return line.split()[:2]


def _ensure_key_pair(ec2: EC2Client, provision_id: str, authorized_key: str) -> str:
    name = resource_name(provision_id)
    by_name: FilterTypeDef = {"Name": "key-name", "Values": [name]}
    pairs = ec2.describe_key_pairs(Filters=[by_name], IncludePublicKey=True)["KeyPairs"]
    if pairs:
        if tags_of(pairs[0]).get(TAG) != provision_id:
            raise DriverError(f"aws: key pair {name} exists without tag {TAG}={provision_id}")
        if _key_fields(pairs[0].get("PublicKey", "")) == _key_fields(authorized_key):
            return name
        ec2.delete_key_pair(KeyName=name)  # another front-end key: import the new one
    ec2.import_key_pair(
        KeyName=name,
        PublicKeyMaterial=authorized_key.encode(),
        TagSpecifications=tag_spec("key-pair", provision_id, name),
    )
    return name
