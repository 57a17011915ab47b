"""XML-RPC: one.system.*, one.user.*, one.group.*, one.acl.*, one.zone.* (pyone and raw calls,
every document checked against OpenNebula's XSDs)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pyone
import pytest
from pyone.acl import OneAcl

from edgecloud import __version__
from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd
from tests.support.one import Raw, pyone_client
from tests.support.onexsd import validate

AUTHENTICATION, AUTHORIZATION, NO_EXISTS, ACTION = 0x100, 0x200, 0x400, 0x800
XML_RPC_API, ALLOCATE = 0x1000, 0x4000


def _user(
    admin: Client, unique: Callable[[str], str], group_id: int | None = None
) -> tuple[int, str, str]:
    name, password = unique("xu"), "pw-" + uuid.uuid4().hex
    made = admin.users.create(name=name, password=password, group_id=group_id)
    return made.id, name, password


def test_version_and_config(frontend: RunningFrontEnd) -> None:
    raw = Raw(frontend)
    assert raw.ok("one.system.version") == __version__
    config = validate(raw.ok("one.system.config"))
    assert config.findtext("DEFAULT_UMASK") == "177"
    assert {m.findtext("NAME") for m in config.iter("VM_MAD")} == {"kvm", "lxc", "microvm", "dummy"}
    assert pyone_client(frontend).system.config().DEFAULT_UMASK == ["177"]


def test_user_lifecycle(frontend: RunningFrontEnd, unique: Callable[[str], str]) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    name = unique("alice")
    uid = one.user.allocate(name, "secret-password", "core", [])
    doc = validate(raw.ok("one.user.info", uid))
    assert (doc.findtext("NAME"), doc.findtext("GID"), doc.findtext("GNAME")) == (
        name,
        "1",
        "users",
    )
    assert [e.text for e in doc.find("GROUPS")] == ["1"]
    assert doc.findtext("AUTH_DRIVER") == "core" and doc.findtext("PASSWORD") == ""
    assert name == one.user.info(uid).NAME

    me = Raw(frontend, name, "secret-password")
    assert validate(me.ok("one.user.info", -1)).findtext("ID") == str(uid)
    pool = validate(me.ok("one.userpool.info"))
    assert [u.findtext("ID") for u in pool.iter("USER")] == [str(uid)]
    assert me.error("one.user.info", 0)[1] == NO_EXISTS
    assert (
        me.error("one.user.allocate", unique("x"), "secret-password", "core", [])[1]
        == AUTHORIZATION
    )

    one.user.update(uid, 'TEAM = "edge"', 0)
    one.user.update(uid, 'ROLE = "dev"', 1)
    template = validate(raw.ok("one.user.info", uid)).find("TEMPLATE")
    assert {c.tag: c.text for c in template} == {"TEAM": "edge", "ROLE": "dev"}

    assert me.ok("one.user.passwd", uid, "another-password") == uid
    assert Raw(frontend, name, "secret-password").call("one.user.info", -1)[2] == AUTHENTICATION
    assert Raw(frontend, name, "another-password").ok("one.user.info", -1)

    everyone = validate(raw.ok("one.userpool.info"))
    assert {"0", str(uid)} <= {u.findtext("ID") for u in everyone.iter("USER")}
    assert one.user.delete(uid) == uid
    with pytest.raises(pyone.OneNoExistsException):
        one.user.info(uid)
    with pytest.raises(pyone.OneActionException):
        one.user.delete(0)


def test_user_allocate_refusals(frontend: RunningFrontEnd, unique: Callable[[str], str]) -> None:
    raw = Raw(frontend)
    name = unique("bob")
    assert raw.error("one.user.allocate", name, "short", "core", [])[1] == ALLOCATE
    assert raw.error("one.user.allocate", name, "long-enough-pw", "ldap", [])[1] == ALLOCATE
    assert raw.error("one.user.allocate", name, "long-enough-pw", "core", [999])[1] == ALLOCATE
    uid = raw.ok("one.user.allocate", name, "long-enough-pw", "core", [1, 0])
    doc = validate(raw.ok("one.user.info", uid))
    assert doc.findtext("GID") == "1" and [e.text for e in doc.find("GROUPS")] == ["0", "1"]
    assert raw.error("one.user.allocate", name, "long-enough-pw", "", [])[1] == ALLOCATE
    assert raw.error("one.user.info", 10_000)[1] == NO_EXISTS


def test_user_groups_and_enable(
    frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]
) -> None:
    raw = Raw(frontend)
    uid, name, password = _user(admin, unique)
    gid = raw.ok("one.group.allocate", unique("team"))
    raw.ok("one.user.chgrp", uid, gid)
    doc = validate(raw.ok("one.user.info", uid))
    assert doc.findtext("GID") == str(gid) and [e.text for e in doc.find("GROUPS")] == [str(gid)]
    raw.ok("one.user.addgroup", uid, 1)
    assert admin.users.get(uid).group_ids == sorted([1, gid])
    raw.ok("one.user.delgroup", uid, 1)
    assert raw.error("one.user.delgroup", uid, gid)[1] == ACTION  # the primary group
    assert raw.error("one.user.addgroup", uid, 9999)[1] == NO_EXISTS

    raw.ok("one.user.enable", uid, False)
    assert Raw(frontend, name, password).call("one.user.info", -1)[2] == AUTHENTICATION
    raw.ok("one.user.enable", uid, True)
    assert Raw(frontend, name, password).ok("one.user.info", -1)


def test_user_login_tokens(
    frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]
) -> None:
    uid, name, password = _user(admin, unique)
    me = Raw(frontend, name, password)
    token = me.ok("one.user.login", name, "", 3600, -1)
    assert token.startswith("ec_")
    with_token = Raw(frontend, name, token)
    assert validate(with_token.ok("one.user.info", -1)).findtext("NAME") == name
    assert uid == pyone_client(frontend, name, token).user.info(-1).ID
    assert me.ok("one.user.login", name, token, 7200, -1) == token  # extended

    _other_uid, other, _ = _user(admin, unique)
    assert me.error("one.user.login", other, "", 3600, -1)[1] == AUTHORIZATION
    assert Raw(frontend).ok("one.user.login", other, "", 60, -1).startswith("ec_")
    assert me.error("one.user.login", name, "", 3600, 0)[1] == XML_RPC_API  # not a member
    assert me.error("one.user.login", name, "ec_" + "x" * 43, 3600, -1)[1] == XML_RPC_API
    assert me.error("one.user.login", name, "", -5, -1)[1] == XML_RPC_API
    assert me.ok("one.user.login", name, "", 60, 1).startswith("ec_")  # its only group

    assert me.ok("one.user.login", name, token, 0, -1) == token  # revoked
    assert Raw(frontend, name, token).call("one.user.info", -1)[2] == AUTHENTICATION
    assert Raw(frontend).error("one.user.login", unique("nobody"), "", 60, -1)[1] == NO_EXISTS


def test_groups(frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    name = unique("grp")
    gid = one.group.allocate(name)
    doc = validate(raw.ok("one.group.info", gid))
    assert doc.findtext("NAME") == name and list(doc.find("USERS")) == []
    assert name == one.group.info(gid).NAME
    raw.ok("one.group.update", gid, 'SITE = "lyon"', 0)
    raw.ok("one.group.update", gid, "<TEMPLATE><OWNER>ops</OWNER></TEMPLATE>", 1)
    template = validate(raw.ok("one.group.info", gid)).find("TEMPLATE")
    assert {c.tag: c.text for c in template} == {"SITE": "lyon", "OWNER": "ops"}
    assert raw.error("one.group.allocate", name)[1] == ALLOCATE

    uid, user, password = _user(admin, unique, group_id=gid)
    assert [e.text for e in validate(raw.ok("one.group.info", gid)).find("USERS")] == [str(uid)]
    member = Raw(frontend, user, password)
    assert [g.findtext("ID") for g in validate(member.ok("one.grouppool.info")).iter("GROUP")] == [
        str(gid)
    ]
    assert member.error("one.group.info", 0)[1] == NO_EXISTS
    assert member.error("one.group.allocate", unique("g"))[1] == AUTHORIZATION
    pool = validate(raw.ok("one.grouppool.info"))
    assert {"0", "1", str(gid)} <= {g.findtext("ID") for g in pool.iter("GROUP")}

    assert raw.error("one.group.delete", gid)[1] == ACTION  # still has a member
    admin.users.delete(uid)
    assert one.group.delete(gid) == gid
    with pytest.raises(pyone.OneNoExistsException):
        one.group.info(gid)


def test_quota_in_user_and_group_info(
    frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]
) -> None:
    raw = Raw(frontend)
    uid, _, _ = _user(admin, unique)
    assert validate(raw.ok("one.user.info", uid)).find("VM_QUOTA") is None
    admin.users.set_quota(uid, vms=3, memory_mb=2048)
    vm = validate(raw.ok("one.user.info", uid)).find("VM_QUOTA/VM")
    assert (vm.findtext("VMS"), vm.findtext("MEMORY"), vm.findtext("CPU")) == ("3", "2048", "-2")
    assert vm.findtext("VMS_USED") == "0"


def test_acl_rules(frontend: RunningFrontEnd, admin: Client, unique: Callable[[str], str]) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    uid, name, password = _user(admin, unique)
    user, resource, rights = OneAcl().parse_rule(f"#{uid} HOST+DATASTORE/%0 USE+MANAGE")
    rule_id = one.acl.addrule(user, resource, rights)
    assert any(a.rule == f"#{uid} HOST+DATASTORE/%0 USE+MANAGE" for a in admin.acls.list())
    pool = validate(raw.ok("one.aclpool.info"))
    mine = next(a for a in pool.iter("ACL") if a.findtext("ID") == str(rule_id))
    assert mine.findtext("STRING") == f"#{uid} HOST+DATASTORE/%0 USE+MANAGE *"
    assert mine.findtext("USER") == f"{0x100000000 + uid:x}"
    assert mine.findtext("RESOURCE") == f"{0x2000000000 + 0x100000000000 + 0x800000000:x}"
    assert (mine.findtext("RIGHTS"), mine.findtext("ZONE")) == ("3", "400000000")
    # the rule applies to the user at once, and they see it
    member = Raw(frontend, name, password)
    seen = {a.findtext("STRING") for a in validate(member.ok("one.aclpool.info")).iter("ACL")}
    assert f"#{uid} HOST+DATASTORE/%0 USE+MANAGE *" in seen
    assert all(s.startswith((f"#{uid} ", "@1 ", "* ")) for s in seen)  # only their rules

    zoned = OneAcl().parse_rule("@1 CLUSTER/#0 USE #0")
    zoned_id = raw.ok("one.acl.addrule", *zoned)
    zoned_doc = validate(raw.ok("one.aclpool.info"))
    strings = {a.findtext("ID"): a.findtext("STRING") for a in zoned_doc.iter("ACL")}
    assert strings[str(zoned_id)] == "@1 CLUSTER/#0 USE #0"
    assert raw.error("one.acl.addrule", *zoned)[1] == ALLOCATE  # exists already
    assert raw.error("one.acl.addrule", "nothex", resource, rights)[1] == ALLOCATE
    assert raw.error("one.acl.addrule", user, "0x100000000", rights)[1] == ALLOCATE  # no type
    assert raw.error("one.acl.addrule", user, resource, "0x10")[1] == ALLOCATE
    assert member.error("one.acl.addrule", user, resource, rights)[1] == AUTHORIZATION
    assert member.error("one.acl.delrule", rule_id)[1] == AUTHORIZATION

    assert one.acl.delrule(rule_id) == rule_id
    raw.ok("one.acl.delrule", zoned_id)
    with pytest.raises(pyone.OneNoExistsException):
        one.acl.delrule(rule_id)


def test_zones(frontend: RunningFrontEnd) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    zone = validate(raw.ok("one.zone.info", 0))
    assert zone.findtext("NAME") == "OpenNebula"
    assert zone.findtext("TEMPLATE/ENDPOINT").endswith("/RPC2")
    assert [z.findtext("ID") for z in validate(raw.ok("one.zonepool.info")).iter("ZONE")] == ["0"]
    assert one.zonepool.info().ZONE[0].ID == 0
    with pytest.raises(pyone.OneNoExistsException):
        one.zone.info(1)


def test_bad_parameters(frontend: RunningFrontEnd) -> None:
    raw = Raw(frontend)
    assert raw.error("one.user.info", "zero")[1] == XML_RPC_API
    assert raw.error("one.user.update", 0, 'BROKEN = "', 0)[1] == ACTION
    assert Raw(frontend, "nobody", "wrong-password").call("one.user.info", -1)[2] == AUTHENTICATION


def test_pools_through_pyone(frontend: RunningFrontEnd) -> None:
    one = pyone_client(frontend)
    assert 0 in [u.ID for u in one.userpool.info().USER]
    assert {0, 1} <= {g.ID for g in one.grouppool.info().GROUP}
    assert all(a.STRING for a in one.aclpool.info().ACL)
