"""Secrets at rest: values (provider credentials, password inputs) encrypted with a key
that lives beside the store, never in it.

The key is made on first use at `$home/secret.key` (0600). Fernet: AES-128-CBC with an
HMAC-SHA256, so a changed or foreign ciphertext is refused rather than misread.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "secret.key"


class SecretError(Exception):
    """The secrets cannot be read back (another front-end's key, or a damaged value)."""


def _key(home: Path) -> bytes:
    path = home / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    try:
        os.link(temporary, path)  # the first writer wins; the others read its key
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_bytes().strip()


def seal(home: Path, values: dict[str, Any]) -> str:
    """Encrypt a JSON-able mapping ("" for an empty one)."""
    if not values:
        return ""
    return Fernet(_key(home)).encrypt(json.dumps(values).encode()).decode()


def unseal(home: Path, sealed: str) -> dict[str, Any]:
    """Decrypt what `seal` returned."""
    if not sealed:
        return {}
    try:
        data = json.loads(Fernet(_key(home)).decrypt(sealed.encode()))
    except (InvalidToken, ValueError) as exc:
        raise SecretError(f"cannot decrypt with {home / KEY_FILE}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise SecretError("the sealed value is not a mapping")
    return data


def cipher(home: Path) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    """(encrypt, decrypt) of bytes with the front-end's key: for drivers keeping secrets
    in files (the aws provider's connection record). Decrypting foreign bytes raises
    ValueError."""
    fernet = Fernet(_key(home))

    def decrypt(data: bytes) -> bytes:
        try:
            return fernet.decrypt(data)
        except InvalidToken:
            raise ValueError("not encrypted with this front-end's key") from None

    return fernet.encrypt, decrypt


def derived_key(home: Path, purpose: str) -> bytes:
    """Return a 32-byte key for `purpose` (an HMAC key, say) derived from the secret key."""
    return hashlib.sha256(b"edgecloud:" + purpose.encode() + b"\0" + _key(home)).digest()
