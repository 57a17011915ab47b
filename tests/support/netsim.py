"""Guests without QEMU or LXC, for the host network code (edgecloud.node.net).

A simulated guest is a network namespace of its own holding ``eth0`` (the NIC's MAC and
address, a default route via its gateway when it has one); the other end of that veth is
left in the test host's namespace under the tap name the node expects (``ec<vm>n<i>``),
ready to be plugged. `NetNode` runs the node's network functions inside a test host's
namespace from the node zipapp, as a host would run them (``nsenter --net``, the host's
``/usr/bin/python3``).

Guest namespaces are named ``ecg<pid>-<n>``; `sweep_guests` removes those of test
processes that are gone. `NetNode.kill_frr` ends the FRR daemons a host's ROOT started (by
their pid files) and removes their sockets' directory: for finalizers after a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecloud.node import proc
from tests.support.nethosts import NetHost, running

HOST_PYTHON = "/usr/bin/python3"
RUN_FRR = Path("/var/run/frr")
_GUEST_NS = re.compile(r"^ecg(\d+)-\d+$")
_numbers = itertools.count(1)

# Runs one function of edgecloud.node.net.host: argv is [pyz, function, JSON kwargs].
RUNNER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from edgecloud.node.net import host
kwargs = json.loads(sys.argv[3])
kwargs["root"] = Path(kwargs["root"])
started = time.perf_counter()
getattr(host, sys.argv[2])(**kwargs)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def sweep_guests() -> None:
    """Delete guest namespaces left by test processes that are gone."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _GUEST_NS.match(name)
        if match and not running(int(match.group(1))):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


class NetNode:
    """The node's network code, run in one test host's namespace against its ROOT."""

    def __init__(self, host: NetHost, pyz: Path, frr_name: str) -> None:
        self.host = host
        self.pyz = pyz
        self.frr_name = frr_name
        self.root = host.root

    def sh(self, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run argv in the host's network namespace (nothing else of it is entered)."""
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.host.netns}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def call(self, function: str, **kwargs: Any) -> float:
        """Run edgecloud.node.net.host.<function>(root=ROOT, **kwargs); return its seconds."""
        args = json.dumps({"root": str(self.root), **kwargs})
        done = self.sh([HOST_PYTHON, "-c", RUNNER, str(self.pyz), function, args])
        assert done.returncode == 0, f"{function} on {self.host.name}: {done.stderr[-3000:]}"
        return float(json.loads(done.stdout.splitlines()[-1])["seconds"])

    def fails(self, function: str, **kwargs: Any) -> str:
        """Run a function that must fail; return its error output."""
        args = json.dumps({"root": str(self.root), **kwargs})
        done = self.sh([HOST_PYTHON, "-c", RUNNER, str(self.pyz), function, args])
        assert done.returncode != 0, f"{function} on {self.host.name} should have failed"
        return done.stderr

    def action(self, action: str, **fields: Any) -> dict[str, Any]:
        """Run a node action (``python3 node.pyz ACTION``) in the namespace; its answer."""
        done = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.host.netns}", HOST_PYTHON, str(self.pyz), action],
            input=json.dumps({"root": str(self.root), **fields}),
            capture_output=True,
            text=True,
            timeout=60,
        )
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def links(self) -> dict[str, dict[str, Any]]:
        """Return the host's links by name."""
        listed = json.loads(self.sh(["ip", "-d", "-j", "link", "show"]).stdout or "[]")
        return {link["ifname"]: link for link in listed}

    def nft_tables(self) -> list[str]:
        """Return "family name" of every nftables table in the host's namespace."""
        listed = json.loads(self.sh(["nft", "-j", "list", "tables"]).stdout or "{}")
        return [
            f"{item['table']['family']} {item['table']['name']}"
            for item in listed.get("nftables", [])
            if "table" in item
        ]

    def sysctl(self, path: str) -> str:
        """Return a /proc/sys value as the host's namespace sees it."""
        return self.sh(["cat", f"/proc/sys/{path}"]).stdout.strip()

    def frr_pids(self) -> dict[str, int]:
        """Return the live FRR daemons started under this ROOT, by pid file."""
        found = {}
        for pidfile in (self.root / "frr").glob("*/*.pid"):
            pid = proc.read_pid(pidfile)
            if proc.alive(pid, str(pidfile)) and pid is not None:
                found[str(pidfile)] = pid
        return found

    def frr_alive(self, pids: dict[str, int]) -> list[int]:
        """Return which of these daemons (pid file -> pid) still run."""
        return [pid for pidfile, pid in pids.items() if proc.alive(pid, pidfile)]

    def vtysh(self, command: str) -> str:
        """Run one vtysh command against this host's FRR."""
        done = subprocess.run(
            ["vtysh", "-N", self.frr_name, "-c", command],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout

    def kill_frr(self) -> None:
        """End the FRR daemons of this ROOT (by pid file) and remove their sockets."""
        for pidfile, pid in self.frr_pids().items():
            proc.kill(pid, pidfile)
        shutil.rmtree(RUN_FRR / self.frr_name, ignore_errors=True)


class SimGuest:
    """A guest as a namespace with one NIC; its host end is the tap the node plugs."""

    def __init__(self, node: NetNode, nic: dict[str, Any], vm_id: int) -> None:
        self.node = node
        self.nic = nic
        self.vm_id = vm_id
        self.deploy_id = f"one-{vm_id}"
        self.tap = f"ec{vm_id}n{nic['nic_id']}"
        self.netns = f"ecg{os.getpid()}-{next(_numbers)}"
        self.created = False

    def create(self) -> None:
        """Make the namespace and the veth pair (its host end stays unplugged)."""
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        self.created = True
        peer = ("peer", "name", "eth0", "netns", self.netns)
        done = self.node.sh(["ip", "link", "add", self.tap, "type", "veth", *peer])
        assert done.returncode == 0, done.stderr
        mac, ip, prefix = self.nic["mac"], self.nic["ip"], self.nic.get("prefix") or 24
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "set", "eth0", "address", mac],
            ["addr", "add", f"{ip}/{prefix}", "dev", "eth0"],
            ["link", "set", "eth0", "up"],
        ):
            subprocess.run(["ip", "-n", self.netns, *argv], check=True, capture_output=True)
        if self.nic.get("gateway"):
            gateway = ["route", "add", "default", "via", self.nic["gateway"]]
            subprocess.run(["ip", "-n", self.netns, *gateway], check=True, capture_output=True)

    def exec(self, argv: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run argv in the guest's namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ping(self, target: str, count: int = 1, wait: int = 1) -> bool:
        """Ping once (or `count` times); return whether any answer came."""
        done = self.exec(["busybox", "ping", "-c", str(count), "-W", str(wait), target])
        return done.returncode == 0

    def ping_until(self, target: str, timeout: float = 20.0) -> float:
        """Ping until an answer comes; return how long that took (AssertionError at timeout)."""
        started = time.monotonic()
        while not self.ping(target):
            assert time.monotonic() - started < timeout, f"{self.netns}: no answer from {target}"
        return time.monotonic() - started

    def eth0_index(self) -> int:
        """Return the ifindex of the guest's eth0 (it changes if the NIC is recreated)."""
        listed = json.loads(
            subprocess.run(
                ["ip", "-n", self.netns, "-j", "link", "show", "eth0"],
                capture_output=True,
                text=True,
            ).stdout
        )
        return int(listed[0]["ifindex"])

    def delete(self) -> None:
        """Delete the namespace (and so the veth pair)."""
        if self.created:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
            self.created = False


def rtts(argv_prefix: Sequence[str], target: str, count: int = 20) -> list[float]:
    """Ping `count` times through `argv_prefix` (a namespace runner); return the RTTs (ms)."""
    done = subprocess.run(
        [*argv_prefix, "busybox", "ping", "-c", str(count), "-i", "0.05", target],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [float(m) for m in re.findall(r"time=([0-9.]+) ms", done.stdout)]


def median(values: Sequence[float]) -> float:
    """Return the median (0.0 of nothing)."""
    return statistics.median(values) if values else 0.0


def cleanup(nodes: Sequence[NetNode], guests: Sequence[SimGuest]) -> None:
    """Finalizer: guests' namespaces gone, FRR daemons of these ROOTs ended."""
    for guest in guests:
        with contextlib.suppress(Exception):
            guest.delete()
    for node in nodes:
        with contextlib.suppress(Exception):
            node.kill_frr()
