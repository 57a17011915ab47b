"""Unit tests for OpenNebula ACL rule strings: parsing, refusals, canonical formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecloud.server.auth.acl_syntax import (
    MAX_ID,
    RESOURCE_TYPES,
    RIGHTS,
    AclRule,
    format_acl,
    parse_acl,
)
from edgecloud.server.errors import InvalidInput

pytestmark = pytest.mark.unit


def refused(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_acl(text)
    assert caught.value.field == "rule"
    return caught.value


def test_parse_acl_reads_user_types_group_and_rights() -> None:
    assert parse_acl("#5 VM+NET/@102 USE+MANAGE") == AclRule(
        user_kind="user",
        user_id=5,
        resource_types=frozenset({"VM", "NET"}),
        resource_kind="group",
        resource_id=102,
        rights=frozenset({"USE", "MANAGE"}),
        zone=None,
    )


def test_parse_acl_reads_group_user_and_all_resources() -> None:
    rule = parse_acl("@1 IMAGE+TEMPLATE/* USE")
    assert (rule.user_kind, rule.user_id) == ("group", 1)
    assert (rule.resource_kind, rule.resource_id) == ("all", None)
    assert rule.resource_types == {"IMAGE", "TEMPLATE"}


def test_parse_acl_reads_all_users_and_cluster_resources() -> None:
    rule = parse_acl("* VM/%0 USE")
    assert (rule.user_kind, rule.user_id) == ("all", None)
    assert (rule.resource_kind, rule.resource_id) == ("cluster", 0)


def test_parse_acl_reads_resource_id_and_zone() -> None:
    rule = parse_acl("#3 HOST/#7 MANAGE #0")
    assert (rule.resource_kind, rule.resource_id, rule.zone) == ("id", 7, 0)


def test_parse_acl_treats_star_zone_as_every_zone() -> None:
    assert parse_acl("#3 HOST/#7 MANAGE *").zone is None


def test_parse_acl_ignores_case_and_extra_spaces() -> None:
    assert parse_acl("  #3   host+Vm/#7\tuse+manage  ") == parse_acl("#3 VM+HOST/#7 USE+MANAGE")


def test_parse_acl_reads_every_type_and_right() -> None:
    rule = parse_acl(f"* {'+'.join(RESOURCE_TYPES)}/* {'+'.join(RIGHTS)}")
    assert rule.resource_types == set(RESOURCE_TYPES)
    assert rule.rights == set(RIGHTS)


def test_parse_acl_accepts_the_largest_id() -> None:
    assert parse_acl(f"#{MAX_ID} VM/* USE").user_id == MAX_ID


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "got 0 parts"),
        ("#1 VM/*", "got 2 parts"),
        ("#1 VM/* USE #0 extra", "got 5 parts"),
        ("5 VM/* USE", "user '5'"),
        ("%5 VM/* USE", "user '%5'"),
        ("#x VM/* USE", "user '#x'"),
        ("# VM/* USE", "user '#'"),
        ("#-1 VM/* USE", "user '#-1'"),
        (f"#{MAX_ID + 1} VM/* USE", f"user '#{MAX_ID + 1}'"),
        ("#\u0661 VM/* USE", "user '#\u0661'"),
        ("#1 VM USE", "resources 'VM'"),
        ("#1 VM/#1/#2 USE", "resources 'VM/#1/#2'"),
        ("#1 FOO/* USE", "resource type 'FOO'"),
        ("#1 VM+/* USE", "resource type ''"),
        ("#1 /* USE", "resource type ''"),
        ("#1 VM+vm/* USE", "resource type is repeated"),
        ("#1 VM/&3 USE", "resource '&3'"),
        ("#1 VM/#a USE", "resource '#a'"),
        ("#1 VM/ USE", "resource ''"),
        ("#1 VM/* READ", "right 'READ'"),
        ("#1 VM/* USE+", "right ''"),
        ("#1 VM/* USE+USE", "right is repeated"),
        ("#1 VM/* USE 0", "zone '0'"),
        ("#1 VM/* USE @0", "zone '@0'"),
        ("#1 VM/* USE #z", "zone '#z'"),
    ],
)
def test_parse_acl_refuses_bad_rules_naming_the_bad_part(text: str, names: str) -> None:
    assert names in refused(text).reason


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("#5 NET+VM/@102 MANAGE+USE", "#5 VM+NET/@102 USE+MANAGE"),
        ("@1 template+image/* use", "@1 IMAGE+TEMPLATE/* USE"),
        ("* VM/%0 USE", "* VM/%0 USE"),
        ("#3 HOST/#7 MANAGE #0", "#3 HOST/#7 MANAGE #0"),
        ("#3 HOST/#7 MANAGE *", "#3 HOST/#7 MANAGE"),
        ("* BACKUPJOB+VM/* CREATE+ADMIN", "* VM+BACKUPJOB/* ADMIN+CREATE"),
    ],
)
def test_format_acl_writes_canonical_form(text: str, canonical: str) -> None:
    assert format_acl(parse_acl(text)) == canonical


@pytest.mark.parametrize(
    "changes",
    [
        {"user_kind": "all", "user_id": 1},
        {"user_kind": "user", "user_id": None},
        {"resource_kind": "all", "resource_id": 1},
        {"resource_kind": "cluster", "resource_id": None},
        {"resource_types": frozenset()},
        {"resource_types": frozenset({"FOO"})},
        {"rights": frozenset()},
        {"rights": frozenset({"READ"})},
    ],
)
def test_acl_rule_refuses_inconsistent_fields(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "user_kind": "user",
        "user_id": 1,
        "resource_types": frozenset({"VM"}),
        "resource_kind": "all",
        "resource_id": None,
        "rights": frozenset({"USE"}),
    }
    with pytest.raises(ValueError, match="must be"):
        AclRule(**(fields | changes))  # type: ignore[arg-type]


_ids = st.integers(min_value=0, max_value=MAX_ID)
_users = st.one_of(st.tuples(st.sampled_from(["user", "group"]), _ids), st.just(("all", None)))
_resources = st.one_of(
    st.tuples(st.sampled_from(["id", "group", "cluster"]), _ids), st.just(("all", None))
)
_rules = st.builds(
    lambda user, resource, types, rights, zone: AclRule(
        user[0], user[1], types, resource[0], resource[1], rights, zone
    ),
    _users,
    _resources,
    st.frozensets(st.sampled_from(RESOURCE_TYPES), min_size=1),
    st.frozensets(st.sampled_from(RIGHTS), min_size=1),
    st.one_of(st.none(), _ids),
)


@given(_rules)
def test_format_acl_round_trips_through_parse_acl(rule: AclRule) -> None:
    text = format_acl(rule)
    assert parse_acl(text) == rule
    assert format_acl(parse_acl(text)) == text
