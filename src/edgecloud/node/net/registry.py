"""What the network code did on this host, kept under ROOT/net/ (registry.json, lock).

- ``guests``: deploy id -> {"nics": [...], "network": {...}} as checked (the nft ruleset
  and the devices a guest needs are computed from these);
- ``created``: the devices this code created, in order (only these are ever deleted: a
  bridge the operator made stays, even when no guest uses it);
- ``sysctl``: /proc/sys path -> the value it had before this code changed it;
- ``addresses``: [address/prefix, device] this code added (masquerade gateways);
- ``frr``: the FRR pathspace this code started (None when FRR is not running);
- ``nft``: whether the edgecloud nftables tables may exist (nft is not run before).

Every change holds ROOT/net/lock (flock), so actions of different guests take turns.
The file is written atomically on every exit, also after a failure (it must say what
exists), and removed when nothing is left to remember.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Registry:
    """The network state of one ROOT."""

    guests: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    addresses: list[list[str]] = field(default_factory=list)
    frr: str | None = None
    nft: bool = False  # the edgecloud tables may exist

    def empty(self) -> bool:
        """Return whether there is nothing to remember."""
        return not (
            self.guests or self.created or self.sysctl or self.addresses or self.frr or self.nft
        )


def net_dir(root: Path) -> Path:
    """Return ROOT/net."""
    return root / "net"


def load(root: Path) -> Registry:
    """Read the registry (an empty one when there is none)."""
    path = net_dir(root) / "registry.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return Registry()
    known = Registry.__dataclass_fields__
    return Registry(**{k: v for k, v in raw.items() if k in known})


def save(root: Path, registry: Registry) -> None:
    """Write the registry atomically (remove it when empty)."""
    path = net_dir(root) / "registry.json"
    if registry.empty():
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".registry.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(registry), indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[Registry]:
    """Hold ROOT/net/lock; yield the registry; write it back however the block ends."""
    directory = net_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        registry = load(root)
        try:
            yield registry
        finally:
            save(root, registry)
