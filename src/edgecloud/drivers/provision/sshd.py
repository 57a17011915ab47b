"""One OpenSSH server per local host, run by hand in the host's network namespace.

Each host's `ssh/` directory holds its host key, `authorized_keys`, `sshd_config`, the pid
file and the log; sshd runs in the foreground (`-D -e`) in a session of its own, so it
outlives the process that started it and is stopped by pid.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.system import running

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22
START_TIMEOUT = 10.0
HOST_KEY = "ssh_host_ed25519_key"
CONFIG = "sshd_config"
LOG = "sshd.log"
_EXEC_GRACE = 0.5  # how long a command line may stay empty during an exec
PID_FILE = "sshd.pid"
AUTHORIZED_KEYS = "authorized_keys"


def ensure_host_key(ssh_dir: Path, comment: str) -> str:
    """Make the host's ed25519 key unless it has one; return its public key line."""
    key = ssh_dir / HOST_KEY
    public = ssh_dir / f"{HOST_KEY}.pub"
    if not (key.is_file() and public.is_file()):
        key.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)]
        try:
            subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise DriverError(f"ssh-keygen for {comment}: {exc}") from None
    kind, blob = public.read_text().split()[:2]
    return f"{kind} {blob}"


def write_config(ssh_dir: Path, address: str, authorized_key: str) -> Path:
    """Write the host's authorized_keys and sshd_config; return the config's path."""
    keys = ssh_dir / AUTHORIZED_KEYS
    keys.write_text(authorized_key.strip() + "\n")
    keys.chmod(0o600)
    options = {
        "Port": str(SSH_PORT),
        "ListenAddress": address,
        "HostKey": str(ssh_dir / HOST_KEY),
        "PidFile": str(ssh_dir / PID_FILE),
        "AuthorizedKeysFile": str(keys),
        "PermitRootLogin": "prohibit-password",
        "PubkeyAuthentication": "yes",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "UsePAM": "no",
        "StrictModes": "no",
        "UseDNS": "no",
        "PrintMotd": "no",
        "Subsystem": "sftp internal-sftp",
    }
    config = ssh_dir / CONFIG
    text = "".join(f"{k} {v}\n" for k, v in options.items())
    if not config.is_file() or config.read_text() != text:
        config.write_text(text)
    return config


def playbook_vars(ssh_dir: Path) -> dict[str, str]:
    """The host playbook's variables for this sshd: its files, and SIGHUP to reload it.

    (The playbook's defaults are the machine's own /etc/ssh and /root/.ssh, which a
    namespace host must not touch.)
    """
    return {
        "edgecloud_sshd_config": str(ssh_dir / CONFIG),
        "edgecloud_authorized_keys": str(ssh_dir / AUTHORIZED_KEYS),
        "edgecloud_sshd_reload": "pidfile",
        "edgecloud_sshd_pid_file": str(ssh_dir / PID_FILE),
        "edgecloud_sshd_binary": SSHD,
    }


def is_ours(pid: int | None, config: Path) -> bool:
    """Whether `pid` is a live sshd started with `config` (not a reused pid).

    A process in the middle of an exec has an empty command line for a moment: `ip netns
    exec` becoming sshd, or sshd re-executing itself on SIGHUP (a reload); that is waited
    out rather than taken for another process.
    """
    deadline = time.monotonic() + _EXEC_GRACE
    while pid and running(pid):
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if line or time.monotonic() > deadline:
            return b"sshd" in line and str(config).encode() in line
        time.sleep(0.005)
    return False


def start(netns: str, config: Path) -> subprocess.Popen[bytes]:
    """Start sshd with `config` in `netns` (logging next to the config); do not wait."""
    # sshd's privilege separation directory (made by the package's service otherwise).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    argv = ["ip", "netns", "exec", netns, SSHD, "-f", str(config), "-D", "-e"]
    with open(config.parent / LOG, "ab") as log:
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            raise DriverError(f"cannot start sshd in {netns}: {exc}") from None


def wait_port(address: str, pid: int, config: Path, timeout: float = START_TIMEOUT) -> None:
    """Wait until sshd `pid` accepts connections on address:22; raise with its log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        if not is_ours(pid, config):
            raise DriverError(f"sshd for {address} exited: {log_tail(config)}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection((address, SSH_PORT), timeout=0.5),
        ):
            return
        if time.monotonic() > deadline:
            raise DriverError(
                f"sshd on {address}:{SSH_PORT} does not answer after {timeout:g} s: "
                f"{log_tail(config)}"
            )
        time.sleep(0.02)


def log_tail(config: Path, size: int = 2000) -> str:
    """The end of the log of the sshd run with `config`."""
    try:
        data = (config.parent / LOG).read_bytes()[-size:]
    except OSError:
        return "(no log)"
    return data.decode(errors="replace").strip() or "(empty log)"
