"""Password hashing with argon2, and a short-lived cache of verified HTTP Basic logins."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106's second recommended option, sized for a front-end that hashes on login only.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    """Return the argon2id hash of `password`."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Check `password` against a stored argon2 hash."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def random_password() -> str:
    """Return a new random password (24 URL-safe characters)."""
    return secrets.token_urlsafe(18)


class VerifiedLogins:
    """Remembers (user, password) pairs that argon2 accepted, for a few seconds.

    HTTP Basic sends the password on every request; argon2 is deliberately slow, so a
    client that does not use tokens would otherwise pay ~20 ms per call. The cache key is
    an HMAC under a per-process secret (the password itself is never kept), and a hit
    counts only while the user's stored hash is the one that was verified, so a password
    change takes effect at once.
    """

    def __init__(self, ttl_seconds: float = 60.0, max_entries: int = 10_000) -> None:
        """Create an empty cache."""
        self._key = secrets.token_bytes(32)
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _digest(self, user: str, password: str) -> bytes:
        msg = user.encode() + b"\0" + password.encode()
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def check(self, user: str, password: str, password_hash: str) -> bool:
        """Verify the password, from the cache when this exact hash was verified recently."""
        key = self._digest(user, password)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == password_hash and hit[1] > now:
            return True
        if not verify_password(password_hash, password):
            return False
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (password_hash, now + self._ttl)
        return True
