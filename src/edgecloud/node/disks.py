"""A guest's disks: ROOT/guests/<deploy_id>/disk.<disk_id>, made from the image cache.

`disks_prolog` makes each disk once: a qcow2 overlay on a cached image, a full copy of
one (a persistent image, copied back by the front-end), or a sparse volatile file (raw,
ext4 or swap). A disk that exists is kept as it is: a powered-off VM keeps its data. Each
disk is made under a temporary name and renamed in place, so a disk.N that exists is
whole. What was made is recorded in the guest's disks.json (disk_id -> path, format,
mode, image, backing key...): the cache never evicts an image a disk is backed by.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from edgecloud.node import proc
from edgecloud.node.guest import GuestDir
from edgecloud.node.imagecache import (
    DISKS_JSON,
    entry_path,
    incoming_dir,
    kind_of,
    locked,
    recorded,
    sha256_of,
    touch,
)
from edgecloud.node.protocol import (
    NodeError,
    bad,
    choice,
    deploy_id,
    image_key,
    integer,
    part_name,
    root,
)
from edgecloud.node.qemuimg import LONG, info, run, self_contained

MODES = ("overlay", "copy", "volatile")
FORMATS = ("qcow2", "raw")
FILESYSTEMS = ("raw", "ext4", "swap")
MIB = 1 << 20


def disk_path(guest: GuestDir, disk_id: int) -> Path:
    """Return ROOT/guests/<deploy_id>/disk.<disk_id>."""
    return guest.path / f"disk.{disk_id}"


def running(guest: GuestDir) -> bool:
    """Return whether the guest's QEMU runs (as qemu.py tells: its pid file's process)."""
    return proc.alive(proc.read_pid(guest.pidfile), str(guest.pidfile))


def existing_guest(request: dict[str, Any]) -> GuestDir:
    """Return the request's guest, which must be on this host."""
    guest = GuestDir(root(request), deploy_id(request))
    if not guest.path.is_dir():
        raise NodeError("missing", f"{guest.deploy_id} is not on this host")
    return guest


def existing_disk(guest: GuestDir, disk_id: int) -> Path:
    """Return a disk's path; it must exist."""
    path = disk_path(guest, disk_id)
    if not path.is_file():
        raise NodeError("missing", f"{guest.deploy_id} has no disk {disk_id}")
    return path


def disk_format(guest: GuestDir, disk_id: int, path: Path) -> str:
    """Return a disk's format: as recorded, else as qemu-img finds it."""
    fmt = recorded(guest.path).get(disk_id, {}).get("format")
    if fmt not in FORMATS:
        fmt = info(path).get("format")
    if fmt not in FORMATS:
        raise NodeError("failed", f"disk {disk_id} of {guest.deploy_id} is {fmt}, not qcow2/raw")
    return str(fmt)


def parse_disk(raw: dict[str, Any]) -> dict[str, Any]:
    """Return one disk as disks_prolog takes it, checked (also used by disk_attach)."""
    disk: dict[str, Any] = {
        "disk_id": integer(raw, "disk_id"),
        "mode": choice(raw, "mode", MODES),
    }
    if disk["mode"] == "volatile":
        disk.update(image=None, format="raw", size_mb=integer(raw, "size_mb", minimum=1))
        disk["fs"] = choice(raw, "fs", FILESYSTEMS, "raw")
    else:
        disk.update(image=image_key(raw, "image"), format=choice(raw, "format", FORMATS))
        size = raw.get("size_mb")
        disk["size_mb"] = None if size is None else integer(raw, "size_mb", minimum=1)
    return disk


def _parse(raw: Any, index: int) -> dict[str, Any]:
    """Return one disk of a prolog request, checked."""
    if not isinstance(raw, dict):
        raise bad(f"'disks' item {index} must be an object")
    try:
        return parse_disk(raw)
    except NodeError as exc:
        raise bad(f"'disks' item {index}: {exc.message}") from None


def _parse_all(request: dict[str, Any]) -> list[dict[str, Any]]:
    raw = request.get("disks")
    if not isinstance(raw, list):
        raise bad("'disks' must be a list")
    disks = [_parse(item, index) for index, item in enumerate(raw)]
    ids = [disk["disk_id"] for disk in disks]
    if len(set(ids)) != len(ids):
        raise bad("'disks': a disk_id appears twice")
    return disks


def _record(disk: dict[str, Any], path: Path) -> dict[str, Any]:
    overlay = disk["mode"] == "overlay"
    record = {
        "disk_id": disk["disk_id"],
        "path": str(path),
        "format": "qcow2" if overlay else disk["format"],
        "mode": disk["mode"],
        "image": disk["image"],
        "backing": disk["image"] if overlay else None,
        "size_mb": disk["size_mb"],
    }
    if disk["mode"] == "volatile":
        record["fs"] = disk["fs"]
    return record


def _make(base: Path, disk: dict[str, Any], target: Path) -> None:
    """Make one disk at `target` (a temporary name the caller renames)."""
    size = (disk["size_mb"] or 0) * MIB
    if disk["mode"] == "volatile":
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        if disk["fs"] == "ext4":
            run(["mkfs.ext4", "-F", "-q", str(target)])
        elif disk["fs"] == "swap":
            run(["mkswap", str(target)])
        return
    source = entry_path(base, disk["image"])
    virtual = int(self_contained(source, disk["format"]).get("virtual-size") or 0)
    grow = [str(size)] if size > virtual else []
    if disk["mode"] == "overlay":
        backing = ["-F", disk["format"], "-b", str(source)]
        run(["qemu-img", "create", "-q", "-f", "qcow2", *backing, str(target), *grow])
        return
    run(["cp", "--reflink=auto", "--sparse=always", str(source), str(target)], LONG)
    if grow:
        run(["qemu-img", "resize", "-q", "-f", disk["format"], str(target), *grow])


def write_records(guest: GuestDir, records: dict[int, dict[str, Any]]) -> None:
    """Write disks.json atomically (the image cache reads it without the guest lock)."""
    target = guest.path / DISKS_JSON
    scratch = target.with_name(f".{DISKS_JSON}.{os.getpid()}-{threading.get_ident()}")
    body = {"disks": {str(disk_id): records[disk_id] for disk_id in sorted(records)}}
    scratch.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    scratch.replace(target)


def _create_missing(base: Path, guest: GuestDir, disks: list[dict[str, Any]]) -> list[Path]:
    """Make the disks that are not there yet; return their paths (none on failure)."""
    made: list[Path] = []
    try:
        for disk in disks:
            path = disk_path(guest, disk["disk_id"])
            if os.path.lexists(path):
                continue
            scratch = path.with_name(f".{path.name}.making")
            scratch.unlink(missing_ok=True)
            try:
                _make(base, disk, scratch)
                os.rename(scratch, path)
            finally:
                scratch.unlink(missing_ok=True)
            made.append(path)
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        raise
    return made


def prolog(request: dict[str, Any]) -> dict[str, Any]:
    """disks_prolog: make the guest's disks that are missing; describe all of them."""
    base = root(request)
    guest = GuestDir(base, deploy_id(request))
    disks = _parse_all(request)
    guest.path.mkdir(parents=True, exist_ok=True)
    records = recorded(guest.path)
    answer = []
    with locked(base, exclusive=False):  # no eviction between the check and the use
        to_make = [d for d in disks if not os.path.lexists(disk_path(guest, d["disk_id"]))]
        needed = {disk["image"] for disk in to_make if disk["image"]}
        for key in sorted(needed):
            if kind_of(entry_path(base, key)) != "file":
                what = "a rootfs directory" if kind_of(entry_path(base, key)) else "not cached"
                raise NodeError("missing", f"image {key} is {what} on this host")
        made = _create_missing(base, guest, disks)
        try:
            for key in needed:
                touch(entry_path(base, key))
            for disk in disks:
                path = disk_path(guest, disk["disk_id"])
                record = records.get(disk["disk_id"]) if path not in made else None
                record = record or _record(disk, path)
                virtual = int(info(path, record["format"]).get("virtual-size") or 0)
                record = records[disk["disk_id"]] = {**record, "virtual_size": virtual}
                answer.append({k: record[k] for k in ("disk_id", "path", "format", "virtual_size")})
            write_records(guest, records)
        except BaseException:
            for path in made:
                path.unlink(missing_ok=True)
            raise
    return {"disks": answer}


def disks_info(request: dict[str, Any]) -> dict[str, Any]:
    """disks_info: the recorded disks, with whether each exists and its size on disk now."""
    guest = existing_guest(request)
    found = []
    for disk_id, record in sorted(recorded(guest.path).items()):
        path = disk_path(guest, disk_id)
        try:
            actual, exists = os.stat(path).st_blocks * 512, True
        except FileNotFoundError:
            actual, exists = 0, False
        found.append({**record, "disk_id": disk_id, "actual_size": actual, "exists": exists})
    return {"disks": found}


def export(request: dict[str, Any]) -> dict[str, Any]:
    """disk_export: a disk as one self-contained qcow2 file in incoming/<part>."""
    guest = existing_guest(request)
    disk_id = integer(request, "disk_id")
    part = part_name(request)
    path = existing_disk(guest, disk_id)
    if running(guest):
        raise NodeError(
            "failed",
            f"{guest.deploy_id} is running: power it off to export disk {disk_id} "
            "(a running guest's disk changes under the copy)",
        )
    fmt = disk_format(guest, disk_id, path)
    incoming = incoming_dir(guest.root)
    incoming.mkdir(parents=True, exist_ok=True)
    target = incoming / part
    scratch = incoming / f"{part}.~export-{os.getpid()}-{threading.get_ident()}"
    try:  # convert reads through the backing chain: the result stands alone
        run(["qemu-img", "convert", "-q", "-f", fmt, "-O", "qcow2", str(path), str(scratch)], LONG)
        os.rename(scratch, target)
    finally:
        with contextlib.suppress(OSError):
            scratch.unlink()
    return {"bytes": target.stat().st_size, "sha256": sha256_of(target)}
