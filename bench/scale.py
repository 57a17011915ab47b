"""Benchmark the front-end at scale: 10,000 fake hosts, then 100,000 VMs submitted in batches.

Run from the repository root::

    .venv/bin/python bench/scale.py [--backend sqlite|pg] [--hosts 10000] [--vms 100000]
                                    [--batch 1000] [--clients 8] [--workers 8] [--budget 1800]
    .venv/bin/python bench/scale.py --hosts 1000 --vms 5000          # a quick run

Steps, each printed as it ends:

1. a temp EDGECLOUD_HOME (PostgreSQL: a throwaway server from tests/support/pgserver.py),
   migrated and bootstrapped with ``prepare_store``; the hosts are bulk-inserted straight
   into the store with SQLAlchemy Core (not registered over HTTP): hypervisor "fake", state
   MONITORED, 64 CPU / 256 GiB each, spread over ``--clusters`` clusters;
2. the scheduler alone, in-process: the snapshot is built from the store with
   ``placement.snapshot`` and ``scheduler.stack.plan`` places the VMs batch after batch
   (nothing is committed; each batch's placements are charged to the snapshot between
   batches, untimed, as the next round would read them back). Also, on a scratch copy
   of the store (same hosts, ``--round`` PENDING VMs), one real ``Placer.run_once()``:
   read + snapshot + plan + commit, split; and the fake hypervisor's deploy, in memory and
   on disk, alone;
3. end to end: the front-end as a subprocess on 127.0.0.1 (``--workers`` lifecycle
   workers, scheduler_interval ``--scheduler-interval``, monitor_interval
   ``--monitor-interval`` so that monitoring does not run during the measurement, the
   fake hypervisor's state on disk under the temp home); the VMs are created with
   ``POST /api/v1/vms`` by ``--clients`` threads, ``--batch`` at a time, while the
   front-end places and deploys them; progress is read from ``GET /api/v1/metrics`` (VMs
   by state, deploy operations done) every ``--poll`` s until every VM is RUNNING or
   ``--budget`` s have passed since the first submission;
4. the front-end's RSS (VmRSS, and the peak VmHWM) from /proc;
5. list and show latency at that size: ``GET /api/v1/vms?view=short&limit=100000``
   (``--list-reps``) and ``GET /api/v1/vms/{id}`` (``--show-reps``) with a bearer token;
6. a summary against the issue's targets.

Everything talks to 127.0.0.1 only; every process started here is stopped by its pid.
Not a test: it exits 0 whatever the figures, non-zero only when a setup step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import queue
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parent.parent
# bench/xmlrpc.py would hide the standard library's `xmlrpc` from scripts run from here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "src"))


def _load_sibling(name: str, filename: str) -> ModuleType:
    """Import another bench script (bench/ is not a package) under a private name."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(filename))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


base = _load_sibling("_bench_api", "api.py")  # server start/stop, percentiles, CPU, py-spy
sched_bench = _load_sibling("_bench_scheduler", "scheduler.py")  # apply(), overcommit check

from edgecloud.drivers.base import GuestSpec, HostRef  # noqa: E402
from edgecloud.drivers.fake import FakeHypervisor  # noqa: E402
from edgecloud.server.app import prepare_store  # noqa: E402
from edgecloud.server.config import load_settings  # noqa: E402
from edgecloud.server.db.engine import Store, open_store  # noqa: E402
from edgecloud.server.db.models import Cluster, Host, Vm  # noqa: E402
from edgecloud.server.lifecycle.drivers import Drivers  # noqa: E402
from edgecloud.server.lifecycle.placement import Placer, pending_demands, snapshot  # noqa: E402
from edgecloud.server.scheduler.snapshot import VmDemand  # noqa: E402
from edgecloud.server.scheduler.stack import plan  # noqa: E402

API = "/api/v1"
SetupError = base.SetupError
pct = base.pct

HOST_MONITORED = 2
VM_PENDING, VM_ACTIVE, LCM_RUNNING = 1, 3, 3
HOST_CPU, HOST_MEMORY_MB = 64.0, 256 * 1024
FAKE_FREE_DISK_MB = 1 << 30  # what the fake's probe reports; the monitor would store it
VM_TEMPLATE = {"CPU": 0.1, "MEMORY": 64}  # what each POST /vms sends
VM_CPU, VM_MEMORY_MB = 0.1, 64
# The row POST /vms stores for VM_TEMPLATE (validate_vm_template with defaults).
VM_STORED_TEMPLATE = {"CPU": "0.1", "MEMORY": "64", "VCPU": "1", "HYPERVISOR": "kvm"}
CHUNK = 5_000

# The target and the published figures it quotes.
SCHED_MIN_RATE = 2_000.0
OPENNEBULA_RATE = "30 VMs per 15 s scheduler cycle (2/s) by default"
NOMAD_RATE = "~1,500 placements/s (C2M, 3 servers)"
TARGET_HOSTS, TARGET_VMS = 10_000, 100_000


# --------------------------------------------------------------------------- helpers


def proc_status(pid: int | None) -> dict[str, int]:
    """Return VmRSS and VmHWM (kB) of a process, empty if it is gone."""
    if pid is None:
        return {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def mib(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:,.0f} MiB"


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds >= 120:
        return f"{seconds:,.0f} s ({seconds / 60:.1f} min)"
    return f"{seconds:.2f} s"


def dir_usage(root: Path) -> tuple[int, int, int]:
    """Return (directories, guest JSON files, bytes of those files) under the fake's state dir."""
    dirs = files = size = 0
    if not root.is_dir():
        return 0, 0, 0
    for host_dir in os.scandir(root):
        if not host_dir.is_dir():
            continue
        dirs += 1
        for entry in os.scandir(host_dir.path):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                files += 1
                size += entry.stat().st_size
    return dirs, files, size


# --------------------------------------------------------------------------- data


def load_hosts(store: Store, n_hosts: int, n_clusters: int) -> float:
    """Bulk-insert clusters 1..n-1 (0 exists) and the fake hosts; return the seconds taken."""
    now = int(time.time())
    t0 = time.perf_counter()
    owned = {"owner_id": 0, "group_id": 0, "perms": 0o644, "version": 1, "created_at": now}
    with store.write() as session:
        if n_clusters > 1:
            session.execute(
                insert(Cluster.metadata.tables[Cluster.__tablename__]),
                [
                    {
                        **owned,
                        "id": c,
                        "name": f"edge-{c:02d}",
                        "template": {},
                        "reserved_cpu": 0.0,
                        "reserved_memory_mb": 0,
                        "recreate_on_host_failure": False,
                        "host_failure_grace": 60,
                    }
                    for c in range(1, n_clusters)
                ],
            )
        table = Host.metadata.tables[Host.__tablename__]
        for start in range(0, n_hosts, CHUNK):
            session.execute(
                insert(table),
                [
                    {
                        **owned,
                        "perms": 0o600,
                        "name": f"fake-{j:05d}",
                        "template": {"HYPERVISOR": "fake"},
                        "cluster_id": j % n_clusters,
                        "hypervisor": "fake",
                        "state": HOST_MONITORED,
                        "total_cpu": HOST_CPU,
                        "total_memory_mb": HOST_MEMORY_MB,
                        "used_cpu": 0.0,
                        "used_memory_mb": 0,
                        "running_vms": 0,
                        "last_seen": now,
                        "free_disk_mb": FAKE_FREE_DISK_MB,
                        "missed_probes": 0,
                        "error_since": None,
                        "fenced": False,
                    }
                    for j in range(start, min(start + CHUNK, n_hosts))
                ],
            )
        count = len(session.scalars(select(Host.id)).all())
    if count != n_hosts:
        raise SetupError(f"expected {n_hosts} hosts in the store, found {count}")
    return time.perf_counter() - t0


def load_pending_vms(store: Store, n_vms: int) -> float:
    """Bulk-insert PENDING VMs shaped like the ones POST /vms makes; return the seconds."""
    now = int(time.time())
    t0 = time.perf_counter()
    with store.write() as session:
        for start in range(0, n_vms, CHUNK):
            session.execute(
                insert(Vm.metadata.tables[Vm.__tablename__]),
                [
                    {
                        "name": f"scale-{i:06d}",
                        "owner_id": 0,
                        "group_id": 0,
                        "perms": 0o600,
                        "template": dict(VM_STORED_TEMPLATE),
                        "version": 1,
                        "created_at": now,
                        "template_id": None,
                        "state": VM_PENDING,
                        "lcm_state": 0,
                        "hypervisor": "kvm",
                        "cpu": VM_CPU,
                        "vcpu": 1,
                        "memory_mb": VM_MEMORY_MB,
                        "disk_mb": 0,
                        "host_id": None,
                        "cluster_id": None,
                        "deploy_id": "",
                        "user_template": {},
                        "updated_at": now,
                        "ended_at": None,
                    }
                    for i in range(start, min(start + CHUNK, n_vms))
                ],
            )
    return time.perf_counter() - t0


@dataclass
class Backend:
    """Where the stores live: SQLite files in the homes, or one throwaway PostgreSQL."""

    name: str
    pg: Any = None

    @property
    def db_pid(self) -> int | None:
        return None if self.pg is None else self.pg.pid

    def url(self, database: str) -> str:
        """Return the store URL of a database ("" = SQLite at $home/edgecloud.db)."""
        if self.pg is None:
            return ""
        url: str = self.pg.url if database == "edgecloud" else self.pg.create_database(database)
        return url


@contextlib.contextmanager
def open_backend(name: str) -> Iterator[Backend]:
    if name == "sqlite":
        yield Backend(name)
        return
    from tests.support.pgserver import PostgresServer, PostgresServerError

    try:
        pg = PostgresServer().start()
    except PostgresServerError as exc:
        raise SetupError(f"PostgreSQL did not start: {exc}") from exc
    try:
        print(f"  PostgreSQL on port {pg.port} (pid {pg.pid})")
        yield Backend(name, pg)
    finally:
        pg.stop()


# --------------------------------------------------------------------------- step 2


@dataclass
class SchedulerFigures:
    snapshot_s: list[float] = field(default_factory=list)
    snapshot_hosts: int = 0
    placed: int = 0
    unplaced: int = 0
    plan_s: float = 0.0
    batch_s: list[float] = field(default_factory=list)
    capacity_ok: bool = True
    round_vms: int = 0
    round_read_s: float = 0.0
    round_plan_s: float = 0.0
    round_total_s: float = 0.0
    round_placed: int = 0
    fake_memory_rate: float = 0.0
    fake_disk_rate: float = 0.0

    @property
    def rate(self) -> float:
        return self.placed / self.plan_s if self.plan_s else 0.0


def scheduler_alone(store: Store, n_vms: int, batch: int, policy: str, f: SchedulerFigures) -> None:
    """Time snapshot() from the store and plan() over every batch; commit nothing."""
    drivers = Drivers({"fake": {"state_dir": None}})
    for _ in range(3):
        with store.read() as session:
            t0 = time.perf_counter()
            snap = snapshot(session, drivers)
            f.snapshot_s.append(time.perf_counter() - t0)
    f.snapshot_hosts = len(snap.hosts)
    demands = [
        VmDemand(vm_id=i + 1, cpu=VM_CPU, memory_mb=VM_MEMORY_MB, hypervisor="kvm")
        for i in range(n_vms)
    ]
    plan(demands[:batch], snap, policy)  # warm the caches plan keeps (expressions)
    for start in range(0, n_vms, batch):
        chunk = demands[start : start + batch]
        t0 = time.perf_counter()
        result = plan(chunk, snap, policy)
        elapsed = time.perf_counter() - t0
        f.batch_s.append(elapsed)
        f.plan_s += elapsed
        f.placed += len(result.placements)
        f.unplaced += len(result.unplaced)
        snap = sched_bench.apply(snap, chunk, result)  # untimed: what the next round reads
    f.capacity_ok = sched_bench.check_no_overcommit(snap)


def placer_round(
    backend: Backend, home: Path, args: argparse.Namespace, f: SchedulerFigures
) -> None:
    """One real Placer.run_once() of --round PENDING VMs on a scratch store with the hosts."""
    scratch = home / "placer-scratch"
    settings = load_settings(home=scratch, db=backend.url("placer_scratch"))
    store, _ = prepare_store(settings)
    try:
        load_hosts(store, args.hosts, args.clusters)
        load_pending_vms(store, args.round)
        drivers = Drivers({"fake": {"state_dir": None}})
        # The read-only part of the round, timed apart on the same rows (nothing changes).
        with store.read() as session:
            t0 = time.perf_counter()
            demands = pending_demands(session, args.round)
            snap = snapshot(session, drivers)
            t1 = time.perf_counter()
        plan(demands, snap, args.policy)
        t2 = time.perf_counter()
        placer = Placer(store, drivers, policy=args.policy, batch=args.round)
        t3 = time.perf_counter()
        placed = placer.run_once()
        t4 = time.perf_counter()
        f.round_vms, f.round_placed = len(demands), placed
        f.round_read_s, f.round_plan_s, f.round_total_s = t1 - t0, t2 - t1, t4 - t3
    finally:
        store.dispose()
        shutil.rmtree(scratch, ignore_errors=True)


def fake_driver_alone(home: Path, n_hosts: int, n_guests: int, f: SchedulerFigures) -> None:
    """Time FakeHypervisor.deploy alone, in memory and with its state on disk (one thread)."""
    hosts = [
        HostRef(id=j, name=f"fake-{j:05d}", attributes={"CPU": "64", "MEMORY": "262144"})
        for j in range(n_hosts)
    ]
    specs = [GuestSpec(i, f"vm-{i}", dict(VM_STORED_TEMPLATE), f"one-{i}") for i in range(n_guests)]
    state_dir = home / "fake-alone"
    for label, hv in (("memory", FakeHypervisor(None)), ("disk", FakeHypervisor(state_dir))):
        t0 = time.perf_counter()
        for i, spec in enumerate(specs):
            hv.deploy(hosts[i % n_hosts], spec)
        rate = n_guests / (time.perf_counter() - t0)
        if label == "memory":
            f.fake_memory_rate = rate
        else:
            f.fake_disk_rate = rate
    shutil.rmtree(state_dir, ignore_errors=True)


# --------------------------------------------------------------------------- profiling

# Where a front-end thread's time is attributed (inclusive), in the order they are tried.
PROFILE_BUCKETS = (
    ("placer: snapshot() of the hosts", "snapshot (edgecloud/server/lifecycle/placement.py"),
    ("placer: pending_demands()", "pending_demands (edgecloud/"),
    ("placer: plan()", "plan (edgecloud/server/scheduler/stack.py"),
    ("placer: commit", "Placer._commit (edgecloud/"),
    ("engine: fake deploy (state on disk)", "FakeHypervisor.deploy (edgecloud/"),
    ("engine: claim", "Engine.claim (edgecloud/"),
    ("engine: load job", "Engine._load (edgecloud/"),
    ("engine: step begin", "Engine._step_begin (edgecloud/"),
    ("engine: step done", "Engine._step_done (edgecloud/"),
    ("engine: finish", "Engine._finish (edgecloud/"),
    ("engine: lease upkeep", "Engine._lease_loop (edgecloud/"),
    ("API: POST /vms", "Vms.create (edgecloud/"),
    ("API: GET /metrics", "metrics (edgecloud/server/rest/watch.py"),
    ("API: GET /vms (list)", "list_vms (edgecloud/"),
    ("API: other request handling", "APIRouter.app (fastapi/"),
    ("HTTP server / event loop", "Runner.run (asyncio/"),
)


def summarize_profile(path: Path) -> None:
    """Print where the GIL-holding samples went, by PROFILE_BUCKETS (first match wins)."""
    total, buckets, sql = 0, Counter[str](), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for label, marker in PROFILE_BUCKETS:
            if any(f.startswith(marker) for f in frames):
                buckets[label] += n
                break
        else:
            buckets["other"] += n
        if any(
            f.startswith(
                (
                    "DefaultDialect.do_execute",
                    "DefaultDialect.do_commit",
                    "CursorFetchStrategy.fetch",
                )
            )
            for f in frames
        ):
            sql += n
    if not total:
        return
    print(f"    GIL-holding samples: {total:,} (100 Hz); by part of the front-end:")
    for label, n in buckets.most_common():
        print(f"      {n / total * 100:5.1f}%  {label}")
    print(
        f"      ({sql / total * 100:.1f}% of all of them inside the DB-API driver: execute,"
        " fetch, commit)"
    )


# --------------------------------------------------------------------------- step 3


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def parse_metrics(text: str) -> dict[str, float]:
    """Pick what the progress needs out of the Prometheus text of /api/v1/metrics."""
    out: dict[str, float] = {}

    def add(key: str, value: float) -> None:
        out[key] = out.get(key, 0.0) + value

    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _METRIC.match(line)
        if m is None:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name == "edgecloud_vms":
            state = re.search(r'state="([^"]*)"', labels)
            add(f"vms:{state.group(1) if state else '?'}", value)
        elif name in ("edgecloud_operation_seconds_count", "edgecloud_operation_seconds_sum"):
            kind = re.search(r'kind="([^"]*)"', labels)
            result = re.search(r'result="([^"]*)"', labels)
            if kind and kind.group(1) == "vm.deploy" and result:
                suffix = "count" if name.endswith("count") else "sum"
                add(f"deploy_{result.group(1)}_{suffix}", value)
        elif name in (
            "edgecloud_scheduler_round_seconds_count",
            "edgecloud_scheduler_round_seconds_sum",
        ):
            add("sched_" + name.rsplit("_", 1)[1], value)
        elif name == "edgecloud_api_request_seconds_count":
            status = re.search(r'status="(\d+)"', labels)
            if status and status.group(1).startswith("5"):
                add("api_5xx", value)
    return out


@dataclass
class ListShow:
    """List and show latency at one size."""

    items: int = 0
    running: int = 0
    list_times: list[float] = field(default_factory=list)
    list_bytes: int = 0
    show_times: list[float] = field(default_factory=list)
    show_errors: int = 0
    failures: list[str] = field(default_factory=list)
    rss_kb: dict[str, int] = field(default_factory=dict)


@dataclass
class EndToEnd:
    submitted: int = 0
    created_ids: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    submit_lat: list[float] = field(default_factory=list)
    batch_s: list[float] = field(default_factory=list)
    t_submit_s: float = 0.0  # first submission to last answer
    t_placed_s: float | None = None  # first submission to no VM PENDING (after the last one)
    t_running_s: float | None = None  # first submission to every created VM RUNNING
    running_at_end: int = 0
    failed_deploys: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    server_cpu_s: float = 0.0
    bench_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    wall_s: float = 0.0
    rss_kb: dict[str, int] = field(default_factory=dict)
    rss_peak_sampled_kb: int = 0
    poll_errors: int = 0
    fake_dirs: int = 0
    fake_files: int = 0
    fake_bytes: int = 0
    measured: ListShow | None = None  # at the size the run reached
    topped: ListShow | None = None  # after bulk-inserting RUNNING VMs up to --list-size
    top_up_s: float = 0.0
    rss_final_kb: dict[str, int] = field(default_factory=dict)
    server_problems: list[str] = field(default_factory=list)


class Submitter:
    """`clients` threads, each with a keep-alive httpx.Client, creating VMs from a queue."""

    def __init__(self, url: str, headers: dict[str, str], clients: int, out: EndToEnd) -> None:
        self.out = out
        self.jobs: queue.Queue[int | None] = queue.Queue()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._work, args=(url, headers), daemon=True)
            for _ in range(clients)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self, url: str, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120.0) as client:
            while True:
                index = self.jobs.get()
                if index is None:
                    self.jobs.task_done()
                    return
                body = {"name": f"scale-{index:06d}", "template": VM_TEMPLATE}
                t = time.perf_counter()
                try:
                    response = client.post("/vms", json=body)
                    elapsed = time.perf_counter() - t
                    status = response.status_code
                    vm_id = response.json()["id"] if status == 201 else None
                    problem = "" if status == 201 else f"{status} {response.text[:300]}"
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    elapsed, status, vm_id = time.perf_counter() - t, 0, None
                    problem = f"{type(exc).__name__}: {exc}"
                with self.lock:
                    self.out.submit_lat.append(elapsed)
                    self.out.statuses[status] += 1
                    self.out.submitted += 1
                    if vm_id is not None:
                        self.out.created_ids.append(vm_id)
                    elif len(self.out.failures) < 10:
                        self.out.failures.append(problem)
                self.jobs.task_done()

    def batch(self, indices: range) -> None:
        """Submit one batch and wait until every VM of it has been answered."""
        for index in indices:
            self.jobs.put(index)
        self.jobs.join()

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=180)


class Poller:
    """Read /api/v1/metrics every `interval` s: VMs by state, deploys done, server RSS."""

    def __init__(
        self, url: str, headers: dict[str, str], pid: int, out: EndToEnd, args: argparse.Namespace
    ) -> None:
        self.url, self.headers, self.pid, self.out, self.args = url, headers, pid, out, args
        self.t0 = 0.0
        self.submit_done = threading.Event()
        self.all_running = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self, t0: float) -> None:
        self.t0 = t0
        self.thread.start()

    def _loop(self) -> None:
        last_print = 0.0
        last_done, last_t = 0.0, 0.0
        srv0 = base.proc_cpu(self.pid)
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60.0) as client:
            while not self.stop.is_set():
                t = time.perf_counter() - self.t0
                try:
                    response = client.get("/metrics")
                    response.raise_for_status()
                    m = parse_metrics(response.text)
                except httpx.HTTPError:
                    self.out.poll_errors += 1
                    self.stop.wait(self.args.poll)
                    continue
                rss = proc_status(self.pid).get("VmRSS", 0)
                self.out.rss_peak_sampled_kb = max(self.out.rss_peak_sampled_kb, rss)
                self.out.samples.append((t, m))
                self.out.last_metrics = m
                done = m.get("deploy_done_count", 0.0)
                failed = m.get("deploy_failed_count", 0.0)
                created = len(self.out.created_ids)
                if self.submit_done.is_set():
                    if self.out.t_placed_s is None and m.get("vms:PENDING", 0.0) == 0:
                        self.out.t_placed_s = t
                    if done + failed >= created:
                        self.out.t_running_s = t
                        self.all_running.set()
                        return
                if t - last_print >= self.args.progress:
                    srv = base.proc_cpu(self.pid)
                    rate = (done - last_done) / (t - last_t) if t > last_t else 0.0
                    print(
                        f"    t={t:7.1f}s submitted {self.out.submitted:>7,}"
                        f"  pending {m.get('vms:PENDING', 0):>7,.0f}"
                        f"  active {m.get('vms:ACTIVE', 0):>7,.0f}"
                        f"  running {done:>7,.0f} (+{rate:,.0f}/s)  failed {failed:,.0f}"
                        f"  server RSS {mib(rss)}  server CPU {srv - srv0:,.0f}s",
                        flush=True,
                    )
                    last_print, last_done, last_t = t, done, t
                self.stop.wait(self.args.poll)


def end_to_end(
    server: Any, basic: httpx.BasicAuth, backend: Backend, args: argparse.Namespace, home: Path
) -> EndToEnd:
    """Submit the VMs over HTTP, wait for them to run, then measure RSS, list and show."""
    out = EndToEnd()
    with httpx.Client(base_url=server.url + API, auth=basic, timeout=30.0) as client:
        response = client.post("/login", json={"name": "bench-scale"})
        if response.status_code != 200:
            raise SetupError(f"login failed: {response.status_code} {response.text}")
        token = response.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    url = server.url + API

    srv0, db0 = base.proc_cpu(server.pid), base.tree_cpu(backend.db_pid)
    cpu0 = time.process_time()
    submitter = Submitter(url, headers, args.clients, out)
    poller = Poller(url, headers, server.pid, out, args)
    t0 = time.perf_counter()
    poller.start(t0)
    try:
        with base.profiled(
            server.pid,
            args.profile,
            f"{backend.name}-end-to-end",
            rate=100,
            gil=True,
            on_written=summarize_profile,
        ):
            for start in range(0, args.vms, args.batch):
                if time.perf_counter() - t0 > args.budget:
                    print(f"    budget of {args.budget:g}s spent while submitting: stopping")
                    break
                tb = time.perf_counter()
                submitter.batch(range(start, min(start + args.batch, args.vms)))
                out.batch_s.append(time.perf_counter() - tb)
            out.t_submit_s = time.perf_counter() - t0
            submitter.close()
            poller.submit_done.set()
            print(
                f"    submitted {out.submitted:,} VMs in {fmt_s(out.t_submit_s)}"
                f" ({out.submitted / out.t_submit_s:,.0f}/s; {len(out.created_ids):,} created)",
                flush=True,
            )
            remaining = args.budget - (time.perf_counter() - t0)
            if not poller.all_running.wait(max(0.0, remaining)):
                print(f"    budget of {args.budget:g}s spent: not every VM is RUNNING")
    finally:
        poller.stop.set()
        poller.thread.join(timeout=120)
        submitter.close()
    out.wall_s = time.perf_counter() - t0
    out.server_cpu_s = base.proc_cpu(server.pid) - srv0
    out.db_cpu_s = base.tree_cpu(backend.db_pid) - db0
    out.bench_cpu_s = time.process_time() - cpu0
    m = out.last_metrics
    out.running_at_end = int(m.get("deploy_done_count", 0))
    out.failed_deploys = int(m.get("deploy_failed_count", 0))
    out.rss_kb = proc_status(server.pid)
    fake_dir = home / "fake-hosts"
    out.fake_dirs, out.fake_files, out.fake_bytes = dir_usage(fake_dir)

    out.measured = measure_list_show(url, headers, out.created_ids, server.pid, args)
    if args.list_size > len(out.created_ids):
        # Top up to --list-size with RUNNING VMs written straight into the store (the front-end
        # is idle by now), to measure list/show at the size the issue asks for.
        store = open_store(load_settings(home=home, db=backend.url("edgecloud")).db_url)
        try:
            t = time.perf_counter()
            extra = top_up(store, args.list_size - len(out.created_ids), args.hosts)
            out.top_up_s = time.perf_counter() - t
        finally:
            store.dispose()
        print(
            f"    topped up with {len(extra):,} RUNNING VMs bulk-inserted into the store in"
            f" {out.top_up_s:.1f}s, to measure list/show at {args.list_size:,}",
            flush=True,
        )
        out.topped = measure_list_show(url, headers, out.created_ids + extra, server.pid, args)
    out.rss_final_kb = proc_status(server.pid)
    return out


def top_up(store: Store, count: int, n_hosts: int) -> list[int]:
    """Bulk-insert `count` ACTIVE/RUNNING VMs on the hosts; return their ids.

    Only for the list/show measurement: host usage is not charged, no operation or history
    row is written (the front-end is stopped right after).
    """
    now = int(time.time())
    with store.read() as session:
        first = (session.scalar(select(Vm.id).order_by(Vm.id.desc()).limit(1)) or 0) + 1
        host_ids = list(session.scalars(select(Host.id).order_by(Host.id)))
    ids = list(range(first, first + count))
    with store.write() as session:
        for start in range(0, count, CHUNK):
            session.execute(
                insert(Vm.metadata.tables[Vm.__tablename__]),
                [
                    {
                        "id": vm_id,
                        "name": f"topup-{vm_id:06d}",
                        "owner_id": 0,
                        "group_id": 0,
                        "perms": 0o600,
                        "template": dict(VM_STORED_TEMPLATE),
                        "version": 1,
                        "created_at": now,
                        "template_id": None,
                        "state": VM_ACTIVE,
                        "lcm_state": LCM_RUNNING,
                        "hypervisor": "kvm",
                        "cpu": VM_CPU,
                        "vcpu": 1,
                        "memory_mb": VM_MEMORY_MB,
                        "disk_mb": 0,
                        "host_id": host_ids[vm_id % n_hosts],
                        "cluster_id": None,
                        "deploy_id": f"one-{vm_id}",
                        "user_template": {},
                        "updated_at": now,
                        "ended_at": None,
                    }
                    for vm_id in ids[start : start + CHUNK]
                ],
            )
    return ids


def measure_list_show(
    url: str, headers: dict[str, str], ids: list[int], pid: int, args: argparse.Namespace
) -> ListShow:
    """p50/p99 of the short list of every VM, and of show-VM, at the current size."""
    out = ListShow()
    rng = random.Random(args.seed)
    list_path = "/vms?limit=100000&view=short"
    with httpx.Client(base_url=url, headers=headers, timeout=120.0) as client:
        response = client.get(list_path)  # warm-up, and the check that every VM runs
        if response.status_code != 200:
            raise SetupError(f"list failed: {response.status_code} {response.text[:500]}")
        body = orjson.loads(response.content)
        out.items = len(body["items"])
        out.running = sum(
            1 for v in body["items"] if v["state"] == VM_ACTIVE and v["lcm_state"] == LCM_RUNNING
        )
        for _ in range(args.list_reps):
            t = time.perf_counter()
            response = client.get(list_path)
            out.list_times.append(time.perf_counter() - t)
            out.list_bytes = len(response.content)
            if response.status_code != 200:
                out.failures.append(f"list: {response.status_code} {response.text[:200]}")
        if ids:
            for _ in range(5):
                client.get(f"/vms/{rng.choice(ids)}")
            for _ in range(args.show_reps):
                vm_id = rng.choice(ids)
                t = time.perf_counter()
                response = client.get(f"/vms/{vm_id}")
                out.show_times.append(time.perf_counter() - t)
                if response.status_code != 200 or response.json()["id"] != vm_id:
                    out.show_errors += 1
                    if len(out.failures) < 5:
                        out.failures.append(f"show {vm_id}: {response.status_code}")
    out.rss_kb = proc_status(pid)
    return out


# --------------------------------------------------------------------------- one run


def write_config(home: Path, args: argparse.Namespace) -> None:
    """Settings for the front-end subprocess ($EDGECLOUD_HOME/edgecloud.toml)."""
    (home / "edgecloud.toml").write_text(
        f"workers = {args.workers}\n"
        f"scheduler_interval = {args.scheduler_interval}\n"
        f"monitor_interval = {args.monitor_interval}\n"
        f'scheduler_policy = "{args.policy}"\n'
        f'fake_state_dir = "{home / "fake-hosts"}"\n'
    )


def run(args: argparse.Namespace) -> tuple[SchedulerFigures, EndToEnd | None, dict[str, float]]:
    sched = SchedulerFigures()
    load: dict[str, float] = {}
    home = Path(tempfile.mkdtemp(prefix=f"edgecloud-scale-{args.backend}-"))
    print(f"\n=== {args.backend}: home {home}")
    e2e: EndToEnd | None = None
    try:
        with open_backend(args.backend) as backend:
            db = backend.url("edgecloud")
            settings = load_settings(home=home, db=db)
            t0 = time.perf_counter()
            store, password = prepare_store(settings)
            load["migrate+bootstrap"] = time.perf_counter() - t0
            try:
                if password is None:
                    raise SetupError("the store was not fresh (no admin password was created)")
                load["hosts"] = load_hosts(store, args.hosts, args.clusters)
                print(
                    f"  1. {args.hosts:,} fake hosts in {args.clusters} clusters bulk-inserted"
                    f" (SQLAlchemy Core) in {load['hosts']:.2f}s"
                    f" (migrate+bootstrap {load['migrate+bootstrap']:.2f}s)",
                    flush=True,
                )
                scheduler_alone(store, args.sched_vms, args.batch, args.policy, sched)
                print(
                    f"  2. scheduler alone: {sched.rate:,.0f} placements/s"
                    f" ({sched.placed:,} placed, {sched.unplaced:,} unplaced in"
                    f" {sched.plan_s:.2f}s of plan); snapshot of {sched.snapshot_hosts:,} hosts"
                    f" {statistics.median(sched.snapshot_s):.3f}s",
                    flush=True,
                )
            finally:
                store.dispose()
            if args.round:
                placer_round(backend, home, args, sched)
                print(
                    f"     one Placer.run_once() of {sched.round_vms:,} PENDING VMs:"
                    f" {sched.round_total_s:.2f}s ({sched.round_placed:,} placed)",
                    flush=True,
                )
            fake_driver_alone(home, min(args.hosts, 1000), 5000, sched)
            print(
                f"     fake deploy alone: memory {sched.fake_memory_rate:,.0f}/s,"
                f" disk {sched.fake_disk_rate:,.0f}/s",
                flush=True,
            )
            if args.skip_e2e:
                return sched, None, load

            write_config(home, args)
            admin, _, secret = settings.auth_file.read_text().strip().partition(":")
            basic = httpx.BasicAuth(admin, secret)
            t0 = time.perf_counter()
            server = base.start_server(home, db, basic, timeout=300.0)
            load["front-end start"] = time.perf_counter() - t0
            print(
                f"  3. front-end pid {server.pid} on {server.url} (started in"
                f" {load['front-end start']:.1f}s; workers {args.workers}, scheduler_interval"
                f" {args.scheduler_interval:g}s, monitor_interval {args.monitor_interval:g}s:"
                f" no monitoring round runs during the measurement)",
                flush=True,
            )
            try:
                e2e = end_to_end(server, basic, backend, args, home)
            finally:
                base.stop_server(server)
                if e2e is not None:
                    e2e.server_problems = server.problems()
    finally:
        if args.keep:
            print(f"  kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return sched, e2e, load


# --------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    args: argparse.Namespace, sched: SchedulerFigures, e2e: EndToEnd | None, load: dict[str, float]
) -> None:
    rows: list[tuple[str, str]] = [
        ("setup", ", ".join(f"{k} {v:.2f}s" for k, v in load.items())),
        (
            "scheduler alone (plan)",
            f"{sched.rate:,.0f} placements/s  ({sched.placed:,} placed, {sched.unplaced:,}"
            f" unplaced, batches of {args.batch:,}: p50 {pct(sched.batch_s, 50) * 1e3:.1f} ms"
            f" p99 {pct(sched.batch_s, 99) * 1e3:.1f} ms; capacity"
            f" {'ok' if sched.capacity_ok else 'OVERCOMMITTED'})",
        ),
        (
            "  snapshot from the store",
            f"{statistics.median(sched.snapshot_s):.3f} s for {sched.snapshot_hosts:,} hosts"
            f" (median of 3; the placer builds one per round of up to 5,000 VMs)",
        ),
    ]
    if args.round and sched.round_total_s:
        commit = sched.round_total_s - sched.round_read_s - sched.round_plan_s
        rows.append(
            (
                "  one Placer.run_once()",
                f"{sched.round_total_s:.2f} s for {sched.round_placed:,} of {sched.round_vms:,}"
                f" VMs = {sched.round_placed / sched.round_total_s:,.0f} placements/s with the"
                f" commit (read+snapshot {sched.round_read_s:.2f} s, plan"
                f" {sched.round_plan_s:.2f} s, commit ~{commit:.2f} s by difference)",
            )
        )
    rows.append(
        (
            "  fake deploy alone",
            f"memory {sched.fake_memory_rate:,.0f}/s, state on disk"
            f" {sched.fake_disk_rate:,.0f}/s (one thread, 5,000 guests)",
        )
    )
    if e2e is not None:
        created = len(e2e.created_ids)
        five_xx = sum(n for code, n in e2e.statuses.items() if code >= 500)
        codes = " ".join(f"{c}:{n}" for c, n in sorted(e2e.statuses.items()))
        m = e2e.last_metrics
        rows += [
            (
                "submit (POST /vms)",
                f"{e2e.submitted:,} in {fmt_s(e2e.t_submit_s)} ="
                f" {e2e.submitted / e2e.t_submit_s:,.0f}/s with {args.clients} clients"
                f" (latency p50 {pct(e2e.submit_lat, 50) * 1e3:.1f} ms"
                f" p99 {pct(e2e.submit_lat, 99) * 1e3:.1f} ms; batch of {args.batch:,}"
                f" p50 {pct(e2e.batch_s, 50):.2f} s; statuses {codes}; {five_xx} 5xx)",
            ),
        ]
        if e2e.t_running_s is not None:
            rows.append(
                (
                    "time until all RUNNING",
                    f"{fmt_s(e2e.t_running_s)} from the first POST for {created:,} VMs ="
                    f" {created / e2e.t_running_s:,.0f} VMs placed+deployed per second overall"
                    f" (poll resolution {args.poll:g} s)",
                )
            )
            drain = e2e.t_running_s - e2e.t_submit_s
            rows.append(
                (
                    "  after the last POST",
                    f"{fmt_s(drain)} more; all placed (none PENDING) at {fmt_s(e2e.t_placed_s)}",
                )
            )
        else:
            rows.append(
                (
                    "time until all RUNNING",
                    f"not reached within the budget of {args.budget:g} s: {e2e.running_at_end:,}"
                    f" of {created:,} RUNNING after {fmt_s(e2e.wall_s)}"
                    f" ({e2e.running_at_end / e2e.wall_s:,.0f}/s)",
                )
            )
        rate = (
            created / e2e.t_running_s
            if e2e.t_running_s
            else (e2e.running_at_end / e2e.wall_s if e2e.wall_s else 0.0)
        )
        if rate and (created < TARGET_VMS or e2e.t_running_s is None):
            rows.append(
                (
                    "  extrapolated",
                    f"{TARGET_VMS:,} VMs at this overall rate: {fmt_s(TARGET_VMS / rate)}"
                    " (linear; the rate may fall as the tables grow)",
                )
            )
        rounds, round_s = m.get("sched_count", 0.0), m.get("sched_sum", 0.0)
        if rounds:
            placed_total = created - m.get("vms:PENDING", 0.0)
            rows.append(
                (
                    "  in-server placer",
                    f"{rounds:,.0f} rounds, {round_s:,.1f} s in rounds (snapshot+plan+commit)"
                    f" = {placed_total / round_s:,.0f} placements/s of round time,"
                    f" mean round {round_s / rounds:.3f} s",
                )
            )
        if m.get("deploy_done_count"):
            rows.append(
                (
                    "  deploy operations",
                    f"{m['deploy_done_count']:,.0f} done, {e2e.failed_deploys:,} failed; mean"
                    f" request-to-RUNNING {m['deploy_done_sum'] / m['deploy_done_count']:,.1f} s",
                )
            )
        cpu = f"server {e2e.server_cpu_s:,.0f} s, bench process {e2e.bench_cpu_s:,.0f} s"
        if args.backend == "pg":
            cpu += f", postgres {e2e.db_cpu_s:,.0f} s"
        rows.append(
            ("  CPU used", f"{cpu} over {fmt_s(e2e.wall_s)} of wall time ({os.cpu_count()} cores)")
        )
        rows.append(
            (
                "  fake hypervisor state",
                f"{e2e.fake_files:,} guest files ({e2e.fake_bytes / 1e6:,.1f} MB) in"
                f" {e2e.fake_dirs:,} host directories under the temp home",
            )
        )
        rows.append(
            (
                "front-end RSS",
                f"{mib(e2e.rss_kb.get('VmRSS'))} when all ran (peak VmHWM"
                f" {mib(e2e.rss_kb.get('VmHWM'))}); after list/show"
                f" {mib(e2e.rss_final_kb.get('VmRSS'))} (VmHWM"
                f" {mib(e2e.rss_final_kb.get('VmHWM'))})",
            )
        )
        for label, ls in (("", e2e.measured), (" (topped up)", e2e.topped)):
            if ls is None:
                continue
            rows.append(
                (
                    f"list {ls.items:,} VMs (short){label}",
                    f"p50 {pct(ls.list_times, 50):.3f} s  p99 {pct(ls.list_times, 99):.3f} s"
                    f"  ({len(ls.list_times)} reps, {ls.list_bytes / 1e6:.2f} MB;"
                    f" {ls.running:,} of them ACTIVE/RUNNING)",
                )
            )
            rows.append(
                (
                    f"show VM at {ls.items:,}",
                    f"p50 {pct(ls.show_times, 50) * 1e3:.2f} ms  p99"
                    f" {pct(ls.show_times, 99) * 1e3:.2f} ms  ({len(ls.show_times)} reps,"
                    f" {ls.show_errors} errors); front-end RSS after it"
                    f" {mib(ls.rss_kb.get('VmRSS'))}",
                )
            )
        rows.append(
            (
                "errors",
                f"{five_xx} 5xx on submit, {int(m.get('api_5xx', 0))} 5xx in the server's metrics,"
                f" {e2e.poll_errors} failed polls, {e2e.failed_deploys} failed deploys,"
                f" server log warnings/errors: {len(e2e.server_problems)}",
            )
        )
    width = max(len(k) for k, _ in rows)
    print(f"\n--- {args.backend} ({args.hosts:,} hosts, {args.vms:,} VMs)")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    if e2e is not None:
        failures = list(e2e.failures)
        for ls in (e2e.measured, e2e.topped):
            failures += ls.failures if ls else []
        for failure in failures[:10]:
            print(f"    ! {failure}")
        for line in e2e.server_problems[:10]:
            print(f"    | {line[:300]}")

    print("\n=== summary (targets of the issue)")
    scale = (
        ""
        if (args.hosts, args.sched_vms) == (TARGET_HOSTS, TARGET_VMS)
        else f" (this run: {args.hosts:,} hosts, {args.sched_vms:,} VMs,"
        " not the issue's 10,000/100,000)"
    )
    print(
        f"  scheduler alone >= {SCHED_MIN_RATE:,.0f} placements/s on one core:"
        f" {sched.rate:,.0f}/s  {verdict(sched.rate >= SCHED_MIN_RATE)}{scale}"
    )
    print(f"    for scale: OpenNebula dispatches {OPENNEBULA_RATE}; Nomad publishes {NOMAD_RATE}")
    if e2e is not None:
        created = len(e2e.created_ids)
        if e2e.t_running_s is not None:
            print(f"  time until all {created:,} VMs RUNNING: {fmt_s(e2e.t_running_s)} (no target)")
        else:
            print(
                f"  all RUNNING: not within {args.budget:g} s ({e2e.running_at_end:,} of"
                f" {created:,})"
            )
        print(
            f"  front-end RSS {mib(e2e.rss_kb.get('VmRSS'))} with {created:,} VMs running,"
            f" {mib(e2e.rss_final_kb.get('VmRSS'))} at the end (peak"
            f" {mib(e2e.rss_final_kb.get('VmHWM'))}) (no target)"
        )
        for ls in (e2e.measured, e2e.topped):
            if ls is not None:
                print(
                    f"  list {ls.items:,} VMs p50 {pct(ls.list_times, 50):.3f} s"
                    f" p99 {pct(ls.list_times, 99):.3f} s; show p50"
                    f" {pct(ls.show_times, 50) * 1e3:.2f} ms p99"
                    f" {pct(ls.show_times, 99) * 1e3:.2f} ms (no targets at this size)"
                )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--hosts", type=int, default=TARGET_HOSTS)
    parser.add_argument("--vms", type=int, default=TARGET_VMS)
    parser.add_argument(
        "--batch", type=int, default=1000, help="VMs per plan() batch and per submit batch"
    )
    parser.add_argument(
        "--sched-vms", type=int, help="VMs the scheduler alone places (default: --vms)"
    )
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8, help="threads submitting VMs")
    parser.add_argument("--workers", type=int, default=8, help="the front-end's lifecycle workers")
    parser.add_argument("--scheduler-interval", type=float, default=0.2)
    parser.add_argument("--monitor-interval", type=float, default=3600.0)
    parser.add_argument(
        "--policy", choices=("striping", "packing", "load-aware"), default="striping"
    )
    parser.add_argument(
        "--round", type=int, default=5000, help="VMs of the in-process Placer.run_once (0: skip)"
    )
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds for end to end")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between /metrics polls")
    parser.add_argument("--progress", type=float, default=15.0, help="seconds between lines")
    parser.add_argument("--list-reps", type=int, default=10)
    parser.add_argument("--show-reps", type=int, default=300)
    parser.add_argument(
        "--list-size",
        type=int,
        default=0,
        help="after the run, bulk-insert RUNNING VMs up to this many and measure list/show again",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-e2e", action="store_true", help="only steps 1-2")
    parser.add_argument("--keep", action="store_true", help="keep the temp home")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the server with py-spy during the end-to-end phase; write DIR/*.txt",
    )
    args = parser.parse_args(argv)
    if args.hosts < 1 or not 1 <= args.vms <= 100_000 or args.batch < 1 or args.clusters < 1:
        parser.error("need hosts >= 1, 1 <= vms <= 100000 (one list page), batch >= 1")
    args.sched_vms = args.sched_vms or args.vms
    if args.list_size > 100_000:
        parser.error("--list-size is at most 100000 (one list page)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"edgecloud scale bench: {args.hosts:,} fake hosts, {args.vms:,} VMs"
        f" ({args.sched_vms:,} for the scheduler alone) in batches of {args.batch:,},"
        f" backend {args.backend}, {os.cpu_count()} CPU cores,"
        f" Python {sys.version.split()[0]}"
    )
    try:
        sched, e2e, load = run(args)
    except SetupError as exc:
        print(f"  SETUP FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    report(args, sched, e2e, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
