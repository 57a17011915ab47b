"""SshTransport against namespace test hosts: real sshd, real keys, real failures."""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgecloud.drivers.base import DriverError, HostRef, HostUnreachable
from edgecloud.drivers.hypervisor.node import NodeHypervisor
from edgecloud.drivers.transport import (
    HostKeyMismatch,
    SshTransport,
    TransportPool,
    ensure_client_key,
    fetch_host_key,
    public_key_line,
)
from tests.host.conftest import NetHostsFactory
from tests.support.nethosts import NetHost, NetHosts


def transport(host: NetHost, client_key: Path, connect_timeout: float = 10.0) -> SshTransport:
    return SshTransport(
        host.address,
        client_key=client_key,
        host_key=host.host_key,
        connect_timeout=connect_timeout,
    )


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_commands_run_inside_the_host_namespace(two_hosts: list[NetHost], client_key: Path) -> None:
    for host in two_hosts:
        t = transport(host, client_key)
        try:
            result = t.run(["ip", "-j", "-4", "addr", "show", "dev", "eth0"], timeout=10)
            assert result.exit_status == 0, result.stderr
            addresses = [
                a["local"] for link in json.loads(result.stdout) for a in link["addr_info"]
            ]
            assert addresses == [host.address]
            # The same namespace as `ip netns exec` sees.
            remote = t.run(["readlink", "/proc/self/ns/net"], timeout=10).stdout.strip()
            local = host.exec(["readlink", "/proc/self/ns/net"], check=True).stdout.strip()
            assert remote == local
            assert t.connects == 1
        finally:
            t.close()


def test_argv_is_quoted_and_exit_status_returned(
    two_hosts: list[NetHost], client_key: Path
) -> None:
    t = transport(two_hosts[0], client_key)
    try:
        tricky = ["a b", "$HOME", "it's", '"q"', "*", ";true", "", "é"]
        result = t.run(["printf", "%s|", *tricky], timeout=10)
        assert result.stdout == "|".join(tricky) + "|"
        failed = t.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
        assert (failed.exit_status, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
        missing = t.run(["no-such-command-here"], timeout=10)
        assert missing.exit_status == 127
        binary = t.run(["printf", "\\377ok"], timeout=10)
        assert binary.stdout == "\ufffdok"
        with pytest.raises(TypeError):
            t.run("echo hi", timeout=10)
    finally:
        t.close()


def test_stdin_is_written_then_closed(two_hosts: list[NetHost], client_key: Path) -> None:
    t = transport(two_hosts[0], client_key)
    try:
        assert t.run(["cat"], timeout=10, stdin=b"hello\n").stdout == "hello\n"
        assert t.run(["cat"], timeout=10).stdout == ""  # EOF without stdin: no hang
        big = bytes(range(256)) * 4096  # 1 MiB
        assert t.run(["wc", "-c"], timeout=30, stdin=big).stdout.strip() == str(len(big))
        sha = t.run(["sha256sum"], timeout=30, stdin=big).stdout.split()[0]
        assert sha == hashlib.sha256(big).hexdigest()
    finally:
        t.close()


def test_concurrent_calls_share_one_connection(two_hosts: list[NetHost], client_key: Path) -> None:
    t = transport(two_hosts[1], client_key)

    def call(i: int) -> str:
        return t.run(["sh", "-c", 'sleep 0.05; echo "$0"', str(i)], timeout=20).stdout.strip()

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(64)))
        assert results == [str(i) for i in range(64)]
        # More threads than sessions, short commands: sshd frees sessions a moment late.
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: t.run(["true"], timeout=20).exit_status, range(400)))
        assert statuses == [0] * 400
        assert t.connects == 1
    finally:
        t.close()


def test_timeout_raises_and_connection_stays_usable(
    two_hosts: list[NetHost], client_key: Path
) -> None:
    t = transport(two_hosts[0], client_key)
    try:
        t.run(["true"], timeout=10)
        started = time.monotonic()
        with pytest.raises(DriverError, match=r"sleep on .* timed out after 0.5 s"):
            t.run(["sleep", "30"], timeout=0.5)
        assert time.monotonic() - started < 2.0
        assert t.run(["echo", "still here"], timeout=10).stdout == "still here\n"
        assert t.connects == 1
    finally:
        t.close()


def test_round_trip_figures(two_hosts: list[NetHost], client_key: Path) -> None:
    t = transport(two_hosts[0], client_key)
    try:
        t.connect()
        assert t.last_connect_seconds is not None
        connect_ms = t.last_connect_seconds * 1000
        t.run(["true"], timeout=10)
        times = []
        for _ in range(50):
            started = time.perf_counter()
            t.run(["true"], timeout=10)
            times.append(time.perf_counter() - started)
        median_ms = statistics.median(times) * 1000
        print(
            f"\nssh to a namespace host: connect {connect_ms:.1f} ms; `true` round trip "
            f"median {median_ms:.2f} ms, min {min(times) * 1000:.2f}, max {max(times) * 1000:.2f}"
            " (50 calls, one connection, minimal .bashrc)"
        )
        assert median_ms < 100, "the host's .bashrc is probably running pyenv init"
    finally:
        t.close()


def test_fetch_host_key_pins_and_a_new_key_is_refused(
    nethosts: NetHostsFactory, client_key: Path
) -> None:
    (host,) = nethosts(1)
    pinned = fetch_host_key(host.address, port=host.port, timeout=5)
    assert pinned == host.host_key
    t = SshTransport(host.address, client_key=client_key, host_key=pinned)
    assert t.run(["true"], timeout=10).exit_status == 0
    t.close()
    fingerprint = ["ssh-keygen", "-lf", str(host.ssh_dir / "ssh_host_ed25519_key.pub")]
    old_fp = host.exec(fingerprint, check=True)

    new_key = host.regenerate_host_key()
    assert new_key != pinned
    with pytest.raises(HostKeyMismatch) as caught:
        t.run(["true"], timeout=10)
    message = str(caught.value)
    assert message.startswith(f"host key of {host.address}:22 changed: expected SHA256:")
    assert old_fp.stdout.split()[1] in message
    new_fp = host.exec(fingerprint, check=True)
    assert f"got {new_fp.stdout.split()[1]}" in message
    assert "refusing to connect" in message
    assert isinstance(caught.value, HostUnreachable)
    # Re-adding the host pins the new key.
    assert fetch_host_key(host.address) == new_key
    again = SshTransport(host.address, client_key=client_key, host_key=new_key)
    try:
        assert again.run(["true"], timeout=10).exit_status == 0
    finally:
        again.close()


def test_lost_sshd_is_unreachable_then_the_same_transport_reconnects(
    nethosts: NetHostsFactory, client_key: Path
) -> None:
    (host,) = nethosts(1)
    t = transport(host, client_key, connect_timeout=3)
    try:
        assert t.run(["true"], timeout=10).exit_status == 0
        key_before = host.host_key
        host.stop_sshd()
        with pytest.raises(HostUnreachable, match=rf"{host.address}:22.*(refused|lost)") as caught:
            t.run(["true"], timeout=10)
        assert not isinstance(caught.value, HostKeyMismatch)
        host.start_sshd()
        assert host.host_key == key_before
        assert t.run(["echo", "back"], timeout=10).stdout == "back\n"
        assert t.connects == 2
        # A command running while the connection drops is reported, not retried.
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(t.run, ["sleep", "5"], timeout=20)
            time.sleep(0.3)
            host.stop_sshd()
            with pytest.raises(HostUnreachable, match="lost the connection"):
                pending.result(10)
        host.start_sshd()
        assert t.run(["true"], timeout=10).exit_status == 0
    finally:
        t.close()


def test_a_stream_carries_lines_both_ways_and_reports_its_end(
    two_hosts: list[NetHost], client_key: Path
) -> None:
    t = transport(two_hosts[0], client_key)
    lines: list[bytes] = []
    ended: list[tuple[str, bool]] = []
    done = threading.Event()

    def end(why: str, lost: bool) -> None:
        ended.append((why, lost))
        done.set()

    try:
        script = 'while read -r l; do echo "got $l"; done; echo bye >&2; exit 4'
        stream = t.open_stream(["sh", "-c", script], on_line=lines.append, on_end=end, timeout=10)
        stream.send(b"one\ntwo\n")
        deadline = time.monotonic() + 10
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lines == [b"got one\n", b"got two\n"]
        assert t.run(["true"], timeout=10).exit_status == 0  # the connection is shared
        stream.close()
        assert done.wait(10)
        assert ended == [(f"the command on {t.where} exited with status 4: bye", False)]
        with pytest.raises(DriverError, match="has ended"):
            stream.send(b"late\n")
        # Its session slot is back: every slot can run a command at once again.
        with ThreadPoolExecutor(t.max_sessions) as pool:
            runs = [pool.submit(t.run, ["sleep", "0.2"], timeout=10) for _ in range(t.max_sessions)]
            assert all(r.result().exit_status == 0 for r in runs)
    finally:
        t.close()


def test_the_node_agent_is_cut_off_with_its_connection(
    nethosts: NetHostsFactory, client_key: Path
) -> None:
    (host,) = nethosts(1)
    driver = NodeHypervisor(client_key=client_key)
    ref = HostRef(
        id=1, name=host.name, address=host.address, host_key=host.host_key, root=str(host.root)
    )
    try:
        assert driver.poll_all(ref) == []
        agent = driver._agents[(1, ref.root)]
        assert agent.alive
        host.stop_sshd()
        deadline = time.monotonic() + 10
        while agent.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agent.ended is not None and "lost the connection" in agent.ended
        with pytest.raises(HostUnreachable):
            driver.poll_all(ref)
        host.start_sshd()
        assert driver.poll_all(ref) == []  # a new connection, a new agent
        assert driver._agents[(1, ref.root)] is not agent
    finally:
        driver.close()


def test_unreachable_address_and_unknown_client_key(
    two_hosts: list[NetHost], client_key: Path, tmp_path: Path
) -> None:
    gateway = two_hosts[0].address.rsplit(".", 1)[0]
    nobody = SshTransport(f"{gateway}.99", client_key=client_key, host_key=None, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(HostUnreachable, match=rf"cannot connect to {gateway}\.99:22"):
        nobody.run(["true"], timeout=5)
    assert time.monotonic() - started < 6
    stranger_key = ensure_client_key(tmp_path / "stranger")
    stranger = transport(two_hosts[0], stranger_key)
    with pytest.raises(HostUnreachable, match=r"cannot log in to .* as root"):
        stranger.run(["true"], timeout=5)


def test_pool_reuses_and_replaces_ssh_transports(
    two_hosts: list[NetHost], client_key: Path
) -> None:
    pool = TransportPool(client_key)
    a, b = two_hosts
    try:
        first = pool.get(host_id=1, address=a.address, port=22, kind="ssh", host_key=a.host_key)
        assert first.run(["true"], timeout=10).exit_status == 0
        same = pool.get(host_id=1, address=a.address, port=22, kind="ssh", host_key=a.host_key)
        assert same is first
        moved = pool.get(host_id=1, address=b.address, port=22, kind="ssh", host_key=b.host_key)
        assert moved is not first
        got = moved.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], timeout=10).stdout
        assert b.address in got
    finally:
        pool.close_all()


def test_teardown_leaves_nothing(client_key: Path) -> None:
    net = NetHosts(2, authorized_keys=[public_key_line(client_key)])
    hosts = net.start().hosts
    ours = set(net.namespaces())
    assert ours <= namespaces()
    pids = [h.sshd_pid for h in hosts]
    # Something else left running in a namespace is killed too.
    stray = hosts[0].exec(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], check=True)
    stray_pid = int(stray.stdout)
    directory = net.directory
    assert directory is not None and directory.exists()
    net.close()
    assert not ours & namespaces()
    assert subprocess.run(["ip", "link", "show", net.uplink], capture_output=True).returncode != 0
    assert not directory.exists()
    for pid in [*pids, stray_pid]:
        assert pid is not None
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
