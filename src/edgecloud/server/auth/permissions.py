"""OpenNebula-style permission bits: owner/group/other x use/manage/admin."""

from __future__ import annotations

import re
from typing import Literal

from edgecloud.server.errors import InvalidInput

Right = Literal["USE", "MANAGE", "ADMIN"]
RIGHT_BIT: dict[str, int] = {"USE": 4, "MANAGE": 2, "ADMIN": 1}
_LETTERS = "uma"
_STRING = re.compile(r"^([u-][m-][a-]){3}$")
_OCTAL = re.compile(r"^[0-7]{3}$")


def owner_bit(right: str) -> int:
    """Return the bit of `right` in the owner triple."""
    return RIGHT_BIT[right] << 6


def group_bit(right: str) -> int:
    """Return the bit of `right` in the group triple."""
    return RIGHT_BIT[right] << 3


def other_bit(right: str) -> int:
    """Return the bit of `right` in the other triple."""
    return RIGHT_BIT[right]


def format_perms(perms: int) -> str:
    """Render bits as OpenNebula's 'um-u-----' string."""
    out: list[str] = []
    for shift in (6, 3, 0):
        triple = (perms >> shift) & 7
        out.extend(c if triple & (4 >> i) else "-" for i, c in enumerate(_LETTERS))
    return "".join(out)


def parse_perms(text: str, *, field: str = "permissions") -> int:
    """Parse '640' (octal, like chmod) or 'um-u-----' into bits."""
    if _OCTAL.match(text):
        return int(text, 8)
    if _STRING.match(text):
        return sum(1 << (8 - i) for i, c in enumerate(text) if c != "-")
    raise InvalidInput(field, "expected three octal digits like '640' or a string like 'um-u-----'")


def umask_perms(umask: int) -> int:
    """Return the permissions of a new object under `umask` (OpenNebula's default is 177)."""
    return 0o777 & ~umask
