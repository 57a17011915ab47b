"""Security groups changed: re-send their rules to the hosts of the running VMs they filter.

The change is committed first; the hosts are then updated in a background thread (a slow
or dead host must not hold up the API call). A host that cannot be reached keeps its old
rules until the VM is next deployed there; the failure is logged.
"""

from __future__ import annotations

import logging
import threading

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
    jobs = []
    with store.read() as session:
        for vm in affected_vms(session, affected_groups(session, group_id)):
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
            log.warning(
                "security group %d: %s on %s not updated: %s", group_id, deploy_id, ref.name, exc
            )
    return done


def sync_group_soon(store: Store, drivers: Drivers, group_id: int) -> threading.Thread:
    """Run sync_group in a background thread; return it (tests may join it)."""
    thread = threading.Thread(
        target=sync_group, args=(store, drivers, group_id), name=f"ec-sg-{group_id}", daemon=True
    )
    thread.start()
    return thread
