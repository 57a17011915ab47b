"""A VM migrated to another cluster: its NICs move to that cluster's networks.

A NIC whose vnet the target's cluster also has stays as it is. Any other NIC gets a new
lease on the vnet `nic_map` names for it (NIC_ID -> vnet id), else on the vnet of the
same name in the target's cluster; the new leases are taken when the migration is asked
for (so a full network is a 4xx at once), swapped in when it completes, and given back
if it fails. The guest's addresses change, so this needs the VM powered off: it takes
its new addresses from its context when it boots there.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import ClusterVnet, Host, Vm, Vnet
from edgecloud.server.errors import Conflict, InvalidInput, NotFound
from edgecloud.server.services import ipam
from edgecloud.server.services.objects import load


def _vms() -> Any:
    """services.vms, imported late: it imports vm_lifecycle, which imports this module."""
    from edgecloud.server.services import vms

    return vms


def _target_vnet(
    session: Session,
    principal: Principal,
    nic: dict[str, Any],
    target: Host,
    nic_map: dict[str, int],
) -> Vnet:
    vnet_clusters = _vms().vnet_clusters
    nic_id = str(nic.get("NIC_ID"))
    if nic_id in nic_map:
        vnet: Vnet = load(session, principal, Vnet, "NET", nic_map[nic_id], right="USE")
        if target.cluster_id not in vnet_clusters(session, vnet.id):
            raise InvalidInput(
                f"nic_map.{nic_id}",
                f"vnet {vnet.id} is not in cluster {target.cluster_id} of host {target.id}",
            )
        return vnet
    stmt = (
        select(Vnet)
        .join(ClusterVnet, ClusterVnet.vnet_id == Vnet.id)
        .where(
            ClusterVnet.cluster_id == target.cluster_id,
            Vnet.name == str(nic.get("NETWORK", "")),
            principal.visible("NET"),
        )
        .order_by(Vnet.id)
    )
    found = session.scalars(stmt.limit(1)).first()
    if found is None:
        raise InvalidInput(
            "nic_map",
            f"NIC {nic_id} is on vnet '{nic.get('NETWORK')}', which cluster {target.cluster_id}"
            f" does not have: name one of its vnets for NIC {nic_id} in nic_map",
        )
    return found


def relocate_nics(
    session: Session,
    principal: Principal,
    row: Vm,
    target: Host,
    nic_map: dict[str, int],
    *,
    powered_off: bool,
) -> dict[str, Any]:
    """Lease the NICs the VM needs on the target's networks; return operation params
    ({} when every NIC can stay)."""
    vnet_clusters, lease_nic = _vms().vnet_clusters, _vms().lease_nic
    nics = [dict(n) for n in row.template.get("NIC", []) or []]
    unknown = set(nic_map) - {str(n.get("NIC_ID")) for n in nics}
    if unknown:
        raise InvalidInput("nic_map", f"VM {row.id} has no NIC {sorted(unknown)[0]}")
    moving = [
        n
        for n in nics
        if str(n.get("NIC_ID")) in nic_map
        or target.cluster_id not in vnet_clusters(session, int(n["NETWORK_ID"]))
    ]
    if not moving:
        return {}
    if not powered_off:
        raise Conflict(
            f"VM {row.id} moves to the networks of cluster {target.cluster_id}: its addresses"
            " change, so power it off first",
            field="host_id",
        )
    new_nics, new_leases, old_leases = [], [], []
    for nic in nics:
        if nic not in moving:
            new_nics.append(nic)
            continue
        vnet = _target_vnet(session, principal, nic, target, nic_map)
        keep = {k: nic[k] for k in ("MODEL",) if k in nic}
        made = lease_nic(session, row, vnet, keep, int(nic["NIC_ID"]))
        new_nics.append(made)
        new_leases.append([vnet.id, int(made["LEASE_ID"])])
        old_leases.append([int(nic["NETWORK_ID"]), int(nic["LEASE_ID"])])
    return {"nics": new_nics, "new_leases": new_leases, "old_leases": old_leases}


def settle(session: Session, row: Vm, params: dict[str, Any], *, done: bool) -> None:
    """After the migration: swap the NICs in and free the old leases, or free the new ones."""
    if "nics" not in params:
        return
    if done:
        row.template = {**row.template, "NIC": params["nics"]}
    for vnet_id, lease_id in params["old_leases" if done else "new_leases"]:
        with contextlib.suppress(NotFound):  # already gone: nothing to give back
            ipam.release(session, vnet_id=vnet_id, lease_id=lease_id)
