"""Security groups changed: re-send their rules to the hosts of the running VMs they filter.

The change is committed first; the hosts are then updated in a background thread (a slow
or dead host must not hold up the API call). A host that cannot be reached keeps its old
rules until the VM is next deployed there; the failure is logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.drivers.base import DriverError, HostUnreachable, NetworkFilters
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Host, SecurityGroup, Vm
from edgecloud.server.lifecycle.drivers import Drivers, host_ref
from edgecloud.server.lifecycle.network import network_of

log = logging.getLogger("edgecloud.netsync")
ACTIVE = 3


def affected_groups(session: Session, group_id: int) -> set[int]:
    """Return the group and every group whose rules name it (their address lists change)."""
    groups = {group_id}
    for row in session.execute(select(SecurityGroup.id, SecurityGroup.rules)):
        if any(r.get("security_group_id") == group_id for r in row.rules):
            groups.add(row.id)
    return groups


def affected_vms(session: Session, groups: set[int]) -> list[Vm]:
    """Return the ACTIVE VMs on a host with a NIC in one of the groups."""
    wanted = {str(g) for g in groups}
    found = []
    for vm in session.scalars(select(Vm).where(Vm.state == ACTIVE, Vm.host_id.is_not(None))):
        for nic in vm.template.get("NIC", []) or []:
            if wanted & set(str(nic.get("SECURITY_GROUPS", "")).split(",")):
                found.append(vm)
                break
    return found


def sync_group(store: Store, drivers: Drivers, group_id: int) -> int:
    """Update every affected guest now; return how many were updated."""
    with store.read() as session:
        vm_ids = [vm.id for vm in affected_vms(session, affected_groups(session, group_id))]
    return sync_vms(store, drivers, vm_ids, f"security group {group_id}")


def sync_vms(store: Store, drivers: Drivers, vm_ids: list[int], why: str) -> int:
    """Re-send the NIC filters of these VMs to their hosts; return how many were updated."""
    jobs = []
    with store.read() as session:
        for vm_id in vm_ids:
            vm = session.get(Vm, vm_id)
            if vm is None or vm.state != ACTIVE or vm.host_id is None:
                continue
            host = session.get(Host, vm.host_id)
            if host is None or host.hypervisor == "fake" or not vm.deploy_id:
                continue
            jobs.append(
                (host_ref(host), host.hypervisor, vm.deploy_id, network_of(session, vm, host))
            )
    done = 0
    for ref, kind, deploy_id, network in jobs:
        driver = drivers.hypervisor(kind)
        if not isinstance(driver, NetworkFilters):
            continue
        try:
            driver.update_sg(ref, deploy_id, network)
            done += 1
        except (HostUnreachable, DriverError) as exc:
            log.warning("%s: %s on %s not updated: %s", why, deploy_id, ref.name, exc)
    return done


def sync_group_soon(store: Store, drivers: Drivers, group_id: int) -> threading.Thread:
    """Run sync_group in a background thread; return it (tests may join it)."""
    return _soon(sync_group, store, drivers, group_id)


def sync_vm_soon(store: Store, drivers: Drivers, vm_id: int) -> threading.Thread:
    """Re-send one VM's NIC filters in a background thread."""
    return _soon(sync_vms, store, drivers, [vm_id], f"VM {vm_id}")


def _soon(target: Callable[..., int], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name="ec-netsync", daemon=True)
    thread.start()
    return thread
