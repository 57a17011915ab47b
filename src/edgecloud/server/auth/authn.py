"""Authentication: HTTP Basic (password or token as the secret) and bearer tokens."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.server.auth.access import Principal, rule_applies_to
from edgecloud.server.auth.passwords import VerifiedLogins
from edgecloud.server.auth.tokens import looks_like_token, new_token, token_digest
from edgecloud.server.db.models import AclRuleRow, Token, User, UserGroup, now
from edgecloud.server.errors import NotAuthenticated


class Authenticator:
    """Turns an Authorization header into a Principal, or raises NotAuthenticated."""

    def __init__(self) -> None:
        """Create an authenticator with an empty cache of verified Basic logins."""
        self.logins = VerifiedLogins()

    def authenticate(self, session: Session, authorization: str | None) -> Principal:
        """Check the header's credentials against the store."""
        if not authorization:
            raise NotAuthenticated("credentials required: HTTP Basic or a bearer token")
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            user = self._by_token(session, value.strip(), username=None)
        elif scheme == "basic":
            username, secret = _decode_basic(value.strip())
            user = self.by_secret(session, username, secret)
        else:
            raise NotAuthenticated(f"unsupported authorization scheme '{scheme}'")
        return principal_of(session, user)

    def by_secret(self, session: Session, username: str, secret: str) -> User:
        """Check a user's password or token (OpenNebula's 'user:password' session form)."""
        if looks_like_token(secret):
            return self._by_token(session, secret, username=username)
        user = session.scalar(select(User).where(User.name == username))
        if user is None or not user.enabled:
            raise NotAuthenticated("wrong user name or password")
        if not self.logins.check(username, secret, user.password_hash):
            raise NotAuthenticated("wrong user name or password")
        return user

    def _by_token(self, session: Session, token: str, *, username: str | None) -> User:
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
        return user


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
    from edgecloud.server.services.acls import rule_of

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
