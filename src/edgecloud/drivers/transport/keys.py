"""The front-end's SSH key pair: made once, then read."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import asyncssh

PRIVATE_KEY_NAME = "id_ed25519"


def ensure_client_key(directory: Path) -> Path:
    """Return the path of the front-end's private key in `directory`, generating it first.

    The pair is ed25519: `id_ed25519` (mode 0600) and `id_ed25519.pub`. Files appear
    atomically (written aside, then renamed) and a lock file keeps concurrent callers,
    in this process or another, from making two different keys.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = directory / PRIVATE_KEY_NAME
    public = directory / (PRIVATE_KEY_NAME + ".pub")
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not private.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment="edgecloud-front-end")
            _write_atomic(private, key.export_private_key("openssh"), 0o600)
        if not public.exists():
            _write_atomic(public, (public_key_line(private) + "\n").encode(), 0o644)
    return private


def public_key_line(path: Path) -> str:
    """Return the OpenSSH public key line ("ssh-ed25519 AAAA... comment") of a key file.

    `path` may name the private key (the public key is derived from it) or a `.pub` file.
    """
    if path.suffix == ".pub":
        return path.read_text().strip()
    key = asyncssh.read_private_key(path)
    return key.export_public_key("openssh").decode().strip()


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
