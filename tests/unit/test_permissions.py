"""Permission bits and the principal's access decisions."""

from __future__ import annotations

import pytest

from edgecloud.server.auth.access import ObjectRef, Principal
from edgecloud.server.auth.acl_syntax import parse_acl
from edgecloud.server.auth.permissions import format_perms, parse_perms, umask_perms
from edgecloud.server.errors import InvalidInput

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "bits"), [("640", 0o640), ("um-u-----", 0o640), ("uma------", 0o700), ("000", 0)]
)
def test_parse_perms_accepts_octal_and_letters(text: str, bits: int) -> None:
    assert parse_perms(text) == bits


@pytest.mark.parametrize("text", ["999", "rw-r--r--", "64", "um-u----"])
def test_parse_perms_refuses_garbage(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_perms(text)
    assert err.value.field == "permissions"


def test_format_perms_round_trips_every_value() -> None:
    assert all(parse_perms(format_perms(bits)) == bits for bits in range(0o1000))


def test_umask_177_gives_owner_use_manage() -> None:
    assert format_perms(umask_perms(0o177)) == "um-------"


ALICE = Principal(user_id=5, name="alice", group_id=100, group_ids=frozenset({100}))
ADMIN = Principal(user_id=9, name="root2", group_id=0, group_ids=frozenset({0}))


def _obj(perms: int, owner: int = 7, group: int = 200, cluster: int = 3) -> ObjectRef:
    return ObjectRef(
        id=42, owner_id=owner, group_id=group, perms=perms, cluster_ids=frozenset({cluster})
    )


def test_principal_owner_group_other_bits() -> None:
    assert ALICE.can("USE", "VM", _obj(0o400, owner=5))
    assert not ALICE.can("MANAGE", "VM", _obj(0o400, owner=5))
    assert ALICE.can("USE", "VM", _obj(0o040, group=100))
    assert not ALICE.can("USE", "VM", _obj(0o040, group=200))
    assert ALICE.can("USE", "VM", _obj(0o004))
    assert not ALICE.can("USE", "VM", _obj(0o600))


def test_principal_admin_group_can_everything() -> None:
    assert ADMIN.is_admin and ADMIN.can("ADMIN", "HOST", _obj(0))
    assert ADMIN.can_create("CLUSTER")


@pytest.mark.parametrize(
    ("rule", "granted"),
    [
        ("#5 VM/#42 USE", True),
        ("#5 VM/#43 USE", False),
        ("#5 VM/@200 USE", True),
        ("#5 VM/%3 USE", True),
        ("#5 VM/%4 USE", False),
        ("#5 HOST/* USE", False),
        ("#5 VM/* MANAGE", False),
    ],
)
def test_principal_acl_rules(rule: str, granted: bool) -> None:
    alice = Principal(5, "alice", 100, frozenset({100}), (parse_acl(rule),))
    assert alice.can("USE", "VM", _obj(0)) is granted


def test_principal_create_needs_a_create_rule() -> None:
    assert not ALICE.can_create("VM")
    alice = Principal(5, "alice", 100, frozenset({100}), (parse_acl("@100 VM+NET/* CREATE"),))
    assert alice.can_create("VM") and alice.can_create("NET") and not alice.can_create("HOST")
