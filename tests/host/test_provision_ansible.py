"""Configuring hosts with the host playbook, over SSH, on the local provider's namespace hosts.

Namespace hosts share this machine's filesystem: the playbook must only touch the files the
provider names in `ProvidedHost.config`, never the machine's own sshd config or root's keys.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecloud.drivers.provision.api import ProvidedHost
from edgecloud.drivers.provision.local import LocalProvider
from edgecloud.drivers.provision.system import processes_with
from edgecloud.drivers.transport import SshTransport, public_key_line
from edgecloud.provision import HostSpec
from edgecloud.provision.ansible import ConfigureError, configure_hosts
from edgecloud.provision.ansible_output import PlaybookOutput

pytestmark = pytest.mark.host

_sequence = itertools.count()
# What the playbook would change on this machine if it ignored the provider's host vars.
MACHINE_FILES = [
    Path("/etc/ssh/sshd_config"),
    Path("/root/.ssh/authorized_keys"),
    Path("/etc/sysctl.d/90-edgecloud.conf"),
]


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(tmp_path / "state")


@pytest.fixture
def provision_id(provider: LocalProvider) -> Iterator[str]:
    """A fresh provision id; whatever the test leaves under it is removed afterwards."""
    pid = f"a{os.getpid()}-{next(_sequence)}"
    try:
        yield pid
    finally:
        provider.delete_all(pid)


def make_hosts(
    provider: LocalProvider, provision_id: str, client_key: Path, count: int
) -> list[ProvidedHost]:
    specs = [
        HostSpec(index=i, name=f"host{i}", address=None, hypervisors=["lxc"]) for i in range(count)
    ]
    return provider.create_hosts(provision_id, specs, {}, public_key_line(client_key))


class Run:
    """One configure_hosts call: its output lines and how long it took."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.lines: list[str] = []
        self.seconds = 0.0

    def output(self) -> PlaybookOutput:
        parsed = PlaybookOutput()
        for line in self.lines:
            parsed.feed(line)
        return parsed


def configure(hosts: list[ProvidedHost], client_key: Path, work_dir: Path, **kwargs: object) -> Run:
    run = Run(work_dir)
    started = time.monotonic()
    try:
        configure_hosts(
            hosts,
            private_key=client_key,
            authorized_key=public_key_line(client_key),
            work_dir=work_dir,
            hypervisors=["kvm", "lxc"],
            on_line=run.lines.append,
            **kwargs,  # type: ignore[arg-type]
        )
    finally:
        run.seconds = time.monotonic() - started
    # Nothing of the run is left running: ansible-playbook, its workers, ssh.
    assert processes_with(f"{work_dir}/") == []
    return run


def snapshot() -> dict[str, object]:
    """The machine-wide files the playbook must leave alone: content, mode, change time."""
    found: dict[str, object] = {}
    for path in MACHINE_FILES:
        if path.exists():
            info = path.stat()
            found[str(path)] = (path.read_bytes(), info.st_mode, info.st_mtime_ns)
        else:
            found[str(path)] = None
    return found


def in_netns(host: ProvidedHost, *argv: str) -> str:
    proc = subprocess.run(
        ["ip", "netns", "exec", host.resource_id, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    return proc.stdout


def answers(host: ProvidedHost, client_key: Path) -> bool:
    t = SshTransport(host.address, port=host.port, client_key=client_key, host_key=host.host_key)
    try:
        return t.run(["true"], timeout=20).exit_status == 0
    finally:
        t.close()


def test_three_hosts_are_configured_and_a_second_run_changes_nothing(
    provider: LocalProvider, provision_id: str, client_key: Path, tmp_path: Path
) -> None:
    made = make_hosts(provider, provision_id, client_key, 3)
    # host2 comes without a pinned key: configure_hosts pins what ssh-keyscan finds.
    hosts = [*made[:2], dataclasses.replace(made[2], host_key="")]
    key = public_key_line(client_key)
    kind, blob = key.split()[:2]
    for host in made:
        assert host.config["edgecloud_sshd_config"].startswith(str(provider.state_dir))
        # The same key under another comment: the playbook adds the front-end's line.
        Path(host.config["edgecloud_authorized_keys"]).write_text(f"{kind} {blob} other\n")
    before = snapshot()

    first = configure(hosts, client_key, tmp_path / "work")

    for host in made:
        keys = Path(host.config["edgecloud_authorized_keys"]).read_text().splitlines()
        assert keys == [f"{kind} {blob} other", key]
        # Ansible's temp files on the "remote" side went to the host's directory.
        assert Path(host.config["ansible_remote_tmp"]).is_dir()
        root = Path(host.root)
        assert root.is_dir()
        assert root.stat().st_mode & 0o777 == 0o755
        for parent in root.parents:
            assert parent.stat().st_mode & 0o001, parent  # traversable by LXC's uids
        assert in_netns(host, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
        assert "net.ipv4.ip_forward = 1" in Path(host.config["edgecloud_sysctl_file"]).read_text()
        sshd_config = Path(host.config["edgecloud_sshd_config"]).read_text().splitlines()
        assert "PermitRootLogin prohibit-password" in sshd_config
        assert "PasswordAuthentication no" in sshd_config
        assert answers(host, client_key)
    assert any(
        line.startswith("host host2 has no pinned host key: pinning what ssh-keyscan fetched")
        and made[2].host_key in line
        for line in first.lines
    ), first.lines
    recap = first.output()
    assert set(recap.recap) == {"host0", "host1", "host2"}
    assert all(counts["failed"] == 0 for counts in recap.recap.values())
    assert all(changed > 0 for changed in recap.changed().values())  # the keys at least
    assert snapshot() == before

    second = configure(hosts, client_key, tmp_path / "work")

    assert second.output().changed() == {"host0": 0, "host1": 0, "host2": 0}, second.lines
    assert snapshot() == before
    print(f"3 hosts: first run {first.seconds:.1f} s, second run {second.seconds:.1f} s")
    assert second.seconds < 120


def test_a_changed_sshd_config_is_fixed_and_sshd_reloaded_by_its_pid_file(
    provider: LocalProvider, provision_id: str, client_key: Path, tmp_path: Path
) -> None:
    [host] = make_hosts(provider, provision_id, client_key, 1)
    config = Path(host.config["edgecloud_sshd_config"])
    text = config.read_text()
    assert "PasswordAuthentication no\n" in text
    config.write_text(text.replace("PasswordAuthentication no", "PasswordAuthentication yes"))
    pid = int(Path(host.config["edgecloud_sshd_pid_file"]).read_text())
    log = config.parent / "sshd.log"
    logged = log.read_text()
    before = snapshot()

    run = configure([host], client_key, tmp_path / "work")

    assert config.read_text() == text  # the line is set back where it was
    assert "RUNNING HANDLER [Reload sshd by its pid file] " in "\n".join(run.lines)
    assert "Received SIGHUP" in log.read_text()[len(logged) :]
    assert int(Path(host.config["edgecloud_sshd_pid_file"]).read_text()) == pid
    assert answers(host, client_key)  # the re-executed sshd serves with its new config
    assert snapshot() == before


def test_a_failing_task_raises_with_ansibles_own_words(
    provider: LocalProvider, provision_id: str, client_key: Path, tmp_path: Path
) -> None:
    hosts = make_hosts(provider, provision_id, client_key, 2)
    run = Run(tmp_path / "work")

    with pytest.raises(ConfigureError) as caught:
        configure_hosts(
            hosts,
            private_key=client_key,
            authorized_key=public_key_line(client_key),
            work_dir=run.work_dir,
            hypervisors=["lxc"],
            on_line=run.lines.append,
            extra_vars={"edgecloud_extra_packages": ["no-such-package-edgecloud"]},
        )

    message = str(caught.value)
    fatal = [line for line in run.lines if line.startswith("fatal: [")]
    assert len(fatal) == 2
    for line in fatal:
        assert line in message  # verbatim
        assert "No package matching 'no-such-package-edgecloud' is available" in line
    assert "TASK [Install the missing packages] on host0:" in message
    assert "TASK [Install the missing packages] on host1:" in message
    assert sorted(caught.value.hosts) == ["host0", "host1"]
    assert {(f.task, f.host) for f in caught.value.failures} == {
        ("Install the missing packages", "host0"),
        ("Install the missing packages", "host1"),
    }
    assert caught.value.returncode == 2
    assert processes_with(f"{run.work_dir}/") == []


def test_a_namespace_host_without_its_host_vars_is_refused(
    provider: LocalProvider, provision_id: str, client_key: Path, tmp_path: Path
) -> None:
    """Without the provider's config the playbook would edit this machine's files: it stops."""
    [host] = make_hosts(provider, provision_id, client_key, 1)
    before = snapshot()
    forward = in_netns(host, "cat", "/proc/sys/net/ipv4/ip_forward")
    lines: list[str] = []

    with pytest.raises(ConfigureError) as caught:
        configure_hosts(
            [dataclasses.replace(host, config={})],
            private_key=client_key,
            authorized_key=public_key_line(client_key),
            work_dir=tmp_path / "work",
            hypervisors=["lxc"],
            on_line=lines.append,
        )

    message = str(caught.value)
    assert "TASK [Refuse to change this machine's own files from a namespace host]" in message
    assert f"host host0 is network namespace {host.resource_id} of its machine" in message
    [fatal] = [line for line in lines if line.startswith("fatal: [host0]")]
    assert fatal in message
    assert snapshot() == before
    # It stopped before changing anything, even in the host's own namespace.
    assert in_netns(host, "cat", "/proc/sys/net/ipv4/ip_forward") == forward


def test_the_timeout_kills_the_run(client_key: Path, tmp_path: Path) -> None:
    """A host that accepts connections and never answers: the run ends at the timeout."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    host = ProvidedHost(
        "silent", "127.0.0.1", port, public_key_line(client_key), str(tmp_path / "r"), "x"
    )
    work = tmp_path / "work"
    lines: list[str] = []
    started = time.monotonic()
    try:
        with pytest.raises(ConfigureError, match=r"timed out after 4 s") as caught:
            configure_hosts(
                [host],
                private_key=client_key,
                authorized_key=public_key_line(client_key),
                work_dir=work,
                hypervisors=[],
                on_line=lines.append,
                timeout=4,
            )
    finally:
        silent.close()
    elapsed = time.monotonic() - started
    assert 4 <= elapsed < 15
    assert "TASK [Check that Python 3 is present" in str(caught.value)
    assert processes_with(f"{work}/") == []
    assert not (tmp_path / "r").exists()
