"""Driver interfaces: one small Protocol per kind; optional abilities are Protocols apart.

The front-end's lifecycle talks to hosts only through these. Implementations arrive with
later milestone steps (fake and QEMU/LXC hypervisors, SSH transport, bridge/VXLAN/EVPN
networks, qcow2 storage, onprem/aws/local providers); `registry.py` maps names to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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


class Stream(Protocol):
    """A long-lived command on a host: lines in on its stdin, lines out by callback."""

    def send(self, data: bytes) -> None:
        """Write to the command's stdin (raises `DriverError` once the stream has ended)."""
        ...

    def close(self) -> None:
        """End the command's input; it exits when it has finished what it was given."""
        ...


# Called with each line the command prints (trailing newline included), on a thread of
# the transport's: keep it short.
LineCallback = Callable[[bytes], None]
# Called once when the command has ended or the connection was lost: (why, lost).
EndCallback = Callable[[str, bool], None]


@runtime_checkable
class Streams(Protocol):
    """Optional transport ability: run a long-lived command and talk to it in lines."""

    def open_stream(
        self,
        argv: Sequence[str],
        *,
        on_line: LineCallback,
        on_end: EndCallback,
        timeout: float,
    ) -> Stream:
        """Start `argv` (waiting at most `timeout` seconds for it to start)."""
        ...


# Called now and then with the bytes copied so far, on a thread of the transport's.
ProgressCallback = Callable[[int], None]


@runtime_checkable
class Files(Protocol):
    """Optional transport ability: copy one regular file to or from the host.

    The destination's directory must exist (`DriverError` naming it otherwise); the file is
    written in place (callers copy to a temporary name, then rename). Failures raise
    `DriverError` with the path and the reason ("no space left on device" when the disk is
    full), or `HostUnreachable` when the connection was lost. A copy that does not end
    within `timeout` seconds raises `DriverError` and its partial destination is removed.
    """

    def put_file(
        self,
        local: Path,
        remote: str,
        *,
        timeout: float,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Copy `local` (on this machine) to `remote` on the host; return the bytes copied."""
        ...

    def get_file(
        self,
        remote: str,
        local: Path,
        *,
        timeout: float,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Copy `remote` on the host to `local` (on this machine); return the bytes copied."""
        ...


@dataclass(frozen=True)
class HostRef:
    """The host a driver acts on: its name, address and template attributes."""

    id: int
    name: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # How to reach it: "ssh" to address:port (host key pinned once known) or "local".
    address: str = ""
    port: int = 22
    transport: str = "ssh"
    host_key: str | None = None
    # The host's directory tree for node code, guests and datastores.
    root: str = "/var/lib/edgecloud"


@dataclass(frozen=True)
class HostFacts:
    """What a probe of a host found."""

    total_cpu: float
    total_memory_mb: int
    used_cpu: float = 0.0
    used_memory_mb: int = 0
    free_disk_mb: int = 0
    hypervisors: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    # The host key seen when none was pinned yet (pin on first contact), and the version
    # of the node code the host runs.
    host_key: str | None = None
    node_version: str = ""


@dataclass(frozen=True)
class GuestSpec:
    """What a hypervisor needs to start a guest: the VM's validated template and identity."""

    vm_id: int
    name: str
    template: Mapping[str, Any]
    deploy_id: str = ""
    kind: str = ""  # the VM's hypervisor kind (a kvm host may also run lxc and microvm guests)
    # The VM's NICs resolved for its host, and the host's underlay (see edgecloud.node.net).
    network: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuestStatus:
    """What a hypervisor reports about one guest."""

    deploy_id: str
    vm_id: int
    state: str  # running | paused | saved | stopped | missing
    figures: Mapping[str, float] = field(default_factory=dict)
    # What the host says about how the guest runs, e.g. {"accel": "tcg"} or
    # {"privileged": False}; recorded on the VM.
    runtime: Mapping[str, Any] = field(default_factory=dict)


class HostUnreachable(Exception):
    """The host did not answer (network, SSH, or the host is down)."""


class HostKeyMismatch(HostUnreachable):
    """The host answered with another SSH host key than the one pinned: refused."""


class DriverError(Exception):
    """A driver action failed on the host; the message says why."""


@runtime_checkable
class Hypervisor(Protocol):
    """Starts, stops and watches guests on a host. Every action is idempotent."""

    def probe(self, host: HostRef) -> HostFacts:
        """Report the host's capacity and usage; raise HostUnreachable if it is down."""
        ...

    def deploy(self, host: HostRef, spec: GuestSpec) -> str:
        """Start a guest (or find it already started); return its deploy id."""
        ...

    def shutdown(self, host: HostRef, deploy_id: str, *, hard: bool) -> None:
        """Stop a guest (ACPI first unless hard); a missing guest is already stopped."""
        ...

    def reboot(self, host: HostRef, deploy_id: str, *, hard: bool) -> None:
        """Reboot a guest (reset when hard)."""
        ...

    def save(self, host: HostRef, deploy_id: str) -> None:
        """Save a guest's memory to the host's system datastore and stop it."""
        ...

    def restore(self, host: HostRef, deploy_id: str) -> None:
        """Start a saved guest from its memory image."""
        ...

    def cleanup(self, host: HostRef, deploy_id: str) -> None:
        """Remove what is left of a guest on the host."""
        ...

    def poll(self, host: HostRef, deploy_id: str) -> GuestStatus:
        """Report one guest's state (state "missing" when the host does not know it)."""
        ...

    def poll_all(self, host: HostRef) -> list[GuestStatus]:
        """Report every guest the host runs."""
        ...


@runtime_checkable
class LiveMigration(Protocol):
    """An optional ability: move a running guest to another host."""

    def migrate_live(self, host: HostRef, deploy_id: str, target: HostRef) -> None:
        """Move the guest without stopping it."""
        ...


@runtime_checkable
class DiskStorage(Protocol):
    """An optional ability: a VM's disks live on its host, made from datastore images."""

    def prolog(self, host: HostRef, spec: GuestSpec, *, replica: HostRef | None = None) -> None:
        """Bring the VM's images to the host and make its disks (kept when already there)."""
        ...

    def epilog(self, host: HostRef, spec: GuestSpec) -> dict[int, tuple[str, int]]:
        """Copy persistent disks back; return {image id: (checksum, bytes)}."""
        ...

    def cleanup(self, host: HostRef, deploy_id: str, *, keep_disks: bool = False) -> None:
        """Remove the guest from the host (its disks too unless `keep_disks`)."""
        ...

    def disk_snapshot(
        self, host: HostRef, deploy_id: str, disk_id: int, op: str, name: str = ""
    ) -> list[dict[str, Any]]:
        """Create, revert, delete or list a disk's snapshots; return them."""
        ...

    def move(
        self, source: HostRef, target: HostRef, spec: GuestSpec, *, replica: HostRef | None
    ) -> None:
        """Copy a stopped guest's files to another host (its images through `replica`)."""
        ...

    def migrate_live_disks(
        self, source: HostRef, target: HostRef, spec: GuestSpec, *, replica: HostRef | None
    ) -> None:
        """Move a running guest, disks included, to another host."""
        ...

    def disk_attach(self, host: HostRef, spec: GuestSpec, disk_id: int) -> None:
        """Make one of the VM's disks on the host (hot-plugged when the guest runs)."""
        ...

    def disk_detach(
        self, host: HostRef, spec: GuestSpec, disk_id: int
    ) -> dict[int, tuple[str, int]]:
        """Remove a disk (unplugged first); a persistent one is copied back: its image's
        new (checksum, bytes) are returned by image id."""
        ...

    def disk_resize(self, host: HostRef, deploy_id: str, disk_id: int, size_mb: int) -> None:
        """Grow a disk (live when the guest runs)."""
        ...

    def disk_saveas(
        self, host: HostRef, deploy_id: str, disk_id: int, target: Path
    ) -> tuple[str, int]:
        """Copy a stopped guest's disk, flattened, to `target`; return (checksum, bytes)."""
        ...


@runtime_checkable
class ConsoleLog(Protocol):
    """An optional ability: return the tail of a guest's console output."""

    def console_log(self, host: HostRef, deploy_id: str, *, tail_bytes: int) -> str:
        """Return up to the last `tail_bytes` of the guest's console."""
        ...


@runtime_checkable
class NetworkFilters(Protocol):
    """An optional ability: rewrite a running guest's NIC filters (security groups)."""

    def update_sg(self, host: HostRef, deploy_id: str, network: Mapping[str, Any]) -> None:
        """Replace the filters of the guest's NICs with those in `network` (no restart)."""
        ...


@runtime_checkable
class NicHotplug(Protocol):
    """An optional ability: plug a NIC into, or out of, a running guest."""

    def attach_nic(
        self, host: HostRef, deploy_id: str, network: Mapping[str, Any], nic_id: int
    ) -> None:
        """Plug NIC `nic_id` of `network` (the VM's NICs resolved, as GuestSpec.network)."""
        ...

    def detach_nic(self, host: HostRef, deploy_id: str, nic_id: int) -> None:
        """Unplug NIC `nic_id` (a NIC the guest does not have: nothing to do)."""
        ...


@runtime_checkable
class NodeSync(Protocol):
    """An optional ability: copy the node code to a host; return the version it runs."""

    def sync(self, host: HostRef, *, force: bool = False) -> str:
        """Install the node code on the host unless it already runs this version."""
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


# Providers (where a provision's hosts come from): see edgecloud.drivers.provision.api.
