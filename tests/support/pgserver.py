"""A throwaway PostgreSQL server for the test suite and the bench scripts.

Usage::

    from tests.support.pgserver import PostgresServer

    with PostgresServer() as pg:
        engine = sqlalchemy.create_engine(pg.url)           # database "edgecloud"
        other = pg.create_database("scratch")                # a fresh, empty database

The server listens on 127.0.0.1 only (plus a Unix socket in its own temp dir), trusts every
connection, and runs with durability switched off (fsync, synchronous_commit and
full_page_writes off): it is for tests and benchmarks, never for data you want to keep.

Everything lives in one ``tempfile.mkdtemp(prefix="edgecloud-pg-")`` directory that is removed
by :meth:`PostgresServer.stop` (called by ``__exit__`` and, as a safety net, at interpreter exit).

Binaries are taken from the newest ``/usr/lib/postgresql/<version>/bin`` (Debian/Ubuntu layout),
else from ``PATH``. On Debian/Ubuntu: ``apt-get install -y postgresql``.

``initdb`` and ``postgres`` refuse to run as root; when the euid is 0 they are run as the
``postgres`` user (created by the Debian package) or, failing that, as a system user
``edgecloud-pg`` created on the fly.

Also runnable for manual benchmarking: ``python -m tests.support.pgserver`` starts a server,
prints its SQLAlchemy URL on stdout and keeps it running until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

import psycopg
from psycopg import sql

__all__ = [
    "APT_PACKAGE",
    "PostgresServer",
    "PostgresServerError",
    "find_bindir",
]

#: The Debian/Ubuntu package that provides the server binaries.
APT_PACKAGE = "postgresql"
#: Where Debian/Ubuntu install the server binaries, one directory per major version.
PG_LIB_ROOT = Path("/usr/lib/postgresql")
#: System user created (when running as root) if there is no ``postgres`` user.
SERVICE_USER = "edgecloud-pg"
#: Candidate users to run the server as when running as root, in order of preference.
_RUN_AS_CANDIDATES = ("postgres", SERVICE_USER)
#: Superuser role created by initdb; every URL connects as this role (trust auth).
SUPERUSER = "edgecloud"
#: Database created at start; :attr:`PostgresServer.url` points at it.
DEFAULT_DB = "edgecloud"
HOST = "127.0.0.1"

_BINARIES = ("initdb", "pg_ctl", "postgres")
_DB_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_INSTALL_HINT = (
    f"install the `{APT_PACKAGE}` Debian package (apt-get install -y {APT_PACKAGE}) "
    "or put initdb, pg_ctl and postgres on PATH"
)
_PORT_IN_USE_MARKERS = ("could not bind", "Address already in use")
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40


class PostgresServerError(RuntimeError):
    """The throwaway server could not be found, started, or used."""


# --------------------------------------------------------------------------- binaries


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>``: ``9.6`` < ``15`` < ``16``."""
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return (-1,)


def _has_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _BINARIES)


def find_bindir(bindir: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    With ``bindir`` given, only that directory is considered. Otherwise the newest
    ``/usr/lib/postgresql/*/bin`` wins, then ``PATH`` (symlinks resolved, since ``pg_ctl``
    looks for ``postgres`` next to its real location).
    """
    if bindir is not None:
        explicit = Path(bindir)
        if _has_binaries(explicit):
            return explicit
        missing = [n for n in _BINARIES if not os.access(explicit / n, os.X_OK)]
        raise PostgresServerError(
            f"PostgreSQL binaries {', '.join(missing)} not found in {explicit}; {_INSTALL_HINT}"
        )

    if PG_LIB_ROOT.is_dir():
        versions = sorted(
            (p for p in PG_LIB_ROOT.iterdir() if p.is_dir()), key=_version_key, reverse=True
        )
        for version_dir in versions:
            if _has_binaries(version_dir / "bin"):
                return version_dir / "bin"

    for name in _BINARIES:
        found = shutil.which(name)
        if found is not None:
            real_dir = Path(os.path.realpath(found)).parent
            if _has_binaries(real_dir):
                return real_dir
    raise PostgresServerError(
        f"PostgreSQL server binaries ({', '.join(_BINARIES)}) not found under "
        f"{PG_LIB_ROOT}/*/bin or on PATH; {_INSTALL_HINT}"
    )


# --------------------------------------------------------------------------- users


def _service_user() -> pwd.struct_passwd | None:
    """The user to run initdb/postgres as, or None to run them as ourselves (non-root)."""
    if os.geteuid() != 0:
        return None
    for name in _RUN_AS_CANDIDATES:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PostgresServerError(
            "running as root, there is no `postgres` user and no useradd to create "
            f"`{SERVICE_USER}`; {_INSTALL_HINT} (it creates the `postgres` user)"
        )
    nologin = next(
        (s for s in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false") if Path(s).exists()),
        "/bin/false",
    )
    proc = subprocess.run(
        [
            useradd,
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            nologin,
            SERVICE_USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Also covers a concurrent creation by another process (useradd exit status 9).
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresServerError(
            f"could not create system user {SERVICE_USER!r}: useradd exited with "
            f"{proc.returncode}: {proc.stderr.strip()}"
        ) from None


def _as_user(user: pwd.struct_passwd | None, argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` so that it runs as ``user`` (argument lists only, never a shell)."""
    if user is None:
        return list(argv)
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", user.pw_name, "--", *argv]
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [
            setpriv,
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--init-groups",
            "--",
            *argv,
        ]
    raise PostgresServerError(
        f"running as root and neither runuser nor setpriv (util-linux) is available "
        f"to drop privileges to {user.pw_name!r}"
    )


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a zombie is dead, just not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    # Format: "pid (comm) state ..." -- comm may contain spaces/parens, so split at the last ")".
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"] and state != ["X"]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _clean_env() -> dict[str, str]:
    """Our environment minus libpq/server variables (PGDATA, PGPORT, ...) that could interfere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _tail(path: Path | None, lines: int = _LOG_TAIL_LINES) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- server


class PostgresServer:
    """A private PostgreSQL server in a temp dir, listening on 127.0.0.1:<free port>.

    ``with PostgresServer() as pg: ...`` starts it (initdb + pg_ctl start + CREATE DATABASE
    edgecloud) and stops it again, removing every file. :meth:`start` / :meth:`stop` can also
    be called directly; :meth:`stop` is idempotent and also runs at interpreter exit.

    ``bindir`` forces the directory holding initdb/pg_ctl/postgres, ``base_dir`` the parent of
    the temp dir (default: :func:`tempfile.gettempdir`; it must be traversable by the service
    user when running as root), ``port`` a fixed TCP port (default: a free one, re-picked if
    another process grabs it first).
    """

    host = HOST
    user = SUPERUSER

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        start_timeout: int = 60,
    ) -> None:
        self._requested_bindir = bindir
        self._base_dir = base_dir
        self._requested_port = port
        self._start_timeout = int(start_timeout)
        self._lock = threading.RLock()
        self._state = "new"  # new -> starting -> running -> stopped
        self._owner_pid = os.getpid()
        self._run_as: pwd.struct_passwd | None = None
        self._env = _clean_env()
        self.bindir: Path | None = None
        self.tmpdir: Path | None = None
        self.port: int | None = None
        self.pid: int | None = None
        #: Seconds spent in each start phase: initdb, start, createdb, total.
        self.timings: dict[str, float] = {}

    # ----------------------------------------------------------------- paths

    @property
    def data_dir(self) -> Path:
        return self._tmp() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._tmp() / "sock"

    @property
    def log_path(self) -> Path:
        return self._tmp() / "server.log"

    def _tmp(self) -> Path:
        if self.tmpdir is None:
            raise PostgresServerError("the server has not been started")
        return self.tmpdir

    # ----------------------------------------------------------------- URLs

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default ``edgecloud`` database."""
        return self.url_for(DEFAULT_DB)

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of database ``dbname`` on this server."""
        _check_db_name(dbname)
        return f"postgresql+psycopg://{self.user}@{self.host}:{self._running_port()}/{dbname}"

    def conninfo(self, dbname: str = DEFAULT_DB) -> str:
        """libpq connection string, e.g. for ``psycopg.connect(pg.conninfo())``."""
        _check_db_name(dbname)
        return psycopg.conninfo.make_conninfo(
            host=self.host, port=self._running_port(), user=self.user, dbname=dbname
        )

    def _running_port(self) -> int:
        if self._state != "running" or self.port is None:
            raise PostgresServerError(f"the server is not running (state: {self._state})")
        return self.port

    # ----------------------------------------------------------------- databases

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` and return its SQLAlchemy URL."""
        _check_db_name(name)
        self._admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (kicks out open connections)."""
        _check_db_name(name)
        self._admin_execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def _admin_execute(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True, connect_timeout=10) as c:
            c.execute(statement)

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """initdb, start the server and create the ``edgecloud`` database. Returns ``self``."""
        with self._lock:
            if self._state == "running":
                return self
            if self._state != "new":
                raise PostgresServerError(f"cannot start a server in state {self._state!r}")
            self._state = "starting"
            t0 = time.monotonic()
            try:
                self.bindir = find_bindir(self._requested_bindir)
                self._run_as = _service_user()
                self.tmpdir = Path(tempfile.mkdtemp(prefix="edgecloud-pg-", dir=self._base_dir))
                atexit.register(self._atexit_stop)
                self._prepare_tmpdir()
                t1 = time.monotonic()
                self._initdb()
                t2 = time.monotonic()
                self._start_postmaster()
                t3 = time.monotonic()
                self._state = "running"
                self._create_default_database()
                t4 = time.monotonic()
            except BaseException:
                self.stop()
                raise
            self.timings = {
                "initdb": t2 - t1,
                "start": t3 - t2,
                "createdb": t4 - t3,
                "total": t4 - t0,
            }
            return self

    def stop(self) -> None:
        """Stop the server (immediate mode, SIGKILL as a fallback) and delete its files.

        Idempotent; safe to call on a server that failed to start or never started.
        """
        with self._lock:
            if self._state == "stopped":
                return
            self._state = "stopped"
            atexit.unregister(self._atexit_stop)
            if self.tmpdir is None:
                return
            try:
                pid = self._read_postmaster_pid() or self.pid
                if pid is not None:
                    self._stop_postmaster(pid)
            finally:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _atexit_stop(self) -> None:
        # A forked child (multiprocessing, ...) inherits atexit handlers: leave the server alone.
        if os.getpid() == self._owner_pid:
            self.stop()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server log ('' if there is none)."""
        return _tail(self.tmpdir / "server.log" if self.tmpdir else None, lines)

    # ----------------------------------------------------------------- internals

    def _bin(self, name: str) -> str:
        assert self.bindir is not None
        return str(self.bindir / name)

    def _run(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_user(self._run_as, argv),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            cwd=self._tmp(),
            env=self._env,
            stdin=subprocess.DEVNULL,
        )

    def _prepare_tmpdir(self) -> None:
        tmp = self._tmp()
        self.socket_dir.mkdir(mode=0o700)
        if self._run_as is not None:
            uid, gid = self._run_as.pw_uid, self._run_as.pw_gid
            os.chown(tmp, uid, gid)
            os.chown(self.socket_dir, uid, gid)

    def _initdb(self) -> None:
        argv = [
            self._bin("initdb"),
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "--no-sync",
            "-E",
            "UTF8",
            # C locale: byte-order collation, and no dependency on generated system locales.
            "--locale=C",
        ]
        try:
            proc = self._run(argv, timeout=180)
        except subprocess.TimeoutExpired as exc:
            raise PostgresServerError(f"initdb timed out after {exc.timeout}s") from None
        if proc.returncode != 0:
            raise PostgresServerError(
                f"initdb failed (exit status {proc.returncode}) in {self.data_dir}:\n"
                f"{proc.stdout}\n{proc.stderr}".rstrip()
            )

    def _server_options(self, port: int) -> str:
        # pg_ctl hands -o to `sh -c "exec postgres ..."`: quote every word. Only integers and
        # paths we created go in here.
        return shlex.join(
            [
                "-c",
                f"listen_addresses={HOST}",
                "-p",
                str(int(port)),
                "-k",
                str(self.socket_dir),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
            ]
        )

    def _start_postmaster(self) -> None:
        attempts = 1 if self._requested_port is not None else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port if self._requested_port is not None else _free_port()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            argv = [
                self._bin("pg_ctl"),
                "start",
                "-w",
                "-t",
                str(self._start_timeout),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                self._server_options(port),
            ]
            try:
                proc = self._run(argv, timeout=self._start_timeout + 30)
                output = f"{proc.stdout}\n{proc.stderr}".strip()
                ok = proc.returncode == 0
                status = f"exit status {proc.returncode}"
            except subprocess.TimeoutExpired as exc:
                output, ok, status = "", False, f"timed out after {exc.timeout}s"
            if ok:
                self.port = port
                self.pid = self._read_postmaster_pid()
                return
            log = self._log_since(log_offset)
            port_taken = any(m in log for m in _PORT_IN_USE_MARKERS)
            if port_taken and attempt < attempts:
                # Another process took the port between _free_port() and bind(): pick another.
                pid = self._read_postmaster_pid()
                if pid is not None:
                    self._stop_postmaster(pid)
                continue
            raise PostgresServerError(
                f"PostgreSQL failed to start on {HOST}:{port} ({status}).\n"
                f"pg_ctl said:\n{output}\n"
                f"--- last lines of {self.log_path} ---\n{self.log_tail()}"
            )

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _create_default_database(self) -> None:
        try:
            self.create_database(DEFAULT_DB)
        except psycopg.Error as exc:
            raise PostgresServerError(
                f"could not create database {DEFAULT_DB!r}: {exc}\n"
                f"--- last lines of {self.log_path} ---\n{self.log_tail()}"
            ) from exc

    def _read_postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first.strip())
        except (OSError, ValueError):
            return None

    def _is_our_postmaster(self, pid: int) -> bool:
        """Guard against PID reuse: the process must be running on our data dir."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return False
        except OSError:
            return True  # no readable /proc: trust the pid file from our own data dir
        return str(self.data_dir).encode() in cmdline

    def _stop_postmaster(self, pid: int) -> None:
        if self.bindir is not None and (self.data_dir / "postmaster.pid").exists():
            argv = [self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate"]
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self._run([*argv, "-w", "-t", "30"], timeout=60)
        # pg_ctl -w returns once postmaster.pid is gone; the process itself exits just after.
        if _wait_gone(pid, timeout=5):
            return
        if self._is_our_postmaster(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, timeout=10)


def _check_db_name(name: str) -> None:
    if not _DB_NAME_RE.match(name):
        raise ValueError(
            f"invalid database name {name!r}: use letters, digits and _ (max 63, no leading digit)"
        )


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.pgserver",
        description="Start a throwaway PostgreSQL server on 127.0.0.1, print its SQLAlchemy "
        "URL and keep it running until Ctrl-C / SIGTERM.",
    )
    parser.add_argument("--bindir", help="directory holding initdb, pg_ctl and postgres")
    args = parser.parse_args(argv)

    stop_requested = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)

    try:
        server = PostgresServer(bindir=args.bindir).start()
    except PostgresServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with server:
        print(server.url, flush=True)
        print(
            f"PostgreSQL on {server.host}:{server.port} (pid {server.pid}), files in "
            f"{server.tmpdir}, started in {server.timings['total']:.2f}s "
            f"(initdb {server.timings['initdb']:.2f}s, start {server.timings['start']:.2f}s, "
            f"createdb {server.timings['createdb']:.2f}s). Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        while not stop_requested.wait(1.0):
            pass
        print("stopping", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
