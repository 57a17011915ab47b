"""Running network commands (argv lists only, never a shell) and reading the kernel's state.

Everything runs in the calling process's network namespace: on a host that is the host's
own; a namespace test host's node code runs inside its namespace.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecloud.node.protocol import NodeError

TIMEOUT = 30.0
PROC_SYS = Path("/proc/sys")


def run(argv: Sequence[str], stdin: str | None = None, check: bool = True) -> str:
    """Run a command; return its stdout. A failure is a NodeError("failed") with stderr."""
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise NodeError("failed", f"{argv[0]} is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise NodeError("failed", f"{' '.join(argv)[:200]}: no answer in {TIMEOUT:.0f} s") from None
    if check and done.returncode != 0:
        why = (done.stderr or done.stdout).strip()[-500:]
        raise NodeError("failed", f"{' '.join(argv)[:200]}: {why}")
    return done.stdout


def json_of(argv: Sequence[str]) -> Any:
    """Run a command printing JSON (``ip -j``, ``bridge -j``, ``nft -j``); parse it."""
    out = run(argv).strip()
    try:
        return json.loads(out) if out else []
    except ValueError:
        raise NodeError("failed", f"{' '.join(argv)}: not JSON: {out[:200]}") from None


def links() -> dict[str, dict[str, Any]]:
    """Return every link of this namespace by name (``ip -d -j link show``)."""
    listed = json_of(("ip", "-d", "-j", "link", "show"))
    return {str(link["ifname"]): link for link in listed if isinstance(link, dict)}


def kind_of(link: dict[str, Any]) -> str:
    """Return a link's kind ("bridge", "vxlan", "vlan", "veth", "" for a plain device)."""
    return str((link.get("linkinfo") or {}).get("info_kind") or "")


def vni_of(link: dict[str, Any]) -> int | None:
    """Return the VXLAN/802.1Q id of a link (None when it has none)."""
    data = (link.get("linkinfo") or {}).get("info_data") or {}
    value = data.get("id")
    return int(value) if isinstance(value, int) else None


def flood_list(dev: str) -> list[str]:
    """Return the destinations of a VXLAN device's all-zero FDB entries (its flood list)."""
    entries = json_of(("bridge", "-j", "fdb", "show", "dev", dev))
    return sorted(
        str(e["dst"])
        for e in entries
        if isinstance(e, dict) and e.get("mac") == "00:00:00:00:00:00" and e.get("dst")
    )


def device_of(address: str) -> str | None:
    """Return the device that carries an address in this namespace."""
    for link in json_of(("ip", "-j", "addr", "show")):
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            if info.get("local") == address:
                return str(link["ifname"])
    return None


def addresses(dev: str) -> set[str]:
    """Return a device's addresses as "address/prefix"."""
    found = set()
    for link in json_of(("ip", "-j", "addr", "show", "dev", dev)):
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            found.add(f"{info.get('local')}/{info.get('prefixlen')}")
    return found


def sysctl_read(path: str) -> str | None:
    """Return a /proc/sys value (path like net/ipv4/ip_forward), None when absent."""
    with contextlib.suppress(OSError):
        return (PROC_SYS / path).read_text().strip()
    return None


def sysctl_write(path: str, value: str) -> None:
    """Set a /proc/sys value (of this network namespace for net/...)."""
    try:
        (PROC_SYS / path).write_text(value + "\n")
    except OSError as exc:
        raise NodeError("failed", f"cannot set {path.replace('/', '.')}={value}: {exc}") from None
