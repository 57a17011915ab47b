"""Test hosts without hardware: network namespaces on one bridge, each with its own sshd.

Usage::

    with NetHosts(2, authorized_keys=[public_key_line(client_key)]) as hosts:
        SshTransport(hosts[0].address, client_key=client_key, host_key=hosts[0].host_key)

Layout of one `NetHosts` (P = this process's pid, S = a per-process sequence number)::

    root namespace: ecPxS 198.18.N.1/24 ──veth── uplink ┐
    echP-S-sw:      bridge br0 ── h0, h1, ...  <──────┘
    echP-S-0:       eth0 198.18.N.10/24 ──veth── h0;  sshd on 198.18.N.10:22
    echP-S-1:       eth0 198.18.N.11/24 ──veth── h1;  ...

No namespace has a default route; N is a /24 of 198.18.0.0/15 that no address or route of
the root namespace uses yet (picked under a lock file, so concurrent runs do not clash).
Each host has a directory: `root/` (datastores, node files), `ssh/` (its host key, sshd
config and log, authorized_keys) and a minimal `bashrc` that its sshd's private mount
namespace puts over /root/.bashrc (the real one runs `pyenv init`: +100 ms a command).

Teardown kills every process left in the namespaces (sshd first, by pid; then whatever
`ip netns pids` lists, all started there by the tests), deletes the namespaces (which
deletes the veths and the bridge) and removes the directories. Namespaces and links left
by a killed earlier run (their pid is gone), and its directories in the default temp dir,
are swept when the next `NetHosts` starts.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from edgecloud.drivers.provision.system import kill_and_wait as _kill_and_wait

__all__ = ["NetHost", "NetHosts", "NetHostsError", "sweep_stale"]

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22
TEST_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
LOCK_FILE = Path(tempfile.gettempdir()) / "edgecloud-nethosts.lock"

# The one script run inside a host's namespace: its own mount namespace, a minimal bashrc
# over root's, then sshd in the foreground. Paths come as positional arguments.
_SSHD_SCRIPT = (
    'if [ -e /root/.bashrc ]; then mount --bind "$1" /root/.bashrc || exit 1; fi; '
    'exec "$2" -D -e -f "$3"'
)
_MINIMAL_BASHRC = "# edgecloud test host: nothing to set up for SSH commands\n"
_NS_RE = re.compile(r"^ech(\d+)-\d+-(?:sw|\d+)$")
_LINK_RE = re.compile(r"^ec(\d+)x\d+$")
_DIR_RE = re.compile(r"^ech(\d+)-\d+-[a-z0-9_]{8}$")  # tempfile.mkdtemp(prefix=...)
_sequence = itertools.count()


class NetHostsError(RuntimeError):
    """A test host could not be set up."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetHostsError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _netns_pids(netns: str) -> list[int]:
    proc = _ip("netns", "pids", netns, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _delete_netns(netns: str) -> None:
    """Kill whatever still runs in `netns`, then delete it."""
    for _ in range(3):
        pids = _netns_pids(netns)
        if not pids:
            break
        _kill_and_wait(pids)
    _ip("netns", "del", netns, check=False)


def sweep_stale() -> list[str]:
    """Delete namespaces and root links left by NetHosts of processes that are gone."""
    swept: list[str] = []
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NS_RE.match(name)
        if match and not running(int(match.group(1))):
            _delete_netns(name)
            swept.append(name)
    for link in json.loads(_ip("-j", "link", "show").stdout or "[]"):
        match = _LINK_RE.match(link.get("ifname", ""))
        if match and not running(int(match.group(1))):
            _ip("link", "del", link["ifname"], check=False)
            swept.append(link["ifname"])
    for directory in Path(tempfile.gettempdir()).glob("ech*-*-*"):
        match = _DIR_RE.match(directory.name)
        if match and directory.is_dir() and not running(int(match.group(1))):
            shutil.rmtree(directory, ignore_errors=True)
            swept.append(str(directory))
    return swept


@contextlib.contextmanager
def _network_lock() -> Iterator[None]:
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _free_subnet() -> ipaddress.IPv4Network:
    """Return a /24 of the test range that nothing in the root namespace uses yet."""
    used: list[ipaddress.IPv4Network] = []
    for link in json.loads(_ip("-4", "-j", "addr", "show").stdout or "[]"):
        for info in link.get("addr_info", []):
            used.append(ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network)
    for route in json.loads(_ip("-4", "-j", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(dst, strict=False))
    candidates = list(TEST_RANGE.subnets(new_prefix=24))
    start = (os.getpid() * 7 + next(_sequence)) % len(candidates)
    for net in candidates[start:] + candidates[:start]:
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetHostsError("no free /24 left in 198.18.0.0/15")


def _wait_port(address: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10.0
    while True:
        if proc.poll() is not None:
            raise NetHostsError(f"sshd on {address} exited {proc.returncode}: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise NetHostsError(f"sshd on {address}:{port} does not answer: {log.read_text()}")
        time.sleep(0.02)


class NetHost:
    """One test host: a namespace with an address, its own sshd and its own directories."""

    def __init__(self, name: str, netns: str, address: str, directory: Path) -> None:
        self.name = name
        self.netns = netns
        self.address = address
        self.port = SSH_PORT
        self.directory = directory
        self.root = directory / "root"
        self.ssh_dir = directory / "ssh"
        self.host_key = ""
        self._sshd: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"NetHost({self.name}, {self.address}, netns={self.netns})"

    @property
    def sshd_pid(self) -> int | None:
        """The running sshd's pid, None while it is stopped."""
        return self._sshd.pid if self._sshd is not None else None

    def exec(
        self, argv: Sequence[str], *, timeout: float = 30.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside this host's network namespace (not over SSH)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def setup(self, authorized_keys: Sequence[str]) -> None:
        """Write the host's directories, key and sshd config (sshd is not started)."""
        self.root.mkdir(parents=True)
        self.ssh_dir.mkdir(mode=0o700)
        (self.ssh_dir / "authorized_keys").write_text(
            "".join(k.strip() + "\n" for k in authorized_keys)
        )
        (self.directory / "bashrc").write_text(_MINIMAL_BASHRC)
        self._write_host_key()
        config = {
            "Port": str(self.port),
            "ListenAddress": self.address,
            "HostKey": str(self.ssh_dir / "ssh_host_ed25519_key"),
            "PidFile": "none",
            "PermitRootLogin": "prohibit-password",
            "PubkeyAuthentication": "yes",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "UsePAM": "no",
            "StrictModes": "no",
            "AuthorizedKeysFile": str(self.ssh_dir / "authorized_keys"),
            "UseDNS": "no",
            "PrintMotd": "no",
            "LogLevel": "ERROR",
            "Subsystem": "sftp internal-sftp",
        }
        (self.ssh_dir / "sshd_config").write_text("".join(f"{k} {v}\n" for k, v in config.items()))

    def start_sshd(self) -> None:
        """Start this host's sshd (with its current host key) and wait for its port."""
        if self._sshd is not None:
            return
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        log = self.ssh_dir / "sshd.log"
        in_netns = ["ip", "netns", "exec", self.netns, "unshare", "-m", "--"]
        script = [_SSHD_SCRIPT, "sshd-" + self.name, str(self.directory / "bashrc"), SSHD]
        argv = [*in_netns, "sh", "-c", *script, str(self.ssh_dir / "sshd_config")]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        self._sshd = proc
        try:
            _wait_port(self.address, self.port, proc, log)
        except BaseException:
            self.stop_sshd()
            raise

    def stop_sshd(self) -> None:
        """Stop sshd and drop its connections (commands they started keep running)."""
        proc, self._sshd = self._sshd, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        # The per-connection sshd processes: without them the clients see their connection end.
        _kill_and_wait([p for p in _netns_pids(self.netns) if _comm(p) == "sshd"])

    def regenerate_host_key(self) -> str:
        """Give the host a new host key (restarting sshd if it ran); return the new key."""
        running = self._sshd is not None
        self.stop_sshd()
        for suffix in ("", ".pub"):
            (self.ssh_dir / f"ssh_host_ed25519_key{suffix}").unlink(missing_ok=True)
        self._write_host_key()
        if running:
            self.start_sshd()
        return self.host_key

    def _write_host_key(self) -> None:
        key = self.ssh_dir / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(key)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        kind, blob = Path(f"{key}.pub").read_text().split()[:2]
        self.host_key = f"{kind} {blob}"

    def teardown(self) -> None:
        """Stop sshd and everything else running in the namespace, then delete it."""
        with contextlib.suppress(Exception):
            self.stop_sshd()
        _delete_netns(self.netns)


class NetHosts:
    """Create `count` test hosts on one bridge; a context manager that removes them all."""

    def __init__(
        self, count: int, *, authorized_keys: Sequence[str], base_dir: Path | None = None
    ) -> None:
        if count < 1 or count > 200:
            raise ValueError("count must be between 1 and 200")
        self.count = count
        self.authorized_keys = list(authorized_keys)
        self.base_dir = base_dir
        self.tag = f"{os.getpid()}-{next(_sequence)}"
        self.prefix = f"ech{self.tag}"
        self.switch = f"{self.prefix}-sw"
        self.uplink = f"ec{self.tag.replace('-', 'x')}"
        self.hosts: list[NetHost] = []
        self.network: ipaddress.IPv4Network | None = None
        self.gateway = ""
        self.directory: Path | None = None
        self._namespaces: list[str] = []
        self._closed = False

    def __enter__(self) -> list[NetHost]:
        self.start()
        return self.hosts

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> Self:
        """Build the namespaces and start every sshd; on failure undo what was done."""
        atexit.register(self.close)
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        sweep_stale()
        self.directory = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-", dir=self.base_dir))
        # Like /var/lib on a real host: unprivileged containers' roots must pass through.
        self.directory.chmod(0o755)
        with _network_lock():
            self.network = _free_subnet()
            base = self.network.network_address
            self._add_netns(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            _ip(
                "link",
                "add",
                self.uplink,
                "type",
                "veth",
                "peer",
                "name",
                "uplink",
                "netns",
                self.switch,
            )
            _ip("-n", self.switch, "link", "set", "dev", "uplink", "master", "br0", "up")
            self.gateway = str(base + 1)
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.uplink)
            _ip("link", "set", self.uplink, "up")
        for i in range(self.count):
            netns = f"{self.prefix}-{i}"
            host = NetHost(f"host{i}", netns, str(base + 10 + i), self.directory / f"host{i}")
            self.hosts.append(host)
            self._add_netns(netns)
            port = f"h{i}"
            veth = ("type", "veth", "peer", "name", "eth0", "netns", netns)
            _ip("-n", self.switch, "link", "add", port, *veth)
            _ip("-n", self.switch, "link", "set", "dev", port, "master", "br0", "up")
            _ip("-n", netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", netns, "link", "set", "eth0", "up")
            host.setup(self.authorized_keys)
        for host in self.hosts:
            host.start_sshd()

    def _add_netns(self, netns: str) -> None:
        _ip("netns", "add", netns)
        self._namespaces.append(netns)
        _ip("-n", netns, "link", "set", "lo", "up")

    def close(self) -> None:
        """Kill what runs in the namespaces, delete them, the links and the directories."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for host in self.hosts:
            host.teardown()
        for netns in reversed(self._namespaces):
            _delete_netns(netns)
        deadline = time.monotonic() + 5.0
        while _ip("link", "show", self.uplink, check=False).returncode == 0:
            if time.monotonic() > deadline:
                _ip("link", "del", self.uplink, check=False)
                break
            time.sleep(0.02)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def namespaces(self) -> list[str]:
        """The namespaces this NetHosts created (and has not deleted yet)."""
        return list(self._namespaces)
