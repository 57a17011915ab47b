"""Provisions through the REST API, on the fake provider (hosts run the fake hypervisor).

The whole lifecycle runs as it does on a real provider: create → RUNNING with the cluster,
hosts, datastores and networks registered; a failed step → ERROR, then retry resumes at
it; scale; delete refused while VMs run, forced delete terminates them; nothing left.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecloud.api.provision import Provision
from edgecloud.cli.main import app as cli
from edgecloud.client import Client, EdgecloudError
from edgecloud.provision import example
from tests.support.frontend import RunningFrontEnd
from tests.support.waiting import wait_vms

FAKE = {"local": "fake", "onprem": "fake", "aws": "fake"}
AWS = """
name: cloud-${input.region}
provider: aws
inputs:
  - {name: region, default: eu-west-1}
  - {name: secret, type: password}
provider_settings:
  region: ${input.region}
  secret_access_key: ${input.secret}
cluster: {name: "${provision_id}-aws"}
hosts: {count: 2, hypervisors: [kvm]}
networks:
  - {name: "${provision_id}-pub", driver: bridge, public: true,
     address_range: {ip: 192.0.2.10, size: 4}}
"""


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {
        "provision_drivers": FAKE,
        "monitor_interval": 0.2,
        "scheduler_interval": 0.1,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


def _create(admin: Client, text: str | None = None, **inputs: str) -> Provision:
    if text is None:
        made = admin.provisions.create(example="local-edge", inputs=inputs)
    else:
        made = admin.provisions.create(template=text, inputs=inputs)
    return admin.provisions.wait(made.id, timeout=60)


def _left(admin: Client, tag: str) -> list[str]:
    found = [f"cluster {c.name}" for c in admin.clusters.list() if c.name.startswith(tag)]
    found += [f"host {h.name}" for h in admin.hosts.list() if h.name.startswith(tag)]
    found += [f"datastore {d.name}" for d in admin.datastores.list() if d.name.startswith(tag)]
    found += [f"vnet {v.name}" for v in admin.vnets.list() if v.name.startswith(tag)]
    return found


def test_create_registers_the_edge_cluster_and_delete_removes_it(
    admin: Client, frontend: RunningFrontEnd
) -> None:
    done = _create(admin, site="lab1")
    assert done.state_name == "RUNNING", done.last_error
    assert done.name == "edge-lab1" and done.provider == "local" and done.step == ""
    tag = done.tag
    cluster = admin.clusters.get(done.cluster_id or -1)
    assert cluster.name == f"{tag}-cluster"
    hosts = [admin.hosts.get(i) for i in cluster.host_ids]
    assert sorted(h.name for h in hosts) == [f"{tag}-host-{i}" for i in range(3)]
    assert {h.state_name for h in hosts} == {"MONITORED"}
    stores = {admin.datastores.get(i).name: admin.datastores.get(i) for i in cluster.datastore_ids}
    assert stores[f"{tag}-system"].template["REPLICA_HOST"] == f"{tag}-host-0"
    assert stores[f"{tag}-images"].kind == "image"
    vnets = {admin.vnets.get(i).name: admin.vnets.get(i) for i in cluster.vnet_ids}
    assert vnets[f"{tag}-private"].driver == "evpn"
    assert vnets[f"{tag}-public"].driver == "bridge"
    assert [h.host_id for h in done.hosts] == [h.id for h in sorted(hosts, key=lambda h: h.name)]
    # The log: one run of each step, in order, each saying what it did.
    log = admin.provisions.log(done.id)
    assert [(s.name, s.state) for s in log] == [
        ("hosts", "done"),
        ("configure", "done"),
        ("register", "done"),
        ("monitor", "done"),
    ]
    assert f"registered cluster {tag}-cluster" in log[2].log
    assert done.id in [p.id for p in admin.provisions.list()]

    deleting = admin.provisions.delete(done.id)
    assert deleting.state_name == "DELETING"
    gone = admin.provisions.wait(done.id, timeout=60)
    assert gone.state_name == "DONE", gone.last_error
    assert _left(admin, tag) == []
    assert gone.hosts == [] and gone.made == {} and gone.cluster_id is None
    assert not (frontend.settings.home / "provision" / "fake" / tag).exists()
    assert done.id not in [p.id for p in admin.provisions.list()]
    assert done.id in [p.id for p in admin.provisions.list(all=True)]
    with pytest.raises(EdgecloudError) as refused:
        admin.provisions.delete(done.id)
    assert refused.value.status == 409


def test_a_failed_step_is_logged_and_retry_resumes_there(admin: Client) -> None:
    text = example("local-edge").replace(
        "provider: local", "provider: local\nprovider_settings: {fail_once: create_hosts}"
    )
    failed = _create(admin, text, hosts="2")
    assert failed.state_name == "ERROR"
    assert failed.step == "hosts" and failed.operation == "create"
    assert "create_hosts failed as asked" in failed.last_error
    log = admin.provisions.log(failed.id)
    assert [(s.name, s.state) for s in log] == [("hosts", "failed")]
    assert "FAILED: fake provider: create_hosts failed as asked" in log[0].log
    with pytest.raises(EdgecloudError) as busy:
        admin.provisions.scale(failed.id, 3)
    assert busy.value.status == 409 and "RUNNING" in busy.value.message

    admin.provisions.retry(failed.id)
    done = admin.provisions.wait(failed.id, timeout=60)
    assert done.state_name == "RUNNING", done.last_error
    log = admin.provisions.log(failed.id)
    assert [(s.name, s.state) for s in log][1:] == [
        ("hosts", "done"),
        ("configure", "done"),
        ("register", "done"),
        ("monitor", "done"),
    ]
    assert "resuming create at step hosts" in log[1].log
    admin.provisions.delete(done.id)
    assert admin.provisions.wait(done.id).state_name == "DONE"


def test_scale_adds_and_removes_hosts(admin: Client) -> None:
    done = _create(admin, hosts="1")
    assert len(done.hosts) == 1
    admin.provisions.scale(done.id, 3)
    grown = admin.provisions.wait(done.id, timeout=60)
    assert grown.state_name == "RUNNING", grown.last_error
    assert [h.name for h in grown.hosts] == [f"{done.tag}-host-{i}" for i in range(3)]
    assert len(admin.clusters.get(done.cluster_id or -1).host_ids) == 3
    # A VM on host 2 keeps scaling down to 2 from removing it.
    host2 = grown.hosts[2].host_id
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64, "SCHED_REQUIREMENTS": f"ID={host2}"})
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING")
    with pytest.raises(EdgecloudError) as refused:
        admin.provisions.scale(done.id, 2)
    assert refused.value.status == 409 and refused.value.field == "hosts"
    assert f"VMs {vm.id} run" in refused.value.message
    admin.vms.action(vm.id, "terminate", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "DONE")
    admin.provisions.scale(done.id, 2)
    shrunk = admin.provisions.wait(done.id, timeout=60)
    assert [h.name for h in shrunk.hosts] == [f"{done.tag}-host-{i}" for i in range(2)]
    assert f"{done.tag}-host-2" not in [h.name for h in admin.hosts.list()]
    admin.provisions.configure(done.id)
    again = admin.provisions.wait(done.id, timeout=60)
    assert again.state_name == "RUNNING" and again.operation == "configure"
    admin.provisions.delete(done.id)
    assert admin.provisions.wait(done.id).state_name == "DONE"


def test_delete_with_vms_is_refused_and_force_terminates_them(admin: Client) -> None:
    done = _create(admin, hosts="2")
    requirement = f"CLUSTER_ID = {done.cluster_id}"
    vms = [
        admin.vms.create(template={"CPU": 1, "MEMORY": 64, "SCHED_REQUIREMENTS": requirement}).id
        for _ in range(2)
    ]
    wait_vms(admin, vms, lambda s: s == "ACTIVE/RUNNING")
    with pytest.raises(EdgecloudError) as refused:
        admin.provisions.delete(done.id)
    assert refused.value.status == 409 and refused.value.field == "force"
    assert admin.provisions.get(done.id).state_name == "RUNNING"  # nothing changed
    admin.provisions.delete(done.id, force=True)
    gone = admin.provisions.wait(done.id, timeout=120)
    assert gone.state_name == "DONE", gone.last_error
    assert {admin.vms.get(v).state_name for v in vms} == {"DONE"}
    assert _left(admin, done.tag) == []


def test_two_providers_in_one_front_end_and_templates_target_either(admin: Client) -> None:
    local = _create(admin, hosts="1")
    cloud = _create(admin, AWS, secret="s3cr3t-value")
    assert (local.state_name, cloud.state_name) == ("RUNNING", "RUNNING"), cloud.last_error
    listed = {p.id: p.provider for p in admin.provisions.list()}
    assert listed[local.id] == "local" and listed[cloud.id] == "aws"
    assert cloud.inputs == {"secret": "***"}  # the region took its default
    for target in (local, cloud):
        template = admin.templates.create(
            name=f"on-{target.tag}",
            template={
                "CPU": 1,
                "MEMORY": 64,
                "SCHED_REQUIREMENTS": f"CLUSTER_ID = {target.cluster_id}",
            },
        )
        vm = admin.vms.create(template_id=template.id)
        wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING")
        assert admin.vms.get(vm.id).cluster_id == target.cluster_id
        admin.vms.action(vm.id, "terminate", hard=True)
        wait_vms(admin, [vm.id], lambda s: s == "DONE")
        admin.templates.delete(template.id)
    for target in (local, cloud):
        admin.provisions.delete(target.id)
        assert admin.provisions.wait(target.id).state_name == "DONE"


def test_password_inputs_are_encrypted_at_rest(
    admin: Client, frontend: RunningFrontEnd, db_url: str
) -> None:
    made = admin.provisions.create(template=AWS, inputs={"secret": "s3cr3t-at-rest"})
    assert made.inputs == {"secret": "***"}
    resolved = admin.provisions.validate(template=AWS, inputs={"secret": "s3cr3t-at-rest"})
    assert resolved["provider_settings"]["secret_access_key"] == "***"
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            (row,) = db.execute("SELECT * FROM provisions WHERE id = ?", (made.id,)).fetchall()
        assert "s3cr3t-at-rest" not in repr(row)
    done = admin.provisions.wait(made.id, timeout=60)
    admin.provisions.delete(done.id)
    admin.provisions.wait(done.id)


@pytest.mark.parametrize(
    ("change", "inputs", "field", "reason"),
    [
        (("cluster:", "cluster:\n  color: red"), {}, "template.cluster.color", "unknown"),
        (("    default: lab\n", ""), {}, "template.inputs.site", "no value given"),
        (("", ""), {"hosts": "many"}, "template.inputs.hosts", "number"),
        (("", ""), {"nope": "1"}, "template.inputs.nope", "no such input"),
        (("kind: system", "kind: sistem"), {}, "template.datastores[1].kind", ""),
    ],
)
def test_bad_templates_name_the_yaml_path(
    admin: Client,
    change: tuple[str, str],
    inputs: dict[str, str],
    field: str,
    reason: str,
) -> None:
    text = example("local-edge").replace(*change) if change[0] else example("local-edge")
    before = len(admin.provisions.list(all=True))
    with pytest.raises(EdgecloudError) as refused:
        admin.provisions.create(template=text, inputs=inputs)
    assert refused.value.status == 422
    assert field in [f["field"] for f in refused.value.fields], refused.value.fields
    assert reason in refused.value.message
    assert len(admin.provisions.list(all=True)) == before  # nothing recorded


DECLARING = AWS.replace(
    "  - {name: secret, type: password}\n",
    """  - {name: secret, type: password, default: d3fault-pw}
  - {name: spread, type: boolean, default: true, description: One host per zone.}
  - {name: size, type: list, options: [small, 2], default: small}
  - {name: count, type: number}
""",
)


def test_validate_and_inputs_tell_the_declared_inputs(admin: Client) -> None:
    declared = [
        {"name": "region", "type": "text", "default": "eu-west-1", "has_default": True},
        {"name": "secret", "type": "password", "default": None, "has_default": True},
        {"name": "spread", "type": "boolean", "default": True, "has_default": True},
        {"name": "size", "type": "list", "default": "small", "has_default": True},
        {"name": "count", "type": "number", "default": None, "has_default": False},
    ]
    answer = admin.request(
        "POST", "/provisions/validate", json={"template": DECLARING, "inputs": {"count": "2"}}
    )
    got = answer["inputs_declared"]
    assert [{k: i[k] for k in declared[0]} for i in got] == declared
    assert got[2]["description"] == "One host per zone." and got[0]["description"] == ""
    assert got[3]["options"] == ["small", 2] and got[0]["options"] is None
    # A password's default is never told: not as the input's default, not where it is used.
    assert answer["template"]["provider_settings"]["secret_access_key"] == "***"
    assert "d3fault-pw" not in repr(answer)
    # Without the value it lacks the template is refused; `inputs` still lists what to ask.
    with pytest.raises(EdgecloudError) as refused:
        admin.request("POST", "/provisions/validate", json={"template": DECLARING})
    assert refused.value.status == 422
    assert "template.inputs.count" in [f["field"] for f in refused.value.fields]
    assert admin.request("POST", "/provisions/inputs", json={"template": DECLARING}) == got
    shipped = admin.request("POST", "/provisions/inputs", json={"example": "local-edge"})
    assert [(i["name"], i["default"]) for i in shipped] == [("site", "lab"), ("hosts", 3)]
    sdk = admin.provisions.declared_inputs(example="local-edge")
    assert [(i.name, i.type) for i in sdk] == [("site", "text"), ("hosts", "number")]
    # Only a template whose inputs section cannot be read is refused, at the YAML path.
    for body, field in [
        ({"template": DECLARING.replace("type: list", "type: colour")}, "template.inputs[3].type"),
        ({"template": "name: [unclosed"}, "template"),
        ({"template": DECLARING, "example": "local-edge"}, "template"),
        ({"example": "no-such"}, "example"),
    ]:
        with pytest.raises(EdgecloudError) as bad:
            admin.request("POST", "/provisions/inputs", json=body)
        assert bad.value.status == 422 and field in [f["field"] for f in bad.value.fields]


def test_users_without_rights_neither_create_nor_see_provisions(
    admin: Client, make_user: Callable[..., Client]
) -> None:
    made = admin.provisions.create(example="local-edge", inputs={"hosts": "1"})
    user = make_user()
    with pytest.raises(EdgecloudError) as refused:
        user.provisions.create(example="local-edge")
    assert refused.value.status == 403
    assert made.id not in [p.id for p in user.provisions.list()]
    with pytest.raises(EdgecloudError) as hidden:
        user.provisions.get(made.id)
    assert hidden.value.status in (403, 404)
    with pytest.raises(EdgecloudError):
        user.provisions.delete(made.id, force=True)
    done = admin.provisions.wait(made.id, timeout=60)
    admin.provisions.delete(done.id)
    assert admin.provisions.wait(done.id).state_name == "DONE"


def test_the_cli_creates_follows_shows_and_deletes(
    admin: Client, frontend: RunningFrontEnd, tmp_path: Path
) -> None:
    auth = ["--url", frontend.url, "--auth", f"{frontend.admin_user}:{frontend.admin_password}"]
    runner = CliRunner()
    made = runner.invoke(
        cli, [*auth, "provision", "create", "--example", "local-edge", "-i", "hosts=1", "--wait"]
    )
    assert made.exit_code == 0, made.output
    provision_id = int(made.stdout.split()[2])  # "created provision N (tag)"
    assert f"provision {provision_id} is RUNNING" in made.stdout
    assert "== create / register" in made.stderr and "registered cluster" in made.stderr
    listed = runner.invoke(cli, [*auth, "provision", "list"])
    assert listed.exit_code == 0 and "RUNNING" in listed.stdout
    shown = runner.invoke(cli, [*auth, "provision", "show", str(provision_id), "--log"])
    assert shown.exit_code == 0, shown.output
    assert "== create / monitor: done" in shown.stdout and "MONITORED" in shown.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(example("local-edge").replace("provider: local", "provider: moon"))
    refused = runner.invoke(cli, [*auth, "provision", "create", str(bad)])
    assert refused.exit_code != 0 and "template.provider" in refused.output
    gone = runner.invoke(cli, [*auth, "provision", "delete", str(provision_id), "--wait"])
    assert gone.exit_code == 0, gone.output
    assert f"provision {provision_id} is DONE" in gone.stdout


def test_state_changes_are_events(admin: Client) -> None:
    stream = admin.events(kind="provision", timeout=10)
    assert next(stream)["kind"] == "connected"
    made = admin.provisions.create(example="local-edge", inputs={"hosts": "1"})
    seen = []
    for event in stream:
        if event.get("id") == made.id:
            seen.append((event["state"], event["step"]))
            if event["state"] == "RUNNING":
                break
    stream.close()
    assert seen[0] == ("DEPLOYING", "hosts") and seen[-1] == ("RUNNING", "")
    assert ("CONFIGURING", "monitor") in seen
    admin.provisions.delete(made.id)
    assert admin.provisions.wait(made.id).state_name == "DONE"
