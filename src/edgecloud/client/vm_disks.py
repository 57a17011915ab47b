"""The SDK's VM disk calls: snapshots, save-as, export and import (mixed into `Vms`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
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

    def export(self, obj_id: int, file: Path, *, timeout: float = 3600.0) -> int:
        """Write a powered-off VM's bundle (template + disks) to `file`; return its bytes."""
        written = 0
        part = file.with_name(file.name + ".part")
        with (
            self.client.http.stream("GET", f"{self.path}/{obj_id}/export", timeout=timeout) as r,
        ):
            if r.status_code >= 400:
                r.read()
                self.client.check(r)
            with part.open("wb") as out:
                for chunk in r.iter_bytes(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
        part.replace(file)
        return written

    def import_bundle(
        self,
        file: Path,
        *,
        name: str | None = None,
        datastore_id: int | None = None,
        timeout: float = 3600.0,
    ) -> workload.Vm:
        """Make a VM and its images from a bundle file (on this or another front-end)."""
        params: dict[str, Any] = {}
        if name:
            params["name"] = name
        if datastore_id is not None:
            params["datastore_id"] = datastore_id

        def chunks() -> Iterator[bytes]:
            with file.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    yield chunk

        response = self.client.http.post(
            f"{self.path}/import",
            params=params,
            content=chunks(),
            headers={"Content-Type": "application/x-tar"},
            timeout=timeout,
        )
        return workload.Vm.model_validate(self.client.check(response))

    def _accepted(self, method: str, path: str, body: Any = None) -> workload.VmActionAccepted:
        data = self.client.request(method, path, json=body)
        return workload.VmActionAccepted.model_validate(data)

    def disk_attach(self, obj_id: int, **disk: Any) -> workload.VmActionAccepted:
        """Attach a disk: image_id= or image= (a name), or type="fs"/"swap" with size_mb=."""
        return self._accepted("POST", f"{self.path}/{obj_id}/disks", disk)

    def disk_detach(self, obj_id: int, disk_id: int) -> workload.VmActionAccepted:
        """Detach a disk."""
        return self._accepted("DELETE", f"{self.path}/{obj_id}/disks/{disk_id}")

    def disk_resize(self, obj_id: int, disk_id: int, size_mb: int) -> workload.VmActionAccepted:
        """Grow a disk to `size_mb`."""
        path = f"{self.path}/{obj_id}/disks/{disk_id}/resize"
        return self._accepted("POST", path, {"size_mb": size_mb})

    def resize(
        self,
        obj_id: int,
        *,
        cpu: float | None = None,
        vcpu: int | None = None,
        memory_mb: int | None = None,
        enforce: bool = True,
    ) -> workload.Vm:
        """Give a VM that runs nowhere (powered off, undeployed, pending, held) a new size."""
        body = {"cpu": cpu, "vcpu": vcpu, "memory_mb": memory_mb, "enforce": enforce}
        body = {k: v for k, v in body.items() if v is not None}
        answer = self.client.request("POST", f"{self.path}/{obj_id}/resize", json=body)
        return workload.Vm.model_validate(answer["vm"])

    def update_conf(
        self, obj_id: int, template: dict[str, Any] | str, *, merge: bool = False
    ) -> workload.Vm:
        """Replace (or merge into) a VM's OS, FEATURES, ... CONTEXT sections."""
        body = {"template": template, "merge": merge}
        answer = self.client.request("POST", f"{self.path}/{obj_id}/conf", json=body)
        return workload.Vm.model_validate(answer["vm"])
