"""The throwaway PostgreSQL server used by the suite (tests/support/pgserver.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tests.support import pgserver
from tests.support.pgserver import PostgresServer, PostgresServerError, find_bindir

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.pg


def _gone(pid: int) -> bool:
    """The process is gone, or a zombie waiting to be reaped by init (i.e. dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """A private parent for the server's temp dir, traversable by the `postgres` user."""
    path = Path(tempfile.mkdtemp(prefix="edgecloud-pgtest-"))
    path.chmod(0o755)
    yield path
    leftovers = list(path.iterdir())
    subprocess.run(["rm", "-rf", str(path)], check=False)
    assert leftovers == [], f"server left files behind: {leftovers}"


def test_start_query_create_database_stop(base_dir: Path) -> None:
    with PostgresServer(base_dir=base_dir) as pg:
        assert pg.running
        assert pg.url == f"postgresql+psycopg://edgecloud@127.0.0.1:{pg.port}/edgecloud"
        assert pg.pid is not None
        assert not _gone(pg.pid)
        tmpdir, pid = pg.tmpdir, pg.pid
        assert tmpdir is not None
        assert tmpdir.parent == base_dir

        with psycopg.connect(pg.conninfo()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert conn.execute("select current_database()").fetchone() == ("edgecloud",)

        url = pg.create_database("second_db")
        assert url == f"postgresql+psycopg://edgecloud@127.0.0.1:{pg.port}/second_db"
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("select current_database()")).scalar() == "second_db"
        finally:
            engine.dispose()
        pg.drop_database("second_db")

        with pytest.raises(ValueError, match="invalid database name"):
            pg.create_database('x"; drop database edgecloud; --')

    assert not pg.running
    assert not tmpdir.exists()
    assert _gone(pid)
    pg.stop()  # idempotent
    with pytest.raises(PostgresServerError, match="not running"):
        _ = pg.url


def test_only_loopback(base_dir: Path) -> None:
    with PostgresServer(base_dir=base_dir) as pg, psycopg.connect(pg.conninfo()) as conn:
        row = conn.execute("show listen_addresses").fetchone()
        assert row == ("127.0.0.1",)
        assert conn.execute("show fsync").fetchone() == ("off",)


def test_missing_binaries_is_a_clear_error(base_dir: Path) -> None:
    server = PostgresServer(bindir=base_dir, base_dir=base_dir)
    with pytest.raises(RuntimeError, match="install the `postgresql` Debian package"):
        server.start()
    assert server.tmpdir is None
    server.stop()


_FAKE_INITDB = """#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in -D) mkdir -p "$2"; shift ;; esac
  shift
done
"""

_FAKE_PG_CTL = """#!/bin/sh
log=
while [ $# -gt 0 ]; do
  case "$1" in -l) log="$2"; shift ;; esac
  shift
done
[ -n "$log" ] && echo "FATAL:  simulated startup failure" >> "$log"
echo "pg_ctl: could not start server" >&2
exit 1
"""


@pytest.fixture
def fake_bindir() -> Iterator[Path]:
    """initdb/pg_ctl/postgres stand-ins: initdb "works", pg_ctl logs a FATAL and fails."""
    path = Path(tempfile.mkdtemp(prefix="edgecloud-fakebin-"))
    path.chmod(0o755)  # executable by the `postgres` user when the suite runs as root
    for name, text in {
        "initdb": _FAKE_INITDB,
        "pg_ctl": _FAKE_PG_CTL,
        "postgres": "#!/bin/sh\nexit 1\n",
    }.items():
        (path / name).write_text(text)
        (path / name).chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_start_failure_cleans_up_and_reports_log(base_dir: Path, fake_bindir: Path) -> None:
    server = PostgresServer(bindir=fake_bindir, base_dir=base_dir)
    with pytest.raises(PostgresServerError, match="simulated startup failure") as excinfo:
        server.start()
    assert "could not start server" in str(excinfo.value)
    assert server.tmpdir is not None
    assert not server.tmpdir.exists()
    assert not server.running


def test_port_in_use_fails_cleanly(base_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = PostgresServer(base_dir=base_dir, port=port)
        with pytest.raises(PostgresServerError, match="could not bind") as excinfo:
            server.start()
    assert str(port) in str(excinfo.value)
    assert server.tmpdir is not None
    assert not server.tmpdir.exists()


def test_find_bindir_prefers_newest_debian_layout() -> None:
    bindir = find_bindir()
    for name in ("initdb", "pg_ctl", "postgres"):
        assert os.access(bindir / name, os.X_OK)


def test_module_entry_point_runs_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.pgserver"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("postgresql+psycopg://edgecloud@127.0.0.1:"), url
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("select 1")).scalar() == 1
        finally:
            engine.dispose()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    tmpdir = err.split("files in ", 1)[1].split(",", 1)[0]
    pid = int(err.split("(pid ", 1)[1].split(")", 1)[0])
    assert not Path(tmpdir).exists()
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


def test_port_grabbed_by_someone_else_is_retried(
    base_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_port = pgserver._free_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(pgserver, "_free_port", lambda: next(ports, None) or real_free_port())
        with PostgresServer(base_dir=base_dir) as pg:
            assert pg.port != taken
            with psycopg.connect(pg.conninfo()) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
            assert "could not bind" in pg.log_tail()
