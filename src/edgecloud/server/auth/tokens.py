"""Bearer tokens: random secrets of which only a SHA-256 digest is stored."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "ec_"  # noqa: S105 - a marker, not a secret
# The web console keeps its bearer token in this HttpOnly cookie; the API takes it on
# safe (GET/HEAD) requests only, so a forged cross-site POST can never use it.
SESSION_COOKIE = "edgecloud_session"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def new_token() -> str:
    """Return a new random bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Return the hex SHA-256 under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(secret: str) -> bool:
    """Tell whether a secret is shaped like one of our tokens (rather than a password)."""
    return secret.startswith(TOKEN_PREFIX) and len(secret) > 40
