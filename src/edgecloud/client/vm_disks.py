"""The SDK's VM disk calls: snapshots and save-as (mixed into `Vms`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecloud.api import workload

if TYPE_CHECKING:
    from edgecloud.client.client import Client


class VmDisks:
    """Snapshots and save-as of a VM's disks."""

    client: Client
    path: str

    def _snapshots(self, method: str, path: str, **body: Any) -> list[workload.DiskSnapshot]:
        data = self.client.request(method, path, json=body or None)
        return [workload.DiskSnapshot.model_validate(s) for s in data]

    def disk_snapshots(self, obj_id: int, disk_id: int) -> list[workload.DiskSnapshot]:
        """List a disk's snapshots."""
        return self._snapshots("GET", f"{self.path}/{obj_id}/disks/{disk_id}/snapshots")

    def disk_snapshot_create(
        self, obj_id: int, disk_id: int, name: str
    ) -> list[workload.DiskSnapshot]:
        """Snapshot a disk (running or powered off); return its snapshots."""
        path = f"{self.path}/{obj_id}/disks/{disk_id}/snapshots"
        return self._snapshots("POST", path, name=name)

    def disk_snapshot_revert(
        self, obj_id: int, disk_id: int, name: str
    ) -> list[workload.DiskSnapshot]:
        """Go back to a snapshot (the VM powered off)."""
        path = f"{self.path}/{obj_id}/disks/{disk_id}/snapshots/{name}/revert"
        return self._snapshots("POST", path)

    def disk_snapshot_delete(
        self, obj_id: int, disk_id: int, name: str
    ) -> list[workload.DiskSnapshot]:
        """Delete a snapshot."""
        return self._snapshots("DELETE", f"{self.path}/{obj_id}/disks/{disk_id}/snapshots/{name}")

    def disk_saveas(
        self, obj_id: int, disk_id: int, name: str, *, datastore_id: int | None = None
    ) -> workload.Image:
        """Copy a powered-off VM's disk into a new image (READY when this returns)."""
        body: dict[str, Any] = {"name": name}
        if datastore_id is not None:
            body["datastore_id"] = datastore_id
        data = self.client.request(
            "POST", f"{self.path}/{obj_id}/disks/{disk_id}/saveas", json=body
        )
        return workload.Image.model_validate(data)
