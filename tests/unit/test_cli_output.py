"""CLI lists and shows: rich tables, JSON and YAML, filters and paging."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml

from edgecloud.cli.errors import hoist_output
from edgecloud.cli.output import mib
from tests.unit.test_cli_context import FakeFrontEnd, host_data, owned, page, run, vm_data

pytestmark = pytest.mark.unit


def short(vm_id: int, name: str, state: int, lcm_state: int, host_id: int | None) -> dict[str, Any]:
    """Return a VM in the short list form."""
    return {
        "id": vm_id,
        "name": name,
        "owner_id": 3,
        "group_id": 1,
        "state": state,
        "lcm_state": lcm_state,
        "hypervisor": "kvm",
        "cpu": 0.5,
        "memory_mb": 2048,
        "host_id": host_id,
    }


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeFrontEnd:
    """Return a fake front-end the CLI talks to."""
    return FakeFrontEnd().install(monkeypatch)


@pytest.fixture
def hosts(api: FakeFrontEnd) -> FakeFrontEnd:
    """Serve two hosts, the second disabled."""
    api.on("GET", "/hosts", page(host_data(1, "edge-a"), host_data(2, "edge-b", state=4)))
    return api


def lines(text: str) -> list[list[str]]:
    """Split a table's output into rows of cells."""
    return [line.split() for line in text.splitlines() if line.strip()]


def test_host_list_table_shows_state_names_and_capacity(hosts: FakeFrontEnd) -> None:
    result = run("host", "list")
    assert result.exit_code == 0, result.output
    rows = lines(result.stdout)
    assert rows[0] == ["ID", "NAME", "CLUSTER", "HYPERVISOR", "STATE", "CPU", "MEM", "VMS"]
    assert rows[2] == ["1", "edge-a", "0", "kvm", "MONITORED", "2/8", "1G/16G", "1"]
    assert rows[3][4] == "DISABLED"


def test_host_list_json_prints_every_field(hosts: FakeFrontEnd) -> None:
    result = run("-o", "json", "host", "list")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [h["name"] for h in data] == ["edge-a", "edge-b"]
    assert data[0]["total_memory_mb"] == 16384
    assert data[0]["permissions"] == "um-------"


def test_host_list_yaml_prints_every_field(hosts: FakeFrontEnd) -> None:
    result = run("host", "list", "-o", "yaml")
    assert result.exit_code == 0
    data = yaml.safe_load(result.stdout)
    assert data[1]["state"] == 4
    assert data[1]["last_seen"] is None


def test_list_follows_every_page_and_passes_the_name_prefix(api: FakeFrontEnd) -> None:
    def answer(request: httpx.Request) -> dict[str, Any]:
        if request.url.params.get("cursor") == "5":
            return page(owned(6, "web-2", rules=[]))
        return page(owned(5, "web-1", rules=[]), next_cursor=5)

    api.on("GET", "/secgroups", answer)
    result = run("secgroup", "list", "--name", "web")
    assert result.exit_code == 0
    assert "web-1" in result.stdout
    assert "web-2" in result.stdout
    sent = api.params("GET", "/secgroups")
    assert [p.get("cursor") for p in sent] == [None, "5"]
    assert {p["name"] for p in sent} == {"web"}


def test_vm_list_uses_the_short_form_and_opennebula_state_names(api: FakeFrontEnd) -> None:
    api.on("GET", "/vms", page(short(1, "db", 3, 3, 2), short(2, "queued", 1, 0, None)))
    result = run("vm", "list")
    assert result.exit_code == 0
    rows = lines(result.stdout)
    assert rows[0] == ["ID", "NAME", "OWNER", "STATE", "HOST", "CPU", "MEMORY"]
    assert rows[2] == ["1", "db", "3", "ACTIVE/RUNNING", "2", "0.5", "2G"]
    assert rows[3] == ["2", "queued", "3", "PENDING", "-", "0.5", "2G"]
    assert api.params("GET", "/vms")[0]["view"] == "short"


def test_vm_list_filters_reach_the_server(api: FakeFrontEnd) -> None:
    api.on("GET", "/vms", page())
    result = run("vm", "list", "--state", "poweroff", "--host", "4", "--all", "--name", "w")
    assert result.exit_code == 0
    (params,) = api.params("GET", "/vms")
    assert params == {
        "limit": "1000",
        "view": "short",
        "state": "8",
        "host_id": "4",
        "include_done": "true",
        "name": "w",
    }


def test_vm_list_refuses_an_unknown_state(api: FakeFrontEnd) -> None:
    result = run("vm", "list", "--state", "sleepy")
    assert result.exit_code == 2
    assert "unknown state" in result.output
    assert api.requests == []


def test_vm_list_json_prints_the_short_form(api: FakeFrontEnd) -> None:
    api.on("GET", "/vms", page(short(1, "db", 3, 3, 2)))
    data = json.loads(run("vm", "list", "-o", "json").stdout)
    assert data == [short(1, "db", 3, 3, 2) | {"cpu": 0.5}]


def test_show_prints_a_key_value_table(api: FakeFrontEnd) -> None:
    api.on("GET", "/vms/9", vm_data(9, "web", template={"CPU": "1", "MEMORY": "512"}))
    result = run("vm", "show", "9")
    assert result.exit_code == 0
    rows = {row[0]: row[1:] for row in lines(result.stdout)}
    assert rows["NAME"] == ["web"]
    assert rows["LCM_STATE_NAME"] == ["RUNNING"]
    assert rows["TEMPLATE"] == ["CPU=1"]
    assert "MEMORY=512" in rows  # the next line of the same cell
    assert rows["CREATED_AT"][0].count("-") == 2  # a date, not seconds


def test_show_json_prints_the_object(api: FakeFrontEnd) -> None:
    api.on("GET", "/hosts/1", host_data(1, "edge-a"))
    shown = json.loads(run("host", "show", "1", "--output=json").stdout)
    # Every field the API sent, unchanged (fields it left out show their defaults).
    assert host_data(1, "edge-a").items() <= shown.items()


def test_show_table_keeps_brackets_as_text(api: FakeFrontEnd) -> None:
    api.on("GET", "/clusters/1", owned(1, "[bold]x[/bold]", reserved_cpu=0, reserved_memory_mb=0))
    assert "[bold]x[/bold]" in run("cluster", "show", "1").stdout


def test_operation_show_lists_its_steps(api: FakeFrontEnd) -> None:
    step = {
        "seq": 1,
        "name": "prolog",
        "state": "done",
        "error": "",
        "started_at": 1,
        "ended_at": 2,
    }
    operation = {
        "id": 4,
        "kind": "vm.deploy",
        "object_type": "VM",
        "object_id": 9,
        "owner_id": 0,
        "state": "running",
        "params": {},
        "error": "",
        "created_at": 1,
        "updated_at": 2,
        "steps": [step],
    }
    api.on("GET", "/operations/4", operation)
    result = run("operation", "show", "4")
    assert result.exit_code == 0
    assert "SEQ" in result.stdout
    assert "prolog" in result.stdout


def test_operation_list_follows_next_cursor(api: FakeFrontEnd) -> None:
    def operation(op_id: int) -> dict[str, Any]:
        return {
            "id": op_id, "kind": "vm.deploy", "object_type": "VM", "object_id": 1, "owner_id": 0,
            "state": "done", "params": {}, "error": "", "created_at": 1, "updated_at": 1,
        }  # fmt: skip

    def answer(request: httpx.Request) -> dict[str, Any]:
        start = int(request.url.params.get("cursor", 0)) + 1
        count = 1000 if start == 1 else 2
        body = page(*(operation(i) for i in range(start, start + count)))
        body["next_cursor"] = 1000 if start == 1 else None
        return body

    api.on("GET", "/operations", answer)
    result = run("operation", "list", "--state", "done", "-o", "json")
    assert result.exit_code == 0
    assert [o["id"] for o in json.loads(result.stdout)][-3:] == [1000, 1001, 1002]
    sent = api.params("GET", "/operations")
    assert [p.get("cursor") for p in sent] == [None, "1000"]
    assert {p["state"] for p in sent} == {"done"}


def test_quota_shows_usage_and_limits(api: FakeFrontEnd) -> None:
    limits = {"vms": 3, "cpu": None, "memory_mb": 4096}
    usage = {"vms": 1, "cpu": 0.5, "memory_mb": 512}
    quota = {"scope": "user", "subject_id": 2, "limits": limits, "usage": usage}
    api.on("GET", "/users/2/quota", quota)
    rows = {row[0]: row[1:] for row in lines(run("user", "quota", "2").stdout)}
    assert rows["VMS"] == ["1", "3"]
    assert rows["CPU"] == ["0.5", "-"]
    assert rows["MEMORY"] == ["512M", "4G"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["host", "list", "-o", "json"], ["-o", "json", "host", "list"]),
        (["vm", "show", "1", "--output=yaml"], ["--output=yaml", "vm", "show", "1"]),
        (["-ojson", "vm", "list"], ["-ojson", "vm", "list"]),
        (["vm", "list", "--", "-o", "x"], ["vm", "list", "--", "-o", "x"]),
        (["host", "list", "-o"], ["host", "list", "-o"]),
    ],
)
def test_hoist_output_moves_the_format_before_the_noun(
    args: list[str], expected: list[str]
) -> None:
    assert hoist_output(args) == expected


@pytest.mark.parametrize(
    ("megabytes", "text"),
    [(0, "0M"), (512, "512M"), (1536, "1.5G"), (16384, "16G"), (2 << 20, "2T")],
)
def test_mib_reads_like_opennebula(megabytes: int, text: str) -> None:
    assert mib(megabytes) == text
