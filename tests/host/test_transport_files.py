"""SshTransport.put_file/get_file (SFTP) against namespace hosts, and a host-to-host image
copy through the node's one-shot HTTP server (image_serve on one host, image_fetch on the
other, over the test bridge)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edgecloud.drivers.base import DriverError, HostUnreachable
from edgecloud.drivers.transport import SshTransport
from edgecloud.node.build import build_zipapp
from edgecloud.node.proc import alive
from tests.host.conftest import NetHostsFactory
from tests.support.nethosts import NetHost

pytestmark = pytest.mark.host

MIB = 1024 * 1024


def transport(host: NetHost, client_key: Path) -> SshTransport:
    return SshTransport(host.address, client_key=client_key, host_key=host.host_key)


def sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def make(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))
        f.write(os.urandom(size % MIB))
    return path


def remote_exists(t: SshTransport, path: str) -> bool:
    return t.run(["test", "-e", path], timeout=10).exit_status == 0


@pytest.fixture
def t(two_hosts: list[NetHost], client_key: Path) -> Iterator[SshTransport]:
    ssh = transport(two_hosts[0], client_key)
    try:
        yield ssh
    finally:
        ssh.close()


@pytest.mark.parametrize("size", [0, 1, 16 * MIB + 3])
def test_put_get_round_trip(
    t: SshTransport, two_hosts: list[NetHost], tmp_path: Path, size: int
) -> None:
    source = make(tmp_path / "source", size)
    remote = f"{two_hosts[0].root}/copy-{size}"
    seen: list[int] = []
    assert t.put_file(source, remote, timeout=60, progress=seen.append) == size
    assert seen == sorted(seen)
    assert seen[-1] == size
    digest = t.run(["sha256sum", remote], timeout=30).stdout.split()[0]
    assert digest == sha(source)
    assert t.get_file(remote, tmp_path / "back", timeout=60) == size
    assert sha(tmp_path / "back") == sha(source)
    t.run(["rm", "-f", remote], timeout=10)


def test_throughput_of_a_64_mib_file(
    t: SshTransport, two_hosts: list[NetHost], tmp_path: Path
) -> None:
    """Measure only (printed; run with -s to see it): put and get of 64 MiB over SFTP."""
    source = make(tmp_path / "big", 64 * MIB)
    remote = f"{two_hosts[0].root}/big"
    t.connect()
    started = time.monotonic()
    t.put_file(source, remote, timeout=300)
    put_seconds = time.monotonic() - started
    started = time.monotonic()
    t.get_file(remote, tmp_path / "back", timeout=300)
    get_seconds = time.monotonic() - started
    assert sha(tmp_path / "back") == sha(source)
    assert t.run(["sha256sum", remote], timeout=60).stdout.split()[0] == sha(source)
    print(
        f"\nSFTP 64 MiB: put {64 / put_seconds:.0f} MiB/s ({put_seconds:.2f} s),"
        f" get {64 / get_seconds:.0f} MiB/s ({get_seconds:.2f} s)"
    )
    t.run(["rm", "-f", remote], timeout=10)


def test_missing_paths_are_errors_naming_them(
    t: SshTransport, two_hosts: list[NetHost], tmp_path: Path
) -> None:
    source = make(tmp_path / "source", 100)
    missing = f"{two_hosts[0].root}/no/such"
    with pytest.raises(DriverError, match=f"its directory {missing} does not exist"):
        t.put_file(source, f"{missing}/file", timeout=30)
    assert not remote_exists(t, f"{two_hosts[0].root}/no")
    with pytest.raises(DriverError, match=f"{missing}/file does not exist"):
        t.get_file(f"{missing}/file", tmp_path / "dest", timeout=30)
    t.put_file(source, f"{two_hosts[0].root}/there", timeout=30)
    with pytest.raises(DriverError, match=f"{tmp_path / 'no'} does not exist"):
        t.get_file(f"{two_hosts[0].root}/there", tmp_path / "no" / "dest", timeout=30)
    with pytest.raises(DriverError, match="is not a regular file"):
        t.get_file(str(two_hosts[0].root), tmp_path / "dest", timeout=30)
    with pytest.raises(DriverError, match="no such file"):
        t.put_file(tmp_path / "nothing", f"{two_hosts[0].root}/x", timeout=30)
    assert not (tmp_path / "dest").exists()
    # Failed copies give their session slots back (there are 8).
    for _ in range(10):
        with pytest.raises(DriverError, match="does not exist"):
            t.put_file(source, f"{missing}/file", timeout=30)
    assert t.run(["true"], timeout=10).exit_status == 0


def test_concurrent_copies_share_the_session_slots(
    t: SshTransport, two_hosts: list[NetHost], tmp_path: Path
) -> None:
    sources = [make(tmp_path / f"s{i}", MIB + i) for i in range(12)]
    root = two_hosts[0].root

    def put(source: Path) -> int:
        return t.put_file(source, f"{root}/{source.name}", timeout=60)

    with ThreadPoolExecutor(12) as pool:
        commands = [pool.submit(t.run, ["sleep", "0.2"], timeout=30) for _ in range(4)]
        assert list(pool.map(put, sources)) == [MIB + i for i in range(12)]
        assert all(c.result().exit_status == 0 for c in commands)
    for source in sources:
        assert (root / source.name).read_bytes() == source.read_bytes()
    assert t.connects == 1


def test_a_full_remote_disk_says_no_space_left(
    t: SshTransport, two_hosts: list[NetHost], tmp_path: Path
) -> None:
    small = f"{two_hosts[0].root}/small"
    t.run(["mkdir", "-p", small], timeout=10)
    # Mounted in the host's sshd's own mount namespace: gone with it, whatever happens.
    mounted = t.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small], timeout=10)
    if mounted.exit_status != 0:
        pytest.skip(f"cannot mount a tmpfs on the host: {mounted.stderr.strip()}")
    try:
        source = make(tmp_path / "source", 4 * MIB)
        with pytest.raises(DriverError, match=f"{small}/dest: no space left on device"):
            t.put_file(source, f"{small}/dest", timeout=60)
        assert t.run(["ls", "-A", small], timeout=10).stdout == ""
    finally:
        t.run(["umount", "-l", small], timeout=10)


def test_a_timeout_removes_the_partial_remote_file(
    t: SshTransport, two_hosts: list[NetHost], tmp_path: Path
) -> None:
    source = make(tmp_path / "source", 48 * MIB)
    remote = f"{two_hosts[0].root}/slow"

    def slow(copied: int) -> None:
        time.sleep(0.25)  # runs on the SSH loop (once a 16 MiB chunk): slows the copy down

    t.connect()
    with pytest.raises(DriverError, match=r"timed out after 0\.3 s"):
        t.put_file(source, remote, timeout=0.3, progress=slow)
    assert not remote_exists(t, remote)
    t.put_file(source, remote, timeout=60)  # the whole file this time
    with pytest.raises(DriverError, match=r"timed out after 0\.3 s"):
        t.get_file(remote, tmp_path / "back", timeout=0.3, progress=slow)
    assert not (tmp_path / "back").exists()
    t.run(["rm", "-f", remote], timeout=10)


def test_a_lost_connection_is_host_unreachable(
    nethosts: NetHostsFactory, client_key: Path, tmp_path: Path
) -> None:
    (host,) = nethosts(1)
    source = make(tmp_path / "source", 64 * MIB)
    started = threading.Event()
    ssh = transport(host, client_key)
    failure: list[BaseException] = []

    def copy() -> None:
        try:
            ssh.put_file(source, f"{host.root}/big", timeout=60, progress=lambda n: started.set())
        except BaseException as exc:
            failure.append(exc)

    try:
        worker = threading.Thread(target=copy)
        worker.start()
        assert started.wait(30)
        host.stop_sshd()
        worker.join(60)
        assert len(failure) == 1, "the copy must fail"
        assert isinstance(failure[0], HostUnreachable), failure[0]
        host.start_sshd()
        assert ssh.put_file(source, f"{host.root}/big", timeout=60) == 64 * MIB  # reconnects
    finally:
        ssh.close()


# --- host to host: image_serve on host0, image_fetch on host1 ---------------------------


def node(t: SshTransport, host: NetHost, action: str, request: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps({"root": str(host.root), **request}).encode()
    result = t.run(["python3", f"{host.root}/node.pyz", action], timeout=120, stdin=raw)
    answer = json.loads(result.stdout)
    assert answer["ok"], (action, answer, result.stderr)
    reply: dict[str, Any] = answer["result"]
    return reply


def test_host_to_host_image_copy(
    two_hosts: list[NetHost], client_key: Path, tmp_path: Path
) -> None:
    app = tmp_path / "node.pyz"
    build_zipapp(app)
    image = make(tmp_path / "image", 20 * MIB + 7)
    key = sha(image)
    a, b = two_hosts
    ta, tb = transport(a, client_key), transport(b, client_key)
    pid = 0
    try:
        for t, host in ((ta, a), (tb, b)):
            t.put_file(app, f"{host.root}/node.pyz", timeout=60)
        ta.run(["mkdir", "-p", f"{a.root}/cache/images"], timeout=10)
        ta.put_file(image, f"{a.root}/cache/images/{key}", timeout=60)
        served = node(ta, a, "image_serve", {"key": key, "address": a.address, "timeout": 60})
        pid = served["pid"]
        assert served["url"].startswith(f"http://{a.address}:")
        started = time.monotonic()
        fetched = node(tb, b, "image_fetch", {"url": served["url"], "key": key, "part": "x.part"})
        seconds = time.monotonic() - started
        assert fetched == {"bytes": image.stat().st_size, "sha256": key}
        assert sha(b.root / "cache/images/incoming/x.part") == key
        print(f"\nhost-to-host HTTP 20 MiB: {20 / seconds:.0f} MiB/s ({seconds:.2f} s incl. start)")
        deadline = time.monotonic() + 10
        while alive(pid, "image_server") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid, "image_server"), "the server exits after its one download"
    finally:
        if pid:
            node(ta, a, "image_serve_stop", {"pid": pid})
        ta.close()
        tb.close()
