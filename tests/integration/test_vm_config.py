"""Resizing and reconfiguring a VM that runs nowhere (REST, and OpenNebula's one.vm.resize /
one.vm.updateconf through pyone): the host's used capacity follows, a size that does not
fit is refused with nothing changed, a running VM is refused, and the rights hold."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyone
import pytest
from typer.testing import CliRunner

from edgecloud.cli.main import app as cli
from edgecloud.client import Client, EdgecloudError
from tests.support.frontend import RunningFrontEnd
from tests.support.one import pyone_client
from tests.support.waiting import wait_vms

RUNNING, POWEROFF = "ACTIVE/RUNNING", "POWEROFF"


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {
        "monitor_interval": 0.2,
        "scheduler_interval": 0.1,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


@pytest.fixture(scope="module")
def host_id(admin: Client) -> int:
    host = admin.hosts.create(
        name=f"cfg-{uuid.uuid4().hex[:6]}", hypervisor="fake", total_cpu=4, total_memory_mb=4096
    )
    return host.id


def _powered_off(admin: Client, host_id: int, cpu: float = 1, memory: int = 512) -> int:
    vm = admin.vms.create(
        template={"CPU": cpu, "MEMORY": memory, "SCHED_REQUIREMENTS": f"ID = {host_id}"}
    )
    wait_vms(admin, [vm.id], lambda s: s == RUNNING)
    admin.vms.action(vm.id, "poweroff", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == POWEROFF)
    return vm.id


def test_resize_follows_on_the_host_and_refuses_what_does_not_fit(
    admin: Client, host_id: int
) -> None:
    vm_id = _powered_off(admin, host_id)
    used = admin.hosts.get(host_id).used_cpu
    resized = admin.vms.resize(vm_id, cpu=2, vcpu=2, memory_mb=1024)
    assert (resized.cpu, resized.vcpu, resized.memory_mb) == (2, 2, 1024)
    assert admin.hosts.get(host_id).used_cpu == pytest.approx(used + 1)
    with pytest.raises(EdgecloudError) as refused:
        admin.vms.resize(vm_id, cpu=64)
    assert refused.value.status == 409 and "CPU" in refused.value.message
    assert admin.vms.get(vm_id).cpu == 2  # nothing changed
    assert admin.hosts.get(host_id).used_cpu == pytest.approx(used + 1)
    admin.vms.action(vm_id, "resume")
    wait_vms(admin, [vm_id], lambda s: s == RUNNING)
    with pytest.raises(EdgecloudError) as running:
        admin.vms.resize(vm_id, cpu=1)
    assert running.value.status == 409 and "power it off" in running.value.message
    assert "resize" in [h.action for h in admin.vms.history(vm_id)]
    admin.vms.action(vm_id, "terminate", hard=True)
    wait_vms(admin, [vm_id], lambda s: s == "DONE")
    assert admin.hosts.get(host_id).used_cpu == pytest.approx(used - 1)


def test_update_conf_replaces_or_merges_sections(admin: Client, host_id: int) -> None:
    vm_id = _powered_off(admin, host_id)
    vm = admin.vms.update_conf(vm_id, 'CONTEXT = [ NETWORK = "YES", A = "1" ]')
    assert vm.template["CONTEXT"] == {"NETWORK": "YES", "A": "1"}
    vm = admin.vms.update_conf(vm_id, {"CONTEXT": {"B": "2"}}, merge=True)
    assert vm.template["CONTEXT"] == {"NETWORK": "YES", "A": "1", "B": "2"}
    with pytest.raises(EdgecloudError) as refused:
        admin.vms.update_conf(vm_id, 'MEMORY = "4096"')
    assert refused.value.status == 422 and "only OS" in refused.value.message
    admin.vms.action(vm_id, "terminate", hard=True)


def test_through_pyone_with_opennebulas_rules(
    frontend: RunningFrontEnd, admin: Client, host_id: int
) -> None:
    one = pyone_client(frontend)
    vm_id = _powered_off(admin, host_id)
    assert one.vm.resize(vm_id, {"TEMPLATE": {"CPU": "1.5", "MEMORY": "768"}}, True) == vm_id
    vm = one.vm.info(vm_id)
    assert (vm.TEMPLATE["CPU"], vm.TEMPLATE["MEMORY"]) == ("1.5", "768")
    assert one.vm.updateconf(vm_id, 'GRAPHICS = [ TYPE = "VNC", LISTEN = "127.0.0.1" ]') == vm_id
    assert admin.vms.get(vm_id).template["GRAPHICS"]["TYPE"] == "VNC"
    with pytest.raises(pyone.OneActionException):
        one.vm.resize(vm_id, "CPU = 999", True)  # no room on the host
    name, password = f"u-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    admin.users.create(name=name, password=password)
    with pytest.raises(pyone.OneAuthorizationException):
        pyone_client(frontend, name, password).vm.resize(vm_id, "CPU = 1", True)
    one.vm.action("terminate-hard", vm_id)


def test_the_cli_resizes_and_reconfigures(
    admin: Client, frontend: RunningFrontEnd, host_id: int, tmp_path: Path
) -> None:
    auth = ["--url", frontend.url, "--auth", f"{frontend.admin_user}:{frontend.admin_password}"]
    vm_id = _powered_off(admin, host_id)
    done = CliRunner().invoke(cli, [*auth, "vm", "resize", str(vm_id), "--memory", "640"])
    assert done.exit_code == 0, done.output
    assert admin.vms.get(vm_id).memory_mb == 640
    conf = tmp_path / "conf.tpl"
    conf.write_text('CONTEXT = [ SET_HOSTNAME = "web" ]\n')
    done = CliRunner().invoke(cli, [*auth, "vm", "updateconf", str(vm_id), "-f", str(conf)])
    assert done.exit_code == 0, done.output
    assert admin.vms.get(vm_id).template["CONTEXT"] == {"SET_HOSTNAME": "web"}
    admin.vms.action(vm_id, "terminate", hard=True)
