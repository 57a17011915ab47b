"""Running qemu-img and the other disk tools: argument lists, timeouts, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgecloud.node.protocol import NodeError

SBIN = ("/usr/sbin", "/sbin")  # a non-login SSH session's PATH may lack them
SHORT = 60.0  # seconds: info, create, snapshot, mkfs of a sparse file
LONG = 6 * 3600.0  # seconds: copying or converting a whole disk


def tool(name: str) -> str:
    """Return the path of a program, or fail saying it is not installed."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise NodeError("failed", f"{name} is not installed on this host (needed for disks)")


def run(argv: list[str], timeout: float = SHORT) -> str:
    """Run a tool (argv[0] looked up by `tool`); return its stdout, or fail with its stderr."""
    program = tool(argv[0])
    try:
        done = subprocess.run(
            [program, *argv[1:]],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeError("failed", f"{argv[0]} {argv[1]} took over {timeout:g} s") from exc
    except OSError as exc:
        raise NodeError("failed", f"cannot run {argv[0]}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise NodeError(
            "failed", f"{argv[0]} {argv[1]} failed (exit status {done.returncode}): {detail}"
        )
    return done.stdout


def info(path: Path, fmt: str | None = None) -> dict[str, Any]:
    """Return `qemu-img info` of an image (read with -U: a running guest may hold it)."""
    argv = ["qemu-img", "info", "--output=json", "-U"]
    if fmt:
        argv += ["-f", fmt]
    try:
        found = json.loads(run([*argv, str(path)]))
    except ValueError as exc:
        raise NodeError("failed", f"qemu-img info {path}: not JSON: {exc}") from exc
    if not isinstance(found, dict):
        raise NodeError("failed", f"qemu-img info {path}: not an object")
    return found


def self_contained(path: Path, fmt: str) -> dict[str, Any]:
    """Return the info of a cached image, refusing one that refers to other files.

    A qcow2 image names its own backing file or external data file: an uploaded image
    that did would hand any host file (say /etc/shadow) to the guest.
    """
    found = info(path, fmt)
    data = (found.get("format-specific") or {}).get("data") or {}
    if found.get("backing-filename") or found.get("full-backing-filename"):
        raise NodeError("failed", f"image {path.name} has a backing file: refused")
    if isinstance(data, dict) and data.get("data-file"):
        raise NodeError("failed", f"image {path.name} has an external data file: refused")
    return found


def snapshots(found: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the internal snapshots listed by qemu-img info or QMP query-block."""
    listed = found.get("snapshots") or []
    result = []
    for snap in listed if isinstance(listed, list) else []:
        if not isinstance(snap, dict):
            continue
        entry: dict[str, Any] = {"name": str(snap.get("name", "")), "id": str(snap.get("id", ""))}
        if "vm-state-size" in snap:
            entry["vm_state_size"] = int(snap["vm-state-size"])
        if "date-sec" in snap:
            entry["date"] = int(snap["date-sec"]) + int(snap.get("date-nsec", 0)) / 1e9
        result.append(entry)
    return result
