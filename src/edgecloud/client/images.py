"""The SDK's images: CRUD plus clone, upload of an image's bytes, and waiting for READY."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from edgecloud.api import workload
from edgecloud.client.resources import Owned

CHUNK = 1024 * 1024
READY_STATES = ("READY", "USED", "USED_PERS")


class Images(Owned[workload.Image]):
    """Images in image datastores."""

    def clone(self, obj_id: int, name: str, *, datastore_id: int | None = None) -> workload.Image:
        """Copy an image into a new one (LOCKED until copied; see `wait_ready`)."""
        body: dict[str, object] = {"name": name}
        if datastore_id is not None:
            body["datastore_id"] = datastore_id
        return self._one(self.client.request("POST", f"{self.path}/{obj_id}/clone", json=body))

    def upload(
        self,
        obj_id: int,
        file: Path,
        *,
        progress: Callable[[int, int], None] | None = None,
        timeout: float = 3600.0,
    ) -> workload.Image:
        """Send the bytes of an image registered with upload=True; `progress(sent, total)`."""
        total = file.stat().st_size

        def chunks() -> Iterator[bytes]:
            sent = 0
            with file.open("rb") as stream:
                while chunk := stream.read(CHUNK):
                    sent += len(chunk)
                    yield chunk
                    if progress is not None:
                        progress(sent, total)

        response = self.client.http.put(
            f"{self.path}/{obj_id}/upload",
            content=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(total)},
            timeout=timeout,
        )
        return self._one(self.client.check(response))

    def wait_ready(self, obj_id: int, *, timeout: float = 600.0) -> workload.Image:
        """Wait until the image is READY (or in use); raise on ERROR or after `timeout`."""
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            image = self.get(obj_id)
            if image.state_name in READY_STATES:
                return image
            if image.state_name == "ERROR":
                raise RuntimeError(f"image {obj_id} failed: {image.last_error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"image {obj_id} is still {image.state_name}")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
