"""Internal snapshots of a guest's qcow2 disk: `qemu-img snapshot` while the guest is off,
QMP ``blockdev-snapshot-internal-sync`` (and ``-delete-``) while it runs.

A running guest's disk is found in QMP ``query-block`` by its file, whatever its drive is
called (``disk<disk_id>`` since drives have ids, ``virtio<N>`` before). Reverting needs
the guest powered off (as in OpenNebula): the running guest's memory would not match its
disk. Creating a name that exists and deleting one that does not are no-ops, so a retried
call does no harm.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgecloud.node.disks import disk_format, existing_disk, existing_guest, running
from edgecloud.node.guest import GuestDir
from edgecloud.node.protocol import SNAPSHOT_NAME, NodeError, choice, integer, matching
from edgecloud.node.qemuimg import info, run, snapshots

OPS = ("create", "revert", "delete", "list")
QMP_TIMEOUT = 120.0  # an internal snapshot of a big disk writes its refcounts


def _offline(guest: GuestDir, disk_id: int, path: Path, op: str, name: str | None) -> list[Any]:
    if disk_format(guest, disk_id, path) != "qcow2":
        raise NodeError("failed", f"disk {disk_id} of {guest.deploy_id} is raw: no snapshots")
    names = {snap["name"] for snap in snapshots(info(path, "qcow2"))}
    if op == "create" and name not in names:
        run(["qemu-img", "snapshot", "-q", "-c", str(name), str(path)])
    elif op == "delete" and name in names:
        run(["qemu-img", "snapshot", "-q", "-d", str(name), str(path)])
    elif op == "revert":
        if name not in names:
            raise NodeError("missing", f"disk {disk_id} has no snapshot {name!r}")
        if guest.memory_state.exists():
            raise NodeError(
                "failed", f"{guest.deploy_id} has saved memory: restore it or clean it up first"
            )
        run(["qemu-img", "snapshot", "-q", "-a", str(name), str(path)])
    return snapshots(info(path, "qcow2"))


def _same_file(a: str, b: Path) -> bool:
    return bool(a) and os.path.realpath(a) == os.path.realpath(b)


def _block(blocks: Any, path: Path) -> dict[str, Any] | None:
    """Return the query-block entry of the drive whose image is `path`."""
    for block in blocks if isinstance(blocks, list) else []:
        inserted = block.get("inserted") if isinstance(block, dict) else None
        if isinstance(inserted, dict) and _same_file(str(inserted.get("file", "")), path):
            return dict(block)
    return None


def _live(guest: GuestDir, disk_id: int, path: Path, op: str, name: str | None) -> list[Any] | None:
    """Run the operation over QMP; None when the running guest does not have the disk."""
    from qemu.qmp import QMPClient  # only a running guest's snapshot pays for it

    from edgecloud.node import qmp

    async def steps(client: QMPClient) -> list[Any] | None:
        block = _block(await client.execute("query-block"), path)
        if block is None:
            return None
        inserted = block["inserted"]
        image = inserted.get("image") or {}
        if image.get("format") != "qcow2":
            raise NodeError("failed", f"disk {disk_id} of {guest.deploy_id} is raw: no snapshots")
        device = block.get("device") or inserted.get("node-name")
        names = {snap["name"] for snap in snapshots(image)}
        if op == "create" and name not in names:
            arguments = {"device": device, "name": name}
            await client.execute("blockdev-snapshot-internal-sync", arguments)
        elif op == "delete" and name in names:
            arguments = {"device": device, "name": name}
            await client.execute("blockdev-snapshot-delete-internal-sync", arguments)
        elif op == "list":
            return snapshots(image)
        again = _block(await client.execute("query-block"), path) or block
        return snapshots(again["inserted"].get("image") or {})

    return qmp.session(guest.path, steps, QMP_TIMEOUT)


def snapshot(request: dict[str, Any]) -> dict[str, Any]:
    """disk_snapshot: create, revert, delete or list the internal snapshots of a disk."""
    guest = existing_guest(request)
    disk_id = integer(request, "disk_id")
    op = choice(request, "op", OPS)
    name = None
    if op != "list":
        name = matching(request, "name", SNAPSHOT_NAME, "1 to 64 of A-Z a-z 0-9 _ . -")
    path = existing_disk(guest, disk_id)
    if running(guest):
        if op == "revert":
            raise NodeError(
                "failed",
                f"{guest.deploy_id} is running: power it off to revert disk {disk_id} "
                f"to snapshot {name!r}",
            )
        found = _live(guest, disk_id, path, op, name)
        if found is not None:
            return {"snapshots": found}
    return {"snapshots": _offline(guest, disk_id, path, op, name)}
