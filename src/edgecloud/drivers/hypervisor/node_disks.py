"""The disk abilities of the node driver (DiskStorage): PROLOG/EPILOG, snapshots, save-as,
attach/detach/resize, cold and live moves. Mixed into NodeHypervisor, whose `_call` runs
node actions and whose `disks` (HostDisks) moves images to hosts."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from edgecloud.drivers.base import DriverError, GuestSpec, HostRef
from edgecloud.drivers.hypervisor.disks import HostDisks, disks_of
from edgecloud.drivers.hypervisor.moves import migrate_live, move_guest

ACTION_TIMEOUT = 60.0


class NodeDisks:
    """Disk methods of the node driver (see the module's doc)."""

    disks: HostDisks

    def _call(
        self, host: HostRef, action: str, request: dict[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        raise NotImplementedError

    def prolog(self, host: HostRef, spec: GuestSpec, *, replica: HostRef | None = None) -> None:
        """Bring the VM's images to the host (through the replica, if any); make its disks."""
        self.disks.prolog(host, spec, replica=replica)

    def epilog(self, host: HostRef, spec: GuestSpec) -> dict[int, tuple[str, int]]:
        """Copy persistent disks back; return {image id: (checksum, bytes)} to record."""
        return self.disks.epilog(host, spec)

    def move(
        self, source: HostRef, target: HostRef, spec: GuestSpec, *, replica: HostRef | None
    ) -> None:
        """Copy a stopped guest's files to another host (cold migration)."""
        move_guest(self.disks, source, target, spec, replica=replica)

    def migrate_live_disks(
        self, source: HostRef, target: HostRef, spec: GuestSpec, *, replica: HostRef | None
    ) -> None:
        """Move a running guest with its disks to another host (QMP migrate over TCP)."""
        migrate_live(self, source, target, spec, replica=replica)

    def disk_snapshot(
        self, host: HostRef, deploy_id: str, disk_id: int, op: str, name: str = ""
    ) -> list[dict[str, Any]]:
        """Create, revert, delete or list a disk's snapshots; return them afterwards."""
        request: dict[str, Any] = {"deploy_id": deploy_id, "disk_id": disk_id, "op": op}
        if name:
            request["name"] = name
        found = self._call(host, "disk_snapshot", request, timeout=300)
        return [dict(s) for s in found.get("snapshots", ())]

    def disk_saveas(
        self, host: HostRef, deploy_id: str, disk_id: int, target: Path
    ) -> tuple[str, int]:
        """Flatten a (stopped) guest's disk into `target` on the front-end."""
        part = f"saveas-{uuid.uuid4().hex}"
        request = {"deploy_id": deploy_id, "disk_id": disk_id, "part": part}
        self._call(host, "disk_export", request, timeout=1800)
        try:
            remote = f"{host.root}/cache/images/incoming/{part}"
            return self.disks.fetch(host, remote, target)
        finally:
            self._call(host, "image_drop_part", {"part": part}, timeout=ACTION_TIMEOUT)

    def disk_attach(self, host: HostRef, spec: GuestSpec, disk_id: int) -> None:
        """Make one of the VM's disks on the host; hot-plug it when the guest runs."""
        item = self.disks.disk_item(host, spec, disk_id)
        deploy = spec.deploy_id or f"one-{spec.vm_id}"
        self._call(host, "disk_attach", {"deploy_id": deploy, "disk": item}, timeout=600)

    def disk_detach(
        self, host: HostRef, spec: GuestSpec, disk_id: int
    ) -> dict[int, tuple[str, int]]:
        """Unplug and remove a disk; a persistent one is copied back to its image first."""
        deploy = spec.deploy_id or f"one-{spec.vm_id}"
        found = [d for d in disks_of(spec.template) if d.disk_id == disk_id]
        if not found:
            raise DriverError(f"VM {spec.vm_id} has no disk {disk_id}")
        changed: dict[int, tuple[str, int]] = {}
        disk = found[0]
        if disk.mode == "copy" and disk.image_id is not None and disk.source:
            remote = f"{host.root}/guests/{deploy}/disk.{disk_id}"
            changed[disk.image_id] = self.disks.fetch(host, remote, Path(disk.source))
        request = {"deploy_id": deploy, "disk_id": disk_id}
        self._call(host, "disk_detach", request, timeout=ACTION_TIMEOUT)
        return changed

    def disk_resize(self, host: HostRef, deploy_id: str, disk_id: int, size_mb: int) -> None:
        """Grow a disk (live when the guest runs)."""
        request = {"deploy_id": deploy_id, "disk_id": disk_id, "size_mb": size_mb}
        self._call(host, "disk_resize", request, timeout=300)
