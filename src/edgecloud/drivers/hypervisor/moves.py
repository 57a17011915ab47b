"""Moving guests between hosts: cold (files, see node.migrate) and live (see node.live).

The target first gets the VM's images into its cache (through its own cluster's replica
when it has one), then the guest's files are relayed through the front-end (SFTP down
from the source, up to the target's staging directory) and the target adopts them. A move
that fails leaves the source untouched and discards what reached the target.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any, Protocol

from edgecloud.drivers.base import DriverError, GuestSpec, HostRef
from edgecloud.drivers.hypervisor.disks import HostDisks, disks_of, host_paths
from edgecloud.drivers.hypervisor.spec import node_spec

log = logging.getLogger("edgecloud.drivers.moves")

COPY_TIMEOUT = 3600.0


class NodeCalls(Protocol):
    """What a move needs of the node driver."""

    disks: HostDisks


def move_guest(
    disks: HostDisks,
    source: HostRef,
    target: HostRef,
    spec: GuestSpec,
    *,
    replica: HostRef | None = None,
) -> int:
    """Copy a stopped guest from `source` to `target`; return the bytes copied."""
    deploy = spec.deploy_id or f"one-{spec.vm_id}"
    found = disks.call(source, "guest_files", {"deploy_id": deploy}, 60.0)
    for disk in disks_of(spec.template):
        if disk.mode == "overlay":
            disks.ensure_image(target, disk, replica=replica)
    token = uuid.uuid4().hex[:16]
    request = {"deploy_id": deploy, "token": token}
    staging = str(disks.call(target, "guest_receive", request, 60.0)["dir"])
    copied = 0
    try:
        with tempfile.TemporaryDirectory(prefix="ec-move-") as tmp:
            for item in found.get("files", ()):
                name = str(item["name"])
                if "/" in name or name in ("", ".", ".."):
                    raise DriverError(f"{source.name} listed a strange file name {name!r}")
                local = Path(tmp) / name
                disks.files(source).get_file(
                    f"{source.root}/guests/{deploy}/{name}", local, timeout=COPY_TIMEOUT
                )
                copied += disks.files(target).put_file(
                    local, f"{staging}/{name}", timeout=COPY_TIMEOUT
                )
                local.unlink()
        adopt = {"deploy_id": deploy, "token": token, "old_root": source.root}
        disks.call(target, "guest_adopt", adopt, 600.0)
    except BaseException:
        try:
            disks.call(target, "guest_discard", {"deploy_id": deploy}, 60.0)
        except Exception as exc:  # the host may be the reason the move failed
            log.warning("discarding %s on %s: %s", deploy, target.name, exc)
        raise
    log.info("moved %s from %s to %s: %d bytes", deploy, source.name, target.name, copied)
    return copied


def migrate_live(
    node: NodeCalls,
    source: HostRef,
    target: HostRef,
    spec: GuestSpec,
    *,
    replica: HostRef | None = None,
) -> None:
    """Move a running kvm/microvm guest to `target` without stopping it (see node.live).

    The target gets its disks from its own image cache first; a failure leaves the guest
    running on the source and removes what the target got.
    """
    kind = spec.kind or "kvm"
    if kind == "lxc":
        raise DriverError("containers do not migrate live: power off and migrate")
    deploy = spec.deploy_id or f"one-{spec.vm_id}"
    disks = disks_of(spec.template)
    incremental = all(d.mode in ("overlay", "inplace", "rootfs") for d in disks)
    node.disks.prolog(target, spec, replica=replica)
    body = _same_layout(
        node_spec(host_paths(spec, target.root), kind),
        node.disks.call(source, "guest_layout", {"deploy_id": deploy}, 60.0),
    )
    try:
        incoming = node.disks.call(
            target,
            "migrate_incoming",
            {"deploy_id": deploy, "kind": kind, "spec": body, "address": target.address},
            120.0,
        )
        request = {"deploy_id": deploy, "uri": incoming["uri"], "incremental": incremental}
        node.disks.call(source, "migrate_send", {**request, "timeout": 900.0}, 960.0)
        node.disks.call(target, "migrate_finish", {"deploy_id": deploy, "timeout": 60.0}, 90.0)
    except BaseException:
        try:
            node.disks.call(target, "cleanup", {"deploy_id": deploy}, 60.0)
        except Exception as exc:
            log.warning(
                "removing %s from %s after a failed migration: %s", deploy, target.name, exc
            )
        raise
    try:
        node.disks.call(source, "cleanup", {"deploy_id": deploy}, 60.0)
    except Exception as exc:  # the guest runs on the target: a leftover is only logged
        log.warning("removing %s from %s after its migration: %s", deploy, source.name, exc)
    log.info("migrated %s live from %s to %s", deploy, source.name, target.name)


def _same_layout(body: dict[str, Any], layout: dict[str, Any]) -> dict[str, Any]:
    """Put the source's hot-plugged disks and NICs in the same PCI slots on the target."""
    slots = {
        kind: {int(item[key]): int(item["pci_slot"]) for item in layout.get(kind, ())}
        for kind, key in (("disks", "disk_id"), ("nics", "nic_id"))
    }
    for kind, key in (("disks", "disk_id"), ("nics", "nic_id")):
        for item in body.get(kind) or []:
            slot = slots[kind].get(int(item.get(key, -1)))
            if slot is not None:
                item["pci_slot"] = slot
    return body
