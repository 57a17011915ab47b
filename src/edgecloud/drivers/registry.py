"""Driver names to factories: the only place where an implementation (or a fake) is chosen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Factory = Callable[..., Any]

_REGISTRY: dict[tuple[str, str], Factory] = {}


def register(kind: str, name: str, factory: Factory) -> None:
    """Make `factory` the implementation of driver `name` of `kind` (e.g. "hypervisor", "kvm")."""
    _REGISTRY[(kind, name)] = factory


def create(kind: str, name: str, **options: Any) -> Any:
    """Build the driver `name` of `kind`; a clear error names what is available."""
    factory = _REGISTRY.get((kind, name))
    if factory is None:
        known = sorted(n for k, n in _REGISTRY if k == kind) or ["none yet"]
        raise LookupError(f"no {kind} driver '{name}' (available: {', '.join(known)})")
    return factory(**options)


def available(kind: str) -> list[str]:
    """List the names registered for `kind`."""
    return sorted(n for k, n in _REGISTRY if k == kind)
