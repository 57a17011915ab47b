"""FRR for EVPN vnets: one zebra + bgpd per host, in a pathspace of its own (``-N name``).

Started by hand (no systemd, no /etc/frr/daemons): ``zebra -d -N <name> -P 0 -f
ROOT/frr/<name>/zebra.conf -i ROOT/frr/<name>/zebra.pid --log file:...``, then bgpd the
same way. ``-N`` puts the vty sockets and zebra's API socket under /var/run/frr/<name>/
(so ``vtysh -N <name>`` reaches them); ``-P 0`` opens no TCP vty. The daemons run as the
``frr`` user (Debian's package makes it; root is not in the vty group), so ROOT/frr/<name>
belongs to frr and ROOT must be traversable by it.

bgpd: ``router bgp <asn>``, ``bgp router-id <host address>``, iBGP peer group
``edgecloud`` with ``address-family l2vpn evpn`` / ``activate`` / ``advertise-all-vni``.
A host peers with the route reflector only; the reflector peers with every other host,
all of them ``route-reflector-client``; with no reflector named, every host peers with
every other (full mesh). zebra learns the VNIs from the kernel's VXLAN devices (enslaved
to a bridge, up) and installs what BGP learns (remote MACs, flood entries).

A changed bgpd config (new peers, AS, reflector) restarts bgpd; zebra keeps running.
`stop` ends both (SIGTERM, SIGKILL after 5 s; by pid file, and only a process whose
command line names that pid file) and removes their files.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from edgecloud.node import proc
from edgecloud.node.net import cmd
from edgecloud.node.net.model import HostNet
from edgecloud.node.protocol import NodeError, bad

FRR_DIR = Path("/usr/lib/frr")
RUN_DIR = Path("/var/run/frr")
USER = "frr"
PEER_GROUP = "edgecloud"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def neighbors(host: HostNet) -> tuple[list[str], bool]:
    """Return (the BGP neighbours of this host, whether it reflects routes to them)."""
    rr = host.route_reflector
    if rr is None:
        return sorted(host.peers, key=ipaddress.ip_address), False
    if rr == host.address:
        return sorted(host.peers, key=ipaddress.ip_address), True
    return [rr], False


def render_bgpd(host: HostNet, name: str) -> str:
    """Return bgpd's config for this host."""
    if host.address is None or ":" in host.address:
        raise bad("EVPN needs the host's IPv4 underlay address (network.address)")
    peers, reflector = neighbors(host)
    lines = [
        "! written by edgecloud for this host's EVPN vnets: rewritten on change, do not edit",
        "frr defaults datacenter",
        f"hostname {name}",
        "!",
        f"router bgp {host.asn}",
        f" bgp router-id {host.address}",
        " no bgp default ipv4-unicast",
        f" neighbor {PEER_GROUP} peer-group",
        f" neighbor {PEER_GROUP} remote-as internal",
        f" neighbor {PEER_GROUP} update-source {host.address}",
        *[f" neighbor {peer} peer-group {PEER_GROUP}" for peer in peers],
        " !",
        " address-family l2vpn evpn",
        f"  neighbor {PEER_GROUP} activate",
        *([f"  neighbor {PEER_GROUP} route-reflector-client"] if reflector else []),
        "  advertise-all-vni",
        " exit-address-family",
        "exit",
        "!",
    ]
    return "\n".join(lines) + "\n"


def render_zebra(name: str) -> str:
    """Return zebra's config (nothing beyond its name: it follows the kernel)."""
    return f"! written by edgecloud\nhostname {name}\n!\n"


@dataclass(frozen=True)
class Frr:
    """The files of one FRR pathspace: ROOT/frr/<name>/ and /var/run/frr/<name>/."""

    root: Path
    name: str

    @property
    def dir(self) -> Path:
        """Return ROOT/frr/<name>."""
        return self.root / "frr" / self.name

    @property
    def run_dir(self) -> Path:
        """Return /var/run/frr/<name> (vty sockets, zserv.api)."""
        return RUN_DIR / self.name

    def conf(self, daemon: str) -> Path:
        """Return a daemon's config file."""
        return self.dir / f"{daemon}.conf"

    def pidfile(self, daemon: str) -> Path:
        """Return a daemon's pid file (its path also names the process)."""
        return self.dir / f"{daemon}.pid"

    def pid(self, daemon: str) -> int | None:
        """Return a daemon's pid while it runs, else None."""
        pid = proc.read_pid(self.pidfile(daemon))
        return pid if proc.alive(pid, str(self.pidfile(daemon))) else None

    def argv(self, daemon: str) -> list[str]:
        """Return the command that starts a daemon in the background."""
        log = self.dir / f"{daemon}.log"
        return [
            str(FRR_DIR / daemon),
            *("-d", "-N", self.name, "-P", "0"),
            *("-f", str(self.conf(daemon)), "-i", str(self.pidfile(daemon))),
            *("--log", f"file:{log}"),
        ]


def _owner() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        raise NodeError("failed", "EVPN needs FRR: there is no 'frr' user on this host") from None
    return entry.pw_uid, entry.pw_gid


def _write(frr: Frr, daemon: str, text: str, owner: tuple[int, int]) -> None:
    path = frr.conf(daemon)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chown(tmp, *owner)
    tmp.chmod(0o640)
    tmp.replace(path)


def _start(frr: Frr, daemon: str) -> None:
    frr.pidfile(daemon).unlink(missing_ok=True)
    cmd.run(frr.argv(daemon))
    deadline = time.monotonic() + START_TIMEOUT
    ready = frr.run_dir / ("zserv.api" if daemon == "zebra" else f"{daemon}.vty")
    while frr.pid(daemon) is None or not ready.exists():
        if time.monotonic() > deadline:
            log = frr.dir / f"{daemon}.log"
            tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
            raise NodeError("failed", f"FRR {daemon} ({frr.name}) did not start: {tail}")
        time.sleep(0.01)


def _terminate(frr: Frr, daemon: str) -> None:
    pid = frr.pid(daemon)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not proc.wait_gone(pid, str(frr.pidfile(daemon)), STOP_TIMEOUT):
            proc.kill(pid, str(frr.pidfile(daemon)))
    frr.pidfile(daemon).unlink(missing_ok=True)


def ensure(root: Path, host: HostNet, name: str) -> str:
    """Make FRR run with this host's config; return "started", "restarted" or "unchanged"."""
    if not all((FRR_DIR / d).exists() for d in ("zebra", "bgpd")):
        raise NodeError("failed", f"EVPN needs FRR (zebra, bgpd in {FRR_DIR}) on this host")
    frr = Frr(root, name)
    bgpd = render_bgpd(host, name)
    owner = _owner()
    frr.dir.mkdir(parents=True, exist_ok=True)
    os.chown(frr.dir, *owner)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    state = "unchanged"
    if frr.pid("zebra") is None:
        _terminate(frr, "bgpd")  # a bgpd without its zebra is of no use
        _write(frr, "zebra", render_zebra(name), owner)
        _start(frr, "zebra")
        state = "started"
    old = frr.conf("bgpd").read_text() if frr.conf("bgpd").exists() else None
    if frr.pid("bgpd") is None or old != bgpd:
        if frr.pid("bgpd") is not None:
            _terminate(frr, "bgpd")
            state = "restarted"
        _write(frr, "bgpd", bgpd, owner)
        _start(frr, "bgpd")
        if state == "unchanged":  # bgpd alone was not running
            state = "started"
    return state


def stop(root: Path, name: str) -> None:
    """Stop this pathspace's bgpd and zebra; remove their files and sockets."""
    frr = Frr(root, name)
    for daemon in ("bgpd", "zebra"):
        _terminate(frr, daemon)
    shutil.rmtree(frr.dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        frr.dir.parent.rmdir()  # ROOT/frr, when no other pathspace is left
    if frr.run_dir.is_dir():
        for leftover in frr.run_dir.iterdir():
            if leftover.suffix in (".vty", ".api", ".pid") or leftover.is_socket():
                leftover.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            frr.run_dir.rmdir()


def running(root: Path, name: str) -> dict[str, int | None]:
    """Return the pids of this pathspace's daemons (None for one that is not running)."""
    frr = Frr(root, name)
    return {daemon: frr.pid(daemon) for daemon in ("zebra", "bgpd")}
