"""Disks plugged into and out of a guest: the node actions disk_attach, disk_detach and
disk_resize.

Attach makes the disk exactly as disks_prolog does (the same code: a disk that exists is
kept, so an attach retried after a crash does no harm), records it in disks.json and lists
it in spec.json's "disks". When the guest's QEMU runs it is hot-plugged (kvm, ``pc``
machine: ACPI PCI hotplug on the root bus): QMP ``blockdev-add`` (format node
``disk<id>-fmt`` on a file node ``disk<id>-file``, names that never clash with the
``disk<id>`` drive ids given at boot) and ``device_add`` (virtio-blk-pci ``disk<id>-dev``,
in the first free slot). A running microvm is refused before anything is made: virtio-mmio
has no hotplug. A disk whose file the running QEMU has open is attached already.

Detach takes the disk out of the running guest first: ``device_del`` of the device its
drive is attached to, found through ``query-block`` by the disk's file (so a disk given at
boot, whose device has no id, is found too), then waiting for the DEVICE_DELETED event of
that device: on ``pc`` a removal is a request the guest honours. A guest that does not let
the disk go in time ("timeout", 20 s by default) fails the detach and keeps the disk, its
file and records (its removal stays pending in the guest: a detach again finishes). Then
the hot-plugged node goes (``blockdev-del``; a drive given at boot goes with its device),
and the file, its disks.json record and its spec.json entry.

Resize only grows: QMP ``block_resize`` while the guest runs (it sees the new size at
once), ``qemu-img resize`` when it is off.

After an attach or detach on a running guest the PCI slot of every disk is kept in
spec.json (``pci_slot``, all or none; none when it is off): a restore, which must rebuild
the machine that was saved, puts each disk back in its slot (qemu_argv). A saved guest is
refused: its saved machine would no longer match its disks.

Requests: disk_attach {"deploy_id", "disk": <a disks_prolog item>} -> {"disk_id", "path",
"hotplugged"}; disk_detach {"deploy_id", "disk_id", "timeout"?} -> {}; disk_resize
{"deploy_id", "disk_id", "size_mb"} -> {"virtual_size"}.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecloud.node.disks import (
    MIB,
    disk_format,
    disk_path,
    existing_disk,
    existing_guest,
    parse_disk,
    prolog,
    running,
    write_records,
)
from edgecloud.node.guest import GuestDir, read_spec, write_spec
from edgecloud.node.imagecache import recorded
from edgecloud.node.protocol import NodeError, bad, integer, number, obj
from edgecloud.node.qemuimg import info, run

if TYPE_CHECKING:
    from qemu.qmp import QMPClient

DETACH_TIMEOUT = 20.0  # seconds the guest has to let a disk go
QMP_TIMEOUT = 60.0  # a block_resize or blockdev-add of a big qcow2 reads its metadata
BACKEND = "/virtio-backend"  # query-block's qdev of a virtio disk: the proxy's child
Disks = list[dict[str, Any]]


def _names(disk_id: int) -> tuple[str, str, str]:
    """Return the format node, file node and device ids of a hot-plugged disk."""
    return f"disk{disk_id}-fmt", f"disk{disk_id}-file", f"disk{disk_id}-dev"


def _same_file(a: Any, b: Path) -> bool:
    return isinstance(a, str) and bool(a) and os.path.realpath(a) == os.path.realpath(b)


def _block(blocks: Any, path: Path) -> dict[str, Any] | None:
    """Return the query-block entry whose image is `path` (None when QEMU has none)."""
    for block in blocks if isinstance(blocks, list) else []:
        inserted = block.get("inserted") if isinstance(block, dict) else None
        if isinstance(inserted, dict) and _same_file(inserted.get("file"), path):
            return dict(block)
    return None


def _device(block: dict[str, Any] | None) -> str | None:
    """Return the QOM path of the device a drive is attached to (None: no device)."""
    qdev = (block or {}).get("qdev")
    return str(qdev).removesuffix(BACKEND) if qdev else None


def _entry_is(entry: Any, disk_id: int, path: Path) -> bool:
    """Return whether a spec.json disk is disk `disk_id` (by its id, else by its file)."""
    if not isinstance(entry, dict):
        return False
    return entry.get("disk_id") == disk_id or _same_file(entry.get("path"), path)


def _spec_disks(spec: dict[str, Any] | None) -> Disks:
    disks = (spec or {}).get("disks") or []
    return [dict(entry) for entry in disks if isinstance(entry, dict)]


def _not_saved(guest: GuestDir) -> None:
    if guest.memory_state.exists() and not running(guest):
        raise NodeError(
            "failed",
            f"{guest.deploy_id} has saved memory: restore it (or clean it up) before "
            "changing its disks",
        )


# --- QMP ----------------------------------------------------------------------------------


def _plain(disks: Disks) -> Disks:
    """Return the disks without PCI slots (what a fresh boot lays out by itself)."""
    return [{k: v for k, v in disk.items() if k != "pci_slot"} for disk in disks]


async def _named_node(client: QMPClient, node: str) -> dict[str, Any] | None:
    found = await client.execute("query-named-block-nodes", {"flat": True})
    for entry in found if isinstance(found, list) else []:
        if isinstance(entry, dict) and entry.get("node-name") == node:
            return entry
    return None


async def _slots(client: QMPClient, disks: Disks) -> Disks:
    """Return the disks, each with the PCI slot of its device now (all or none)."""
    from qemu.qmp import ExecuteError

    blocks = await client.execute("query-block")
    plain = _plain(disks)
    slots = []
    for disk in plain:
        device = _device(_block(blocks, Path(str(disk.get("path")))))
        if device is None:
            return plain
        try:
            devfn = await client.execute("qom-get", {"path": device, "property": "addr"})
        except ExecuteError:
            return plain
        if not isinstance(devfn, int) or devfn & 7:
            return plain
        slots.append(devfn >> 3)
    return [{**disk, "pci_slot": slot} for disk, slot in zip(plain, slots, strict=True)]


def _plug(guest: GuestDir, disk_id: int, path: Path, fmt: str, disks: Disks) -> Disks:
    """Hot-plug the disk (unless QEMU has it already); return `disks` with their slots."""
    from qemu.qmp import ExecuteError

    from edgecloud.node import qmp

    node, file_node, device = _names(disk_id)

    async def steps(client: QMPClient) -> Disks:
        if _block(await client.execute("query-block"), path) is None:
            leftover = await _named_node(client, node)  # of a detach that failed midway
            if leftover is not None and not _same_file(leftover.get("file"), path):
                await client.execute("blockdev-del", {"node-name": node})
                leftover = None
            if leftover is None:
                source = {"driver": "file", "filename": str(path), "node-name": file_node}
                await client.execute(
                    "blockdev-add", {"driver": fmt, "node-name": node, "file": source}
                )
            try:
                await client.execute(
                    "device_add", {"driver": "virtio-blk-pci", "id": device, "drive": node}
                )
            except ExecuteError:
                with contextlib.suppress(ExecuteError):
                    await client.execute("blockdev-del", {"node-name": node})
                raise
        return await _slots(client, disks)

    return qmp.session(guest.path, steps, QMP_TIMEOUT)


async def _device_del(
    client: QMPClient, device: str, path: Path, what: str, timeout: float
) -> None:
    """Ask the guest to let `device` go; wait for its DEVICE_DELETED."""
    import asyncio

    from qemu.qmp import ExecuteError

    with client.listener("DEVICE_DELETED") as listener:
        try:
            await client.execute("device_del", {"id": device})
        except ExecuteError:
            if _device(_block(await client.execute("query-block"), path)) == device:
                raise
            return  # gone meanwhile
        deadline = time.monotonic() + timeout
        while True:
            try:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                event = await asyncio.wait_for(listener.get(), remaining)
            except TimeoutError:
                raise NodeError(
                    "failed",
                    f"the guest did not let {what} go in {timeout:g} s (does its kernel do "
                    "ACPI PCI hotplug?): it is still attached, its removal pending "
                    "(detach again to finish)",
                ) from None
            data = event.get("data")
            if isinstance(data, dict) and data.get("path") == device:
                return


def _unplug(guest: GuestDir, disk_id: int, path: Path, timeout: float, disks: Disks) -> Disks:
    """Take the disk out of the running guest; return the `disks` left with their slots."""
    from qemu.qmp import ExecuteError

    from edgecloud.node import qmp

    node = _names(disk_id)[0]
    what = f"disk {disk_id} of {guest.deploy_id}"

    async def steps(client: QMPClient) -> Disks:
        block = _block(await client.execute("query-block"), path)
        device = _device(block)
        if device is not None:
            await _device_del(client, device, path, what, timeout)
        if await _named_node(client, node) is not None:
            await client.execute("blockdev-del", {"node-name": node})
        block = _block(await client.execute("query-block"), path)
        if block is not None and _device(block) is None and block.get("device"):
            command = f"drive_del {block['device']}"  # a drive that outlived its device
            with contextlib.suppress(ExecuteError):
                await client.execute("human-monitor-command", {"command-line": command})
        if _block(await client.execute("query-block"), path) is not None:
            raise NodeError("failed", f"QEMU still has {what} open")
        return await _slots(client, disks)

    return qmp.session(guest.path, steps, timeout + QMP_TIMEOUT)


def _virtual_size(block: dict[str, Any]) -> int:
    image = block["inserted"].get("image") or {}
    return int(image.get("virtual-size") or 0)


def _still_open(guest: GuestDir, path: Path) -> bool:
    """Return whether the running QEMU has the file open (True when QMP cannot tell)."""
    from edgecloud.node import qmp

    try:
        return _block(qmp.execute(guest.path, "query-block"), path) is not None
    except NodeError:
        return True


def _live_resize(guest: GuestDir, disk_id: int, path: Path, size: int) -> int | None:
    """Grow the disk through QMP; return its new size (None: the QEMU has no such disk)."""
    from edgecloud.node import qmp

    async def steps(client: QMPClient) -> int | None:
        block = _block(await client.execute("query-block"), path)
        if block is None:
            return None
        current = _virtual_size(block)
        _check_growth(disk_id, size, current)
        if size > current:
            node = block["inserted"]["node-name"]
            await client.execute("block_resize", {"node-name": node, "size": size})
        return _virtual_size(_block(await client.execute("query-block"), path) or block)

    return qmp.session(guest.path, steps, QMP_TIMEOUT)


# --- the actions --------------------------------------------------------------------------


def _check_growth(disk_id: int, size: int, current: int) -> None:
    if size < current:
        raise bad(
            f"'size_mb' {size // MIB} is smaller than disk {disk_id}'s current size, "
            f"{current} bytes ({current / MIB:g} MiB): a disk only grows"
        )


def _undo_made(guest: GuestDir, path: Path, before: dict[int, dict[str, Any]]) -> None:
    path.unlink(missing_ok=True)
    write_records(guest, before)


def attach(request: dict[str, Any]) -> dict[str, Any]:
    """disk_attach: make a disk as disks_prolog would, list it, hot-plug it if it runs."""
    guest = existing_guest(request)
    raw = obj(request, "disk")
    try:
        disk = parse_disk(raw)
    except NodeError as exc:
        raise bad(f"'disk': {exc.message}") from None
    disk_id = disk["disk_id"]
    spec = read_spec(guest)
    kind = (spec or {}).get("kind")
    live = running(guest)
    if kind == "lxc":
        raise NodeError("failed", f"{guest.deploy_id} is a container: it has no disks to attach")
    if live and kind == "microvm":
        raise NodeError(
            "failed", "microvm has no hotplug (virtio-mmio): power it off to attach a disk"
        )
    _not_saved(guest)
    path = disk_path(guest, disk_id)
    existed, before = os.path.lexists(path), recorded(guest.path)
    base = str(guest.root)
    made = prolog({"root": base, "deploy_id": guest.deploy_id, "disks": [raw]})["disks"][0]
    entry = {"path": made["path"], "format": made["format"], "readonly": False}
    disks = _spec_disks(spec)
    at = next((i for i, old in enumerate(disks) if _entry_is(old, disk_id, path)), None)
    if at is None:
        disks.append({**entry, "disk_id": disk_id})
    else:
        disks[at] = {**disks[at], **entry, "disk_id": disk_id}
    try:
        disks = _plug(guest, disk_id, path, made["format"], disks) if live else _plain(disks)
        if spec is not None:
            write_spec(guest, {**spec, "disks": disks})
    except BaseException:
        if not existed and not (live and _still_open(guest, path)):
            _undo_made(guest, path, before)  # a plugged disk stays: a retry finishes it
        raise
    return {"disk_id": disk_id, "path": made["path"], "hotplugged": live}


def detach(request: dict[str, Any]) -> dict[str, Any]:
    """disk_detach: take a disk out of the guest (running or not) and delete it."""
    guest = existing_guest(request)
    disk_id = integer(request, "disk_id")
    timeout = number(request, "timeout", DETACH_TIMEOUT, minimum=1.0)
    path = disk_path(guest, disk_id)
    spec = read_spec(guest)
    disks = _spec_disks(spec)
    left = [entry for entry in disks if not _entry_is(entry, disk_id, path)]
    records = recorded(guest.path)
    if not (os.path.lexists(path) or disk_id in records or len(left) < len(disks)):
        raise NodeError("missing", f"{guest.deploy_id} has no disk {disk_id}")
    _not_saved(guest)
    if running(guest):
        if (spec or {}).get("kind") == "microvm":
            raise NodeError(
                "failed", "microvm has no hotplug (virtio-mmio): power it off to detach a disk"
            )
        left = _unplug(guest, disk_id, path, timeout, left)
    else:
        left = _plain(left)
    path.unlink(missing_ok=True)
    if disk_id in records:
        del records[disk_id]
        write_records(guest, records)
    if spec is not None:
        write_spec(guest, {**spec, "disks": left})
    return {}


def resize(request: dict[str, Any]) -> dict[str, Any]:
    """disk_resize: grow a disk to size_mb (live through QMP while the guest runs)."""
    guest = existing_guest(request)
    disk_id = integer(request, "disk_id")
    size_mb = integer(request, "size_mb", minimum=1)
    path = existing_disk(guest, disk_id)
    _not_saved(guest)
    size = size_mb * MIB
    virtual = _live_resize(guest, disk_id, path, size) if running(guest) else None
    if virtual is None:
        fmt = disk_format(guest, disk_id, path)
        current = int(info(path, fmt).get("virtual-size") or 0)
        _check_growth(disk_id, size, current)
        if size > current:
            run(["qemu-img", "resize", "-q", "-f", fmt, str(path), str(size)])
        virtual = int(info(path, fmt).get("virtual-size") or 0)
    records = recorded(guest.path)
    if disk_id in records:
        records[disk_id] = {**records[disk_id], "size_mb": size_mb, "virtual_size": virtual}
        write_records(guest, records)
    return {"virtual_size": virtual}
