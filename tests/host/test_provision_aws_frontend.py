"""The `aws` provider through the front-end, against moto_server on loopback.

AWS instances under moto are not machines, so each is stood in by a local namespace host
(`provision_stand_in`): the whole flow runs as on AWS (VPC, subnet, gateway, route,
security group, key pair, instances, Elastic IPs, all tagged), and configuration,
registration and monitoring run for real against the stand-ins. Also here: a `local` and an
`aws` cluster in one front-end, a VM template targeting either; a failure injected half-way
(an AMI AWS does not have) → ERROR with AWS's message, then `delete --force` removes all;
wrong credentials → ERROR at the first step with the provider's message.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.api.provision import Provision
from edgecloud.client import Client
from edgecloud.images.tiny import Tiny
from edgecloud.provision import example
from edgecloud.server.seed import register_tiny
from tests.host.test_provision_e2e import leftovers, records
from tests.support.frontend import RunningFrontEnd, serve_frontend
from tests.support.moto import MotoServer, moto_server
from tests.support.waiting import wait_vms

__all__ = ["moto_server"]


@pytest.fixture(scope="module")
def frontend(
    tmp_path_factory: pytest.TempPathFactory, client_key: Path, tiny: Tiny
) -> Iterator[RunningFrontEnd]:
    """A front-end whose aws provider stands instances in with namespace hosts."""
    home = tmp_path_factory.mktemp("frontend")
    (home / "ssh").mkdir()
    for name in ("id_ed25519", "id_ed25519.pub"):
        shutil.copy2(client_key.parent / name, home / "ssh" / name)
    with serve_frontend(
        home,
        monitor_interval=1.0,
        scheduler_interval=0.2,
        host_error_after=2,
        provision_stand_in=True,
    ) as running:
        with running.store.write() as session:
            register_tiny(session, tiny)
        yield running


def _inputs(moto: MotoServer, **more: str) -> dict[str, str]:
    return {
        "region": moto.region,
        "access_key_id": moto.access_key_id,
        "secret_access_key": moto.secret_access_key,
        "ami": moto.ami,
        "instance_type": "t3.medium",
        "endpoint_url": moto.endpoint_url,
        **more,
    }


def _tagged(moto: MotoServer, tag: str) -> list[str]:
    """Everything moto holds with the provision's tag."""
    ec2 = moto.ec2()
    filters: Any = [{"Name": "tag:edgecloud-provision", "Values": [tag]}]
    found = [v["VpcId"] for v in ec2.describe_vpcs(Filters=filters)["Vpcs"]]
    found += [s["SubnetId"] for s in ec2.describe_subnets(Filters=filters)["Subnets"]]
    found += [
        g["InternetGatewayId"]
        for g in ec2.describe_internet_gateways(Filters=filters)["InternetGateways"]
    ]
    found += [g["GroupId"] for g in ec2.describe_security_groups(Filters=filters)["SecurityGroups"]]
    found += [k["KeyName"] for k in ec2.describe_key_pairs(Filters=filters)["KeyPairs"]]
    found += [a["AllocationId"] for a in ec2.describe_addresses(Filters=filters)["Addresses"]]
    for reservation in ec2.describe_instances(Filters=filters)["Reservations"]:
        found += [
            i["InstanceId"] for i in reservation["Instances"] if i["State"]["Name"] != "terminated"
        ]
    return found


def _cleanup(admin: Client, provision: Provision) -> None:
    current = admin.provisions.get(provision.id)
    if current.state_name == "DONE":
        return
    if current.state_name not in ("RUNNING", "ERROR"):
        current = admin.provisions.wait(provision.id, timeout=300)
    admin.provisions.delete(provision.id, force=True)
    admin.provisions.wait(provision.id, timeout=300)


def test_aws_and_local_clusters_side_by_side(
    admin: Client, frontend: RunningFrontEnd, moto_server: MotoServer
) -> None:
    started = time.monotonic()
    cloud = admin.provisions.create(example="aws-edge", inputs=_inputs(moto_server))
    local = admin.provisions.create(example="local-edge", inputs={"hosts": "1", "site": "two"})
    try:
        cloud_done = admin.provisions.wait(cloud.id, timeout=300)
        print(f"\naws (moto) provision of 2 hosts: RUNNING in {time.monotonic() - started:.1f} s")
        local_done = admin.provisions.wait(local.id, timeout=300)
        assert cloud_done.state_name == "RUNNING", cloud_done.last_error
        assert local_done.state_name == "RUNNING", local_done.last_error
        assert cloud_done.inputs["secret_access_key"] == "***"
        # What AWS holds: a VPC with one subnet, a gateway, the group, a key, 2 + 2 EIPs.
        ec2 = moto_server.ec2()
        tag: Any = [{"Name": "tag:edgecloud-provision", "Values": [cloud.tag]}]
        (vpc,) = ec2.describe_vpcs(Filters=tag)["Vpcs"]
        assert len(ec2.describe_subnets(Filters=tag)["Subnets"]) == 1
        assert len(ec2.describe_internet_gateways(Filters=tag)["InternetGateways"]) == 1
        instances = [
            i for r in ec2.describe_instances(Filters=tag)["Reservations"] for i in r["Instances"]
        ]
        assert sorted(i["State"]["Name"] for i in instances) == ["running", "running"]
        assert {i["VpcId"] for i in instances} == {vpc["VpcId"]}
        addresses = ec2.describe_addresses(Filters=tag)["Addresses"]
        assert sorted(a["InstanceId"] for a in addresses) == sorted(
            i["InstanceId"] for i in instances
        )
        assert sorted(h.resource_id for h in cloud_done.hosts) == sorted(
            i["InstanceId"] for i in instances
        )
        # Both clusters listed together, each host MONITORED.
        listed = {p.id: p.provider for p in admin.provisions.list()}
        assert listed[cloud.id] == "aws" and listed[local.id] == "local"
        for done in (cloud_done, local_done):
            hosts = admin.clusters.get(done.cluster_id or -1).host_ids
            assert {admin.hosts.get(h).state_name for h in hosts} == {"MONITORED"}
        # A VM template per cluster, by requirement: its container lands there.
        (tiny_ct,) = [t for t in admin.templates.list() if t.name == "tiny-container"]
        for done in (cloud_done, local_done):
            template = admin.templates.create(
                name=f"ct-on-{done.tag}",
                template={
                    **tiny_ct.template,
                    "SCHED_REQUIREMENTS": f"CLUSTER_ID = {done.cluster_id}",
                },
            )
            vm = admin.vms.create(template_id=template.id)
            wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING", timeout=120)
            assert admin.vms.get(vm.id).cluster_id == done.cluster_id
            admin.vms.action(vm.id, "terminate", hard=True)
            wait_vms(admin, [vm.id], lambda s: s == "DONE", timeout=60)
            admin.templates.delete(template.id)
        for done in (cloud_done, local_done):
            admin.provisions.delete(done.id)
        for done in (cloud_done, local_done):
            gone = admin.provisions.wait(done.id, timeout=180)
            assert gone.state_name == "DONE", gone.last_error
            assert records(admin, done.tag) == []
        assert _tagged(moto_server, cloud.tag) == []
        home = frontend.settings.home / "provision"
        assert leftovers(home / "stand-in", cloud.tag) == []
        assert leftovers(home / "local", local.tag) == []
        assert not (home / "aws" / cloud.tag).exists()
    finally:
        _cleanup(admin, cloud)
        _cleanup(admin, local)


def test_a_failure_half_way_is_error_and_delete_force_removes_everything(
    admin: Client, frontend: RunningFrontEnd, moto_server: MotoServer
) -> None:
    made = admin.provisions.create(
        example="aws-edge", inputs=_inputs(moto_server, ami="ami-00000000deadbeef")
    )
    try:
        failed = admin.provisions.wait(made.id, timeout=120)
        assert failed.state_name == "ERROR" and failed.step == "hosts"
        assert "RunInstances: InvalidAMIID.NotFound" in failed.last_error
        assert "ami-00000000deadbeef" in failed.last_error
        assert _tagged(moto_server, made.tag) != []  # the VPC and the rest were made
        (step,) = admin.provisions.log(made.id)
        assert "InvalidAMIID.NotFound" in step.log
        admin.provisions.delete(made.id, force=True)
        gone = admin.provisions.wait(made.id, timeout=120)
        assert gone.state_name == "DONE", gone.last_error
        assert _tagged(moto_server, made.tag) == []
        assert leftovers(frontend.settings.home / "provision" / "stand-in", made.tag) == []
    finally:
        _cleanup(admin, made)


def test_wrong_credentials_fail_the_first_step_with_the_provider_message(
    admin: Client, moto_server: MotoServer
) -> None:
    made = admin.provisions.create(
        example="aws-edge", inputs=_inputs(moto_server, secret_access_key="not-the-secret")
    )
    try:
        failed = admin.provisions.wait(made.id, timeout=60)
        assert failed.state_name == "ERROR" and failed.step == "hosts"
        assert "AuthFailure" in failed.last_error, failed.last_error
        assert "not-the-secret" not in failed.last_error
        assert _tagged(moto_server, made.tag) == []
    finally:
        _cleanup(admin, made)


def test_the_example_validates() -> None:
    assert "provider: aws" in example("aws-edge")
