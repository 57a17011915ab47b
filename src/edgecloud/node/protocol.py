"""Request parsing and the one error type of the node actions.

A request is one JSON object; every field an action reads goes through a helper here, so
a missing or malformed field is a ``bad_request`` and never a KeyError. ``deploy_id``
becomes a directory name under ROOT: it must match ``^one-[0-9]+$``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

KINDS = ("kvm", "microvm", "lxc")
DEPLOY_ID = re.compile(r"one-[0-9]{1,18}")
IMAGE_KEY = re.compile(r"[0-9a-f]{64}")  # the sha256 of what the front-end sent
PART_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")  # an upload under cache/images/incoming
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class NodeError(Exception):
    """An action failed; `kind` is "failed", "missing" or "bad_request"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def bad(message: str) -> NodeError:
    """Return a bad_request error."""
    return NodeError("bad_request", message)


def obj(request: dict[str, Any], key: str) -> dict[str, Any]:
    """Return the object field `key`."""
    value = request.get(key)
    if not isinstance(value, dict):
        raise bad(f"{key!r} must be an object")
    return value


def text(request: dict[str, Any], key: str, default: str | None = None) -> str:
    """Return the string field `key` (or `default` when absent, if one is given)."""
    value = request.get(key, default)
    if not isinstance(value, str):
        raise bad(f"{key!r} must be a string" if key in request else f"{key!r} is required")
    return value


def optional_text(request: dict[str, Any], key: str) -> str | None:
    """Return the string field `key`, or None when absent, null or empty."""
    value = request.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad(f"{key!r} must be a string")
    return value


def flag(request: dict[str, Any], key: str, default: bool = False) -> bool:
    """Return the boolean field `key`."""
    value = request.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"{key!r} must be true or false")
    return value


def integer(request: dict[str, Any], key: str, default: int | None = None, minimum: int = 0) -> int:
    """Return the integer field `key` (at least `minimum`)."""
    value = request.get(key, default)
    if value is None:
        raise bad(f"{key!r} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"{key!r} must be an integer")
    if value < minimum:
        raise bad(f"{key!r} must be at least {minimum}")
    return value


def number(request: dict[str, Any], key: str, default: float, minimum: float = 0.0) -> float:
    """Return the numeric field `key` (at least `minimum`)."""
    value = request.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(f"{key!r} must be a number")
    if value < minimum:
        raise bad(f"{key!r} must be at least {minimum}")
    return float(value)


def root(request: dict[str, Any]) -> Path:
    """Return ROOT: an absolute directory path."""
    value = text(request, "root")
    if not value.startswith("/") or "\0" in value:
        raise bad("'root' must be an absolute path")
    return Path(value)


def deploy_id(request: dict[str, Any], key: str = "deploy_id") -> str:
    """Return a deploy id, checked to be ``one-<digits>`` (it becomes a path)."""
    value = text(request, key)
    if not DEPLOY_ID.fullmatch(value):
        raise bad(f"{key!r} must look like one-<vm id>, not {value[:40]!r}")
    return value


def matching(request: dict[str, Any], key: str, pattern: re.Pattern[str], hint: str) -> str:
    """Return the string field `key`, checked to match `pattern` whole (`hint` says how)."""
    value = text(request, key)
    if not pattern.fullmatch(value):
        raise bad(f"{key!r} must be {hint}, not {value[:70]!r}")
    return value


def image_key(request: dict[str, Any], key: str = "key") -> str:
    """Return an image cache key: 64 lowercase hex digits (a sha256)."""
    return matching(request, key, IMAGE_KEY, "a sha256 in lowercase hex")


def part_name(request: dict[str, Any], key: str = "part") -> str:
    """Return the name of a partial upload (it becomes a file name: not "." nor "..")."""
    value = matching(request, key, PART_NAME, "1 to 100 of A-Z a-z 0-9 . _ -")
    if value in (".", ".."):
        raise bad(f"{key!r} must name a file, not {value!r}")
    return value


def choice(
    request: dict[str, Any], key: str, options: tuple[str, ...], default: str | None = None
) -> str:
    """Return the string field `key`, one of `options`."""
    value = text(request, key, default)
    if value not in options:
        raise bad(f"{key!r} must be one of {', '.join(options)}, not {value[:40]!r}")
    return value


def kind(request: dict[str, Any]) -> str:
    """Return the guest kind: kvm, microvm or lxc."""
    value = text(request, "kind")
    if value not in KINDS:
        raise bad(f"'kind' must be one of {', '.join(KINDS)}, not {value[:40]!r}")
    return value


def vm_id_of(deploy: str) -> int:
    """Return the VM id a deploy id names."""
    return int(deploy.removeprefix("one-"))


def tap_name(guest: str, nic_id: int) -> str:
    """Return the host-side name of a guest's NIC: ec<vm id>n<nic id>."""
    name = f"ec{vm_id_of(guest)}n{nic_id}"
    if len(name) > 15:
        raise bad(f"{guest} NIC {nic_id}: its device name {name} is longer than 15 characters")
    return name
