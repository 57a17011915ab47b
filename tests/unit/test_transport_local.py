"""Unit tests for LocalTransport, the client key helpers and TransportPool (no SSH)."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import asyncssh
import pytest

from edgecloud.drivers.base import CommandResult, DriverError, Transport
from edgecloud.drivers.transport import (
    LocalTransport,
    SshTransport,
    TransportPool,
    ensure_client_key,
    public_key_line,
)

pytestmark = pytest.mark.unit


def test_local_runs_argv_and_returns_output() -> None:
    t = LocalTransport()
    assert isinstance(t, Transport)
    result = t.run(["printf", "%s|", "a b", "$HOME", "it's"], timeout=5)
    assert result == CommandResult(0, "a b|$HOME|it's|", "")


def test_local_exit_status_and_stderr_are_results() -> None:
    result = LocalTransport().run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=5)
    assert result == CommandResult(7, "out\n", "err\n")


def test_local_missing_program_is_exit_127() -> None:
    result = LocalTransport().run(["/nonexistent/edgecloud-nothing"], timeout=5)
    assert result.exit_status == 127
    assert "not found" in result.stderr


def test_local_stdin_is_fed_and_closed() -> None:
    t = LocalTransport()
    assert t.run(["cat"], timeout=5, stdin=b"hello\n").stdout == "hello\n"
    assert t.run(["cat"], timeout=5).stdout == ""  # no stdin: EOF at once, no hang
    big = os.urandom(1 << 20)
    assert t.run(["wc", "-c"], timeout=10, stdin=big).stdout.strip() == str(len(big))


def test_local_output_is_decoded_with_replacement() -> None:
    result = LocalTransport().run(["printf", "\\377ok"], timeout=5)
    assert result.stdout == "\ufffdok"


def test_local_timeout_raises_and_kills_the_whole_group(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    script = f"sleep 30 & echo $! > {marker}; wait"
    started = time.monotonic()
    with pytest.raises(DriverError, match=r"sh timed out after 0.3 s"):
        LocalTransport().run(["sh", "-c", script], timeout=0.3)
    assert time.monotonic() - started < 3
    pid = int(marker.read_text())
    deadline = time.monotonic() + 3
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _running(pid), "the background sleep outlived the timeout"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_local_close_is_a_no_op() -> None:
    t = LocalTransport()
    t.close()
    assert t.run([sys.executable, "-c", "print(1)"], timeout=10).stdout == "1\n"


def test_local_rejects_empty_argv() -> None:
    with pytest.raises(ValueError, match="empty"):
        LocalTransport().run([], timeout=1)


def test_client_key_is_made_once_with_safe_modes(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    path = ensure_client_key(directory)
    assert path == directory / "id_ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = public_key_line(path)
    assert line.startswith("ssh-ed25519 AAAA")
    assert (directory / "id_ed25519.pub").read_text().strip() == line
    assert public_key_line(directory / "id_ed25519.pub") == line
    assert asyncssh.read_private_key(path).export_public_key().decode().strip() == line
    before = path.read_bytes()
    assert ensure_client_key(directory) == path
    assert path.read_bytes() == before


def test_client_key_from_many_threads_is_one_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(ensure_client_key(directory)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 1
    assert public_key_line(paths[0]) == public_key_line(directory / "id_ed25519.pub")


def test_pool_caches_per_host_and_replaces_on_change(tmp_path: Path) -> None:
    pool = TransportPool(tmp_path / "id_ed25519")
    local = pool.get(host_id=1, address="", port=22, kind="local", host_key=None)
    assert isinstance(local, LocalTransport)
    assert pool.get(host_id=1, address="", port=22, kind="local", host_key=None) is local
    # SshTransport connects lazily: building one touches no network.
    ssh = pool.get(host_id=2, address="198.18.0.10", port=22, kind="ssh", host_key=None)
    assert isinstance(ssh, SshTransport)
    assert pool.get(host_id=2, address="198.18.0.10", port=22, kind="ssh", host_key=None) is ssh
    moved = pool.get(host_id=2, address="198.18.0.11", port=22, kind="ssh", host_key=None)
    assert moved is not ssh
    other_port = pool.get(host_id=2, address="198.18.0.11", port=2222, kind="ssh", host_key=None)
    assert other_port is not moved
    assert len(pool) == 2
    pool.drop(2)
    pool.drop(99)
    assert len(pool) == 1
    pool.close_all()
    assert len(pool) == 0


def test_pool_rejects_unknown_kind_and_bad_keys(tmp_path: Path) -> None:
    pool = TransportPool(tmp_path / "id_ed25519")
    with pytest.raises(ValueError, match="unknown transport kind"):
        pool.get(host_id=1, address="x", port=22, kind="telnet", host_key=None)
    with pytest.raises(ValueError, match="not an OpenSSH public key"):
        pool.get(host_id=1, address="x", port=22, kind="ssh", host_key="ssh-ed25519 garbage")
