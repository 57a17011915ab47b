"""Cold migration of a stopped guest's files between hosts (see edgecloud.node.migrate).

The target first gets the VM's images into its cache (through its own cluster's replica
when it has one), then the guest's files are relayed through the front-end (SFTP down
from the source, up to the target's staging directory) and the target adopts them. A move
that fails leaves the source untouched and discards what reached the target.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path

from edgecloud.drivers.base import DriverError, GuestSpec, HostRef
from edgecloud.drivers.hypervisor.disks import HostDisks, disks_of

log = logging.getLogger("edgecloud.drivers.moves")

COPY_TIMEOUT = 3600.0


def move_guest(
    disks: HostDisks,
    source: HostRef,
    target: HostRef,
    spec: GuestSpec,
    *,
    replica: HostRef | None = None,
) -> int:
    """Copy a stopped guest from `source` to `target`; return the bytes copied."""
    deploy = spec.deploy_id or f"one-{spec.vm_id}"
    found = disks.call(source, "guest_files", {"deploy_id": deploy}, 60.0)
    for disk in disks_of(spec.template):
        if disk.mode == "overlay":
            disks.ensure_image(target, disk, replica=replica)
    token = uuid.uuid4().hex[:16]
    request = {"deploy_id": deploy, "token": token}
    staging = str(disks.call(target, "guest_receive", request, 60.0)["dir"])
    copied = 0
    try:
        with tempfile.TemporaryDirectory(prefix="ec-move-") as tmp:
            for item in found.get("files", ()):
                name = str(item["name"])
                if "/" in name or name in ("", ".", ".."):
                    raise DriverError(f"{source.name} listed a strange file name {name!r}")
                local = Path(tmp) / name
                disks.files(source).get_file(
                    f"{source.root}/guests/{deploy}/{name}", local, timeout=COPY_TIMEOUT
                )
                copied += disks.files(target).put_file(
                    local, f"{staging}/{name}", timeout=COPY_TIMEOUT
                )
                local.unlink()
        adopt = {"deploy_id": deploy, "token": token, "old_root": source.root}
        disks.call(target, "guest_adopt", adopt, 600.0)
    except BaseException:
        try:
            disks.call(target, "guest_discard", {"deploy_id": deploy}, 60.0)
        except Exception as exc:  # the host may be the reason the move failed
            log.warning("discarding %s on %s: %s", deploy, target.name, exc)
        raise
    log.info("moved %s from %s to %s: %d bytes", deploy, source.name, target.name, copied)
    return copied
