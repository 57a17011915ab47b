"""Driver names to factories: the only place where an implementation (or a fake) is chosen."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Factory = Callable[..., Any]

_REGISTRY: dict[tuple[str, str], Factory] = {}

# Modules that register a driver when imported: `create` imports them on first use, so
# callers name a driver without importing its module.
_MODULES: dict[tuple[str, str], str] = {
    ("hypervisor", "fake"): "edgecloud.drivers.fake",
    ("hypervisor", "kvm"): "edgecloud.drivers.hypervisor.node",
    ("hypervisor", "lxc"): "edgecloud.drivers.hypervisor.node",
    ("hypervisor", "microvm"): "edgecloud.drivers.hypervisor.node",
    ("provision", "aws"): "edgecloud.drivers.provision.aws",
    ("provision", "local"): "edgecloud.drivers.provision.local",
    ("provision", "onprem"): "edgecloud.drivers.provision.onprem",
    ("provision", "fake"): "edgecloud.drivers.provision.fake",
}


def register(kind: str, name: str, factory: Factory) -> None:
    """Make `factory` the implementation of driver `name` of `kind` (e.g. "hypervisor", "kvm")."""
    _REGISTRY[(kind, name)] = factory


def create(kind: str, name: str, **options: Any) -> Any:
    """Build the driver `name` of `kind`; a clear error names what is available."""
    factory = _REGISTRY.get((kind, name))
    if factory is None and (kind, name) in _MODULES:
        importlib.import_module(_MODULES[(kind, name)])
        factory = _REGISTRY.get((kind, name))
    if factory is None:
        known = available(kind) or ["none yet"]
        raise LookupError(f"no {kind} driver '{name}' (available: {', '.join(known)})")
    return factory(**options)


def available(kind: str) -> list[str]:
    """List the names registered for `kind`, and those `create` would import on first use."""
    return sorted({n for k, n in (*_REGISTRY, *_MODULES) if k == kind})
