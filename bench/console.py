"""The web console at 100,000 VMs: server time of its pages, next to the REST call each makes.

    .venv/bin/python bench/console.py [--backend sqlite|pg|both] [--vms 100000] [--runs 30]

Loads the hosts and VMs straight into a fresh store (bench/api.py's loader), starts the
front-end as a subprocess, logs in through the console's login form, then times over HTTP
on 127.0.0.1 (after 2 warm-ups each):

- `GET /vms` (the VM list's first page, 50 rows): target <= 300 ms server time;
- the same page searched by name prefix, filtered by state and by host, and a page far in;
- `GET /vms/{id}` (a VM's page) and `GET /` (the dashboard, counts over every VM).

Server time is the front-end's own `Server-Timing: app;dur=` header (request in to answer
out: the API call, the template, everything but the network); the client's wall time is
printed next to it. The baseline, measured in the same run, is the REST call the page makes
(`GET /api/v1/vms?limit=50` with a bearer token). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

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

TIMING = re.compile(r"app;dur=([0-9.]+)")
TARGET_S = 0.300


def server_seconds(response: httpx.Response) -> float:
    """The front-end's own time for a response, from its Server-Timing header."""
    found = TIMING.search(response.headers.get("server-timing", ""))
    if found is None:
        raise RuntimeError(f"no Server-Timing on {response.request.url}")
    return float(found.group(1)) / 1000


def timed(call: Callable[[], httpx.Response], runs: int) -> tuple[list[float], list[float]]:
    """(server seconds, wall seconds) of each of `runs` calls after 2 warm-ups."""
    for _ in range(2):
        call().raise_for_status()
    server, wall = [], []
    for _ in range(runs):
        started = time.perf_counter()
        response = call()
        wall.append(time.perf_counter() - started)
        response.raise_for_status()
        server.append(server_seconds(response))
    return server, wall


def console_login(url: str, user: str, password: str) -> httpx.Client:
    """A browser-like client logged in through the console's form."""
    client = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    form = client.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    answer = client.post(
        "/login",
        data={"csrf": token.group(1), "username": user, "password": password, "next": "/"},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"console login failed: {answer.status_code} {answer.text[:200]}")
    return client


Row = tuple[str, list[float], list[float], str]


def run(backend: str, n_vms: int, runs: int) -> list[Row]:
    """Load, serve, measure one backend."""
    home = Path(tempfile.mkdtemp(prefix=f"edgecloud-bench-console-{backend}-"))
    rows: list[Row] = []
    try:
        with backend_store(backend) as (db, _pid):
            settings = load_settings(home=home, db=db)
            store, _ = prepare_store(settings)
            try:
                n_hosts = max(1, n_vms // 20)
                vm_ids, timings = load_data(store, n_hosts, n_vms)
            finally:
                store.dispose()
            print(f"  {backend}: loaded {n_hosts} hosts and {n_vms} VMs in {timings['vms']:.1f} s")
            user, _, secret = settings.auth_file.read_text().strip().partition(":")
            server = start_server(home, db, httpx.BasicAuth(user, secret))
            browser = console_login(server.url, user, secret)
            rest = httpx.Client(base_url=server.url + API, timeout=60)
            try:
                login = rest.post("/login", json={}, auth=httpx.BasicAuth(user, secret))
                rest.headers["Authorization"] = f"Bearer {login.json()['token']}"
                first = browser.get("/vms")
                rows_on_page = first.text.count('data-live="vm:')
                if first.status_code != 200 or rows_on_page != 50:
                    raise RuntimeError(f"/vms: {first.status_code}, {rows_on_page} rows")
                far = vm_ids[len(vm_ids) * 9 // 10]

                def page(path: str, **params: object) -> Callable[[], httpx.Response]:
                    return lambda: browser.get(path, params=params)  # type: ignore[arg-type]

                cases: list[tuple[str, Callable[[], httpx.Response], str]] = [
                    ("REST GET /api/v1/vms?limit=50", lambda: rest.get("/vms?limit=50"), "base"),
                    ("console /vms (first page)", page("/vms"), "page"),
                    ("console /vms?name=vm-0999 (search)", page("/vms", name="vm-0999"), ""),
                    ("console /vms?state=3 (filter)", page("/vms", state="3"), ""),
                    ("console /vms?host_id=7", page("/vms", host_id="7"), ""),
                    ("console /vms?cursor=90% (far page)", page("/vms", cursor=far), ""),
                    (
                        "console /vms/ID (a VM)",
                        lambda: browser.get(f"/vms/{random.choice(vm_ids)}"),
                        "",
                    ),
                    ("console / (dashboard)", page("/"), ""),
                ]
                for name, call, kind in cases:
                    server_t, wall_t = timed(call, runs)
                    rows.append((f"{backend} {name}", server_t, wall_t, kind))
            finally:
                browser.close()
                rest.close()
                stop_server(server)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return rows


def main() -> None:
    """Run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--vms", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    backends = ("sqlite", "pg") if args.backend == "both" else (args.backend,)
    rows = [row for backend in backends for row in run(backend, args.vms, args.runs)]
    print(f"\n{args.vms} VMs; seconds, p50 / p99 of {args.runs} after 2 warm-ups\n")
    print("| page | server p50 | server p99 | wall p50 | vs the REST call |")
    print("|---|---|---|---|---|")
    base: list[float] = []
    for name, server_t, wall_t, kind in rows:
        if kind == "base":
            base = server_t
        ratio = f"{statistics.median(server_t) / statistics.median(base):.2f}x" if base else ""
        print(
            f"| {name} | {pct(server_t, 50):.4f} | {pct(server_t, 99):.4f} "
            f"| {pct(wall_t, 50):.4f} | {ratio} |"
        )
    for name, server_t, _, kind in rows:
        if kind == "page":
            verdict = "met" if pct(server_t, 50) <= TARGET_S else "MISSED"
            print(
                f"\n{name}: server p50 {pct(server_t, 50) * 1000:.1f} ms, "
                f"p99 {pct(server_t, 99) * 1000:.1f} ms: target <= 300 ms {verdict}"
            )


if __name__ == "__main__":
    main()
