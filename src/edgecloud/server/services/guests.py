"""What the API asks of a host directly: a guest's console, syncing the node code."""

from __future__ import annotations

from sqlalchemy.orm import Session

from edgecloud.drivers.base import ConsoleLog, DriverError, HostRef, HostUnreachable, NodeSync
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import Host, Vm
from edgecloud.server.errors import Conflict, HostFailed
from edgecloud.server.lifecycle.drivers import Drivers, host_ref
from edgecloud.server.services.objects import load

MAX_CONSOLE_BYTES = 1 << 20


def console_target(session: Session, principal: Principal, vm_id: int) -> tuple[HostRef, str, str]:
    """Return where a VM's console lives: (host, hypervisor kind, deploy id).

    Reading a console needs MANAGE on the VM: it may show what the guest prints.
    """
    vm = load(session, principal, Vm, "VM", vm_id, right="MANAGE")
    host = session.get(Host, vm.host_id) if vm.host_id is not None else None
    if host is None or not vm.deploy_id:
        raise Conflict(f"VM {vm_id} has no guest on a host", field="id")
    return host_ref(host), host.hypervisor, vm.deploy_id


def console_log(drivers: Drivers, target: tuple[HostRef, str, str], tail_bytes: int) -> str:
    """Read the tail of a guest's console from its host (outside any transaction)."""
    host, kind, deploy_id = target
    driver = drivers.hypervisor(kind)
    if not isinstance(driver, ConsoleLog):
        raise Conflict(f"the {kind} driver keeps no console log", field="id")
    try:
        return driver.console_log(host, deploy_id, tail_bytes=min(tail_bytes, MAX_CONSOLE_BYTES))
    except (HostUnreachable, DriverError) as exc:
        raise HostFailed(f"host {host.name}: {exc}", field="id") from exc


def sync_target(session: Session, principal: Principal, host_id: int) -> tuple[HostRef, str]:
    """Return the host to sync; needs ADMIN on it."""
    host = load(session, principal, Host, "HOST", host_id, right="ADMIN")
    return host_ref(host), host.hypervisor


def sync_node(drivers: Drivers, target: tuple[HostRef, str]) -> str:
    """Copy the node code to the host (always); return the version it now runs."""
    host, kind = target
    driver = drivers.hypervisor(kind)
    if not isinstance(driver, NodeSync):
        raise Conflict(f"{kind} hosts run no node code", field="id")
    try:
        return driver.sync(host, force=True)
    except (HostUnreachable, DriverError) as exc:
        raise HostFailed(f"host {host.name}: {exc}", field="id") from exc


def record_sync(session: Session, host_id: int, version: str) -> None:
    """Remember which node code the host runs."""
    host = session.get(Host, host_id)
    if host is not None:
        host.node_version = version
