"""Moving a stopped guest's files to another host (cold migration).

The front-end asks the source for the guest's files (`guest_files`), has the target make
a staging directory (`guest_receive`: ROOT/cache/incoming-guests/<deploy_id>.<token>),
copies the files there, then has the target adopt them (`guest_adopt`): each qcow2
overlay is pointed at the target's own copy of its image (which must be in its cache),
paths under the source's ROOT are rewritten to the target's, and the staging directory
becomes ROOT/guests/<deploy_id> in one rename. Until then nothing of the guest is on the
target but the staging directory, which `guest_discard` (and cleanup) remove.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from edgecloud.node.disks import running
from edgecloud.node.guest import GuestDir
from edgecloud.node.imagecache import DISKS_JSON, entry_path
from edgecloud.node.protocol import NodeError, bad, deploy_id, root, text
from edgecloud.node.qemuimg import run

STAGING = "incoming-guests"
TOKEN = re.compile(r"[0-9a-f]{8,32}")
# Files that belong to a running QEMU, not to the guest.
RUNTIME = {"qemu.pid", "qmp.sock", "vnc.sock", "hypervisor.log"}
IDLE_STAGING = 600.0  # seconds without a write after which a staging directory is stale


def _staging(base: Path, deploy: str, token: str) -> Path:
    return base / "cache" / STAGING / f"{deploy}.{token}"


def _token(request: dict[str, Any]) -> str:
    value = text(request, "token")
    if not TOKEN.fullmatch(value):
        raise bad("'token' must be 8 to 32 lowercase hex digits")
    return value


def guest_files(request: dict[str, Any]) -> dict[str, Any]:
    """List the files a stopped guest moves with: its disks, spec, saved memory, console."""
    guest = GuestDir(root(request), deploy_id(request))
    if guest.container.is_dir():
        raise NodeError("failed", f"{guest.deploy_id} is a container: containers do not move yet")
    if not guest.path.is_dir():
        raise NodeError("missing", f"{guest.deploy_id} is not on this host")
    if running(guest):
        raise NodeError("failed", f"{guest.deploy_id} is running: stop or save it first")
    files = [
        {"name": entry.name, "bytes": entry.stat().st_size}
        for entry in sorted(guest.path.iterdir())
        if entry.is_file() and not entry.is_symlink() and entry.name not in RUNTIME
    ]
    return {"files": files}


def guest_receive(request: dict[str, Any]) -> dict[str, Any]:
    """Make the staging directory the guest's files are copied into."""
    base, deploy, token = root(request), deploy_id(request), _token(request)
    guest = GuestDir(base, deploy)
    if guest.path.exists() and any(guest.path.iterdir()):
        raise NodeError("failed", f"{deploy} is already on this host")
    discard(base, deploy)  # what an earlier, failed move of this guest left
    staging = _staging(base, deploy, token)
    staging.mkdir(parents=True, exist_ok=True)
    return {"dir": str(staging)}


def _rewrite(value: Any, old: str, new: str) -> Any:
    """Replace the old ROOT prefix in every string of a JSON value."""
    if isinstance(value, str):
        if value == old or value.startswith(old + "/"):
            return new + value[len(old) :]
        return value
    if isinstance(value, list):
        return [_rewrite(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite(v, old, new) for k, v in value.items()}
    return value


def _rewrite_file(path: Path, old: str, new: str) -> None:
    if path.is_file():
        data = _rewrite(json.loads(path.read_text()), old, new)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(path)


def guest_adopt(request: dict[str, Any]) -> dict[str, Any]:
    """Turn the staging directory into the guest: rebase overlays, rewrite paths, rename."""
    base, deploy, token = root(request), deploy_id(request), _token(request)
    old_root = text(request, "old_root")
    if not old_root.startswith("/"):
        raise bad("'old_root' must be an absolute path")
    staging = _staging(base, deploy, token)
    if not staging.is_dir():
        raise NodeError("missing", f"nothing was received for {deploy}")
    disks_json = staging / DISKS_JSON
    records = json.loads(disks_json.read_text()).get("disks", {}) if disks_json.is_file() else {}
    for record in records.values():
        key = record.get("backing")
        if not key:
            continue
        cached = entry_path(base, str(key))
        if not cached.is_file():
            raise NodeError("missing", f"image {key} is not in this host's cache")
        disk = staging / Path(str(record["path"])).name
        fmt = str(record.get("image_format") or record.get("backing_format") or "raw")
        backing_fmt = _backing_format(disk, fmt)
        run(["qemu-img", "rebase", "-u", "-F", backing_fmt, "-b", str(cached), str(disk)])
    guest = GuestDir(base, deploy)
    _rewrite_file(disks_json, old_root, str(base))
    _rewrite_file(staging / "spec.json", old_root, str(base))
    if guest.path.exists():
        shutil.rmtree(guest.path)  # an empty leftover (guest_receive refused a full one)
    guest.path.parent.mkdir(parents=True, exist_ok=True)
    staging.replace(guest.path)
    return {}


def _backing_format(disk: Path, fallback: str) -> str:
    """Return the format the overlay says its backing file has."""
    found = json.loads(run(["qemu-img", "info", "-U", "--output=json", str(disk)]))
    return str(found.get("backing-filename-format") or fallback)


def discard(base: Path, deploy: str) -> None:
    """Remove every staging directory of the guest (an aborted move)."""
    parent = base / "cache" / STAGING
    if parent.is_dir():
        for entry in parent.glob(f"{deploy}.*"):
            shutil.rmtree(entry, ignore_errors=True)


def sweep(base: Path, idle: float = IDLE_STAGING) -> list[str]:
    """Remove staging directories nothing was written to for `idle` seconds (moves whose
    front-end could not clean up: the host was down when the move failed)."""
    parent = base / "cache" / STAGING
    if not parent.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in parent.iterdir():
        if not entry.is_dir() or entry.is_symlink():
            continue
        newest = max([entry.stat().st_mtime, *(f.stat().st_mtime for f in entry.iterdir())])
        if now - newest > idle:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def guest_discard(request: dict[str, Any]) -> dict[str, Any]:
    """Remove what a move left in staging."""
    discard(root(request), deploy_id(request))
    return {}
