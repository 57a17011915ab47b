"""Configure provisioned hosts with the host playbook, run by `ansible-playbook` over SSH.

One run writes, in its work directory::

    ansible.cfg      everything Ansible keeps here is under the work directory
    inventory.yml    the hosts, with their address, port, root and provider `config`
    vars.yml         the front-end's key, the hypervisors and the caller's extra variables
    known_hosts      each host's pinned key (ssh checks it strictly)
    ansible.log      Ansible's log of the run
    home/ tmp/ cp/   Ansible's home, its local temp files and ssh's control sockets

The playbook is `playbooks/host.yml` next to this module (its header lists its variables).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.api import ProvidedHost
from edgecloud.drivers.provision.system import kill_and_wait, processes_with
from edgecloud.provision.ansible_files import (
    HYPERVISORS,
    ansible_cfg,
    extra_vars_text,
    inventory_text,
    known_hosts_line,
)
from edgecloud.provision.ansible_output import PlaybookOutput, TaskFailure

__all__ = ["PLAYBOOK", "ConfigureError", "configure_hosts", "playbook_command"]

PLAYBOOK = Path(__file__).parent / "playbooks" / "host.yml"
KEYSCAN_TIMEOUT = 10.0
# ssh binds a control socket as "<path>.<16 random characters>" first; sun_path holds 108.
_MAX_CONTROL_DIR = 108 - 1 - 10 - 17 - 1
_KILL_GRACE = 3.0


class ConfigureError(DriverError):
    """Configuring hosts failed; the message holds Ansible's own words about it.

    `failures` are the failed tasks (name, host, Ansible's lines), `hosts` the hosts that
    failed or could not be reached, `returncode` ansible-playbook's exit status (None when
    it did not run to its end).
    """

    def __init__(
        self,
        message: str,
        *,
        failures: Sequence[TaskFailure] = (),
        hosts: Sequence[str] = (),
        returncode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = tuple(failures)
        self.hosts = tuple(hosts)
        self.returncode = returncode


def configure_hosts(
    hosts: Sequence[ProvidedHost],
    *,
    private_key: Path,
    authorized_key: str,
    work_dir: Path,
    hypervisors: Sequence[str],
    on_line: Callable[[str], None],
    timeout: float = 600,
    extra_vars: Mapping[str, Any] | None = None,
) -> None:
    """Run the host playbook on `hosts` as root with `private_key`; raise on any failure.

    `authorized_key` (the front-end's public key line) is authorized on every host and
    `hypervisors` decide the packages. Each line ansible-playbook prints goes to `on_line`
    (without its newline) as it comes. A host without a `host_key` is pinned to the key
    ssh-keyscan fetches from it (said through `on_line`). The whole run, key scans
    included, is killed after `timeout` seconds. Raises `ConfigureError` with the failed
    tasks' names, their hosts and Ansible's own error lines.
    """
    if not hosts:
        return
    names = [host.name for host in hosts]
    if len(set(names)) != len(names):
        raise ConfigureError(f"host names must be unique: {', '.join(names)}")
    unknown = sorted(set(hypervisors) - set(HYPERVISORS))
    if unknown:
        raise ConfigureError(
            f"unknown hypervisor(s) {', '.join(unknown)} (known: {', '.join(HYPERVISORS)})"
        )
    key = authorized_key.strip()
    if not key or "\n" in key:
        raise ConfigureError("authorized_key must be one public key line")
    deadline = time.monotonic() + timeout
    work_dir = Path(work_dir).absolute()
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    work_dir.chmod(0o700)  # Ansible ignores an ansible.cfg in a world-writable directory
    known_hosts = work_dir / "known_hosts"
    lines = [_known_hosts_lines(host, on_line, deadline) for host in hosts]
    _write(known_hosts, "".join(lines))
    control_dir, temporary = _control_dir(work_dir)
    try:
        config = work_dir / "ansible.cfg"
        cfg = ansible_cfg(
            work_dir,
            forks=len(hosts),
            known_hosts=known_hosts,
            control_dir=control_dir,
            private_key=Path(private_key).absolute(),
        )
        _write(config, cfg)
        _write(work_dir / "inventory.yml", inventory_text(hosts))
        _write(work_dir / "vars.yml", extra_vars_text(key, hypervisors, extra_vars))
        argv = [
            *playbook_command(),
            "-i",
            str(work_dir / "inventory.yml"),
            "-e",
            f"@{work_dir / 'vars.yml'}",
            str(PLAYBOOK),
        ]
        _run(argv, config, work_dir, deadline, timeout, on_line)
    finally:
        _stop_control_masters(control_dir)
        if temporary:
            _remove_tree(control_dir)


def playbook_command() -> list[str]:
    """How to run ansible-playbook: the one next to this Python, else its module."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", "ansible.cli.playbook"]


# --- running -------------------------------------------------------------------------


def _run(
    argv: list[str],
    config: Path,
    work_dir: Path,
    deadline: float,
    timeout: float,
    on_line: Callable[[str], None],
) -> None:
    """Run ansible-playbook in a process group of its own, its output to `on_line`."""
    output = PlaybookOutput()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=work_dir,
            env=_environment(config),
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigureError(f"cannot run {argv[0]}: {exc}") from None
    assert proc.stdout is not None
    timed_out = False
    try:
        timed_out = not _follow(proc, deadline, output, on_line)
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _stop(proc, work_dir)
        proc.stdout.close()
    if timed_out:
        during = f" during TASK [{output.task}]" if output.task else ""
        raise ConfigureError(
            f"ansible-playbook timed out after {timeout:g} s{during} and was killed\n"
            f"{output.report()}",
            failures=output.failures,
            hosts=output.failed_hosts(),
        )
    if proc.returncode != 0 or output.failures or output.failed_hosts():
        hosts = output.failed_hosts()
        on = f" on {', '.join(hosts)}" if hosts else ""
        raise ConfigureError(
            f"host configuration failed{on} (ansible-playbook exit status {proc.returncode}; "
            f"log {work_dir / 'ansible.log'}):\n{output.report()}",
            failures=output.failures,
            hosts=hosts,
            returncode=proc.returncode,
        )


def _follow(
    proc: subprocess.Popen[bytes],
    deadline: float,
    output: PlaybookOutput,
    on_line: Callable[[str], None],
) -> bool:
    """Pass each output line on until the output ends (True) or the deadline (False)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not selector.select(min(remaining, 1.0)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *complete, pending = (pending + chunk).split(b"\n")
            for raw in complete:
                _emit(raw, output, on_line)
    if pending:
        _emit(pending, output, on_line)
    return True


def _emit(raw: bytes, output: PlaybookOutput, on_line: Callable[[str], None]) -> None:
    line = raw.decode(errors="replace").rstrip("\r")
    output.feed(line)
    on_line(line)


def _environment(config: Path) -> dict[str, str]:
    """This process's environment without ANSIBLE_* settings, pointing at our config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PYTHONUNBUFFERED="1",
    )
    if "utf" not in env.get("LC_ALL", env.get("LANG", "")).lower().replace("-", ""):
        env["LC_ALL"] = "C.UTF-8"  # ansible-core refuses other locale encodings
    return env


def _stop(proc: subprocess.Popen[bytes], work_dir: Path) -> None:
    """Stop ansible-playbook and everything it started that is still running.

    Its workers run in sessions of their own (it forwards SIGTERM to them), their ssh
    clients in the workers' groups: what escapes the group is found by the run's files
    on its command line.
    """
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=_KILL_GRACE)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what of the group outlived its leader
    workers = processes_with(f"{work_dir / 'inventory.yml'}", f"@{work_dir / 'vars.yml'}")
    clients = processes_with(f"UserKnownHostsFile={work_dir / 'known_hosts'}")
    kill_and_wait([*workers, *clients])


# --- host keys and control sockets ----------------------------------------------------


def _known_hosts_lines(host: ProvidedHost, on_line: Callable[[str], None], deadline: float) -> str:
    """The known_hosts lines of `host`: its given key, else what ssh-keyscan finds."""
    if host.host_key.strip():
        try:
            return known_hosts_line(host.address, host.port, host.host_key) + "\n"
        except ValueError as exc:
            raise ConfigureError(f"host {host.name}: {exc}") from None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ConfigureError(f"timed out before scanning the host key of {host.name}")
    wait = min(KEYSCAN_TIMEOUT, remaining)
    argv = ["ssh-keyscan", "-T", str(max(1, int(wait))), "-p", str(host.port), host.address]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=wait + 2)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigureError(f"ssh-keyscan of {host.name} ({host.address}): {exc}") from None
    found = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            found.append(known_hosts_line(host.address, host.port, f"{fields[1]} {fields[2]}"))
    if not found:
        said = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise ConfigureError(
            f"host {host.name} has no pinned host key and ssh-keyscan of "
            f"{host.address}:{host.port} found none: {said}"
        )
    for line in found:
        on_line(
            f"host {host.name} has no pinned host key: pinning what ssh-keyscan fetched "
            f"from {host.address}:{host.port} (trusted on first use): {line}"
        )
    return "".join(line + "\n" for line in found)


def _control_dir(work_dir: Path) -> tuple[Path, bool]:
    """Where ssh's control sockets go: work_dir/cp, or a short temp dir when too long."""
    preferred = work_dir / "cp"
    if len(str(preferred)) <= _MAX_CONTROL_DIR:
        preferred.mkdir(mode=0o700, exist_ok=True)
        return preferred, False
    return Path(tempfile.mkdtemp(prefix="edgecloud-cp-")), True


def _stop_control_masters(control_dir: Path) -> None:
    """End the ssh connections kept open for the run (ControlPersist masters)."""
    kill_and_wait(processes_with(f"{control_dir}/"))
    for socket_path in control_dir.glob("*"):
        socket_path.unlink(missing_ok=True)


def _remove_tree(path: Path) -> None:
    for child in path.glob("*"):
        child.unlink(missing_ok=True)
    path.rmdir()


def _write(path: Path, text: str) -> None:
    """Write a file of the run (0600: it names keys and hosts)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
