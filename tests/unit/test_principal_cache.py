"""The principal cache: fresh hits only, bounded by the token's expiry, cleared on demand."""

from __future__ import annotations

import time

import pytest

from edgecloud.server.auth.access import Principal
from edgecloud.server.auth.authn import PrincipalCache

pytestmark = pytest.mark.unit

ALICE = Principal(user_id=5, name="alice", group_id=1, group_ids=frozenset({1}))


def test_principal_cache_hit_until_ttl() -> None:
    cache = PrincipalCache(ttl=60)
    cache.put("Bearer t1", ALICE, valid_until=float("inf"))
    assert cache.get("Bearer t1") is ALICE
    assert cache.get("Bearer t2") is None
    assert cache.get(None) is None


def test_principal_cache_never_outlives_the_token() -> None:
    cache = PrincipalCache(ttl=60)
    cache.put("Bearer t1", ALICE, valid_until=time.time() - 1)
    assert cache.get("Bearer t1") is None


def test_principal_cache_clear_and_disable() -> None:
    cache = PrincipalCache(ttl=60)
    cache.put("Bearer t1", ALICE, valid_until=float("inf"))
    cache.clear()
    assert cache.get("Bearer t1") is None
    off = PrincipalCache(ttl=0)
    off.put("Bearer t1", ALICE, valid_until=float("inf"))
    assert off.get("Bearer t1") is None


def test_principal_cache_is_bounded() -> None:
    cache = PrincipalCache(ttl=60, max_entries=3)
    for n in range(4):
        cache.put(f"Bearer {n}", ALICE, valid_until=float("inf"))
    assert cache.get("Bearer 3") is ALICE
    assert sum(cache.get(f"Bearer {n}") is not None for n in range(3)) == 0
