"""Authentication: HTTP Basic (password or token as the secret) and bearer tokens."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.server.auth.access import Principal, rule_applies_to
from edgecloud.server.auth.passwords import VerifiedLogins
from edgecloud.server.auth.tokens import looks_like_token, new_token, token_digest
from edgecloud.server.db.models import AclRuleRow, Token, User, UserGroup, now
from edgecloud.server.errors import NotAuthenticated
from edgecloud.server.services.acls import rule_of


class PrincipalCache:
    """Remembers, for a few seconds, whom an Authorization header authenticated.

    Every API call would otherwise cost three queries (token, groups, ACL rules) before
    its own work. Keys are HMACs of the header under a per-process secret. Changes made
    through this process (logout, passwords, memberships, ACLs) clear the cache at once;
    other front-end processes see them within `ttl` seconds.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        """Create an empty cache; a ttl of 0 disables it."""
        self._ttl = ttl
        self._max = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def _digest(self, authorization: str) -> bytes:
        return hmac.new(self._key, authorization.encode(), hashlib.sha256).digest()

    def get(self, authorization: str | None) -> Principal | None:
        """Return the cached principal of this header, if still fresh."""
        if not authorization or self._ttl <= 0:
            return None
        hit = self._entries.get(self._digest(authorization))
        if hit is None or hit[1] <= time.time():
            return None
        return hit[0]

    def put(self, authorization: str, principal: Principal, valid_until: float) -> None:
        """Remember a principal until `valid_until` (epoch seconds) or the ttl, earlier first."""
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        until = min(valid_until, time.time() + self._ttl)
        self._entries[self._digest(authorization)] = (principal, until)

    def clear(self) -> None:
        """Forget everything (after a change to users, tokens, groups or ACL rules)."""
        self._entries.clear()


class Authenticator:
    """Turns an Authorization header into a Principal, or raises NotAuthenticated."""

    def __init__(self, cache_seconds: float = 5.0) -> None:
        """Create an authenticator with empty caches."""
        self.logins = VerifiedLogins()
        self.cache = PrincipalCache(cache_seconds)

    def authenticate(self, session: Session, authorization: str | None) -> Principal:
        """Check the header's credentials (the cache first, then the store)."""
        cached = self.cache.get(authorization)
        if cached is not None:
            return cached
        if not authorization:
            raise NotAuthenticated("credentials required: HTTP Basic or a bearer token")
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            user, until = self._by_token(session, value.strip(), username=None)
        elif scheme == "basic":
            username, secret = _decode_basic(value.strip())
            user, until = self.by_secret(session, username, secret)
        else:
            raise NotAuthenticated(f"unsupported authorization scheme '{scheme}'")
        principal = principal_of(session, user)
        self.cache.put(authorization, principal, until)
        return principal

    def by_secret(self, session: Session, username: str, secret: str) -> tuple[User, float]:
        """Check a password or token ('user:password' form); return the user and validity."""
        if looks_like_token(secret):
            return self._by_token(session, secret, username=username)
        user = session.scalar(select(User).where(User.name == username))
        if user is None or not user.enabled:
            raise NotAuthenticated("wrong user name or password")
        if not self.logins.check(username, secret, user.password_hash):
            raise NotAuthenticated("wrong user name or password")
        return user, float("inf")

    def _by_token(
        self, session: Session, token: str, *, username: str | None
    ) -> tuple[User, float]:
        row = session.execute(
            select(User, Token.expires_at)
            .join(Token, Token.user_id == User.id)
            .where(Token.token_hash == token_digest(token))
        ).first()
        if row is None:
            raise NotAuthenticated("unknown or revoked token")
        user, expires_at = row
        if expires_at <= now():
            raise NotAuthenticated("token expired; log in again")
        if not user.enabled or (username is not None and username != user.name):
            raise NotAuthenticated("token does not belong to this user")
        return user, float(expires_at)


def _decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise NotAuthenticated("malformed Basic credentials") from exc
    username, sep, secret = decoded.partition(":")
    if not sep:
        raise NotAuthenticated("malformed Basic credentials")
    return username, secret


def principal_of(session: Session, user: User) -> Principal:
    """Build a user's principal: groups and the ACL rules that apply to them."""
    gids = frozenset(
        session.scalars(select(UserGroup.group_id).where(UserGroup.user_id == user.id))
    )
    gids = gids | {user.group_id}
    rules = tuple(
        rule
        for rule in map(rule_of, session.scalars(select(AclRuleRow)))
        if rule_applies_to(rule, user_id=user.id, group_ids=gids)
    )
    return Principal(user.id, user.name, user.group_id, gids, rules)


def issue_token(
    session: Session, user: User, *, ttl_seconds: int, name: str = ""
) -> tuple[str, int]:
    """Create a bearer token for `user`; return it and its expiry."""
    token = new_token()
    created = now()
    expires = created + ttl_seconds
    session.add(
        Token(
            user_id=user.id,
            token_hash=token_digest(token),
            name=name,
            created_at=created,
            expires_at=expires,
        )
    )
    session.flush()
    return token, expires


def revoke_token(session: Session, token: str) -> bool:
    """Delete a token; tell whether it existed."""
    row = session.scalar(select(Token).where(Token.token_hash == token_digest(token)))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
