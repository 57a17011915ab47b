"""Benchmark the REST API at 1,000 hosts and 20,000 VMs, on SQLite and on PostgreSQL.

Run from the repository root::

    .venv/bin/python bench/api.py [--backend sqlite|pg|both] [--hosts 1000] [--vms 20000]
                                  [--seconds 10] [--clients 8] [--generator threads|async]

For each backend: a fresh store in a temp EDGECLOUD_HOME (PostgreSQL: a throwaway server from
tests/support/pgserver.py) is migrated and bootstrapped, hosts and VMs are bulk-inserted with
SQLAlchemy Core, the front-end is started as a subprocess on 127.0.0.1:<free port>, and its API
is measured over HTTP with httpx, authenticated by one bearer token:

* list: GET /api/v1/vms?limit=100000&view=short (p50/p99 s), against an in-process SELECT of
  the same rows through SQLAlchemy (and SELECT + orjson encode) as baselines;
* show: GET /api/v1/vms/{random id}, sequentially (p50/p99 ms), then with N concurrent clients
  for a fixed time (req/s), against GET /api/v1/version (auth + framework floor) and an
  unauthenticated request answered 401 (framework floor without the store).

The load generator shares the machine with the server, so its CPU time (and the server's, and
PostgreSQL's) is printed too. This is a benchmark, not a test: it exits 0 whatever the figures,
and non-zero only when a setup step failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parent.parent
# bench/xmlrpc.py would hide the standard library's `xmlrpc` from scripts run from here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "src"))

from edgecloud.server.app import prepare_store  # noqa: E402
from edgecloud.server.config import load_settings  # noqa: E402
from edgecloud.server.db.engine import Store  # noqa: E402
from edgecloud.server.db.models import Host, Vm  # noqa: E402
from edgecloud.server.services.vms import SHORT_COLUMNS, SHORT_FIELDS  # noqa: E402

API = "/api/v1"
HOST_MONITORED = 2
VM_ACTIVE, LCM_RUNNING, VM_DONE = 3, 3, 6
HOST_CPU, HOST_MEMORY_MB = 64.0, 256 * 1024
VM_CPU, VM_VCPU, VM_MEMORY_MB = 1.0, 1, 1024
CHUNK = 5_000
MAX_REQUESTS = 200_000

# The targets.
LIST_BOUND_S = 0.25
LIST_GOAL_S = 0.10
SHOW_MIN_RPS = 500.0
OPENNEBULA_LIST_S = "0.78-1.27 s"

CLK_TCK = os.sysconf("SC_CLK_TCK")


class SetupError(Exception):
    """A step before the measurements failed: the figures would mean nothing."""


# --------------------------------------------------------------------------- statistics


def pct(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by the nearest-rank method."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def proc_cpu(pid: int | None) -> float:
    """Return user+system CPU seconds of a process (0 if it is gone or unknown)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_of(pid: int) -> list[int]:
    """Return the ids of the live direct children of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def tree_cpu(pid: int | None) -> float:
    """Return CPU seconds of a process and its live children (PostgreSQL's backends)."""
    if pid is None:
        return 0.0
    return proc_cpu(pid) + sum(proc_cpu(c) for c in children_of(pid))


# --------------------------------------------------------------------------- data


def load_data(store: Store, n_hosts: int, n_vms: int) -> tuple[list[int], dict[str, float]]:
    """Bulk-insert hosts and VMs; return the VM ids and the seconds of each phase."""
    now = int(time.time())
    per_host = [len(range(j, n_vms, n_hosts)) for j in range(n_hosts)]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with store.write() as session:
        session.execute(
            insert(Host.metadata.tables[Host.__tablename__]),
            [
                {
                    "name": f"host-{j:05d}",
                    "owner_id": 0,
                    "group_id": 0,
                    "perms": 0o600,
                    "template": {"HYPERVISOR": "kvm"},
                    "version": 1,
                    "created_at": now,
                    "cluster_id": 0,
                    "hypervisor": "kvm",
                    "state": HOST_MONITORED,
                    "total_cpu": HOST_CPU,
                    "total_memory_mb": HOST_MEMORY_MB,
                    "used_cpu": per_host[j] * VM_CPU,
                    "used_memory_mb": per_host[j] * VM_MEMORY_MB,
                    "running_vms": per_host[j],
                    "last_seen": now,
                }
                for j in range(n_hosts)
            ],
        )
        host_ids = list(session.scalars(select(Host.id).order_by(Host.id)))
    if len(host_ids) != n_hosts:
        raise SetupError(f"expected {n_hosts} hosts in the store, found {len(host_ids)}")
    t1 = time.perf_counter()
    timings["hosts"] = t1 - t0
    with store.write() as session:
        for start in range(0, n_vms, CHUNK):
            session.execute(
                insert(Vm.metadata.tables[Vm.__tablename__]),
                [
                    {
                        "name": f"vm-{i:06d}",
                        "owner_id": 0,
                        "group_id": 0,
                        "perms": 0o600,
                        "template": {
                            "NAME": f"vm-{i:06d}",
                            "CPU": "1",
                            "VCPU": "1",
                            "MEMORY": str(VM_MEMORY_MB),
                            "HYPERVISOR": "kvm",
                        },
                        "version": 1,
                        "created_at": now,
                        "template_id": None,
                        "state": VM_ACTIVE,
                        "lcm_state": LCM_RUNNING,
                        "hypervisor": "kvm",
                        "cpu": VM_CPU,
                        "vcpu": VM_VCPU,
                        "memory_mb": VM_MEMORY_MB,
                        "disk_mb": 0,
                        "host_id": host_ids[i % n_hosts],
                        "cluster_id": 0,
                        "deploy_id": "",
                        "user_template": {},
                        "updated_at": now,
                        "ended_at": None,
                    }
                    for i in range(start, min(start + CHUNK, n_vms))
                ],
            )
        vm_ids = list(session.scalars(select(Vm.id).order_by(Vm.id)))
    if len(vm_ids) != n_vms:
        raise SetupError(f"expected {n_vms} VMs in the store, found {len(vm_ids)}")
    t2 = time.perf_counter()
    timings["vms"] = t2 - t1
    if store.dialect == "postgresql":
        # What autovacuum would do soon after such a load: statistics and the visibility map.
        with store.engines[0].connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE"))
        timings["vacuum analyze"] = time.perf_counter() - t2
    return vm_ids, timings


def short_statement(limit: int) -> Any:
    """Return the list endpoint's query as the admin runs it (every VM not DONE)."""
    return select(*SHORT_COLUMNS).where(Vm.state != VM_DONE).order_by(Vm.id).limit(limit + 1)


def short_select(store: Store, limit: int) -> list[Any]:
    """Run the list endpoint's query in-process through an SQLAlchemy session."""
    with store.read() as session:
        return list(session.execute(short_statement(limit)).all())


def driver_select(store: Store, limit: int) -> list[Any]:
    """Run the same query as plain SQL on a DB-API cursor (no SQLAlchemy result layer)."""
    engine = store.engines[0]
    sql = str(
        short_statement(limit).compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True}
        )
    )
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute(sql)
        rows = list(cursor.fetchall())
        cursor.close()
    finally:
        conn.close()
    return rows


def inprocess_baselines(store: Store, n_vms: int, reps: int = 10) -> dict[str, float]:
    """Median seconds of the short SELECT (SQLAlchemy, and the bare driver) and of the encode."""
    limit = 100_000
    for _ in range(2):
        short_select(store, limit)
        driver_select(store, limit)
    select_s, encode_s, driver_s = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        rows = short_select(store, limit)
        t1 = time.perf_counter()
        items = [dict(zip(SHORT_FIELDS, r, strict=True)) for r in rows]
        orjson.dumps({"items": items, "next_cursor": None})
        t2 = time.perf_counter()
        raw = driver_select(store, limit)
        t3 = time.perf_counter()
        if len(rows) != n_vms or len(raw) != n_vms:
            raise SetupError(f"in-process SELECT returned {len(rows)}/{len(raw)} rows, not {n_vms}")
        select_s.append(t1 - t0)
        encode_s.append(t2 - t1)
        driver_s.append(t3 - t2)
    return {
        "select": statistics.median(select_s),
        "encode": statistics.median(encode_s),
        "driver": statistics.median(driver_s),
    }


# --------------------------------------------------------------------------- server


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVER_CODE = """\
import sys
from edgecloud.server.config import load_settings
from edgecloud.server.main import serve
serve(load_settings(home=sys.argv[1], db=sys.argv[2], bind=sys.argv[3]))
"""


@dataclass
class Server:
    """The front-end running as a subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def problems(self) -> list[str]:
        """Return the log lines that look like errors or warnings (the server logs at WARNING)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        markers = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception", "Warning")
        return [line for line in lines if any(m in line for m in markers)]


def start_server(home: Path, db: str, auth: httpx.BasicAuth, timeout: float = 60.0) -> Server:
    """Start the front-end on a free port; return once /api/v1/version answers."""
    port = free_port()
    bind = f"127.0.0.1:{port}"
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("EDGECLOUD_"):
            del env[name]
    env.update(
        EDGECLOUD_HOME=str(home),
        EDGECLOUD_DB=db,
        EDGECLOUD_BIND=bind,
        EDGECLOUD_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p),
    )
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, str(home), db, bind],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = Server(proc=proc, url=f"http://{bind}", log_path=log_path)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url + API, auth=auth, timeout=5.0) as client:
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise SetupError(f"the front-end exited with status {proc.returncode}:\n{tail}")
            try:
                response = client.get("/version")
                if response.status_code == 200:
                    return server
                if response.status_code in (401, 403):
                    raise SetupError(f"/version refused the admin credentials: {response.text}")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                stop_server(server)
                raise SetupError(f"the front-end did not answer on {server.url} in {timeout:.0f}s")
            time.sleep(0.2)


def stop_server(server: Server) -> None:
    """Terminate the front-end (by its pid), killing it if it does not stop in 15 s."""
    proc = server.proc
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@contextlib.contextmanager
def profiled(
    pid: int,
    out_dir: Path | None,
    name: str,
    *,
    rate: int = 250,
    gil: bool = False,
    on_written: Callable[[Path], None] | None = None,
) -> Iterator[None]:
    """Sample the server with py-spy (flamegraph-ready "raw" stacks) while the block runs.

    With `gil`, only the thread holding the GIL is sampled, in blocking mode (whole stacks,
    the server a few % slower); `on_written` gets the file (e.g. to summarise it).
    """
    if out_dir is None:
        yield
        return
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        print("  (py-spy not found: pip install py-spy; not profiling)")
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.txt"
    argv = [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    argv += ["--output", str(output)] + (["--gil"] if gil else ["--nonblocking"])
    spy = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # let py-spy attach
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(spy.pid, signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(spy.pid, signal.SIGKILL)
            _, err = spy.communicate()
        if output.exists():
            print(f"  profile written: {output}")
            if on_written is not None:
                on_written(output)
        else:
            print(f"  py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")


# --------------------------------------------------------------------------- load generator


@dataclass
class Burst:
    """What N concurrent clients achieved in a fixed time."""

    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    statuses: Counter[int]
    generator_cpu: float
    server_cpu: float
    db_cpu: float
    failures: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def burst(
    url: str,
    headers: dict[str, str],
    path_for: Callable[[random.Random], str],
    *,
    clients: int,
    seconds: float,
    max_requests: int,
    expect: int,
    server_pid: int,
    db_pid: int | None,
    generator: str,
    seed: int,
) -> Burst:
    """Hammer one endpoint with `clients` keep-alive connections until time or count runs out."""
    run = _burst_threads if generator == "threads" else _burst_async
    srv0, db0, cpu0 = proc_cpu(server_pid), tree_cpu(db_pid), time.process_time()
    t0, per_client = run(url, headers, path_for, clients, seconds, max_requests, expect, seed)
    elapsed = time.perf_counter() - t0
    cpu1, srv1, db1 = time.process_time(), proc_cpu(server_pid), tree_cpu(db_pid)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    errors = 0
    for lat, stat, errs, fails in per_client:
        latencies += lat
        statuses.update(stat)
        errors += errs
        failures += fails
    return Burst(
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        latencies=latencies,
        statuses=statuses,
        generator_cpu=cpu1 - cpu0,
        server_cpu=srv1 - srv0,
        db_cpu=db1 - db0,
        failures=failures[:5],
    )


ClientResult = tuple[list[float], Counter[int], int, list[str]]


def _burst_threads(
    url: str,
    headers: dict[str, str],
    path_for: Callable[[random.Random], str],
    clients: int,
    seconds: float,
    max_requests: int,
    expect: int,
    seed: int,
) -> tuple[float, list[ClientResult]]:
    counter = itertools.count()
    start: list[float] = []
    ready = threading.Barrier(clients + 1, action=lambda: start.append(time.perf_counter()))
    results: list[ClientResult] = [([], Counter(), 0, []) for _ in range(clients)]

    def worker(index: int) -> None:
        rng = random.Random(seed + index)
        lat, stat, fails = results[index][0], results[index][1], results[index][3]
        errors = 0
        with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
            client.get(path_for(rng))  # open the keep-alive connection before the clock starts
            ready.wait()
            deadline = start[0] + seconds
            while next(counter) < max_requests:
                path = path_for(rng)
                t = time.perf_counter()
                if t >= deadline:
                    break
                try:
                    response = client.get(path)
                    lat.append(time.perf_counter() - t)
                    stat[response.status_code] += 1
                    if response.status_code != expect:
                        errors += 1
                        if len(fails) < 5:
                            fails.append(f"{path}: {response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    lat.append(time.perf_counter() - t)
                    stat[0] += 1
                    errors += 1
                    if len(fails) < 5:
                        fails.append(f"{path}: {type(exc).__name__}: {exc}")
        results[index] = (lat, stat, errors, fails)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join()
    return start[0], results


def _burst_async(
    url: str,
    headers: dict[str, str],
    path_for: Callable[[random.Random], str],
    clients: int,
    seconds: float,
    max_requests: int,
    expect: int,
    seed: int,
) -> tuple[float, list[ClientResult]]:
    counter = itertools.count()

    async def worker(index: int, client: httpx.AsyncClient, deadline: float) -> ClientResult:
        rng = random.Random(seed + index)
        lat: list[float] = []
        stat: Counter[int] = Counter()
        fails: list[str] = []
        errors = 0
        while next(counter) < max_requests:
            path = path_for(rng)
            t = time.perf_counter()
            if t >= deadline:
                break
            try:
                response = await client.get(path)
                lat.append(time.perf_counter() - t)
                stat[response.status_code] += 1
                if response.status_code != expect:
                    errors += 1
                    if len(fails) < 5:
                        fails.append(f"{path}: {response.status_code} {response.text[:200]}")
            except httpx.HTTPError as exc:
                lat.append(time.perf_counter() - t)
                stat[0] += 1
                errors += 1
                if len(fails) < 5:
                    fails.append(f"{path}: {type(exc).__name__}: {exc}")
        return lat, stat, errors, fails

    async def main() -> tuple[float, list[ClientResult]]:
        async with contextlib.AsyncExitStack() as stack:
            pool = [
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0)
                )
                for _ in range(clients)
            ]
            rng = random.Random(seed)
            await asyncio.gather(*(c.get(path_for(rng)) for c in pool))  # warm connections
            t0 = time.perf_counter()
            results = await asyncio.gather(
                *(worker(i, c, t0 + seconds) for i, c in enumerate(pool))
            )
            return t0, list(results)

    return asyncio.run(main())


# --------------------------------------------------------------------------- one backend


@dataclass
class Figures:
    """Everything measured on one backend."""

    backend: str
    load: dict[str, float] = field(default_factory=dict)
    inproc: dict[str, float] = field(default_factory=dict)
    list_times: list[float] = field(default_factory=list)
    list_bytes: int = 0
    show_times: list[float] = field(default_factory=list)
    show_errors: int = 0
    show_burst: Burst | None = None
    version_burst: Burst | None = None
    floor_burst: Burst | None = None
    server_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def backend_store(backend: str) -> Iterator[tuple[str, int | None]]:
    """Yield the store URL ("" = SQLite in the home) and the PostgreSQL postmaster pid."""
    if backend == "sqlite":
        yield "", None
        return
    from tests.support.pgserver import PostgresServer, PostgresServerError

    try:
        pg = PostgresServer().start()
    except PostgresServerError as exc:
        raise SetupError(f"PostgreSQL did not start: {exc}") from exc
    try:
        print(
            f"  PostgreSQL on port {pg.port} (pid {pg.pid}), started in {pg.timings['total']:.1f}s"
        )
        yield pg.url, pg.pid
    finally:
        pg.stop()


def run_backend(backend: str, args: argparse.Namespace) -> Figures:
    """Set up one backend, measure it, tear it down."""
    figures = Figures(backend=backend)
    home = Path(tempfile.mkdtemp(prefix=f"edgecloud-bench-{backend}-"))
    print(f"\n=== {backend}: home {home}")
    try:
        with backend_store(backend) as (db, db_pid):
            settings = load_settings(home=home, db=db)
            t0 = time.perf_counter()
            store, password = prepare_store(settings)
            figures.load["migrate+bootstrap"] = time.perf_counter() - t0
            try:
                if password is None:
                    raise SetupError("the store was not fresh (no admin password was created)")
                vm_ids, timings = load_data(store, args.hosts, args.vms)
                figures.load.update(timings)
                print(
                    "  loaded "
                    + ", ".join(f"{k} {v:.2f}s" for k, v in figures.load.items())
                    + f"  ({args.hosts} hosts, {args.vms} VMs:"
                    f" {args.vms / timings['vms']:,.0f} VM rows/s)"
                )
                figures.inproc = inprocess_baselines(store, args.vms)
            finally:
                store.dispose()
            admin, _, secret = settings.auth_file.read_text().strip().partition(":")
            basic = httpx.BasicAuth(admin, secret)
            server = start_server(home, db, basic)
            print(f"  front-end pid {server.pid} on {server.url}")
            try:
                measure(server, basic, vm_ids, db_pid, args, figures)
            finally:
                stop_server(server)
                figures.server_problems = server.problems()
    finally:
        if args.keep:
            print(f"  kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return figures


def list_loop(
    client: httpx.Client, list_path: str, args: argparse.Namespace, figures: Figures
) -> None:
    """Time the list of every VM, checking each answer holds them all in one page."""
    for _ in range(args.list_reps):
        t = time.perf_counter()
        response = client.get(list_path)
        elapsed = time.perf_counter() - t
        if response.status_code != 200:
            raise SetupError(f"list failed: {response.status_code} {response.text[:500]}")
        body = orjson.loads(response.content)
        if len(body["items"]) != args.vms or body["next_cursor"] is not None:
            raise SetupError(
                f"list returned {len(body['items'])} VMs (cursor {body['next_cursor']}),"
                f" expected {args.vms} in one page"
            )
        figures.list_times.append(elapsed)
        figures.list_bytes = len(response.content)


def measure(
    server: Server,
    basic: httpx.BasicAuth,
    vm_ids: list[int],
    db_pid: int | None,
    args: argparse.Namespace,
    figures: Figures,
) -> None:
    """Run every HTTP measurement against a started front-end."""
    with httpx.Client(base_url=server.url + API, auth=basic, timeout=30.0) as client:
        response = client.post("/login", json={"name": "bench"})
        if response.status_code != 200:
            raise SetupError(f"login failed: {response.status_code} {response.text}")
        token = response.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(args.seed)

    with httpx.Client(base_url=server.url + API, headers=headers, timeout=60.0) as client:
        # List, short view, one page holding every VM.
        list_path = "/vms?limit=100000&view=short"
        client.get(list_path)
        client.get(list_path)
        with profiled(server.pid, args.profile, f"{figures.backend}-list"):
            list_loop(client, list_path, args, figures)
        print(f"  list: {args.list_reps} reps done, p50 {pct(figures.list_times, 50):.3f}s")

        # Show one VM, sequentially.
        for _ in range(5):
            client.get(f"/vms/{rng.choice(vm_ids)}")
        for _ in range(args.show_reps):
            vm_id = rng.choice(vm_ids)
            t = time.perf_counter()
            response = client.get(f"/vms/{vm_id}")
            elapsed = time.perf_counter() - t
            if response.status_code != 200 or response.json()["id"] != vm_id:
                figures.show_errors += 1
            figures.show_times.append(elapsed)
        print(f"  show: {args.show_reps} reps done, p50 {pct(figures.show_times, 50) * 1e3:.2f}ms")

    common = {
        "clients": args.clients,
        "max_requests": MAX_REQUESTS,
        "server_pid": server.pid,
        "db_pid": db_pid,
        "generator": args.generator,
        "seed": args.seed,
    }
    base = server.url + API
    with profiled(server.pid, args.profile, f"{figures.backend}-show"):
        figures.show_burst = burst(
            base,
            headers,
            lambda r: f"/vms/{r.choice(vm_ids)}",
            seconds=args.seconds,
            expect=200,
            **common,
        )
    print(f"  show x{args.clients}: {figures.show_burst.rps:,.0f} req/s")
    figures.version_burst = burst(
        base, headers, lambda r: "/version", seconds=args.baseline_seconds, expect=200, **common
    )
    print(f"  version x{args.clients}: {figures.version_burst.rps:,.0f} req/s")
    figures.floor_burst = burst(
        base, {}, lambda r: "/version", seconds=args.baseline_seconds, expect=401, **common
    )
    print(f"  401 floor x{args.clients}: {figures.floor_burst.rps:,.0f} req/s")


# --------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def burst_rows(label: str, b: Burst | None) -> list[tuple[str, str]]:
    if b is None:
        return []
    five_xx = sum(n for code, n in b.statuses.items() if code >= 500)
    codes = " ".join(f"{code}:{n}" for code, n in sorted(b.statuses.items()))
    cpu = f"generator {b.generator_cpu:.1f}s, server {b.server_cpu:.1f}s"
    if b.db_cpu:
        cpu += f", postgres {b.db_cpu:.1f}s"
    per_req = b.server_cpu / b.requests * 1e3 if b.requests else float("nan")
    return [
        (
            label,
            f"{b.rps:,.0f} req/s  ({b.requests:,} req in {b.seconds:.1f}s, {b.errors} errors,"
            f" {five_xx} 5xx; statuses {codes})",
        ),
        (
            "  latency",
            f"p50 {pct(b.latencies, 50) * 1e3:.2f} ms  p99 {pct(b.latencies, 99) * 1e3:.2f} ms",
        ),
        ("  CPU", f"{cpu}  (server {per_req:.2f} ms CPU/request)"),
    ]


def print_table(f: Figures, args: argparse.Namespace) -> None:
    list_p50, list_p99 = pct(f.list_times, 50), pct(f.list_times, 99)
    inproc = f.inproc.get("select", float("nan"))
    encode = f.inproc.get("encode", float("nan"))
    rows: list[tuple[str, str]] = [
        ("load", ", ".join(f"{k} {v:.2f}s" for k, v in f.load.items())),
        (
            f"list {args.vms:,} VMs (short)",
            f"p50 {list_p50:.3f} s  p99 {list_p99:.3f} s  ({args.list_reps} reps,"
            f" {f.list_bytes / 1e6:.2f} MB)",
        ),
        (
            "  in-process SELECT",
            f"{inproc:.3f} s via SQLAlchemy (list p50 = {list_p50 / inproc:.1f}x of it);"
            f" {f.inproc.get('driver', float('nan')):.3f} s on the bare DB-API cursor",
        ),
        (
            "  in-process SELECT+encode",
            f"{inproc + encode:.3f} s  (encode {encode:.3f} s;"
            f" list p50 = {list_p50 / (inproc + encode):.1f}x of it)",
        ),
        (
            "show VM (sequential)",
            f"p50 {pct(f.show_times, 50) * 1e3:.2f} ms  p99 {pct(f.show_times, 99) * 1e3:.2f} ms"
            f"  ({len(f.show_times)} reps, {f.show_errors} errors)",
        ),
    ]
    rows += burst_rows(f"show VM x{args.clients} clients", f.show_burst)
    rows += burst_rows(f"version x{args.clients} (auth floor)", f.version_burst)
    rows += burst_rows(f"401 x{args.clients} (no-store floor)", f.floor_burst)
    if f.show_burst and f.version_burst and f.version_burst.rps:
        rows.append(
            ("show / version", f"{f.show_burst.rps / f.version_burst.rps:.2f} of the auth floor")
        )
    if f.show_burst and f.floor_burst and f.floor_burst.rps:
        rows.append(
            ("show / 401", f"{f.show_burst.rps / f.floor_burst.rps:.2f} of the no-store floor")
        )
    problems = f.server_problems
    rows.append(("server log warnings/errors", str(len(problems)) if problems else "none"))
    width = max(len(k) for k, _ in rows)
    print(f"\n--- {f.backend} ({args.hosts:,} hosts, {args.vms:,} VMs, generator {args.generator})")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    for line in problems[:10]:
        print(f"    | {line[:300]}")
    for b in (f.show_burst, f.version_burst, f.floor_burst):
        for failure in b.failures if b else []:
            print(f"    ! {failure}")


def print_summary(
    all_figures: list[Figures], failed: dict[str, str], args: argparse.Namespace
) -> None:
    print("\n=== summary (targets of the issue)")
    print(
        f"  list {args.vms:,} VMs p50: bound <= {LIST_BOUND_S} s, goal {LIST_GOAL_S} s"
        f" (OpenNebula publishes {OPENNEBULA_LIST_S} at 20,000 VMs)"
    )
    print(f"  show VM: >= {SHOW_MIN_RPS:.0f} req/s with {args.clients} clients")
    for f in all_figures:
        p50 = pct(f.list_times, 50)
        rps = f.show_burst.rps if f.show_burst else 0.0
        print(
            f"  {f.backend:<7} list p50 {p50:.3f} s  {verdict(p50 <= LIST_BOUND_S)}"
            f" (goal {LIST_GOAL_S} s: {verdict(p50 <= LIST_GOAL_S)})"
            f"   show {rps:,.0f} req/s  {verdict(rps >= SHOW_MIN_RPS)}"
        )
    for backend, reason in failed.items():
        print(f"  {backend:<7} SETUP FAILED: {reason}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=10.0, help="show-VM burst length")
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--list-reps", type=int, default=30)
    parser.add_argument("--show-reps", type=int, default=500)
    parser.add_argument(
        "--generator",
        choices=("threads", "async"),
        default="threads",
        help="threads: one httpx.Client per thread; async: one httpx.AsyncClient per task",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp homes")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the server with py-spy during the list and show-VM bursts; write DIR/*.txt",
    )
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.vms < 1 or args.vms > 100_000 or args.clients < 1:
        parser.error("need hosts >= 1, 1 <= vms <= 100000 (one page), clients >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ("sqlite", "pg") if args.backend == "both" else (args.backend,)
    cores = os.cpu_count()
    print(
        f"edgecloud API bench: {args.hosts:,} hosts, {args.vms:,} VMs, {args.clients} clients,"
        f" {args.seconds:g}s bursts, generator {args.generator}, {cores} CPU cores,"
        f" Python {sys.version.split()[0]}"
    )
    results: list[Figures] = []
    failed: dict[str, str] = {}
    for backend in backends:
        try:
            figures = run_backend(backend, args)
        except SetupError as exc:
            failed[backend] = str(exc)
            print(f"  SETUP FAILED on {backend}: {exc}", file=sys.stderr)
            continue
        except Exception as exc:
            failed[backend] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            continue
        results.append(figures)
        print_table(figures, args)
    print_summary(results, failed, args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
