"""What each step of a plan does on hosts, and how to tell afterwards whether it happened."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgecloud.drivers.base import (
    DiskStorage,
    DriverError,
    HostRef,
    HostUnreachable,
    Hypervisor,
    LiveMigration,
    NicHotplug,
)

log = logging.getLogger("edgecloud.server.steps")

if TYPE_CHECKING:
    from edgecloud.server.lifecycle.drivers import Drivers
    from edgecloud.server.lifecycle.engine import Job

# Storage steps nothing does yet: a stopped VM's files stay on its host (see README).
STORAGE_STEPS = frozenset({"move_out"})
# Steps of the disks on hosts (DiskStorage drivers; nothing to do for the others).
DISK_ACTIONS = frozenset(
    {
        "prolog",
        "epilog",
        "cleanup_guest",
        "move",
        "cleanup_source",
        "disk_attach",
        "disk_detach",
        "disk_resize",
    }
)


class StepRunner:
    """Runs the driver actions of one job."""

    def __init__(
        self,
        drivers: Drivers,
        job: Job,
        record_images: Callable[[dict[int, tuple[str, int]]], None] | None = None,
    ) -> None:
        """Bind to the job's VM and hosts; `record_images` keeps what EPILOG copied back."""
        self.drivers = drivers
        self.job = job
        self.record_images = record_images

    def _hv(self) -> Hypervisor:
        if self.job.host is None:
            raise DriverError(f"VM {self.job.vm_id} has no host")
        return self.drivers.hypervisor(self.job.host_kind)

    def _host(self) -> HostRef:
        assert self.job.host is not None
        return self.job.host

    def _target(self) -> HostRef:
        if self.job.target is None:
            raise DriverError("the operation has no target host")
        return self.job.target

    def do(self, action: str) -> None:
        """Run one step's driver action."""
        if action in STORAGE_STEPS:
            return
        deploy_id = self.job.spec.deploy_id
        hv = self._hv()
        if action == "deploy":
            hv.deploy(self._host(), self.job.spec)
        elif action == "restore":
            hv.restore(self._host(), deploy_id)
        elif action == "restore_target":
            hv.restore(self._target(), deploy_id)
        elif action == "shutdown":
            hv.shutdown(self._host(), deploy_id, hard=self.job.hard)
        elif action == "reboot":
            hv.reboot(self._host(), deploy_id, hard=self.job.hard)
        elif action == "save":
            hv.save(self._host(), deploy_id)
        elif action in DISK_ACTIONS:
            self._disks(hv, action)
        elif action == "cleanup":
            hv.cleanup(self._host(), deploy_id)
        elif action == "cleanup_target":
            hv.cleanup(self._target(), deploy_id)
        elif action in ("nic_attach", "nic_detach"):
            self._nic(hv, action)
        elif action == "migrate_live" and isinstance(hv, DiskStorage):
            hv.migrate_live_disks(
                self._host(), self._target(), self.job.spec, replica=self.job.target_replica
            )
        elif action == "migrate_live":
            if not isinstance(hv, LiveMigration):
                raise DriverError(f"the {self.job.host_kind} driver cannot migrate live")
            hv.migrate_live(self._host(), deploy_id, self._target())
        else:
            raise DriverError(f"unknown step {action}")

    def _disks(self, hv: Hypervisor, action: str) -> None:
        """Disk steps: only drivers with disks on hosts have something to do."""
        deploy_id = self.job.spec.deploy_id
        if not isinstance(hv, DiskStorage):  # e.g. the fake hypervisor: nothing to copy
            if action == "cleanup_guest":
                hv.cleanup(self._host(), deploy_id)
            return
        disk_id = self.job.params.get("disk_id")
        if action == "disk_attach":
            hv.disk_attach(self._host(), self.job.spec, int(str(disk_id)))
        elif action == "disk_detach":
            changed = hv.disk_detach(self._host(), self.job.spec, int(str(disk_id)))
            if changed and self.record_images is not None:
                self.record_images(changed)
        elif action == "disk_resize":
            size = int(str(self.job.params.get("size_mb")))
            hv.disk_resize(self._host(), deploy_id, int(str(disk_id)), size)
        elif action == "move":
            hv.move(self._host(), self._target(), self.job.spec, replica=self.job.target_replica)
        elif action == "cleanup_source":
            try:  # the VM runs on its target now: a leftover on the source is only logged
                hv.cleanup(self._host(), deploy_id)
            except (DriverError, HostUnreachable) as exc:
                log.warning("VM %s: cleaning its old host up: %s", self.job.vm_id, exc)
        elif action == "prolog":
            hv.prolog(self._host(), self.job.spec, replica=self.job.replica)
        elif action == "epilog":
            changed = hv.epilog(self._host(), self.job.spec)
            if changed and self.record_images is not None:
                self.record_images(changed)
        else:
            hv.cleanup(self._host(), deploy_id, keep_disks=True)

    def _nic(self, hv: Hypervisor, action: str) -> None:
        if not isinstance(hv, NicHotplug):
            raise DriverError(f"the {self.job.host_kind} driver cannot hot-plug NICs")
        nic_id = self.job.params.get("nic_id")
        if not isinstance(nic_id, int):
            raise DriverError("the operation names no NIC")
        deploy_id = self.job.spec.deploy_id
        if action == "nic_detach":
            hv.detach_nic(self._host(), deploy_id, nic_id)
            return
        nics = self.job.spec.template.get("NIC", []) or []
        if not any(str(n.get("NIC_ID")) == str(nic_id) for n in nics):
            raise DriverError(f"VM {self.job.vm_id} has no NIC {nic_id} any more")
        hv.attach_nic(self._host(), deploy_id, self.job.spec.network, nic_id)

    def happened(self, action: str) -> bool:
        """Ask the host whether a step that was running when a front-end died took effect."""
        if (
            action in STORAGE_STEPS
            or action in DISK_ACTIONS
            or action
            in (
                "reboot",
                "nic_attach",
                "nic_detach",
            )
        ):
            return False  # harmless to repeat (every disk action keeps what is there)
        where = (
            self._target()
            if action in ("restore_target", "cleanup_target", "migrate_live")
            else self._host()
        )
        state = self._hv().poll(where, self.job.spec.deploy_id).state
        expected = {
            "deploy": {"running"},
            "restore": {"running"},
            "restore_target": {"running"},
            "migrate_live": {"running"},
            "shutdown": {"missing", "stopped"},
            "save": {"saved"},
            "cleanup": {"missing"},
            "cleanup_target": {"missing"},
        }
        return state in expected.get(action, set())
