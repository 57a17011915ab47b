"""What the cloud holds under a provision's tag: finding, waiting, listing, deleting (see `aws`).

Calls raise botocore's errors; the provider turns them into `DriverError` (`aws_errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.api import ProviderResource
from edgecloud.drivers.provision.aws_config import error_code
from edgecloud.drivers.provision.aws_network import INDEX_TAG, ingress_of, poll, tagged, tags_of

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.type_defs import AddressTypeDef, FilterTypeDef, InstanceTypeDef

# Every state but terminated: what the provision still has (and pays for).
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


def instance_id(instance: Mapping[str, Any]) -> str:
    """A described instance's id."""
    return str(instance.get("InstanceId", ""))


def state_of(instance: Mapping[str, Any]) -> str:
    """A described instance's state name ("running")."""
    return str(instance.get("State", {}).get("Name", "?"))


def name_of(item: Mapping[str, Any]) -> str:
    """A described resource's Name tag."""
    return tags_of(item).get("Name", "")


def instances(ec2: EC2Client, provision_id: str) -> list[InstanceTypeDef]:
    """The provision's instances that are not terminated, by id."""
    live: FilterTypeDef = {"Name": "instance-state-name", "Values": LIVE_STATES}
    found: list[InstanceTypeDef] = []
    pages = ec2.get_paginator("describe_instances").paginate(Filters=tagged(provision_id, live))
    for page in pages:
        for reservation in page.get("Reservations", []):
            found.extend(reservation.get("Instances", []))
    return sorted(found, key=instance_id)


def addresses(ec2: EC2Client, provision_id: str) -> list[AddressTypeDef]:
    """The provision's Elastic IPs."""
    return ec2.describe_addresses(Filters=tagged(provision_id))["Addresses"]


def wait_state(
    ec2: EC2Client, ids: Sequence[str], state: str, timeout: float
) -> dict[str, InstanceTypeDef]:
    """Wait until every instance of `ids` is in `state`; return them described, by id.

    Waiting for "running", an instance that is shutting down or terminated is an error
    carrying AWS's reason (e.g. "Server.InsufficientInstanceCapacity: ...").
    """
    if not ids:
        return {}
    seen: dict[str, str] = {}

    def check() -> dict[str, InstanceTypeDef] | None:
        try:
            reservations = ec2.describe_instances(InstanceIds=list(ids))["Reservations"]
        except ClientError as e:
            if error_code(e) == "InvalidInstanceID.NotFound":  # just made: not visible yet
                return None
            raise
        described = {instance_id(i): i for r in reservations for i in r.get("Instances", [])}
        for i in described.values():
            seen[instance_id(i)] = now = state_of(i)
            if state == "running" and now in ("shutting-down", "terminated"):
                reason = i.get("StateReason", {}).get("Message", "")
                raise DriverError(
                    f"aws: instance {instance_id(i)} ({name_of(i)}) is {now}: {reason}"
                )
        if set(described) == set(ids) and all(seen[i] == state for i in ids):
            return described
        return None

    def waiting() -> str:
        states = ", ".join(f"{i} {seen.get(i, '?')}" for i in ids)
        return f"instances to be {state} ({states})"

    return poll(check, timeout, waiting)


def deleted(call: Callable[..., object], timeout: float = 0, **params: Any) -> bool:
    """Run a delete `call(**params)`; False when the thing was already gone (a *NotFound
    code). While AWS says DependencyViolation (an instance's interface takes a while to
    go), retry until `timeout`."""

    def attempt() -> bool | None:
        try:
            call(**params)
            return True
        except ClientError as e:
            code = error_code(e)
            if code.endswith("NotFound"):
                return False
            if code == "DependencyViolation" and timeout > 0:
                return None
            raise

    try:
        return poll(attempt, timeout, lambda: "AWS to stop reporting DependencyViolation")
    except DriverError:
        call(**params)  # once more: the last word is AWS's own message
        return True


def release(ec2: EC2Client, found: Sequence[AddressTypeDef]) -> list[str]:
    """Disassociate and release Elastic IPs; return what was released."""
    done: list[str] = []
    for address in found:
        association = address.get("AssociationId")
        if association:
            deleted(ec2.disassociate_address, AssociationId=association)
        allocation = address["AllocationId"]
        if deleted(ec2.release_address, AllocationId=allocation):
            done.append(f"elastic-ip {allocation}")
    return done


def terminate(ec2: EC2Client, ids: Sequence[str], timeout: float) -> list[str]:
    """Terminate instances and wait until they are (timeout 0: do not wait)."""
    if not ids:
        return []
    ec2.terminate_instances(InstanceIds=list(ids))
    if timeout > 0:
        wait_state(ec2, ids, "terminated", timeout)
    return [f"instance {i}" for i in ids]


def list_resources(ec2: EC2Client, provision_id: str) -> list[ProviderResource]:
    """Everything with the provision's tag, as (kind, id, detail)."""
    found: list[ProviderResource] = []
    filters = tagged(provision_id)
    for vpc in ec2.describe_vpcs(Filters=filters)["Vpcs"]:
        found.append(ProviderResource("vpc", vpc["VpcId"], vpc.get("CidrBlock", "")))
    for subnet in ec2.describe_subnets(Filters=filters)["Subnets"]:
        detail = f"{subnet.get('CidrBlock')} in {subnet.get('AvailabilityZone')}"
        found.append(ProviderResource("subnet", subnet["SubnetId"], detail))
    for igw in ec2.describe_internet_gateways(Filters=filters)["InternetGateways"]:
        vpcs = [a.get("VpcId", "") for a in igw.get("Attachments", [])]
        detail = f"attached to {', '.join(vpcs)}" if vpcs else "detached"
        found.append(ProviderResource("igw", igw["InternetGatewayId"], detail))
    for table in ec2.describe_route_tables(Filters=filters)["RouteTables"]:
        routes = [
            f"{r.get('DestinationCidrBlock')} via {r.get('GatewayId')}"
            for r in table.get("Routes", [])
        ]
        subnets = [a["SubnetId"] for a in table.get("Associations", []) if "SubnetId" in a]
        detail = f"{', '.join(routes)}; subnets {', '.join(subnets) or 'none'}"
        found.append(ProviderResource("route-table", table["RouteTableId"], detail))
    for group in ec2.describe_security_groups(Filters=filters)["SecurityGroups"]:
        rules = [f"{p}/{port} from {cidr}" for p, port, cidr in sorted(ingress_of(group))]
        detail = f"{group.get('GroupName')}: {', '.join(rules)}"
        found.append(ProviderResource("security-group", group["GroupId"], detail))
    for pair in ec2.describe_key_pairs(Filters=filters)["KeyPairs"]:
        detail = f"{pair.get('KeyType', '')} {pair.get('KeyFingerprint', '')}".strip()
        found.append(ProviderResource("key-pair", pair.get("KeyName", ""), detail))
    for i in instances(ec2, provision_id):
        detail = (
            f"{name_of(i)} (index {tags_of(i).get(INDEX_TAG)}) {state_of(i)} "
            f"{i.get('InstanceType')} {i.get('PrivateIpAddress', '')}"
        )
        found.append(ProviderResource("instance", instance_id(i), detail.strip()))
    for address in addresses(ec2, provision_id):
        detail = f"{address.get('PublicIp')} of {address.get('InstanceId') or 'no instance'}"
        found.append(ProviderResource("elastic-ip", address["AllocationId"], detail))
    return found


def delete_everything(
    ec2: EC2Client, provision_id: str, terminate_timeout: float, timeout: float
) -> list[str]:
    """Delete what has the tag in dependency order; return "kind id" of each thing deleted.

    What the provision's VPCs hold without the tag (a security group or route table made
    by hand) goes too, or the VPC could not be deleted.
    """
    done = release(ec2, addresses(ec2, provision_id))
    ids = [instance_id(i) for i in instances(ec2, provision_id)]
    done += terminate(ec2, ids, terminate_timeout)
    for pair in ec2.describe_key_pairs(Filters=tagged(provision_id))["KeyPairs"]:
        name = pair.get("KeyName", "")
        if deleted(ec2.delete_key_pair, KeyName=name):
            done.append(f"key-pair {name}")
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs(Filters=tagged(provision_id))["Vpcs"]]

    def find(describe: Callable[..., Any], key: str, id_key: str, vpc_filter: str) -> list[Any]:
        """The resources with the tag, and those of the provision's VPCs, each once."""
        queries = [tagged(provision_id)]
        if vpcs:
            queries.append([{"Name": vpc_filter, "Values": vpcs}])
        found: dict[str, Any] = {}
        for filters in queries:
            for item in describe(Filters=filters)[key]:
                found.setdefault(item[id_key], item)
        return list(found.values())

    for group in find(ec2.describe_security_groups, "SecurityGroups", "GroupId", "vpc-id"):
        group_id = group["GroupId"]
        if group.get("GroupName") == "default":
            continue  # the VPC's own goes with the VPC
        if deleted(ec2.delete_security_group, timeout, GroupId=group_id):
            done.append(f"security-group {group_id}")
    for table in find(ec2.describe_route_tables, "RouteTables", "RouteTableId", "vpc-id"):
        table_id, associations = table["RouteTableId"], table.get("Associations", [])
        if any(a.get("Main") for a in associations):
            continue  # the VPC's main table goes with the VPC
        for association in associations:
            association_id = association["RouteTableAssociationId"]
            deleted(ec2.disassociate_route_table, AssociationId=association_id)
        if deleted(ec2.delete_route_table, timeout, RouteTableId=table_id):
            done.append(f"route-table {table_id}")
    igws = find(
        ec2.describe_internet_gateways, "InternetGateways", "InternetGatewayId", "attachment.vpc-id"
    )
    for igw in igws:
        igw_id = igw["InternetGatewayId"]
        for attachment in igw.get("Attachments", []):
            deleted(
                ec2.detach_internet_gateway,
                timeout,
                InternetGatewayId=igw_id,
                VpcId=attachment["VpcId"],
            )
        if deleted(ec2.delete_internet_gateway, timeout, InternetGatewayId=igw_id):
            done.append(f"igw {igw_id}")
    for subnet in find(ec2.describe_subnets, "Subnets", "SubnetId", "vpc-id"):
        subnet_id = subnet["SubnetId"]
        if deleted(ec2.delete_subnet, timeout, SubnetId=subnet_id):
            done.append(f"subnet {subnet_id}")
    for vpc_id in vpcs:
        if deleted(ec2.delete_vpc, timeout, VpcId=vpc_id):
            done.append(f"vpc {vpc_id}")
    return done
