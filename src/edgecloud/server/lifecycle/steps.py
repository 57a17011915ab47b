"""What each step of a plan does on hosts, and how to tell afterwards whether it happened."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecloud.drivers.base import DriverError, HostRef, Hypervisor, LiveMigration, NicHotplug

if TYPE_CHECKING:
    from edgecloud.server.lifecycle.drivers import Drivers
    from edgecloud.server.lifecycle.engine import Job

# Steps of the storage drivers (disks to and from hosts). Until those drivers exist the
# lifecycle records these states but nothing moves: the guest's memory image stays where
# the hypervisor keeps it.
STORAGE_STEPS = frozenset({"move", "move_out"})


class StepRunner:
    """Runs the driver actions of one job."""

    def __init__(self, drivers: Drivers, job: Job) -> None:
        """Bind to the job's VM and hosts."""
        self.drivers = drivers
        self.job = job

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
        elif action == "cleanup":
            hv.cleanup(self._host(), deploy_id)
        elif action == "cleanup_target":
            hv.cleanup(self._target(), deploy_id)
        elif action in ("nic_attach", "nic_detach"):
            self._nic(hv, action)
        elif action == "migrate_live":
            if not isinstance(hv, LiveMigration):
                raise DriverError(f"the {self.job.host_kind} driver cannot migrate live")
            hv.migrate_live(self._host(), deploy_id, self._target())
        else:
            raise DriverError(f"unknown step {action}")

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
        if action in STORAGE_STEPS or action in ("reboot", "nic_attach", "nic_detach"):
            return False  # cheap and harmless to repeat
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
