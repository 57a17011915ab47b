"""Two front-ends on one store place VMs at the same time and never overcommit a host."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support.frontend import serve_frontend
from tests.support.waiting import wait_vms

HOSTS, CPU_PER_HOST, VMS = 3, 10, 45  # room for 30 one-CPU VMs: 15 must wait


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_frontends_never_overcommit(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"
    if backend == "postgresql":
        db_url = request.getfixturevalue("pg_server").create_database(
            f"two_{int(time.time() * 1000) % 10**9}"
        )
    fast = {
        "scheduler_interval": 0.05,
        "monitor_interval": 0.5,
        "fake_state_dir": str(tmp_path / "fake"),
    }
    with serve_frontend(tmp_path / "a", db_url, **fast) as one:
        admin = one.client()
        admin.login()
        hosts = [
            admin.hosts.create(
                name=f"shared-{i}", hypervisor="fake", total_cpu=CPU_PER_HOST, total_memory_mb=65536
            ).id
            for i in range(HOSTS)
        ]
        with serve_frontend(tmp_path / "b", db_url, **fast) as two:
            other = two.client(one.admin_user, one.admin_password)
            ids: list[int] = []

            def submit(client: object) -> None:
                for _ in range(VMS // 2 + 1):
                    ids.append(client.vms.create(template={"CPU": 1, "MEMORY": 64}).id)  # type: ignore[attr-defined]

            threads = [threading.Thread(target=submit, args=(c,)) for c in (admin, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            deadline = time.monotonic() + 60
            while (
                sum(s == "ACTIVE/RUNNING" for s in wait_vms(admin, ids, lambda s: True).values())
                < HOSTS * CPU_PER_HOST
            ):
                assert time.monotonic() < deadline, "hosts were not filled"
                time.sleep(0.1)
            time.sleep(1.0)  # more rounds of both schedulers: nothing else may fit
            for host_id in hosts:
                host = admin.hosts.get(host_id)
                assert host.used_cpu <= CPU_PER_HOST and host.running_vms <= CPU_PER_HOST
            running = [admin.vms.get(i) for i in ids]
            assert sum(v.host_id is not None for v in running) == HOSTS * CPU_PER_HOST
