"""The `aws` provider against moto_server on loopback (IAM authentication on)."""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgecloud.drivers import registry
from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.api import Provider
from edgecloud.drivers.provision.aws import AwsProvider, user_data
from edgecloud.provision import HostSpec
from tests.support.moto import MotoServer, moto_server

pytestmark = pytest.mark.unit

__all__ = ["moto_server"]  # the fixture, used by name

_sequence = itertools.count()
TAG = "edgecloud-provision"


def specs(count: int) -> list[HostSpec]:
    return [
        HostSpec(index=i, name=f"host{i}", address=None, hypervisors=["kvm"]) for i in range(count)
    ]


def public_key(comment: str = "front-end@test") -> str:
    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    return f"{raw.decode()} {comment}"


@pytest.fixture(scope="module")
def key() -> str:
    return public_key()


@pytest.fixture(scope="module")
def ami(moto_server: MotoServer) -> str:
    return moto_server.ami


@pytest.fixture
def settings(moto_server: MotoServer, ami: str) -> dict[str, Any]:
    return moto_server.settings(ami=ami)


@pytest.fixture
def provider(tmp_path: Path) -> AwsProvider:
    return AwsProvider(tmp_path / "state")


@pytest.fixture
def provision_id(provider: AwsProvider) -> Iterator[str]:
    """A fresh provision id; whatever the test leaves under it is removed afterwards."""
    pid = f"a{os.getpid()}-{next(_sequence)}"
    try:
        yield pid
    finally:
        provider.delete_all(pid)


@pytest.fixture
def ec2(moto_server: MotoServer) -> Any:
    return moto_server.ec2()


def tagged(ec2: Any, provision_id: str) -> dict[str, list[dict[str, Any]]]:
    """What the cloud has with the provision's tag, by kind (straight from describe_*)."""
    filters = [{"Name": f"tag:{TAG}", "Values": [provision_id]}]
    live = {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
    found = {
        "vpc": ec2.describe_vpcs(Filters=filters)["Vpcs"],
        "subnet": ec2.describe_subnets(Filters=filters)["Subnets"],
        "igw": ec2.describe_internet_gateways(Filters=filters)["InternetGateways"],
        "route-table": ec2.describe_route_tables(Filters=filters)["RouteTables"],
        "security-group": ec2.describe_security_groups(Filters=filters)["SecurityGroups"],
        "key-pair": ec2.describe_key_pairs(Filters=filters)["KeyPairs"],
        "instance": [
            i
            for r in ec2.describe_instances(Filters=[*filters, live])["Reservations"]
            for i in r["Instances"]
        ],
        "elastic-ip": ec2.describe_addresses(Filters=filters)["Addresses"],
    }
    return {kind: items for kind, items in found.items() if items}


def ids(found: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    keys = {
        "vpc": "VpcId",
        "subnet": "SubnetId",
        "igw": "InternetGatewayId",
        "route-table": "RouteTableId",
        "security-group": "GroupId",
        "key-pair": "KeyName",
        "instance": "InstanceId",
        "elastic-ip": "AllocationId",
    }
    return {kind: sorted(item[keys[kind]] for item in items) for kind, items in found.items()}


def tags(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


def test_three_hosts_made_resumed_and_removed(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str, ec2: Any
) -> None:
    started = time.monotonic()
    made = provider.create_hosts(provision_id, specs(3), settings, key)
    took = time.monotonic() - started
    assert took < 20, f"create took {took:.1f} s"

    found = tagged(ec2, provision_id)
    assert {kind: len(items) for kind, items in found.items()} == {
        "vpc": 1,
        "subnet": 1,
        "igw": 1,
        "route-table": 1,
        "security-group": 1,
        "key-pair": 1,
        "instance": 3,
        "elastic-ip": 3,
    }
    [vpc], [subnet], [igw] = found["vpc"], found["subnet"], found["igw"]
    assert vpc["CidrBlock"] == "10.100.0.0/16"
    assert subnet["CidrBlock"] == "10.100.1.0/24" and subnet["VpcId"] == vpc["VpcId"]
    assert [a["VpcId"] for a in igw["Attachments"]] == [vpc["VpcId"]]
    [table] = found["route-table"]
    assert table["VpcId"] == vpc["VpcId"]
    default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert [r["GatewayId"] for r in default] == [igw["InternetGatewayId"]]
    assert [a["SubnetId"] for a in table["Associations"] if "SubnetId" in a] == [subnet["SubnetId"]]
    [group] = found["security-group"]
    assert group["VpcId"] == vpc["VpcId"]
    rules = {
        (p["IpProtocol"], p["FromPort"], p["ToPort"], r["CidrIp"])
        for p in group["IpPermissions"]
        for r in p["IpRanges"]
    }
    assert rules == {
        ("tcp", 22, 22, "0.0.0.0/0"),
        ("tcp", 179, 179, "10.100.0.0/16"),
        ("udp", 4789, 4789, "10.100.0.0/16"),
        ("udp", 8472, 8472, "10.100.0.0/16"),
    }
    [pair] = found["key-pair"]
    assert pair["KeyName"] == f"edgecloud-{provision_id}"
    for item in (vpc, subnet, igw, table, group, pair):
        assert tags(item)[TAG] == provision_id

    instances = {tags(i)["Name"]: i for i in found["instance"]}
    assert sorted(instances) == ["host0", "host1", "host2"]
    addresses = {a["InstanceId"]: a for a in found["elastic-ip"]}
    assert [h.name for h in made] == ["host0", "host1", "host2"]
    for index, host in enumerate(made):
        instance = instances[host.name]
        assert instance["State"]["Name"] == "running"
        assert tags(instance) == {
            TAG: provision_id,
            "Name": host.name,
            "edgecloud-index": str(index),
        }
        assert instance["SubnetId"] == subnet["SubnetId"]
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group["GroupId"]]
        assert instance["KeyName"] == pair["KeyName"]
        assert host.resource_id == instance["InstanceId"]
        address = addresses[instance["InstanceId"]]
        assert tags(address)[TAG] == provision_id and tags(address)["Name"] == host.name
        assert host.address == address["PublicIp"]
        assert (host.port, host.host_key, host.root) == (22, "", "/var/lib/edgecloud")
    assert len({h.address for h in made}) == 3

    listed = {(r.kind, r.resource_id) for r in provider.resources(provision_id)}
    assert listed == {(kind, i) for kind, items in ids(found).items() for i in items}

    # Again: the same hosts, nothing new.
    assert provider.create_hosts(provision_id, specs(3), settings, key) == made
    assert ids(tagged(ec2, provision_id)) == ids(found)

    # One host goes: its address is released, its instance terminated.
    provider.delete_hosts(provision_id, ["host1", "never-made"])
    after = tagged(ec2, provision_id)
    assert sorted(tags(i)["Name"] for i in after["instance"]) == ["host0", "host2"]
    assert sorted(a["PublicIp"] for a in after["elastic-ip"]) == sorted(
        [made[0].address, made[2].address]
    )
    gone = ec2.describe_instances(InstanceIds=[made[1].resource_id])["Reservations"]
    assert gone[0]["Instances"][0]["State"]["Name"] == "terminated"
    assert made[1].address not in {a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]}

    # Made again: a new instance for host1, the others kept.
    again = provider.create_hosts(provision_id, specs(3), settings, key)
    assert again[0] == made[0] and again[2] == made[2]
    assert again[1].resource_id != made[1].resource_id

    removed = provider.delete_all(provision_id)
    assert f"vpc {vpc['VpcId']}" in removed
    assert {f"instance {h.resource_id}" for h in again} <= set(removed)
    assert f"key-pair edgecloud-{provision_id}" in removed
    assert tagged(ec2, provision_id) == {}
    assert vpc["VpcId"] not in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    assert provider.resources(provision_id) == []
    assert not (provider.state_dir / provision_id).exists()
    assert provider.delete_all(provision_id) == []


def test_a_failure_midway_is_reported_and_cleaned_up(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str, ec2: Any
) -> None:
    with pytest.raises(DriverError) as raised:
        provider.create_hosts(provision_id, specs(2), {**settings, "ami": "ami-nope"}, key)
    assert str(raised.value) == (
        "aws: RunInstances: InvalidAMIID.NotFound: The image id '[ami-nope]' does not exist"
    )
    partial = tagged(ec2, provision_id)
    assert set(partial) == {
        "vpc",
        "subnet",
        "igw",
        "route-table",
        "security-group",
        "key-pair",
    }
    # A hand-made security group in the VPC, without the tag, does not keep the VPC alive.
    [vpc] = partial["vpc"]
    ec2.create_security_group(GroupName="by-hand", Description="x", VpcId=vpc["VpcId"])

    removed = provider.delete_all(provision_id)
    assert len([r for r in removed if r.startswith("security-group ")]) == 2
    assert tagged(ec2, provision_id) == {}
    assert vpc["VpcId"] not in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    assert provider.delete_all(provision_id) == []


def test_a_retry_after_a_failure_resumes(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str, ec2: Any
) -> None:
    with pytest.raises(DriverError, match=r"InvalidAMIID\.NotFound"):
        provider.create_hosts(provision_id, specs(1), {**settings, "ami": "ami-nope"}, key)
    network = ids(tagged(ec2, provision_id))
    [host] = provider.create_hosts(provision_id, specs(1), settings, key)
    now = ids(tagged(ec2, provision_id))
    assert {kind: now[kind] for kind in network} == network
    assert now["instance"] == [host.resource_id]


def test_private_addresses_without_public_ips(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str, ec2: Any
) -> None:
    custom = {
        **settings,
        "public_ips": False,
        "vpc_cidr": "10.7.0.0/16",
        "subnet_cidr": "10.7.3.0/24",
        "ssh_cidr": "192.0.2.0/24",
        "instance_type": "c5.metal",
    }
    made = provider.create_hosts(provision_id, specs(2), custom, key)
    found = tagged(ec2, provision_id)
    assert "elastic-ip" not in found
    for host in made:
        assert ipaddress.IPv4Address(host.address) in ipaddress.IPv4Network("10.7.3.0/24")
    assert {i["InstanceType"] for i in found["instance"]} == {"c5.metal"}
    [group] = found["security-group"]
    ssh = [p for p in group["IpPermissions"] if p["FromPort"] == 22]
    assert [r["CidrIp"] for p in ssh for r in p["IpRanges"]] == ["192.0.2.0/24"]


def test_a_new_front_end_key_replaces_the_key_pair(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str, ec2: Any
) -> None:
    provider.create_hosts(provision_id, specs(1), settings, key)
    other = public_key("other@test")
    provider.create_hosts(provision_id, specs(1), settings, other)
    [pair] = ec2.describe_key_pairs(
        Filters=[{"Name": f"tag:{TAG}", "Values": [provision_id]}], IncludePublicKey=True
    )["KeyPairs"]
    assert pair["PublicKey"].split()[:2] == other.split()[:2]


def test_wrong_credentials_fail_at_the_first_call(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str, ec2: Any
) -> None:
    message = (
        "aws: DescribeVpcs: AuthFailure: AWS was not able to validate the provided access "
        "credentials"
    )
    wrong_secret = {**settings, "secret_access_key": "not-the-secret"}
    with pytest.raises(DriverError) as raised:
        provider.create_hosts(provision_id, specs(1), wrong_secret, key)
    assert str(raised.value) == message
    wrong_key = {**settings, "access_key_id": "AKIAIOSFODNN7EXAMPLE"}
    with pytest.raises(DriverError) as raised:
        provider.create_hosts(provision_id, specs(1), wrong_key, key)
    assert str(raised.value) == message
    assert tagged(ec2, provision_id) == {}
    assert not (provider.state_dir / provision_id).exists()  # nothing recorded
    assert provider.delete_all(provision_id) == []


def test_an_unreachable_endpoint_is_a_driver_error(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str
) -> None:
    with socket.socket() as bound:  # bound, not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        unreachable = {**settings, "endpoint_url": f"http://127.0.0.1:{bound.getsockname()[1]}"}
        with pytest.raises(DriverError, match=r"^aws: DescribeVpcs: Could not connect"):
            provider.create_hosts(provision_id, specs(1), unreachable, key)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {**s, "flavour": "x"}, "unknown setting.*flavour"),
        (lambda s: {k: v for k, v in s.items() if k != "region"}, "missing setting.*region"),
        (lambda s: {k: v for k, v in s.items() if k != "ami"}, "missing setting.*ami"),
        (lambda s: {**s, "secret_access_key": ""}, "missing setting.*secret_access_key"),
        (lambda s: {**s, "public_ips": "maybe"}, "public_ips must be true or false"),
        (lambda s: {**s, "instance_type": 3}, "instance_type must be a non-empty string"),
        (lambda s: {**s, "vpc_cidr": "10.0.0.0/33"}, "vpc_cidr"),
        (lambda s: {**s, "subnet_cidr": "10.9.0.0/24"}, "subnet_cidr 10.9.0.0/24 is not within"),
        (lambda s: {**s, "endpoint_url": "ftp://x"}, "endpoint_url"),
    ],
)
def test_bad_settings_name_the_key(
    provider: AwsProvider,
    settings: dict[str, Any],
    key: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    message: str,
) -> None:
    with pytest.raises(DriverError, match=f"^aws provider: .*{message}"):
        provider.create_hosts("p1", specs(1), change(settings), key)
    assert not (provider.state_dir / "p1").exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p, s: p.create_hosts("Bad_Id", specs(1), s, "ssh-ed25519 AAAA"), "provision id"),
        (lambda p, s: p.delete_all("../etc"), "provision id"),
        (lambda p, s: p.create_hosts("p1", specs(1), s, "a\nb"), "one public key line"),
        (
            lambda p, s: p.create_hosts("p1", [*specs(1), *specs(1)], s, "ssh-ed25519 AAAA"),
            "unique",
        ),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_made(
    provider: AwsProvider,
    settings: dict[str, Any],
    call: Callable[[AwsProvider, dict[str, Any]], object],
    message: str,
) -> None:
    with pytest.raises(DriverError, match=message):
        call(provider, settings)
    assert not (provider.state_dir / "p1").exists()


def test_the_region_of_a_provision_is_kept(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str
) -> None:
    provider.create_hosts(provision_id, specs(1), settings, key)
    with pytest.raises(DriverError, match=r"region us-east-1 .* cannot change"):
        provider.create_hosts(provision_id, specs(1), {**settings, "region": "eu-west-1"}, key)


def test_the_record_holds_the_secret_privately(
    provider: AwsProvider, provision_id: str, settings: dict[str, Any], key: str
) -> None:
    provider.create_hosts(provision_id, specs(1), settings, key)
    record = provider.state_dir / provision_id / "aws.json"
    assert record.stat().st_mode & 0o777 == 0o600
    assert record.parent.stat().st_mode & 0o777 == 0o700
    assert settings["secret_access_key"] not in repr(provider._clients)


def test_user_data_lets_root_in_with_the_key() -> None:
    script = user_data("ssh-ed25519 AAAAC3 it's me")
    assert script.startswith("#!/bin/sh\n")
    assert (
        "printf '%s\\n' 'ssh-ed25519 AAAAC3 it'\"'\"'s me' > /root/.ssh/authorized_keys" in script
    )
    assert "PermitRootLogin prohibit-password" in script


def test_registered_as_the_aws_provision_driver(tmp_path: Path) -> None:
    made = registry.create("provision", "aws", state_dir=tmp_path)
    assert isinstance(made, AwsProvider)
    assert isinstance(made, Provider)
    assert "aws" in registry.available("provision")


def test_a_reset_server_has_new_credentials(moto_server: MotoServer) -> None:
    old = (moto_server.access_key_id, moto_server.secret_access_key)
    moto_server.reset()
    assert (moto_server.access_key_id, moto_server.secret_access_key) != old
    assert moto_server.ec2().describe_vpcs()["Vpcs"]  # the default VPC, made again
    with pytest.raises(ClientError, match="AuthFailure"):
        moto_server.ec2(good=False).describe_vpcs()
