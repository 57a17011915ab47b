"""A VM's disks on its host: the front-end's side of the storage (see edgecloud.node.disks).

PROLOG puts every datastore image a VM uses into the host's image cache (once per host:
ROOT/cache/images/<sha256>) and makes the VM's disks from it: a qcow2 overlay per
non-persistent disk, a full copy of a persistent one, a fresh file per volatile disk.
With a replica host for the cluster, the front-end sends an image to the replica only
and the host fetches it from there, so an edge site pulls each image over the WAN once.
EPILOG copies persistent disks back into their datastore.

A template DISK whose image is in a datastore carries CHECKSUM ("sha256:<hex>", the cache
key), SOURCE (the file on the front-end), FORMAT and PERSISTENT; a DISK with TYPE fs or
swap and a SIZE but no image is volatile. A DISK with a SOURCE but no CHECKSUM is a path
on the hosts, used in place. A disk's id is its position among the template's DISKs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgecloud.drivers.base import DriverError, Files, GuestSpec, HostRef

log = logging.getLogger("edgecloud.drivers.disks")

# The image cache of a host is kept under its IMAGE_CACHE_MB attribute (MiB), this by
# default: the least recently used images no disk is backed by go first.
DEFAULT_CACHE_MB = 20 * 1024
# Slowest link speed a copy's timeout assumes, bytes per second (and a floor).
_MIN_RATE = 2 * 2**20
_MIN_COPY_TIMEOUT = 120.0

Call = Callable[[HostRef, str, dict[str, Any], float], dict[str, Any]]


@dataclass(frozen=True)
class Disk:
    """One template DISK as the host sees it."""

    disk_id: int
    mode: str  # overlay | copy | volatile | rootfs | inplace
    key: str = ""  # cache key (sha256 hex) of a datastore image
    source: str = ""  # the image's file on the front-end
    format: str = "raw"
    size_mb: int = 0
    fs: str = "raw"
    image_id: int | None = None


def _many(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return [value] if isinstance(value, Mapping) else []


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def disks_of(template: Mapping[str, Any]) -> list[Disk]:
    """Return the VM's disks, in template order."""
    found = []
    for index, raw in enumerate(_many(template.get("DISK"))):
        disk_id = _int(raw.get("DISK_ID", index))
        checksum = str(raw.get("CHECKSUM", ""))
        fmt = str(raw.get("FORMAT", "raw")).lower()
        size = _int(raw.get("SIZE", 0))
        image_id = _int(raw["IMAGE_ID"]) if "IMAGE_ID" in raw else None
        if checksum.startswith("sha256:"):
            key = checksum[len("sha256:") :]
            persistent = str(raw.get("PERSISTENT", "NO")).upper() == "YES"
            mode = "rootfs" if fmt == "dir" else "copy" if persistent else "overlay"
            source = str(raw.get("SOURCE", ""))
            found.append(Disk(disk_id, mode, key, source, fmt, size, image_id=image_id))
        elif str(raw.get("TYPE", "")).lower() in ("fs", "swap") and not raw.get("SOURCE"):
            kind = str(raw.get("TYPE")).lower()
            fs = "swap" if kind == "swap" else str(raw.get("FS", "raw")).lower()
            found.append(Disk(disk_id, "volatile", format="raw", size_mb=size, fs=fs))
        else:
            found.append(Disk(disk_id, "inplace", format=fmt))
    return found


def host_paths(spec: GuestSpec, root: str) -> GuestSpec:
    """Return the spec with each datastore or volatile disk pointing at its file on the host."""
    raw_disks = [dict(d) for d in _many(spec.template.get("DISK"))]
    if not raw_disks:
        return spec
    deploy = spec.deploy_id or f"one-{spec.vm_id}"
    for raw, disk in zip(raw_disks, disks_of(spec.template), strict=True):
        raw["DISK_ID"] = str(disk.disk_id)
        if disk.mode == "rootfs":
            raw["SOURCE"] = f"{root}/cache/images/{disk.key}"
        elif disk.mode in ("overlay", "copy", "volatile"):
            raw["SOURCE"] = f"{root}/guests/{deploy}/disk.{disk.disk_id}"
            raw["FORMAT"] = "qcow2" if disk.mode == "overlay" else disk.format
    template = dict(spec.template)
    template["DISK"] = raw_disks
    return replace(spec, template=template)


class HostDisks:
    """Moves images to hosts and makes VMs' disks there, through node actions (`call`)."""

    def __init__(self, call: Call, files: Callable[[HostRef], Files]) -> None:
        """`call(host, action, request, timeout)` runs a node action; `files(host)` copies."""
        self.call = call
        self.files = files
        self._locks: dict[tuple[int, str, str], threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # (image key, host name) -> copies sent by this front-end, and copies the host
        # fetched from its replica; read by tests and benchmarks.
        self.sent: Counter[tuple[str, str]] = Counter()
        self.fetched: Counter[tuple[str, str]] = Counter()

    def _lock(self, host: HostRef, key: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault((host.id, host.root, key), threading.Lock())

    # -- the image cache ----------------------------------------------------------------

    def ensure_image(
        self, host: HostRef, disk: Disk, *, replica: HostRef | None = None, unpack: bool = False
    ) -> str:
        """Put the disk's image into the host's cache unless it is there; say how it came:
        "cached", "front-end" or "replica". Concurrent callers wait for one copy."""
        with self._lock(host, disk.key):
            status = self.call(host, "image_status", {"key": disk.key}, 60.0)
            if status.get("present"):
                return "cached"
            part = f"{disk.key[:16]}.{uuid.uuid4().hex[:12]}"
            timeout = _copy_timeout(disk.source)
            if replica is not None and (replica.id, replica.root) != (host.id, host.root):
                self.ensure_image(replica, disk, unpack=False)
                self._fetch_from(replica, host, disk.key, part, timeout)
                how = "replica"
            else:
                self._send(host, disk, part, timeout)
                how = "front-end"
            request = {"key": disk.key, "part": part, "unpack": unpack}
            self.call(host, "image_commit", request, timeout)
            log.info("image %s on %s from the %s", disk.key[:12], host.name, how)
            return how

    def _send(self, host: HostRef, disk: Disk, part: str, timeout: float) -> None:
        if not disk.source or not Path(disk.source).is_file():
            raise DriverError(f"disk {disk.disk_id}: the image file {disk.source!r} is missing")
        remote = f"{host.root}/cache/images/incoming/{part}"
        self.files(host).put_file(Path(disk.source), remote, timeout=timeout)
        self.sent[(disk.key, host.name)] += 1

    def _fetch_from(
        self, replica: HostRef, host: HostRef, key: str, part: str, timeout: float
    ) -> None:
        serving = self.call(
            replica,
            "image_serve",
            {"key": key, "address": replica.address, "downloads": 1, "timeout": timeout},
            60.0,
        )
        try:
            request = {"url": serving["url"], "key": key, "part": part}
            self.call(host, "image_fetch", request, timeout)
            self.fetched[(key, host.name)] += 1
        finally:
            try:
                self.call(replica, "image_serve_stop", {"pid": serving.get("pid")}, 30.0)
            except DriverError as exc:
                log.info("stopping the image server on %s: %s", replica.name, exc)

    # -- PROLOG / EPILOG ----------------------------------------------------------------

    def _item(self, host: HostRef, disk: Disk, replica: HostRef | None) -> dict[str, Any] | None:
        """Bring the disk's image to the host; return its disks_prolog item (None: no file)."""
        if disk.mode in ("overlay", "copy"):
            self.ensure_image(host, disk, replica=replica)
            item: dict[str, Any] = {
                "disk_id": disk.disk_id,
                "mode": disk.mode,
                "image": disk.key,
                "format": disk.format,
            }
            if disk.size_mb:
                item["size_mb"] = disk.size_mb
            return item
        if disk.mode == "rootfs":
            self.ensure_image(host, disk, unpack=True)  # a tree: not through the replica
        elif disk.mode == "volatile":
            if disk.size_mb <= 0:
                raise DriverError(f"volatile disk {disk.disk_id} needs a SIZE in MiB")
            return {
                "disk_id": disk.disk_id,
                "mode": "volatile",
                "size_mb": disk.size_mb,
                "fs": disk.fs,
            }
        return None

    def disk_item(self, host: HostRef, spec: GuestSpec, disk_id: int) -> dict[str, Any]:
        """Bring one disk's image to the host; return what disk_attach makes of it."""
        for disk in disks_of(spec.template):
            if disk.disk_id == disk_id:
                item = self._item(host, disk, None)
                if item is None:
                    raise DriverError(f"disk {disk_id} is not a disk made on the host")
                return item
        raise DriverError(f"VM {spec.vm_id} has no disk {disk_id}")

    def prolog(self, host: HostRef, spec: GuestSpec, *, replica: HostRef | None = None) -> None:
        """Cache the VM's images on the host and make its disks (kept if already there)."""
        disks = disks_of(spec.template)
        wanted = [item for d in disks if (item := self._item(host, d, replica)) is not None]
        if wanted:
            deploy = spec.deploy_id or f"one-{spec.vm_id}"
            self.call(host, "disks_prolog", {"deploy_id": deploy, "disks": wanted}, 600.0)
        if any(d.mode in ("overlay", "copy", "rootfs") for d in disks):
            self.evict(host)
            if replica is not None and (replica.id, replica.root) != (host.id, host.root):
                self.evict(replica)  # the replica's cache is kept under its limit too

    def evict(self, host: HostRef) -> list[str]:
        """Shrink the host's image cache to its IMAGE_CACHE_MB; return the keys removed."""
        limit = _int(host.attributes.get("IMAGE_CACHE_MB", DEFAULT_CACHE_MB)) or DEFAULT_CACHE_MB
        found = self.call(host, "image_evict", {"max_bytes": limit * 2**20}, 300.0)
        removed = [str(k) for k in found.get("removed", ())]
        if removed:
            log.info("image cache of %s: evicted %s", host.name, ", ".join(k[:12] for k in removed))
        return removed

    def epilog(self, host: HostRef, spec: GuestSpec) -> dict[int, tuple[str, int]]:
        """Copy each persistent disk back over its image's file; return, by image id, the
        new checksum and size to record."""
        deploy = spec.deploy_id or f"one-{spec.vm_id}"
        changed: dict[int, tuple[str, int]] = {}
        for disk in disks_of(spec.template):
            if disk.mode != "copy" or disk.image_id is None or not disk.source:
                continue
            remote = f"{host.root}/guests/{deploy}/disk.{disk.disk_id}"
            changed[disk.image_id] = self.fetch(host, remote, Path(disk.source))
        return changed

    def fetch(self, host: HostRef, remote: str, target: Path) -> tuple[str, int]:
        """Copy a file of the host over `target` (atomically); return (checksum, bytes)."""
        part = target.with_name(target.name + ".part")
        try:
            self.files(host).get_file(remote, part, timeout=_MIN_COPY_TIMEOUT * 10)
            checksum = "sha256:" + _sha256(part)
            size = part.stat().st_size
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return checksum, size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_timeout(source: str) -> float:
    try:
        size = Path(source).stat().st_size
    except OSError:
        size = 0
    return max(_MIN_COPY_TIMEOUT, size / _MIN_RATE)
