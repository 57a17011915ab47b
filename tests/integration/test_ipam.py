"""IPAM under concurrency: 16 threads taking addresses from one small range."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from edgecloud.client import Client, EdgecloudError
from tests.support.frontend import RunningFrontEnd

Unique = Callable[[str], str]
THREADS = 16
RANGE_SIZE = 24
ATTEMPTS_PER_THREAD = 3  # 48 attempts for 24 addresses: half must fail cleanly


def _grab(
    url: str, token: str, vnet_id: int, got: list[str], refused: list[EdgecloudError]
) -> None:
    client = Client(url, token=token)
    try:
        for _ in range(ATTEMPTS_PER_THREAD):
            try:
                got.append(client.vnets.take_lease(vnet_id).ip or "")
            except EdgecloudError as exc:
                refused.append(exc)
    finally:
        client.close()


def test_ipam_concurrent_allocation_never_duplicates(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    vnet = admin.vnets.create(
        name=unique("small"), address_ranges=[{"ip": "198.18.10.1", "size": RANGE_SIZE}]
    )
    token = admin.http.headers["Authorization"].split()[1]
    got: list[str] = []
    refused: list[EdgecloudError] = []
    threads = [
        threading.Thread(target=_grab, args=(frontend.url, token, vnet.id, got, refused))
        for _ in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == RANGE_SIZE
    assert len(set(got)) == RANGE_SIZE, "an address was handed out twice"
    assert len(refused) == THREADS * ATTEMPTS_PER_THREAD - RANGE_SIZE
    assert {e.status for e in refused} == {409}
    assert all("all 24 addresses are taken" in e.message for e in refused)
    leases = admin.vnets.leases(vnet.id)
    assert sorted(x.ip or "" for x in leases) == sorted(got)
    assert len({x.mac for x in leases}) == RANGE_SIZE


def test_ipam_concurrent_vm_nics_never_duplicate(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    vnet = admin.vnets.create(
        name=unique("vmnet"), address_ranges=[{"ip": "198.18.11.1", "size": 8}]
    )
    token = admin.http.headers["Authorization"].split()[1]
    ips: list[str] = []
    refused: list[int] = []

    def boot() -> None:
        with Client(frontend.url, token=token) as client:
            try:
                vm = client.vms.create(
                    template={"CPU": 1, "MEMORY": 32, "NIC": [{"NETWORK_ID": vnet.id}]}
                )
                ips.append(vm.nics[0].ip or "")
            except EdgecloudError as exc:
                refused.append(exc.status)

    threads = [threading.Thread(target=boot) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(ips) == 8 and len(set(ips)) == 8
    assert refused == [409] * 4


def test_released_address_is_reused_lowest_first(admin: Client, unique: Unique) -> None:
    vnet = admin.vnets.create(
        name=unique("reuse"), address_ranges=[{"ip": "198.18.12.1", "size": 3}]
    )
    first, second, _third = (admin.vnets.take_lease(vnet.id) for _ in range(3))
    admin.vnets.release_lease(vnet.id, second.id)
    assert admin.vnets.take_lease(vnet.id).ip == second.ip
    assert first.ip == "198.18.12.1"


def test_asking_for_a_taken_or_foreign_address_is_refused(admin: Client, unique: Unique) -> None:
    vnet = admin.vnets.create(
        name=unique("given"), address_ranges=[{"ip": "198.18.13.1", "size": 4}]
    )
    admin.vnets.take_lease(vnet.id, ip="198.18.13.2")
    for ip, status in (("198.18.13.2", 409), ("198.18.99.1", 422), ("not-an-ip", 422)):
        with pytest.raises(EdgecloudError) as err:
            admin.vnets.take_lease(vnet.id, ip=ip)
        assert (err.value.status, err.value.field) == (status, "ip"), err.value.message
