"""Unit tests for the `Files` ability of LocalTransport (put_file / get_file on this machine)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecloud.drivers.base import DriverError, Files
from edgecloud.drivers.transport import LocalTransport, SshTransport

pytestmark = pytest.mark.unit

MIB = 1024 * 1024


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_both_transports_have_the_ability(tmp_path: Path) -> None:
    assert isinstance(LocalTransport(), Files)
    assert isinstance(SshTransport("127.0.0.1", client_key=tmp_path / "k", host_key=None), Files)


@pytest.mark.parametrize("size", [0, 1, MIB, 3 * MIB + 517])
def test_put_and_get_copy_the_bytes(tmp_path: Path, size: int) -> None:
    t = LocalTransport()
    source = make(tmp_path / "source", size)
    seen: list[int] = []
    assert t.put_file(source, str(tmp_path / "remote"), timeout=30, progress=seen.append) == size
    assert sha(tmp_path / "remote") == sha(source)
    assert seen, "progress is reported at least once"
    assert seen == sorted(seen)
    assert seen[-1] == size
    assert t.get_file(str(tmp_path / "remote"), tmp_path / "back", timeout=30) == size
    assert sha(tmp_path / "back") == sha(source)


def test_an_existing_destination_is_replaced(tmp_path: Path) -> None:
    source = make(tmp_path / "source", 1000)
    make(tmp_path / "dest", 5 * MIB)
    assert LocalTransport().put_file(source, str(tmp_path / "dest"), timeout=30) == 1000
    assert (tmp_path / "dest").read_bytes() == source.read_bytes()


def test_a_missing_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    source = make(tmp_path / "source", 10)
    missing = tmp_path / "no" / "such"
    with pytest.raises(DriverError, match=f"{missing}.*does not exist"):
        LocalTransport().put_file(source, str(missing / "file"), timeout=30)
    with pytest.raises(DriverError, match=f"{missing}.*does not exist"):
        LocalTransport().get_file(str(source), missing / "file", timeout=30)
    assert not (tmp_path / "no").exists()


def test_bad_sources_and_destinations(tmp_path: Path) -> None:
    t = LocalTransport()
    source = make(tmp_path / "source", 10)
    with pytest.raises(DriverError, match=r"cannot read .*nothing: no such file or directory"):
        t.get_file(str(tmp_path / "nothing"), tmp_path / "dest", timeout=30)
    with pytest.raises(DriverError, match="not a regular file"):
        t.put_file(tmp_path, str(tmp_path / "dest"), timeout=30)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(DriverError, match="fifo: not a regular file"):
        t.put_file(tmp_path / "fifo", str(tmp_path / "dest"), timeout=30)
    (tmp_path / "adir").mkdir()
    with pytest.raises(DriverError, match="adir: it exists and is not a regular file"):
        t.put_file(source, str(tmp_path / "adir"), timeout=30)
    with pytest.raises(DriverError, match="onto itself"):
        t.put_file(source, str(source), timeout=30)
    assert source.stat().st_size == 10
    assert not (tmp_path / "dest").exists()


def test_a_timeout_leaves_no_partial_file(tmp_path: Path) -> None:
    source = make(tmp_path / "source", 8 * MIB)

    def slow(copied: int) -> None:
        time.sleep(0.05)

    with pytest.raises(DriverError, match=r"timed out after 0\.1 s"):
        LocalTransport().put_file(source, str(tmp_path / "dest"), timeout=0.1, progress=slow)
    assert not (tmp_path / "dest").exists()


def test_a_failing_progress_callback_does_not_stop_the_copy(tmp_path: Path) -> None:
    source = make(tmp_path / "source", 3 * MIB)

    def broken(copied: int) -> None:
        raise RuntimeError("bug")

    LocalTransport().put_file(source, str(tmp_path / "dest"), timeout=30, progress=broken)
    assert sha(tmp_path / "dest") == sha(source)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only), unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_says_no_space_left(tmp_path: Path, small_disk: Path) -> None:
    source = make(tmp_path / "source", 3 * MIB)
    with pytest.raises(DriverError, match=f"{small_disk / 'dest'}.*no space left on device"):
        LocalTransport().put_file(source, str(small_disk / "dest"), timeout=30)
    assert list(small_disk.iterdir()) == []
