"""OpenNebula's XML-RPC API at 20,000 VMs: `one.vmpool.info` and `one.vm.info` next to the
REST equivalents, in the same run, on the same front-end.

    .venv/bin/python bench/xmlrpc.py [--backend sqlite|pg|both] [--vms 20000] [--runs 30]

Loads the hosts and VMs straight into a fresh store (bench/api.py's loader), starts the
front-end as a subprocess, then times over HTTP on 127.0.0.1 (after 2 warm-ups each):

- `one.vmpool.info(-2, -1, -1, -1)`: every VM, the call OpenNebula takes 0.78-1.27 s for at
  20,000 VMs; target p50 <= 0.25 s. Next to it `GET /api/v1/vms?limit=100000&view=short`;
- `one.vmpool.info(-2, -1, -100, -1)`: a page of 100 (OpenNebula's pagination);
- `one.vm.info(id)` of random VMs, next to `GET /api/v1/vms/{id}`.

The answers are parsed as a client would (xmlrpc.client), and each pool document is
checked to hold every VM. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's directory comes first on sys.path, and this file's name would
# hide the standard library's `xmlrpc` package: take the directory out before importing it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "src"))

import xmlrpc.client  # noqa: E402

import httpx  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_api", ROOT / "bench" / "api.py")
if _spec is None or _spec.loader is None:
    raise SystemExit("bench/api.py not found")
bench_api = importlib.util.module_from_spec(_spec)
sys.modules["bench_api"] = bench_api
_spec.loader.exec_module(bench_api)
API, backend_store, load_data = bench_api.API, bench_api.backend_store, bench_api.load_data
start_server, stop_server = bench_api.start_server, bench_api.stop_server
pct = bench_api.pct

from edgecloud.server.app import prepare_store  # noqa: E402
from edgecloud.server.config import load_settings  # noqa: E402


def timed(call: Callable[[], object], runs: int) -> list[float]:
    """Seconds of each of `runs` calls after 2 warm-ups."""
    for _ in range(2):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def run(backend: str, n_vms: int, runs: int) -> list[tuple[str, list[float], str]]:
    """Load, serve, measure one backend; return (name, times, baseline name) rows."""
    home = Path(tempfile.mkdtemp(prefix=f"edgecloud-bench-xmlrpc-{backend}-"))
    rows: list[tuple[str, list[float], str]] = []
    try:
        with backend_store(backend) as (db, _pid):
            settings = load_settings(home=home, db=db)
            store, _ = prepare_store(settings)
            try:
                vm_ids, timings = load_data(store, max(1, n_vms // 20), n_vms)
            finally:
                store.dispose()
            print(f"  {backend}: loaded {n_vms} VMs in {timings['vms']:.1f} s")
            user, _, secret = settings.auth_file.read_text().strip().partition(":")
            basic = httpx.BasicAuth(user, secret)
            server = start_server(home, db, basic)
            session = f"{user}:{secret}"
            rpc = xmlrpc.client.ServerProxy(f"{server.url}/RPC2")
            rest = httpx.Client(base_url=server.url + API, auth=basic, timeout=60)
            try:
                token = rest.post("/login", json={}).json()["token"]
                rest.auth = None  # type: ignore[assignment]
                rest.headers["Authorization"] = f"Bearer {token}"

                def pool() -> None:
                    ok, doc, *_ = rpc.one.vmpool.info(session, -2, -1, -1, -1)
                    if not ok or doc.count("<VM>") != n_vms:
                        raise RuntimeError(f"vmpool.info: {str(doc)[:300]}")

                def pool_rest() -> None:
                    got = rest.get("/vms", params={"limit": 100_000, "view": "short"})
                    assert len(got.json()["items"]) == n_vms

                def page() -> None:
                    ok, doc, *_ = rpc.one.vmpool.info(session, -2, -1, -100, -1)
                    if not ok or doc.count("<VM>") != 100:
                        raise RuntimeError(f"vmpool.info page: {str(doc)[:300]}")

                def one() -> None:
                    ok, doc, *_ = rpc.one.vm.info(session, random.choice(vm_ids))
                    assert ok, doc

                def one_rest() -> None:
                    rest.get(f"/vms/{random.choice(vm_ids)}").raise_for_status()

                rows.append((f"{backend} one.vmpool.info (all)", timed(pool, runs), ""))
                rows.append((f"{backend} GET /vms short (all)", timed(pool_rest, runs), "rest"))
                rows.append((f"{backend} one.vmpool.info (page of 100)", timed(page, runs), ""))
                rows.append((f"{backend} one.vm.info", timed(one, runs * 10), ""))
                rows.append((f"{backend} GET /vms/ID", timed(one_rest, runs * 10), "rest"))
            finally:
                rest.close()
                stop_server(server)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return rows


def main() -> None:
    """Run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--vms", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    backends = ("sqlite", "pg") if args.backend == "both" else (args.backend,)
    rows = [row for backend in backends for row in run(backend, args.vms, args.runs)]
    print(f"\n{args.vms} VMs; seconds (p50 / p99)\n")
    print("| call | p50 | p99 | vs REST |")
    print("|---|---|---|---|")
    previous: list[float] = []
    for name, times, kind in rows:
        ratio = ""
        if kind == "rest" and previous:
            ratio = f"XML-RPC {statistics.median(previous) / statistics.median(times):.2f}x REST"
        print(f"| {name} | {pct(times, 50):.4f} | {pct(times, 99):.4f} | {ratio} |")
        previous = times
    pool = [t for n, t, _ in rows if n.endswith("one.vmpool.info (all)")]
    for times in pool:
        verdict = "met" if pct(times, 50) <= 0.25 else "MISSED"
        print(f"\none.vmpool.info p50 {pct(times, 50):.3f} s: target <= 0.25 s {verdict}")


if __name__ == "__main__":
    main()
