"""one.vn.*, one.vnpool.info, one.secgroup.* and one.secgrouppool.info through pyone and raw
XML-RPC: documents valid against OpenNebula's XSDs, errors with OpenNebula's codes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pyone
import pytest
from lxml import etree
from sqlalchemy import select

from edgecloud.client import Client
from edgecloud.server.db.models import AddressRange, Lease
from tests.support.frontend import RunningFrontEnd
from tests.support.one import Raw, pyone_client

Unique = Callable[[str], str]
AUTHORIZATION, NO_EXISTS, ACTION, ALLOCATE = 0x200, 0x400, 0x800, 0x4000


def _doc(raw: Raw, method: str, *params: Any) -> etree._Element:
    """A document a call must return (validated by Raw), parsed."""
    return etree.fromstring(raw.ok(method, *params).encode())


def _user(admin: Client, unique: Unique) -> tuple[str, str]:
    name, password = unique("netuser"), "pw-" + uuid.uuid4().hex
    admin.users.create(name=name, password=password)
    return name, password


def _net(
    raw: Raw, unique: Unique, ip: str, size: int = 8, extra: str = "", mad: str = "bridge"
) -> int:
    text = f'NAME = "{unique("net")}"\nVN_MAD = "{mad}"\n'
    text += f'AR = [ TYPE = "IP4", IP = "{ip}", SIZE = "{size}" ]\n{extra}'
    vnet_id: int = raw.ok("one.vn.allocate", text, -1)
    return vnet_id


def _range_attributes(frontend: RunningFrontEnd, vnet_id: int, ar_id: int) -> dict[str, Any]:
    """An AR's own attributes as stored (the documents have no place for them)."""
    with frontend.store.read() as session:
        ar = session.scalars(
            select(AddressRange).where(AddressRange.vnet_id == vnet_id, AddressRange.ar_id == ar_id)
        ).one()
        return dict(ar.template)


def _ars(root: etree._Element) -> dict[int, etree._Element]:
    return {int(ar.findtext("AR_ID") or -1): ar for ar in root.iterfind("AR_POOL/AR")}


def test_allocate_with_pyone_dict_and_info(frontend: RunningFrontEnd, unique: Unique) -> None:
    one, name = pyone_client(frontend), unique("pynet")
    template = {
        "TEMPLATE": {
            "NAME": name,
            "VN_MAD": "bridge",
            "BRIDGE": "brtest0",
            "NETWORK_ADDRESS": "10.20.0.0",
            "NETWORK_MASK": "255.255.255.0",
            "GATEWAY": "10.20.0.1",
            "AR": {"TYPE": "IP4", "IP": "10.20.0.10", "SIZE": "8", "DNS": "10.20.0.2"},
        }
    }
    vnet_id = one.vn.allocate(template, -1)
    net = one.vn.info(vnet_id)
    got = (net.ID, net.NAME, net.VN_MAD, net.BRIDGE)
    assert got == (vnet_id, name, "bridge", "brtest0")
    assert net.CLUSTERS.ID == [0]
    assert net.TEMPLATE["GATEWAY"] == "10.20.0.1"
    assert net.TEMPLATE["SECURITY_GROUPS"] == "0"
    assert "AR" not in net.TEMPLATE and "NAME" not in net.TEMPLATE
    ar = net.AR_POOL.AR[0]
    assert (ar.AR_ID, ar.TYPE, ar.IP, ar.SIZE) == ("0", "IP4", "10.20.0.10", 8)
    assert (ar.IP_END, ar.MAC, ar.USED_LEASES) == ("10.20.0.17", "02:00:0a:14:00:0a", "0")
    root = _doc(Raw(frontend), "one.vn.info", vnet_id)
    assert root.findtext("UNAME") == frontend.admin_user
    assert root.findtext("STATE") == "1"


def test_allocate_with_opennebula_text(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    raw, name = Raw(frontend), unique("textnet")
    text = f"""
        NAME = "{name}"
        VN_MAD = "dummy"   # nothing on the hosts: our bridge driver
        DESCRIPTION = "made from text"
        AR = [ TYPE = "IP4", IP = "10.21.0.1", SIZE = "4" ]
        AR = [ TYPE = "ETHER", SIZE = "2", MAC = "02:aa:00:00:00:01" ]
    """
    vnet_id = raw.ok("one.vn.allocate", text, 0)
    root = _doc(raw, "one.vn.info", vnet_id)
    assert root.findtext("VN_MAD") == "dummy"
    assert root.findtext("TEMPLATE/VN_MAD") == "dummy"
    assert root.findtext("TEMPLATE/DESCRIPTION") == "made from text"
    ars = _ars(root)
    assert ars[0].findtext("IP_END") == "10.21.0.4"
    assert (ars[1].findtext("TYPE"), ars[1].find("IP")) == ("ETHER", None)
    assert ars[1].findtext("MAC_END") == "02:aa:00:00:00:02"
    assert admin.vnets.get(vnet_id).driver == "bridge"

    vxlan = raw.ok("one.vn.allocate", f'NAME = "{unique("vx")}"\nVN_MAD = "vxlan"', -1)
    root = _doc(raw, "one.vn.info", vxlan)
    assert root.findtext("VLAN_ID_AUTOMATIC") == "1" and root.findtext("VLAN_ID")
    vlan = raw.ok("one.vn.allocate", f'NAME="{unique("q")}"\nVN_MAD="802.1Q"\nVLAN_ID=42', -1)
    root = _doc(raw, "one.vn.info", vlan)
    assert (root.findtext("VN_MAD"), root.findtext("VLAN_ID")) == ("802.1Q", "42")


def test_address_ranges(frontend: RunningFrontEnd, unique: Unique) -> None:
    raw, one = Raw(frontend), pyone_client(frontend)
    vnet_id = _net(raw, unique, "10.22.0.1", 4)
    ar = 'AR = [ TYPE = "IP4", IP = "10.22.1.1", SIZE = "4", GATEWAY = "10.22.1.254" ]'
    assert raw.ok("one.vn.add_ar", vnet_id, ar) == vnet_id
    one.vn.add_ar(vnet_id, {"AR": {"TYPE": "IP4", "IP": "10.22.2.1", "SIZE": "2"}})
    ars = _ars(_doc(raw, "one.vn.info", vnet_id))
    assert sorted(ars) == [0, 1, 2] and ars[2].findtext("IP") == "10.22.2.1"
    _, code = raw.error(
        "one.vn.add_ar", vnet_id, 'AR = [ TYPE = "IP4", IP = "10.22.1.3", SIZE = 1 ]'
    )
    assert code == ACTION  # overlaps range 1

    assert _range_attributes(frontend, vnet_id, 1) == {"GATEWAY": "10.22.1.254"}
    assert raw.ok("one.vn.update_ar", vnet_id, "AR = [ AR_ID = 1, SIZE = 8, MTU = 1400 ]")
    assert _ars(_doc(raw, "one.vn.info", vnet_id))[1].findtext("SIZE") == "8"
    assert _range_attributes(frontend, vnet_id, 1) == {"GATEWAY": "10.22.1.254", "MTU": "1400"}
    raw.ok("one.vn.update_ar", vnet_id, 'AR = [ AR_ID = 1, GATEWAY = "", TYPE = "ETHER" ]')
    assert _range_attributes(frontend, vnet_id, 1) == {"MTU": "1400"}
    assert _ars(_doc(raw, "one.vn.info", vnet_id))[1].findtext("TYPE") == "IP4"
    raw.ok("one.vn.hold", vnet_id, 'LEASE = [ IP = "10.22.1.7" ]')
    _, code = raw.error("one.vn.update_ar", vnet_id, "AR = [ AR_ID = 1, SIZE = 4 ]")
    assert code == ACTION  # the held lease is beyond the new end
    _, code = raw.error("one.vn.update_ar", vnet_id, "AR = [ AR_ID = 0, SIZE = 300 ]")
    assert code == ACTION  # would run into range 1
    _, code = raw.error("one.vn.rm_ar", vnet_id, 1)
    assert code == ACTION  # a lease is held
    assert raw.ok("one.vn.rm_ar", vnet_id, 1, True) == vnet_id  # force: released first
    assert raw.ok("one.vn.rm_ar", vnet_id, 2) == vnet_id
    assert sorted(_ars(_doc(raw, "one.vn.info", vnet_id))) == [0]
    assert raw.error("one.vn.rm_ar", vnet_id, 7)[1] == NO_EXISTS
    assert raw.error("one.vn.update_ar", vnet_id, "AR = [ AR_ID = 7, SIZE = 1 ]")[1] == NO_EXISTS


def test_reserve(frontend: RunningFrontEnd, unique: Unique) -> None:
    raw, one = Raw(frontend), pyone_client(frontend)
    parent = _net(raw, unique, "10.23.0.1", 16)
    first = raw.ok("one.vn.reserve", parent, f'SIZE = 4\nNAME = "{unique("r")}"')
    child = _doc(raw, "one.vn.info", first)
    assert child.findtext("PARENT_NETWORK_ID") == str(parent)
    ar = _ars(child)[0]
    assert (ar.findtext("IP"), ar.findtext("SIZE"), ar.findtext("PARENT_NETWORK_AR_ID")) == (
        "10.23.0.1",
        "4",
        "0",
    )
    second = one.vn.reserve(parent, {"SIZE": 2, "IP": "10.23.0.10", "AR_ID": 0})
    assert _ars(_doc(raw, "one.vn.info", second))[0].findtext("IP") == "10.23.0.10"
    root = _doc(raw, "one.vn.info", parent)
    assert root.findtext("USED_LEASES") == "6"
    leases = _ars(root)[0].findall("LEASES/LEASE")
    assert [x.findtext("IP") for x in leases][:4] == [f"10.23.0.{i}" for i in range(1, 5)]
    assert {x.findtext("VM") for x in leases} == {"-1"}
    assert raw.error("one.vn.reserve", parent, f"SIZE = 1\nNETWORK_ID = {first}")[1] == ACTION
    assert raw.error("one.vn.reserve", parent, "SIZE = 100")[1] == ACTION
    assert raw.error("one.vn.reserve", parent, 'NAME = "x"')[1] == ACTION
    assert raw.error("one.vn.release", parent, 'LEASE = [ IP = "10.23.0.2" ]')[1] == ACTION
    assert raw.error("one.vn.rm_ar", parent, 0, True)[1] == ACTION  # reservations use it
    raw.ok("one.vn.delete", first)
    assert _doc(raw, "one.vn.info", parent).findtext("USED_LEASES") == "2"


def test_hold_and_release(frontend: RunningFrontEnd, unique: Unique) -> None:
    raw, one = Raw(frontend), pyone_client(frontend)
    vnet_id = _net(raw, unique, "10.24.0.1", 4)
    assert one.vn.hold(vnet_id, {"LEASE": {"IP": "10.24.0.2"}}) == vnet_id
    raw.ok("one.vn.hold", vnet_id, 'LEASE = [ MAC = "02:00:0A:18:00:03" ]')
    leases = _ars(_doc(raw, "one.vn.info", vnet_id))[0].findall("LEASES/LEASE")
    assert [(x.findtext("IP"), x.findtext("VM")) for x in leases] == [
        ("10.24.0.2", "-1"),
        ("10.24.0.3", "-1"),
    ]
    with pytest.raises(pyone.OneActionException):
        one.vn.hold(vnet_id, {"LEASE": {"IP": "10.24.0.2"}})  # already held
    assert raw.error("one.vn.hold", vnet_id, 'LEASE = [ IP = "10.99.0.1" ]')[1] == ACTION
    assert raw.error("one.vn.hold", vnet_id, 'LEASE = [ AR_ID = "0" ]')[1] == ACTION
    raw.ok("one.vn.release", vnet_id, 'LEASE = [ IP = "10.24.0.2" ]')
    one.vn.release(vnet_id, {"LEASE": {"MAC": "02:00:0a:18:00:03"}})
    assert _doc(raw, "one.vn.info", vnet_id).findtext("USED_LEASES") == "0"
    assert raw.error("one.vn.release", vnet_id, 'LEASE = [ IP = "10.24.0.2" ]')[1] == ACTION

    with frontend.store.write() as session:  # a VM's NIC (the VM itself is not needed here)
        ip = "10.24.0.4"
        session.add(
            Lease(
                vnet_id=vnet_id,
                ar_id=0,
                idx=3,
                mac="02:00:0a:18:00:04",
                ip=ip,
                state="used",
                vm_id=4242,
                owner_id=0,
                created_at=0,
            )
        )
    root = _doc(raw, "one.vn.info", vnet_id)
    assert [x.text for x in root.iterfind("UPDATED_VMS/ID")] == ["4242"]
    assert _ars(root)[0].findtext("LEASES/LEASE/VM") == "4242"
    pool = _doc(raw, "one.vnpool.info", -2, vnet_id, vnet_id)
    assert pool.findtext("VNET/UPDATED_VMS/ID") == "4242"
    assert raw.error("one.vn.release", vnet_id, f'LEASE = [ IP = "{ip}" ]')[1] == ACTION


def test_update_and_delete(frontend: RunningFrontEnd, unique: Unique) -> None:
    raw, one = Raw(frontend), pyone_client(frontend)
    vnet_id = _net(raw, unique, "10.25.0.1", 4, 'GATEWAY = "10.25.0.254"', mad="dummy")
    raw.ok("one.vn.update", vnet_id, 'DESCRIPTION = "merged"\nPHYDEV = "eth1"', 1)
    root = _doc(raw, "one.vn.info", vnet_id)
    assert root.findtext("PHYDEV") == "eth1"
    assert root.findtext("TEMPLATE/GATEWAY") == "10.25.0.254"
    assert root.findtext("TEMPLATE/DESCRIPTION") == "merged"
    raw.ok("one.vn.update", vnet_id, 'FOO = "bar"\nBRIDGE = "brnew"', 0)
    root = _doc(raw, "one.vn.info", vnet_id)
    assert root.find("TEMPLATE/GATEWAY") is None and root.findtext("TEMPLATE/FOO") == "bar"
    assert (root.findtext("BRIDGE"), root.findtext("PHYDEV")) == ("brnew", "eth1")
    assert root.findtext("VN_MAD") == "dummy"
    net = one.vn.info(vnet_id)  # what a client read, written back unchanged
    assert one.vn.update(vnet_id, net.TEMPLATE, 0) == vnet_id
    assert one.vn.info(vnet_id).TEMPLATE == net.TEMPLATE
    assert raw.error("one.vn.update", vnet_id, 'VN_MAD = "vxlan"', 1)[1] == ACTION
    assert raw.error("one.vn.update", vnet_id, "SECURITY_GROUPS = 99999", 1)[1] == ACTION
    assert raw.error("one.vn.update", vnet_id, 'X = "unterminated', 1)[1] == ACTION

    assert raw.ok("one.vn.rename", vnet_id, unique("renamed")) == vnet_id
    assert raw.ok("one.vn.chmod", vnet_id, -1, -1, -1, 1, 0, 0, 1, -1, -1) == vnet_id
    root = _doc(raw, "one.vn.info", vnet_id)
    bits = [int(x.text or 0) for x in root.iterfind("PERMISSIONS/*")]
    assert bits == [1, 1, 0, 1, 0, 0, 1, 0, 0]
    raw.ok("one.vn.hold", vnet_id, 'LEASE = [ IP = "10.25.0.1" ]')
    assert raw.error("one.vn.delete", vnet_id)[1] == ACTION  # a lease is held
    raw.ok("one.vn.release", vnet_id, 'LEASE = [ IP = "10.25.0.1" ]')
    assert raw.ok("one.vn.delete", vnet_id) == vnet_id
    assert raw.error("one.vn.info", vnet_id)[1] == NO_EXISTS
    with pytest.raises(pyone.OneNoExistsException):
        one.vn.delete(vnet_id)


def test_vnpool(frontend: RunningFrontEnd, unique: Unique) -> None:
    raw = Raw(frontend)
    made = [_net(raw, unique, f"10.26.{i}.1", 2) for i in range(3)]
    root = _doc(raw, "one.vnpool.info", -2, -1, -1)
    assert set(made) <= {int(x.findtext("ID") or -1) for x in root.iterfind("VNET")}
    assert root.find("VNET/AR_POOL/AR/LEASES") is None  # as OpenNebula: no leases in pools
    ranged = _doc(raw, "one.vnpool.info", -2, made[1], made[2])
    assert [int(x.findtext("ID") or -1) for x in ranged.iterfind("VNET")] == made[1:]
    page = _doc(raw, "one.vnpool.info", -2, 0, -2)
    assert len(page.findall("VNET")) == 2
    pool = pyone_client(frontend).vnpool.info(-1, made[0], made[0])
    assert [n.ID for n in pool.VNET] == [made[0]]
    assert pool.VNET[0].AR_POOL.AR[0].IP == "10.26.0.1"


def test_a_plain_user_cannot_see_another_users_vnet(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    owner, other = _user(admin, unique), _user(admin, unique)
    mine = Raw(frontend, *owner)
    vnet_id = _net(mine, unique, "10.27.0.1", 4)
    assert _doc(mine, "one.vn.info", vnet_id).findtext("UNAME") == owner[0]
    assert [x.findtext("ID") for x in _doc(mine, "one.vnpool.info", -3, -1, -1)] == [str(vnet_id)]
    theirs = Raw(frontend, *other)
    assert theirs.error("one.vn.info", vnet_id)[1] in (AUTHORIZATION, NO_EXISTS)
    pool = _doc(theirs, "one.vnpool.info", -2, -1, -1)
    assert str(vnet_id) not in [x.findtext("ID") for x in pool.iterfind("VNET")]
    for call in (
        ("one.vn.update", vnet_id, 'A = "b"', 1),
        ("one.vn.delete", vnet_id),
        ("one.vn.hold", vnet_id, 'LEASE = [ IP = "10.27.0.1" ]'),
        ("one.vn.reserve", vnet_id, "SIZE = 1"),
        ("one.vn.add_ar", vnet_id, 'AR = [ TYPE = "IP4", IP = "10.27.1.1", SIZE = 1 ]'),
        ("one.vn.chmod", vnet_id, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    ):
        assert theirs.error(*call)[1] in (AUTHORIZATION, NO_EXISTS), call
    with pytest.raises((pyone.OneAuthorizationException, pyone.OneNoExistsException)):
        pyone_client(frontend, *other).vn.info(vnet_id)
    # the owner may not give the vnet away, only an admin may
    assert mine.error("one.vn.chown", vnet_id, 0, -1)[1] == AUTHORIZATION


def test_security_groups_round_trip(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    raw, one = Raw(frontend), pyone_client(frontend)
    vnet_id = _net(raw, unique, "10.28.0.0", 256)
    text = f"""
        NAME = "{unique("sg")}"
        DESCRIPTION = "web"
        RULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound", RANGE = "22,80:90" ]
        RULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound", IP = "10.9.0.0", SIZE = "256" ]
        RULE = [ PROTOCOL = "ICMP", RULE_TYPE = "outbound", ICMP_TYPE = "8" ]
        RULE = [ PROTOCOL = "UDP", RULE_TYPE = "inbound", NETWORK_ID = "{vnet_id}" ]
    """
    group_id = raw.ok("one.secgroup.allocate", text)
    root = _doc(raw, "one.secgroup.info", group_id)  # security_group.xsd: PROTOCOL, RULE_TYPE
    rules = [{c.tag: c.text for c in rule} for rule in root.iterfind("TEMPLATE/RULE")]
    assert rules == [
        {"PROTOCOL": "TCP", "RULE_TYPE": "inbound"},
        {"PROTOCOL": "TCP", "RULE_TYPE": "inbound"},
        {"PROTOCOL": "ICMP", "RULE_TYPE": "outbound"},
        {"PROTOCOL": "UDP", "RULE_TYPE": "inbound"},
    ]
    assert root.findtext("TEMPLATE/DESCRIPTION") == "web"
    stored = [
        {k: v for k, v in r.model_dump().items() if v not in (None, "", [])}
        for r in admin.secgroups.get(group_id).rules
    ]
    assert [(r.get("range"), r.get("cidr"), r.get("icmp_type")) for r in stored] == [
        ("22,80:90", None, None),
        (None, "10.9.0.0/24", None),
        (None, None, 8),
        (None, "10.28.0.0/24", None),
    ]

    group = one.secgroup.info(group_id)  # read, written back unchanged: nothing is lost
    assert one.secgroup.update(group_id, group.TEMPLATE, 0) == group_id
    assert one.secgroup.info(group_id).TEMPLATE == group.TEMPLATE
    assert len(admin.secgroups.get(group_id).rules) == 4
    assert admin.secgroups.get(group_id).rules[0].range == "22,80:90"
    raw.ok("one.secgroup.update", group_id, 'DESCRIPTION = "web, v2"', 1)
    root = _doc(raw, "one.secgroup.info", group_id)
    assert root.findtext("TEMPLATE/DESCRIPTION") == "web, v2"
    assert len(root.findall("TEMPLATE/RULE")) == 4
    assert admin.secgroups.get(group_id).rules[0].range == "22,80:90"
    replace = {"TEMPLATE": {"RULE": {"PROTOCOL": "ALL", "RULE_TYPE": "outbound"}}}
    one.secgroup.update(group_id, replace, 0)
    root = _doc(raw, "one.secgroup.info", group_id)
    assert root.find("TEMPLATE/DESCRIPTION") is None
    assert [r.findtext("RULE_TYPE") for r in root.iterfind("TEMPLATE/RULE")] == ["outbound"]
    assert raw.ok("one.secgroup.commit", group_id) == group_id

    copy_id = one.secgroup.clone(group_id, unique("copy"))
    copy = _doc(raw, "one.secgroup.info", copy_id)  # only PROTOCOL and RULE_TYPE: strict XSD
    assert [r.findtext("PROTOCOL") for r in copy.iterfind("TEMPLATE/RULE")] == ["ALL"]
    new_name = unique("renamed")
    assert raw.ok("one.secgroup.rename", copy_id, new_name) == copy_id
    assert raw.ok("one.secgroup.chmod", copy_id, 1, 1, 0, 1, 1, 0, 0, 0, 0) == copy_id
    assert raw.ok("one.secgroup.chown", copy_id, -1, 1) == copy_id
    copy = _doc(raw, "one.secgroup.info", copy_id)
    assert (copy.findtext("NAME"), copy.findtext("GID"), copy.findtext("GNAME")) == (
        new_name,
        "1",
        "users",
    )
    assert copy.findtext("PERMISSIONS/GROUP_M") == "1"
    pool = _doc(raw, "one.secgrouppool.info", -2, -1, -1)
    assert {"0", str(group_id), str(copy_id)} <= {x.findtext("ID") for x in pool}
    strict = _doc(raw, "one.secgrouppool.info", -2, copy_id, copy_id)
    assert [x.findtext("ID") for x in strict] == [str(copy_id)]

    for gone in (copy_id, group_id):
        assert raw.ok("one.secgroup.delete", gone) == gone
        assert raw.error("one.secgroup.info", gone)[1] == NO_EXISTS
    assert raw.error("one.secgroup.delete", 0)[1] == ACTION  # the default group stays


def test_a_group_in_use_and_other_users(
    frontend: RunningFrontEnd, admin: Client, unique: Unique
) -> None:
    raw = Raw(frontend)
    group_id = raw.ok("one.secgroup.allocate", f'NAME = "{unique("sg")}"')
    vnet_id = _net(raw, unique, "10.29.0.1", 2, f'SECURITY_GROUPS = "{group_id}"')
    net = _doc(raw, "one.vn.info", vnet_id)
    assert net.findtext("TEMPLATE/SECURITY_GROUPS") == f"0,{group_id}"
    assert raw.error("one.secgroup.delete", group_id)[1] == ACTION  # a vnet names it
    other = Raw(frontend, *_user(admin, unique))
    assert other.error("one.secgroup.info", group_id)[1] in (AUTHORIZATION, NO_EXISTS)
    assert other.error("one.secgroup.update", group_id, 'A = "b"', 1)[1] in (
        AUTHORIZATION,
        NO_EXISTS,
    )
    pool = _doc(other, "one.secgrouppool.info", -2, -1, -1)
    assert str(group_id) not in [x.findtext("ID") for x in pool]
    assert "0" in [x.findtext("ID") for x in pool]  # the default group is for everyone


@pytest.mark.parametrize(
    "call",
    [
        ("one.vn.info", 999_999),
        ("one.vn.delete", 999_999),
        ("one.vn.update", 999_999, 'A = "b"', 1),
        ("one.vn.add_ar", 999_999, 'AR = [ TYPE = "IP4", IP = "10.30.0.1", SIZE = 1 ]'),
        ("one.vn.rm_ar", 999_999, 0),
        ("one.vn.update_ar", 999_999, "AR = [ AR_ID = 0, SIZE = 1 ]"),
        ("one.vn.reserve", 999_999, "SIZE = 1"),
        ("one.vn.hold", 999_999, 'LEASE = [ IP = "10.30.0.1" ]'),
        ("one.vn.release", 999_999, 'LEASE = [ IP = "10.30.0.1" ]'),
        ("one.vn.chown", 999_999, -1, 1),
        ("one.vn.rename", 999_999, "x"),
        ("one.secgroup.info", 999_999),
        ("one.secgroup.update", 999_999, 'A = "b"', 0),
        ("one.secgroup.delete", 999_999),
        ("one.secgroup.clone", 999_999, "x"),
        ("one.secgroup.commit", 999_999),
        ("one.secgroup.chmod", 999_999, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    ],
)
def test_unknown_ids_are_no_exists(frontend: RunningFrontEnd, call: tuple[Any, ...]) -> None:
    assert Raw(frontend).error(*call)[1] == NO_EXISTS


BAD_VNETS = [
    'NAME = "unterminated',
    "<TEMPLATE><NAME>x</TEMPLATE>",
    'VN_MAD = "bridge"',
    'NAME = "{name}"',
    'NAME = "{name}"\nVN_MAD = "ovswitch"',
    'NAME = "{name}"\nVN_MAD = "802.1Q"',
    'NAME = "{name}"\nVN_MAD = "bridge"\nVLAN_ID = "x"',
    'NAME = "{name}"\nVN_MAD = "bridge"\nAR = [ TYPE = "IP4", IP = "10.31.0.1" ]',
    'NAME = "{name}"\nVN_MAD = "bridge"\nAR = [ TYPE = "IP4", IP = "10.31.0.1", SIZE = "x" ]',
    'NAME = "{name}"\nVN_MAD = "bridge"\nAR = [ TYPE = "IP4", IP = "10.31.0.300", SIZE = 1 ]',
    'NAME = "{name}"\nVN_MAD = "bridge"\nAR = [ TYPE = "IP9", SIZE = 1 ]',
    'NAME = "{name}"\nVN_MAD = "bridge"\nAR = "flat"',
    'NAME = "{name}"\nVN_MAD = "bridge"\nSECURITY_GROUPS = "99999"',
    'NAME = "{name}"\nVN_MAD = "bridge"\nBRIDGE = "a bridge name far too long"',
    'NAME = "{name}"\nVN_MAD = "bridge"\nGATEWAY = "not-an-ip"',
]
BAD_GROUPS = [
    'RULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound" ]',
    'NAME = "{name}"\nRULE = [ RULE_TYPE = "inbound" ]',
    'NAME = "{name}"\nRULE = [ PROTOCOL = "TCP", RULE_TYPE = "sideways" ]',
    'NAME = "{name}"\nRULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound", RANGE = "0:99999" ]',
    'NAME = "{name}"\nRULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound", IP = "10.0.0.x" ]',
    'NAME = "{name}"\nRULE = [ PROTOCOL = "ICMP", RULE_TYPE = "inbound", RANGE = "22" ]',
    'NAME = "{name}"\nRULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound", COLOUR = "red" ]',
]


@pytest.mark.parametrize("text", BAD_VNETS)
def test_bad_vnet_templates_are_allocate_errors(
    frontend: RunningFrontEnd, unique: Unique, text: str
) -> None:
    message, code = Raw(frontend).error("one.vn.allocate", text.format(name=unique("bad")), -1)
    assert code == ALLOCATE, message


@pytest.mark.parametrize("text", BAD_GROUPS)
def test_bad_secgroup_templates_are_allocate_errors(
    frontend: RunningFrontEnd, unique: Unique, text: str
) -> None:
    message, code = Raw(frontend).error("one.secgroup.allocate", text.format(name=unique("bad")))
    assert code == ALLOCATE, message


def test_duplicate_names_and_unknown_clusters(frontend: RunningFrontEnd, unique: Unique) -> None:
    raw, name = Raw(frontend), unique("dup")
    text = f'NAME = "{name}"\nVN_MAD = "bridge"'
    raw.ok("one.vn.allocate", text, -1)
    assert raw.error("one.vn.allocate", text, -1)[1] == ALLOCATE
    assert raw.error("one.vn.allocate", f'NAME = "{unique("c")}"\nVN_MAD = bridge', 999)[1] == (
        ALLOCATE
    )
    raw.ok("one.secgroup.allocate", f'NAME = "{name}"')
    assert raw.error("one.secgroup.allocate", f'NAME = "{name}"')[1] == ALLOCATE
    with pytest.raises(pyone.OneException):
        pyone_client(frontend).secgroup.allocate({"TEMPLATE": {"NAME": name}})
