"""CLI commands that change things: the bodies they send and what they print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_cli_context import FakeFrontEnd, host_data, owned, page, run, vm_data

pytestmark = pytest.mark.unit


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeFrontEnd:
    """Return a fake front-end the CLI talks to."""
    return FakeFrontEnd().install(monkeypatch)


def vnet_data(obj_id: int, name: str) -> dict[str, Any]:
    """Return a vnet as the REST API sends it."""
    fields = {"driver": "bridge", "bridge": "br0", "phydev": "", "vlan_id": None}
    return owned(obj_id, name, security_groups=[0], **fields)


def accepted(vm: dict[str, Any], operation_id: int | None = 12) -> dict[str, Any]:
    """Return the answer to a VM action."""
    operation = None
    if operation_id is not None:
        operation = {
            "id": operation_id,
            "kind": "vm.poweroff",
            "object_type": "VM",
            "object_id": vm["id"],
            "owner_id": 0,
            "state": "pending",
            "params": {},
            "error": "",
            "created_at": 1,
            "updated_at": 1,
        }
    return {"vm": vm, "operation": operation}


def test_host_create_sends_the_create_body(api: FakeFrontEnd) -> None:
    api.on("POST", "/hosts", host_data(5, "edge-5"), 201)
    result = run(
        "host", "create", "edge-5", "--cluster", "2", "--hypervisor", "lxc", "--cpu", "8",
        "--memory", "16384",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "created host 5"
    assert api.sent("POST", "/hosts") == {
        "name": "edge-5",
        "cluster_id": 2,
        "hypervisor": "lxc",
        "total_cpu": 8.0,
        "total_memory_mb": 16384,
        "transport": "ssh",
        "address": "",
        "port": 22,
        "root": "/var/lib/edgecloud",
    }


def test_create_json_prints_the_created_object(api: FakeFrontEnd) -> None:
    api.on("POST", "/clusters", owned(3, "site", reserved_cpu=0, reserved_memory_mb=0), 201)
    result = run("-o", "json", "cluster", "create", "site", "--reserved-cpu", "1")
    assert json.loads(result.stdout)["id"] == 3
    assert api.sent("POST", "/clusters") == {"name": "site", "reserved_cpu": 1.0}


def test_host_create_refuses_an_unknown_hypervisor(api: FakeFrontEnd) -> None:
    result = run("host", "create", "x", "--hypervisor", "xen")
    assert result.exit_code == 2
    assert api.requests == []


def test_vnet_create_parses_address_ranges(api: FakeFrontEnd) -> None:
    api.on("POST", "/vnets", vnet_data(1, "lan"), 201)
    result = run(
        "vnet", "create", "lan", "--bridge", "br0", "--ar", "IP4:198.18.0.10:16",
        "--ar", "ETHER:4", "--ar", "IP6:2001:db8:::64", "--cluster", "1", "--cluster", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = api.sent("POST", "/vnets")
    assert body["address_ranges"] == [
        {"type": "IP4", "size": 16, "ip": "198.18.0.10"},
        {"type": "ETHER", "size": 4},
        {"type": "IP6", "size": 64, "global_prefix": "2001:db8::"},
    ]
    assert body["cluster_ids"] == [1, 2]
    assert "security_groups" not in body  # the server's default applies


def test_vnet_create_refuses_a_bad_range_before_sending(api: FakeFrontEnd) -> None:
    result = run("vnet", "create", "lan", "--ar", "IP4:198.18.0.10:lots")
    assert result.exit_code == 2
    assert "--ar" in result.output
    assert api.requests == []


def test_vnet_lease_holds_an_address(api: FakeFrontEnd) -> None:
    lease = {
        "id": 7, "vnet_id": 1, "ar_id": 0, "mac": "02:00:c6:12:00:0c", "ip": "198.18.0.12",
        "ip6": None, "ip6_global": None, "ip6_ula": None, "state": "hold", "vm_id": None,
        "owner_id": 0,
    }  # fmt: skip
    api.on("POST", "/vnets/1/leases", lease, 201)
    result = run("vnet", "lease", "1", "--ip", "198.18.0.12", "--hold")
    assert result.exit_code == 0, result.output
    assert api.sent("POST", "/vnets/1/leases") == {"ip": "198.18.0.12", "state": "hold"}
    assert "198.18.0.12" in result.stdout


def test_secgroup_create_parses_rules(api: FakeFrontEnd) -> None:
    api.on("POST", "/secgroups", owned(4, "web", rules=[]), 201)
    result = run(
        "secgroup", "create", "web", "--rule", "TCP:inbound:22,80:0.0.0.0/0",
        "--rule", "udp:outbound:8000-8080", "--rule", "icmpv6",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert api.sent("POST", "/secgroups")["rules"] == [
        {"protocol": "TCP", "direction": "inbound", "range": "22,80", "cidr": "0.0.0.0/0"},
        {"protocol": "UDP", "direction": "outbound", "range": "8000:8080"},
        {"protocol": "ICMPv6", "direction": "inbound"},
    ]


def test_template_create_from_options_builds_opennebula_attributes(api: FakeFrontEnd) -> None:
    api.on("POST", "/templates", owned(2, "small"), 201)
    result = run(
        "template", "create", "small", "--cpu", "0.5", "--memory", "512", "--nic", "3",
        "--nic", "4", "--disk", "9",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert api.sent("POST", "/templates") == {
        "name": "small",
        "template": {
            "CPU": "0.5",
            "MEMORY": "512",
            "DISK": [{"IMAGE_ID": "9"}],
            "NIC": [{"NETWORK_ID": "3"}, {"NETWORK_ID": "4"}],
        },
    }


def test_template_create_sends_a_text_file_as_is(api: FakeFrontEnd, tmp_path: Path) -> None:
    text = 'NAME = "big"\nCPU = 2\nMEMORY = 2048\n'
    (tmp_path / "big.tpl").write_text(text)
    api.on("POST", "/templates", owned(3, "big"), 201)
    assert run("template", "create", "--file", str(tmp_path / "big.tpl")).exit_code == 0
    assert api.sent("POST", "/templates") == {"template": text}


def test_template_create_sends_a_json_file_as_an_object(api: FakeFrontEnd) -> None:
    api.on("POST", "/templates", owned(3, "big"), 201)
    result = run("template", "create", "big", "-f", "-", stdin='{"CPU": "2"}')
    assert result.exit_code == 0, result.output
    assert api.sent("POST", "/templates") == {"name": "big", "template": {"CPU": "2"}}


def test_template_create_needs_a_file_or_options(api: FakeFrontEnd) -> None:
    result = run("template", "create", "empty")
    assert result.exit_code == 2
    assert api.requests == []


def test_template_instantiate_sends_name_and_hold(api: FakeFrontEnd) -> None:
    api.on("POST", "/templates/2/instantiate", vm_data(8, "web"), 201)
    result = run("template", "instantiate", "2", "--name", "web", "--hold")
    assert result.exit_code == 0
    assert result.stdout.strip() == "created vm 8"
    assert api.sent("POST", "/templates/2/instantiate") == {"name": "web", "hold": True}


def test_vm_create_from_a_stored_template(api: FakeFrontEnd) -> None:
    api.on("POST", "/vms", vm_data(8, "web"), 201)
    assert run("vm", "create", "--template-id", "2", "--name", "web").exit_code == 0
    assert api.sent("POST", "/vms") == {"name": "web", "template_id": 2}


def test_vm_create_from_a_template_by_name(api: FakeFrontEnd) -> None:
    tiny = owned(4, "tiny-vm", template={"CPU": "0.5"})
    api.on("GET", "/templates", page(owned(3, "tiny-vm-old", template={}), tiny))
    api.on("POST", "/vms", vm_data(8, "web"), 201)
    assert run("vm", "create", "--template", "tiny-vm").exit_code == 0
    assert api.sent("POST", "/vms") == {"template_id": 4}
    api.on("GET", "/templates", page())
    missing = run("vm", "create", "--template", "nope")
    assert missing.exit_code == 2
    assert "no template named 'nope'" in missing.output


def test_vm_create_needs_a_file_or_a_template(api: FakeFrontEnd) -> None:
    result = run("vm", "create", "--name", "web")
    assert result.exit_code == 2
    assert api.requests == []


def test_vm_poweroff_hard_sends_the_action(api: FakeFrontEnd) -> None:
    vm = vm_data(9, "web", lcm_state=18, lcm_state_name="SHUTDOWN_POWEROFF")
    api.on("POST", "/vms/9/actions", accepted(vm), 202)
    result = run("vm", "poweroff", "9", "--hard")
    assert result.exit_code == 0, result.output
    assert api.sent("POST", "/vms/9/actions") == {"action": "poweroff", "hard": True}
    assert "ACTIVE/SHUTDOWN_POWEROFF" in result.stdout
    assert "operation 12" in result.stdout


def test_vm_resume_has_no_hard_option(api: FakeFrontEnd) -> None:
    assert run("vm", "resume", "9", "--hard").exit_code == 2
    assert api.requests == []


def test_vm_migrate_live_sends_the_target_host(api: FakeFrontEnd) -> None:
    api.on("POST", "/vms/9/actions", accepted(vm_data(9, "web")), 202)
    assert run("vm", "migrate", "9", "3", "--live").exit_code == 0
    body = api.sent("POST", "/vms/9/actions")
    assert body == {"action": "migrate", "host_id": 3, "live": True}


def test_vm_recover_sends_the_one_choice_given(api: FakeFrontEnd) -> None:
    api.on("POST", "/vms/9/actions", accepted(vm_data(9, "web"), None), 202)
    assert run("vm", "recover", "9", "--retry").exit_code == 0
    assert api.sent("POST", "/vms/9/actions") == {"action": "recover", "recover": "retry"}
    assert run("vm", "recover", "9", "--retry", "--delete").exit_code == 2


def test_vm_nic_attach_by_name_or_id_and_detach(api: FakeFrontEnd) -> None:
    nic = {
        "nic_id": 2,
        "vnet_id": 4,
        "lease_id": 7,
        "mac": "02:00:c6:12:00:0b",
        "ip": "198.18.0.11",
        "ip6": None,
        "security_groups": [0],
    }
    api.on("POST", "/vms/9/nics", accepted(vm_data(9, "web", nics=[nic])), 202)
    result = run("vm", "nic-attach", "9", "--network", "private", "--ip", "198.18.0.11")
    assert result.exit_code == 0, result.output
    assert api.sent("POST", "/vms/9/nics") == {"network": "private", "ip": "198.18.0.11"}
    assert "NIC 2 attached (198.18.0.11) (operation 12)" in result.stdout
    assert run("vm", "nic-attach", "9", "--network", "4", "--secgroup", "5").exit_code == 0
    assert api.sent("POST", "/vms/9/nics") == {"network_id": 4, "security_groups": [5]}
    api.on("DELETE", "/vms/9/nics/2", accepted(vm_data(9, "web"), None), 202)
    result = run("vm", "nic-detach", "9", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "vm 9: NIC 2 detached"


def test_vm_rename_sends_an_update(api: FakeFrontEnd) -> None:
    api.on("PATCH", "/vms/9", vm_data(9, "db"))
    assert run("vm", "rename", "9", "db").exit_code == 0
    assert api.sent("PATCH", "/vms/9") == {"name": "db"}


def test_update_without_changes_is_a_usage_error(api: FakeFrontEnd) -> None:
    result = run("host", "update", "1")
    assert result.exit_code == 2
    assert "nothing to change" in result.output
    assert api.requests == []


def test_host_update_sends_only_what_changed(api: FakeFrontEnd) -> None:
    api.on("PATCH", "/hosts/1", host_data(1, "edge-a"))
    assert run("host", "update", "1", "--memory", "2048").exit_code == 0
    assert api.sent("PATCH", "/hosts/1") == {"total_memory_mb": 2048}


def test_host_disable_sets_the_status(api: FakeFrontEnd) -> None:
    api.on("POST", "/hosts/1/status", host_data(1, "edge-a", state=4))
    result = run("host", "disable", "1")
    assert result.exit_code == 0
    assert api.sent("POST", "/hosts/1/status") == {"status": "disabled"}
    assert "DISABLED" in result.stdout


def test_cluster_add_vnet_links_it(api: FakeFrontEnd) -> None:
    api.on("PUT", "/clusters/1/vnets/4", None, 204)
    result = run("cluster", "add-vnet", "1", "4")
    assert result.exit_code == 0
    assert result.stdout.strip() == "added vnet 4 to cluster 1"


def test_delete_chmod_and_chown(api: FakeFrontEnd) -> None:
    api.on("DELETE", "/templates/3", None, 204)
    api.on("POST", "/templates/4/chmod", owned(4, "x", permissions="um-u-----"))
    api.on("POST", "/templates/4/chown", owned(4, "x", owner_id=2, group_id=1))
    assert run("template", "delete", "3").stdout.strip() == "deleted template 3"
    assert "um-u-----" in run("template", "chmod", "4", "640").stdout
    assert api.sent("POST", "/templates/4/chmod") == {"permissions": "640"}
    assert (
        run("template", "chown", "4", "--owner", "2").stdout.strip()
        == "template 4: owner 2, group 1"
    )
    assert api.sent("POST", "/templates/4/chown") == {"owner_id": 2}


def test_image_create_sends_the_create_body(api: FakeFrontEnd) -> None:
    image = owned(1, "disk", datastore_id=1, kind="OS", state=1, state_name="READY",
                  persistent=True, size_mb=1024, format="raw", path="", source="",
                  running_vms=0)  # fmt: skip
    api.on("POST", "/images", image, 201)
    result = run("image", "create", "disk", "--size", "1024", "--type", "OS", "--persistent")
    assert result.exit_code == 0, result.output
    assert api.sent("POST", "/images") == {
        "name": "disk", "datastore_id": 1, "kind": "OS", "persistent": True, "size_mb": 1024,
        "path": "",
    }  # fmt: skip


def test_user_set_quota_replaces_the_limits(api: FakeFrontEnd) -> None:
    quota = {"scope": "user", "subject_id": 2, "limits": {"vms": 3}, "usage": {}}
    api.on("PUT", "/users/2/quota", quota)
    assert run("user", "set-quota", "2", "--vms", "3", "--memory", "4096").exit_code == 0
    body = api.sent("PUT", "/users/2/quota")
    assert (body["vms"], body["memory_mb"], body["cpu"]) == (3, 4096, None)


def test_user_create_sends_password_and_group(api: FakeFrontEnd) -> None:
    user = {"id": 4, "name": "ann", "group_id": 1, "group_ids": [1], "enabled": True,
            "version": 1, "created_at": 1, "template": {}}  # fmt: skip
    api.on("POST", "/users", user, 201)
    assert run("user", "create", "ann", "--password", "longenough", "--group", "1").exit_code == 0
    body = api.sent("POST", "/users")
    assert body == {"name": "ann", "password": "longenough", "group_id": 1}


def test_user_passwd_prompts_when_no_password_is_given(api: FakeFrontEnd) -> None:
    api.on("POST", "/users/4/password", None, 204)
    result = run("user", "passwd", "4", stdin="n3w-password\nn3w-password\n")
    assert result.exit_code == 0, result.output
    assert api.sent("POST", "/users/4/password") == {"password": "n3w-password"}


def test_acl_create_sends_the_rule(api: FakeFrontEnd) -> None:
    api.on("POST", "/acls", {"id": 6, "rule": "@1 VM/* USE"}, 201)
    assert run("acl", "create", "@1 VM/* USE").stdout.strip() == "created acl 6"
    assert api.sent("POST", "/acls") == {"rule": "@1 VM/* USE"}


def test_login_prints_the_token_and_its_expiry(api: FakeFrontEnd) -> None:
    answer = {"token": "ec_tok", "expires_at": 1_700_003_600, "user_id": 0, "user_name": "admin"}
    api.on("POST", "/login", answer)
    result = run("login", "--ttl", "3600")
    assert result.exit_code == 0
    assert "ec_tok" in result.stdout
    assert "expires" in result.stdout
    assert api.sent("POST", "/login") == {"ttl_seconds": 3600}


def test_version_shows_client_and_server(api: FakeFrontEnd) -> None:
    api.on("GET", "/version", {"version": "0.9", "api": "v1", "store": "postgresql"})
    data = json.loads(run("version", "-o", "json").stdout)
    assert data["server"] == {"version": "0.9", "api": "v1", "store": "postgresql"}
    assert data["client"]
