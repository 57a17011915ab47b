"""Driver interfaces: one small Protocol per kind; optional abilities are Protocols apart.

The front-end's lifecycle talks to hosts only through these. Implementations arrive with
later milestone steps (fake and QEMU/LXC hypervisors, SSH transport, bridge/VXLAN/EVPN
networks, qcow2 storage, onprem/aws/local providers); `registry.py` maps names to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class CommandResult:
    """What a command run on a host returned."""

    exit_status: int
    stdout: str
    stderr: str


@runtime_checkable
class Transport(Protocol):
    """Runs commands on a host: argument lists, never shell strings."""

    def run(
        self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None
    ) -> CommandResult:
        """Run `argv` on the host and wait for it."""
        ...

    def close(self) -> None:
        """Drop the connection."""
        ...


@dataclass(frozen=True)
class GuestSpec:
    """What a hypervisor needs to start a guest: the VM's validated template and placement."""

    vm_id: int
    name: str
    template: Mapping[str, Any]
    host: str


@dataclass(frozen=True)
class GuestStatus:
    """What a hypervisor reports about one guest."""

    deploy_id: str
    state: str  # running | paused | stopped | missing
    figures: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class Hypervisor(Protocol):
    """Starts, stops and watches guests on a host."""

    def deploy(self, spec: GuestSpec) -> str:
        """Start a guest; return its deploy id."""
        ...

    def shutdown(self, deploy_id: str, *, hard: bool) -> None:
        """Stop a guest (ACPI first unless hard)."""
        ...

    def poll(self, deploy_id: str) -> GuestStatus:
        """Report a guest's state."""
        ...


@runtime_checkable
class LiveMigration(Protocol):
    """An optional ability: move a running guest to another host."""

    def migrate_live(self, deploy_id: str, target_host: str) -> None:
        """Move the guest without stopping it."""
        ...


@runtime_checkable
class Storage(Protocol):
    """Moves disks between image datastores and hosts' system datastores."""

    def prolog(self, spec: GuestSpec) -> None:
        """Put the guest's disks on its host."""
        ...

    def epilog(self, spec: GuestSpec) -> None:
        """Remove (or save back) the guest's disks."""
        ...


@runtime_checkable
class Network(Protocol):
    """Plugs guests into virtual networks on a host."""

    def pre(self, spec: GuestSpec) -> None:
        """Prepare bridges and devices before the guest starts."""
        ...

    def post(self, spec: GuestSpec) -> None:
        """Apply filters once the guest's interfaces exist."""
        ...

    def clean(self, spec: GuestSpec) -> None:
        """Remove what pre and post created."""
        ...


@runtime_checkable
class Provider(Protocol):
    """Where hosts come from: creates and deletes machines for a provision."""

    def create_hosts(self, provision_id: str, count: int) -> list[str]:
        """Create machines; return their addresses."""
        ...

    def delete_hosts(self, provision_id: str) -> None:
        """Delete everything tagged with the provision id."""
        ...
