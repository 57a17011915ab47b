"""XML-RPC: one.host.*, one.cluster.*, one.datastore.* and their pools (pyone and raw calls,
every document checked against OpenNebula's XSDs). Hosts with vmm_mad `dummy` run the fake
hypervisor, so they are monitored and run VMs without hardware."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pyone
import pytest

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd
from tests.support.one import Raw, pyone_client
from tests.support.onexsd import validate
from tests.support.waiting import wait_vms

AUTHORIZATION, NO_EXISTS, ACTION, ALLOCATE = 0x200, 0x400, 0x800, 0x4000
MONITORED, DISABLED, OFFLINE = 2, 4, 8


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {
        "monitor_interval": 0.2,
        "scheduler_interval": 0.1,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


def _plain(frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]) -> Raw:
    name, password = unique("plain"), "pw-" + uuid.uuid4().hex
    admin.users.create(name=name, password=password)
    return Raw(frontend, name, password)


def _wait_state(raw: Raw, host_id: int, state: int, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        doc = validate(raw.ok("one.host.info", host_id))
        if doc.findtext("STATE") == str(state):
            return doc
        assert time.monotonic() < deadline, f"host {host_id} stays {doc.findtext('STATE')}"
        time.sleep(0.1)


def test_dummy_host_is_monitored_and_runs_vms(
    frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]
) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    cluster_id = one.cluster.allocate(unique("site"))
    name = unique("dummy")
    host_id = one.host.allocate(name, "dummy", "dummy", cluster_id)
    doc = _wait_state(raw, host_id, MONITORED)
    assert (doc.findtext("IM_MAD"), doc.findtext("VM_MAD")) == ("dummy", "dummy")
    assert doc.findtext("CLUSTER_ID") == str(cluster_id)
    host = admin.hosts.get(host_id)
    share = doc.find("HOST_SHARE")
    assert share.findtext("MAX_CPU") == str(round(host.total_cpu * 100))
    assert share.findtext("MAX_MEM") == str(host.total_memory_mb * 1024)
    assert one.host.info(host_id).STATE == MONITORED

    vm = admin.vms.create(
        template={
            "NAME": unique("vm"),
            "CPU": 1,
            "MEMORY": 256,
            "SCHED_REQUIREMENTS": f"ID = {host_id}",
        }
    )
    wait_vms(admin, [vm.id], lambda s: s == "ACTIVE/RUNNING")
    doc = validate(raw.ok("one.host.info", host_id))
    assert [e.text for e in doc.find("VMS")] == [str(vm.id)]
    assert doc.findtext("HOST_SHARE/CPU_USAGE") == "100"
    assert doc.findtext("HOST_SHARE/MEM_USAGE") == str(256 * 1024)
    assert validate(raw.ok("one.hostpool.info")).find(f"HOST[ID='{host_id}']") is not None
    assert validate(raw.ok("one.cluster.info", cluster_id)).findtext("HOSTS/ID") == str(host_id)

    deadline = time.monotonic() + 10
    while validate(raw.ok("one.host.info", host_id)).find("MONITORING/CAPACITY") is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    latest = validate(raw.ok("one.hostpool.monitoring", 0))
    ids = [m.findtext("ID") for m in latest.iter("MONITORING")]
    assert ids.count(str(host_id)) == 1
    history = validate(raw.ok("one.host.monitoring", host_id))
    assert len(list(history.iter("MONITORING"))) >= 1
    assert validate(raw.ok("one.hostpool.monitoring", 3600)).find("MONITORING") is not None
    assert one.hostpool.monitoring(-1) is not None

    assert raw.error("one.host.delete", host_id)[1] == ACTION  # a VM runs there
    admin.vms.action(vm.id, "terminate", hard=True)
    wait_vms(admin, [vm.id], lambda s: s == "DONE")
    assert one.host.delete(host_id) == host_id
    with pytest.raises(pyone.OneNoExistsException):
        one.host.info(host_id)


def test_host_allocate_refusals(
    frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]
) -> None:
    raw = Raw(frontend)
    assert raw.error("one.host.allocate", unique("h"), "kvm", "xen", -1)[1] == ALLOCATE
    assert raw.error("one.host.allocate", unique("h"), "vcenter", "kvm", -1)[1] == ALLOCATE
    assert raw.error("one.host.allocate", unique("h"), "kvm", "kvm", 9999)[1] == ALLOCATE
    assert raw.error("one.host.allocate", "", "kvm", "kvm", -1)[1] == ALLOCATE
    name = unique("h")
    host_id = raw.ok("one.host.allocate", name, "kvm", "kvm", -1)
    assert raw.error("one.host.allocate", name, "kvm", "kvm", -1)[1] == ALLOCATE  # taken
    doc = validate(raw.ok("one.host.info", host_id))
    assert (doc.findtext("CLUSTER_ID"), doc.findtext("VM_MAD")) == ("0", "kvm")
    plain = _plain(frontend, admin, unique)
    assert plain.error("one.host.allocate", unique("h"), "dummy", "dummy", -1)[1] == AUTHORIZATION
    assert plain.error("one.host.info", host_id)[1] == NO_EXISTS
    assert [h for h in validate(plain.ok("one.hostpool.info")).iter("HOST")] == []
    with pytest.raises(pyone.OneNoExistsException):
        pyone_client(frontend).host.info(99_999)
    raw.ok("one.host.delete", host_id)


def test_host_status_update_rename(frontend: RunningFrontEnd, unique: Callable[[str], str]) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    host_id = one.host.allocate(unique("dummy"), "dummy", "dummy", -1)
    _wait_state(raw, host_id, MONITORED)
    one.host.status(host_id, 1)
    assert validate(raw.ok("one.host.info", host_id)).findtext("STATE") == str(DISABLED)
    one.host.status(host_id, 2)
    assert validate(raw.ok("one.host.info", host_id)).findtext("STATE") == str(OFFLINE)
    one.host.status(host_id, 0)
    _wait_state(raw, host_id, MONITORED)
    assert raw.error("one.host.status", host_id, 7)[1] == ACTION

    raw.ok("one.host.update", host_id, 'RACK = "r1"\nFAKE_CPU = "8"', 1)
    template = validate(raw.ok("one.host.info", host_id)).find("TEMPLATE")
    assert template.findtext("RACK") == "r1" and template.findtext("IM_MAD") == "dummy"
    raw.ok("one.host.update", host_id, 'ROOM = "b & <c>"', 0)
    tags = {c.tag for c in validate(raw.ok("one.host.info", host_id)).find("TEMPLATE")}
    assert "ROOM" in tags and "RACK" not in tags and "IM_MAD" in tags
    assert one.host.info(host_id).TEMPLATE["ROOM"] == "b & <c>"
    assert raw.error("one.host.update", host_id, 'BAD = "', 0)[1] == ACTION

    new_name = unique("renamed")
    raw.ok("one.host.rename", host_id, new_name)
    assert new_name == one.host.info(host_id).NAME
    assert raw.error("one.host.rename", host_id, "")[1] == ACTION
    assert raw.error("one.host.status", 99_999, 1)[1] == NO_EXISTS
    raw.ok("one.host.delete", host_id)


def test_clusters(frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    name = unique("edge")
    cluster_id = one.cluster.allocate(name)
    assert raw.error("one.cluster.allocate", name)[1] == ALLOCATE
    doc = validate(raw.ok("one.cluster.info", cluster_id))
    assert doc.findtext("NAME") == name and list(doc.find("HOSTS")) == []
    assert name == one.cluster.info(cluster_id).NAME

    host_id = raw.ok("one.host.allocate", unique("h"), "kvm", "kvm", -1)
    raw.ok("one.cluster.addhost", cluster_id, host_id)
    assert validate(raw.ok("one.host.info", host_id)).findtext("CLUSTER_ID") == str(cluster_id)
    ds_id = admin.datastores.create(name=unique("ds"), kind="image", cluster_ids=[]).id
    vnet_id = admin.vnets.create(name=unique("net"), bridge="br0", cluster_ids=[]).id
    raw.ok("one.cluster.adddatastore", cluster_id, ds_id)
    raw.ok("one.cluster.addvnet", cluster_id, vnet_id)
    doc = validate(raw.ok("one.cluster.info", cluster_id))
    members = {tag: [e.text for e in doc.find(tag)] for tag in ("HOSTS", "DATASTORES", "VNETS")}
    assert members == {"HOSTS": [str(host_id)], "DATASTORES": [str(ds_id)], "VNETS": [str(vnet_id)]}

    raw.ok("one.cluster.update", cluster_id, 'SITE = "lyon"', 0)
    raw.ok("one.cluster.update", cluster_id, 'ZONE_NAME = "south"', 1)
    template = validate(raw.ok("one.cluster.info", cluster_id)).find("TEMPLATE")
    assert {c.tag: c.text for c in template} == {"SITE": "lyon", "ZONE_NAME": "south"}
    raw.ok("one.cluster.rename", cluster_id, name + "-x")
    assert name + "-x" == one.cluster.info(cluster_id).NAME

    assert raw.error("one.cluster.delete", cluster_id)[1] == ACTION  # has a host
    assert raw.error("one.cluster.delhost", 0, host_id)[1] == ACTION  # not in cluster 0
    raw.ok("one.cluster.delhost", cluster_id, host_id)
    assert validate(raw.ok("one.host.info", host_id)).findtext("CLUSTER_ID") == "0"
    raw.ok("one.cluster.deldatastore", cluster_id, ds_id)
    raw.ok("one.cluster.delvnet", cluster_id, vnet_id)
    assert raw.error("one.cluster.delvnet", cluster_id, vnet_id)[1] == NO_EXISTS
    doc = validate(raw.ok("one.cluster.info", cluster_id))
    assert all(list(doc.find(tag)) == [] for tag in ("HOSTS", "DATASTORES", "VNETS"))

    pool = validate(raw.ok("one.clusterpool.info"))
    assert {"0", str(cluster_id)} <= {c.findtext("ID") for c in pool.iter("CLUSTER")}
    assert raw.error("one.cluster.delete", 0)[1] == ACTION
    assert one.cluster.delete(cluster_id) == cluster_id
    with pytest.raises(pyone.OneNoExistsException):
        one.cluster.info(cluster_id)
    raw.ok("one.host.delete", host_id)


def test_datastores(frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    name = unique("images")
    ds_id = one.datastore.allocate(
        f'NAME = "{name}"\nTYPE = "IMAGE_DS"\nDS_MAD = "fs"\nTM_MAD = "qcow2"', -1
    )
    doc = validate(raw.ok("one.datastore.info", ds_id))
    assert (doc.findtext("NAME"), doc.findtext("TYPE")) == (name, "0")
    assert (doc.findtext("DS_MAD"), doc.findtext("TM_MAD")) == ("fs", "qcow2")
    assert [e.text for e in doc.find("CLUSTERS")] == ["0"] and doc.findtext("UNAME") == "admin"
    stored = admin.datastores.get(ds_id)
    assert (stored.kind, stored.driver, stored.transfer) == ("image", "fs", "shared")

    system_id = one.datastore.allocate(
        {"NAME": unique("sys"), "TYPE": "SYSTEM_DS", "TM_MAD": "ssh"}
    )
    doc = validate(raw.ok("one.datastore.info", system_id))
    assert (doc.findtext("TYPE"), doc.findtext("DS_MAD"), doc.findtext("TM_MAD")) == (
        "1",
        "-",
        "ssh",
    )
    assert one.datastore.info(system_id).TYPE == 1

    assert (
        raw.error("one.datastore.allocate", f'NAME = "{unique("x")}"\nTYPE = "BACKUP_DS"', -1)[1]
        == ALLOCATE
    )
    assert (
        raw.error("one.datastore.allocate", f'NAME = "{unique("x")}"\nDS_MAD = "ceph"', -1)[1]
        == ALLOCATE
    )
    assert raw.error("one.datastore.allocate", 'TYPE = "IMAGE_DS"', -1)[1] == ALLOCATE  # no NAME
    assert raw.error("one.datastore.allocate", f'NAME = "{name}"', -1)[1] == ALLOCATE  # taken

    raw.ok("one.datastore.update", ds_id, 'LABEL = "fast"', 1)
    template = validate(raw.ok("one.datastore.info", ds_id)).find("TEMPLATE")
    assert template.findtext("LABEL") == "fast" and template.findtext("TM_MAD") == "qcow2"
    assert (
        raw.error("one.datastore.update", ds_id, 'DS_MAD = "dummy"\nTM_MAD = "local"', 1)[1]
        == ACTION
    )

    raw.ok("one.datastore.chmod", ds_id, -1, -1, -1, 1, 0, 0, 1, -1, -1)
    perms = validate(raw.ok("one.datastore.info", ds_id)).find("PERMISSIONS")
    assert [int(p.text) for p in perms] == [1, 1, 0, 1, 0, 0, 1, 0, 0]
    assert admin.datastores.get(ds_id).permissions == "um-u--u--"
    assert raw.error("one.datastore.chmod", ds_id, 2, -1, -1, -1, -1, -1, -1, -1, -1)[1] == ACTION
    group_id = admin.groups.create(name=unique("g")).id
    raw.ok("one.datastore.chown", ds_id, -1, group_id)
    doc = validate(raw.ok("one.datastore.info", ds_id))
    assert (doc.findtext("UID"), doc.findtext("GID")) == ("0", str(group_id))
    raw.ok("one.datastore.rename", ds_id, name + "-2")
    assert name + "-2" == one.datastore.info(ds_id).NAME
    assert raw.ok("one.datastore.enable", ds_id, True) == ds_id
    assert raw.error("one.datastore.enable", ds_id, False)[1] == ACTION

    plain = _plain(frontend, admin, unique)
    assert plain.error("one.datastore.allocate", f'NAME = "{unique("p")}"', -1)[1] == AUTHORIZATION
    # new groups may USE every datastore (the default ACL rule '@1 CLUSTER+DATASTORE/* USE')
    visible = validate(plain.ok("one.datastorepool.info")).iter("DATASTORE")
    assert {str(ds_id), str(system_id)} <= {d.findtext("ID") for d in visible}
    assert plain.error("one.datastore.delete", ds_id)[1] == AUTHORIZATION

    pool = validate(raw.ok("one.datastorepool.info"))
    assert {str(ds_id), str(system_id)} <= {d.findtext("ID") for d in pool.iter("DATASTORE")}
    just = validate(raw.ok("one.datastorepool.info", -2, ds_id, ds_id)).iter("DATASTORE")
    assert [d.findtext("ID") for d in just] == [str(ds_id)]
    page = validate(raw.ok("one.datastorepool.info", -2, 0, -2)).iter("DATASTORE")
    assert len(list(page)) == 2
    for obj in (ds_id, system_id):
        one.datastore.delete(obj)
    with pytest.raises(pyone.OneNoExistsException):
        one.datastore.info(ds_id)


def test_pools_through_pyone(frontend: RunningFrontEnd, unique: Callable[[str], str]) -> None:
    one = pyone_client(frontend)
    host_id = one.host.allocate(unique("dummy"), "dummy", "dummy", -1)
    assert host_id in [h.ID for h in one.hostpool.info().HOST]
    assert 0 in [c.ID for c in one.clusterpool.info().CLUSTER]
    assert one.datastorepool.info().DATASTORE is not None
    one.host.delete(host_id)
