"""The `aws` provider in stand-in mode: instances in moto, the hosts themselves `local`."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.drivers.provision.api import ProvidedHost
from edgecloud.drivers.provision.aws import AwsProvider
from edgecloud.drivers.provision.local import LocalProvider
from edgecloud.drivers.transport import SshTransport, public_key_line
from edgecloud.provision import HostSpec
from tests.host.test_provision_local import leftovers
from tests.support.moto import MotoServer, moto_server

pytestmark = pytest.mark.host

__all__ = ["moto_server"]  # the fixture, used by name

TAG = "edgecloud-provision"


def specs(count: int) -> list[HostSpec]:
    return [
        HostSpec(index=i, name=f"host{i}", address=None, hypervisors=["lxc"]) for i in range(count)
    ]


@pytest.fixture
def local(tmp_path: Path) -> LocalProvider:
    return LocalProvider(tmp_path / "local")


@pytest.fixture
def provider(tmp_path: Path, local: LocalProvider) -> AwsProvider:
    return AwsProvider(tmp_path / "aws", stand_in=local)


@pytest.fixture
def provision_id(provider: AwsProvider) -> Iterator[str]:
    """A fresh provision id; whatever the test leaves under it is removed afterwards."""
    pid = f"s{os.getpid()}"
    try:
        yield pid
    finally:
        provider.delete_all(pid)


def in_aws(ec2: Any, provision_id: str) -> list[str]:
    """What moto still has with the provision's tag (terminated instances aside)."""
    filters = [{"Name": f"tag:{TAG}", "Values": [provision_id]}]
    found = [v["VpcId"] for v in ec2.describe_vpcs(Filters=filters)["Vpcs"]]
    found += [s["SubnetId"] for s in ec2.describe_subnets(Filters=filters)["Subnets"]]
    found += [
        g["InternetGatewayId"]
        for g in ec2.describe_internet_gateways(Filters=filters)["InternetGateways"]
    ]
    found += [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=filters)["RouteTables"]]
    found += [g["GroupId"] for g in ec2.describe_security_groups(Filters=filters)["SecurityGroups"]]
    found += [k["KeyName"] for k in ec2.describe_key_pairs(Filters=filters)["KeyPairs"]]
    found += [a["AllocationId"] for a in ec2.describe_addresses(Filters=filters)["Addresses"]]
    for reservation in ec2.describe_instances(Filters=filters)["Reservations"]:
        found += [
            i["InstanceId"] for i in reservation["Instances"] if i["State"]["Name"] != "terminated"
        ]
    return found


def check_host(host: ProvidedHost, client_key: Path, netns: str) -> None:
    """The host answers over SSH with its pinned key, from the stand-in's namespace."""
    t = SshTransport(host.address, port=host.port, client_key=client_key, host_key=host.host_key)
    try:
        result = t.run(["hostname", "-I"], timeout=20)
        assert result.exit_status == 0, result.stderr
        assert result.stdout.split() == [host.address]
        result = t.run(["ip", "-j", "-4", "route", "show", "table", "all"], timeout=20)
        assert [r for r in json.loads(result.stdout) if r.get("dst") == "default"] == []
        assert t.run(["ip", "netns", "identify"], timeout=20).stdout.strip() == netns
    finally:
        t.close()


def test_two_stand_in_hosts_reachable_and_removed(
    provider: AwsProvider,
    local: LocalProvider,
    provision_id: str,
    moto_server: MotoServer,
    client_key: Path,
) -> None:
    ec2 = moto_server.ec2()
    key = public_key_line(client_key)
    settings = moto_server.settings(ami=moto_server.ami)
    made = provider.create_hosts(provision_id, specs(2), settings, key)

    instances = {
        i["InstanceId"]: i
        for r in ec2.describe_instances(Filters=[{"Name": f"tag:{TAG}", "Values": [provision_id]}])[
            "Reservations"
        ]
        for i in r["Instances"]
    }
    assert sorted(instances) == sorted(h.resource_id for h in made)
    assert all(i["State"]["Name"] == "running" for i in instances.values())
    for index, host in enumerate(made):
        assert host.name == f"host{index}"
        assert ipaddress.IPv4Address(host.address) in ipaddress.IPv4Network("198.18.0.0/15")
        assert host.port == 22 and host.host_key.startswith("ssh-ed25519 ")
        assert Path(host.root) == local.state_dir / provision_id / host.name / "root"
        check_host(host, client_key, f"ecp-{provision_id}-{index}")

    kinds = {r.kind for r in provider.resources(provision_id)}
    assert {"vpc", "subnet", "igw", "route-table", "security-group", "key-pair"} <= kinds
    assert {"instance", "elastic-ip", "netns", "bridge", "veth", "process"} <= kinds
    assert provider.create_hosts(provision_id, specs(2), settings, key) == made

    provider.delete_hosts(provision_id, ["host0"])
    [gone] = ec2.describe_instances(InstanceIds=[made[0].resource_id])["Reservations"]
    assert gone["Instances"][0]["State"]["Name"] == "terminated"
    assert not (local.state_dir / provision_id / "host0").exists()
    check_host(made[1], client_key, f"ecp-{provision_id}-1")

    removed = provider.delete_all(provision_id)
    assert f"instance {made[1].resource_id}" in removed
    assert f"netns ecp-{provision_id}-1" in removed
    assert in_aws(ec2, provision_id) == []
    assert leftovers(local, provision_id) == []
    assert provider.resources(provision_id) == []
    assert not (provider.state_dir / provision_id).exists()
