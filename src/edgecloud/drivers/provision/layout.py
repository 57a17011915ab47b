"""Names, checks and state files of the local provider (see `local`)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision import system

_ID_RE = re.compile(r"^[a-z0-9-]{1,16}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_INDEX = 244  # host i gets .(10 + i) of the /24
TAG = "edgecloud-provision:"
# Held while choosing a provision's /24 and giving it to its bridge (any state directory).
NETWORK_LOCK = Path(tempfile.gettempdir()) / "edgecloud-provision-network.lock"


def digest(text: str) -> str:
    """The hex SHA-256 of `text` (short link names are cut from it)."""
    return hashlib.sha256(text.encode()).hexdigest()


def netns_name(provision_id: str, index: int) -> str:
    """The network namespace of host `index` of the provision."""
    return f"ecp-{provision_id}-{index}"


def bridge_name(provision_id: str) -> str:
    """The provision's bridge in the root namespace (15 characters, as links allow)."""
    return "ecpb" + digest(provision_id)[:11]


def veth_name(provision_id: str, index: int) -> str:
    """The root end of host `index`'s veth pair (its other end is eth0 in the namespace)."""
    return "ecpv" + digest(f"{provision_id}/{index}")[:11]


def check_id(provision_id: str) -> str:
    """Return the provision id if it is 1 to 16 of a-z, 0-9 and '-'; raise otherwise."""
    if not isinstance(provision_id, str) or not _ID_RE.fullmatch(provision_id):
        raise DriverError(f"provision id {provision_id!r}: 1 to 16 of a-z, 0-9 and '-'")
    return provision_id


def check_name(name: str) -> str:
    """Return the host name if it can name a directory; raise `DriverError` otherwise."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise DriverError(
            f"host name {name!r}: the local provider takes up to 64 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_settings(settings: Mapping[str, Any]) -> ipaddress.IPv4Network | None:
    """The provider settings: only `network`, a /24 of 198.18.0.0/15 (None: choose one)."""
    unknown = sorted(set(settings) - {"network"})
    if unknown:
        raise DriverError(
            f"local provider: unknown setting(s) {', '.join(unknown)} (known: network)"
        )
    if settings.get("network") is None:
        return None
    try:
        net = ipaddress.IPv4Network(str(settings["network"]))
    except ValueError:
        net = None
    if net is None or net.prefixlen != 24 or not net.subnet_of(system.SITE_RANGE):
        raise DriverError(f"local provider: network must be a /24 of {system.SITE_RANGE}")
    return net


def read_json(path: Path) -> dict[str, Any]:
    """The object a state file holds ({} when it is missing or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Replace a state file atomically."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    temporary.replace(path)


def make_dir(path: Path, mode: int = 0o755) -> Path:
    """Make `path` (and parents) and give it `mode` whatever the umask."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path
