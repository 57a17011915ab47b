"""This machine's network namespaces, links, addresses and processes (for the local provider).

Everything here runs `ip` (iproute2) or reads /proc; failures raise `DriverError` naming the
command and what it printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from edgecloud.drivers.base import DriverError

IP_TIMEOUT = 30.0
# RFC 2544's benchmarking range: never routed on the internet, rarely used on a LAN.
SITE_RANGE = ipaddress.IPv4Network("198.18.0.0/15")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip args...`; raise `DriverError` when it fails (unless not `check`)."""
    try:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DriverError(f"ip {' '.join(args)}: {exc}") from None
    if check and proc.returncode != 0:
        raise DriverError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def namespaces() -> list[str]:
    """The names of the network namespaces `ip netns` knows."""
    lines = ip("netns", "list").stdout.splitlines()
    return [line.split()[0] for line in lines if line.split()]


def links() -> list[dict[str, Any]]:
    """The links of the root namespace, as `ip -j link show` describes them."""
    found: list[dict[str, Any]] = json.loads(ip("-j", "link", "show").stdout or "[]")
    return found


def link_exists(name: str, netns: str | None = None) -> bool:
    """Whether link `name` exists in the root namespace (or in `netns`)."""
    where = ("-n", netns) if netns else ()
    return ip(*where, "link", "show", "dev", name, check=False).returncode == 0


def netns_pids(netns: str) -> list[int]:
    """The processes whose network namespace is `netns` (none when it does not exist)."""
    proc = ip("netns", "pids", netns, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line of `pid`, arguments joined by spaces ("" when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def processes_with(*needles: str) -> list[int]:
    """The live processes whose command line contains every one of `needles`."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        line = cmdline(int(entry.name))
        if line and all(n in line for n in needles) and running(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def kill_and_wait(pids: Sequence[int], timeout: float = 5.0) -> None:
    """SIGKILL `pids` and wait until they are gone (or zombies)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def empty_netns(netns: str) -> list[int]:
    """Kill every process in `netns` (a few rounds: some may fork meanwhile); return them."""
    killed: list[int] = []
    for _ in range(5):
        pids = netns_pids(netns)
        if not pids:
            break
        kill_and_wait(pids)
        killed.extend(p for p in pids if p not in killed)
    return killed


def delete_link(name: str) -> bool:
    """Delete link `name` of the root namespace; return whether it was there."""
    return ip("link", "del", "dev", name, check=False).returncode == 0


def used_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of the root namespace's addresses and routes (every table)."""
    used: list[ipaddress.IPv4Network] = []
    for link in json.loads(ip("-4", "-j", "addr", "show").stdout or "[]"):
        for info in link.get("addr_info", []):
            with contextlib.suppress(KeyError, ValueError):
                interface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
                used.append(interface.network)
    for route in json.loads(ip("-4", "-j", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(dst, strict=False))
    return used


def free_subnet(avoid: Collection[ipaddress.IPv4Network], start: int) -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/15 that no address or route here, nor `avoid`, overlaps.

    The search starts at the `start`-th /24 (callers spread their choices)."""
    used = [*used_networks(), *avoid]
    candidates = list(SITE_RANGE.subnets(new_prefix=24))
    first = start % len(candidates)
    for net in candidates[first:] + candidates[:first]:
        if not any(net.overlaps(u) for u in used):
            return net
    raise DriverError(f"no free /24 left in {SITE_RANGE} on this machine")


def is_free(net: ipaddress.IPv4Network) -> bool:
    """Whether no address or route of the root namespace overlaps `net`."""
    return not any(net.overlaps(u) for u in used_networks())


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (made if missing) for the block."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
