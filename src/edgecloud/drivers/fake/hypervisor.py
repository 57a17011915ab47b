"""A fake hypervisor the VM template scripts: delays, failures, guests that vanish.

The lifecycle engine uses it exactly like a real hypervisor (tests, crash-safety tests,
the 10,000-host benchmark). Deploy ids are ``fake-<vm_id>``, so a deploy repeated after
a front-end crash finds the guest already running and returns without starting it twice;
every deploy that does start a guest is counted (``deploy_count``, ``read_deploy_counts``).

With a ``state_dir`` each host's guests live on disk (see ``state.py``) and keep "running"
across a restart of the front-end; without one they live in memory, O(1) per call.
What each FAKE_* attribute does is described in ``script.py``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecloud.drivers.base import DriverError, GuestSpec, GuestStatus, HostFacts, HostRef
from edgecloud.drivers.fake.script import GuestScript, check_host_up, host_capacity
from edgecloud.drivers.fake.state import (
    ABSENT,
    RUNNING,
    SAVED,
    DiskStore,
    FakeGuest,
    GuestStore,
    GuestTable,
    MemoryStore,
    read_deploy_counts,
)

__all__ = ["FakeHypervisor", "deploy_id_of", "read_deploy_counts", "vm_id_of"]

HYPERVISORS = ("fake", "kvm", "lxc", "microvm")
FREE_DISK_MB = 1 << 30  # a petabyte: the fake never runs out of disk
NET_RX_BYTES_PER_S = 125_000.0  # made-up traffic, so the monitor sees counters grow
NET_TX_BYTES_PER_S = 62_500.0
_DEPLOY_ID_PREFIX = "fake-"


@dataclass(frozen=True)
class _Transition:
    """What an action does: the states it acts on, the state it leaves, where it is a no-op."""

    acts_on: frozenset[str]
    target: str
    done_in: frozenset[str] = frozenset()

    def applies(self, action: str, deploy_id: str, state: str) -> bool:
        """Tell whether the action changes a guest in `state`; raise when it cannot run."""
        if state in self.acts_on:
            return True
        if state in self.done_in:
            return False
        shown = "missing" if state == ABSENT else state
        raise DriverError(f"cannot {action} guest {deploy_id}: it is {shown}")


_PRESENT = frozenset({RUNNING, SAVED})
_TRANSITIONS = {
    "shutdown": _Transition(_PRESENT, ABSENT, frozenset({ABSENT})),
    "cleanup": _Transition(_PRESENT, ABSENT, frozenset({ABSENT})),
    "reboot": _Transition(frozenset({RUNNING}), RUNNING),
    "save": _Transition(frozenset({RUNNING}), SAVED, frozenset({SAVED})),
    "restore": _Transition(frozenset({SAVED}), RUNNING, frozenset({RUNNING})),
}


def deploy_id_of(vm_id: int) -> str:
    """Return the deploy id the fake gives VM `vm_id` (the same on every host and call)."""
    return f"{_DEPLOY_ID_PREFIX}{vm_id}"


def vm_id_of(deploy_id: str) -> int | None:
    """Return the VM id in a deploy id of the form ``<prefix>-<vm_id>``, or None."""
    prefix, sep, digits = deploy_id.rpartition("-")
    if not sep or not prefix or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits)


class FakeHypervisor:
    """Run pretend guests on pretend hosts, as the VM and host templates script them."""

    def __init__(self, state_dir: Path | str | None = None) -> None:
        self.state_dir = None if state_dir is None else Path(state_dir)
        self._store: GuestStore = (
            MemoryStore() if self.state_dir is None else DiskStore(self.state_dir)
        )

    def probe(self, host: HostRef) -> HostFacts:
        """Report the host's capacity (template CPU/MEMORY) and what its running guests use."""
        check_host_up(host)
        total_cpu, total_memory_mb = host_capacity(host)
        now = time.time()
        with self._store.open(host.name) as guests:
            running = [g for g in guests.all() if g.state == RUNNING and not g.vanished(now)]
        return HostFacts(
            total_cpu=total_cpu,
            total_memory_mb=total_memory_mb,
            used_cpu=sum(g.cpu for g in running),
            used_memory_mb=sum(g.memory_mb for g in running),
            free_disk_mb=FREE_DISK_MB,
            hypervisors=HYPERVISORS,
            attributes={"HYPERVISOR": "fake", "HOSTNAME": host.name, "GUESTS": str(len(running))},
        )

    def deploy(self, host: HostRef, spec: GuestSpec) -> str:
        """Start the guest after FAKE_DEPLOY_DELAY, or return at once if it already runs."""
        check_host_up(host)
        script = GuestScript.from_template(spec.template)
        deploy_id = deploy_id_of(spec.vm_id)
        if script.deploy_delay:
            if self._is_running(host, spec.vm_id):
                return deploy_id
            time.sleep(script.deploy_delay)  # outside the host's lock: deploys overlap
        with self._store.open(host.name) as guests:
            now = time.time()
            guest = guests.get(spec.vm_id) or FakeGuest(vm_id=spec.vm_id)
            if guest.state == RUNNING and not guest.vanished(now):
                return deploy_id  # started before, maybe by a call the front-end lost
            _take_script(guest, script)
            _fail_if_scripted(guests, guest, "deploy")
            guest.state, guest.started_at = RUNNING, now
            guest.deploys += 1
            guests.put(guest)
        return deploy_id

    def shutdown(self, host: HostRef, deploy_id: str, *, hard: bool) -> None:
        """Remove the guest (a missing guest is already stopped)."""
        self._act(host, deploy_id, "shutdown")

    def reboot(self, host: HostRef, deploy_id: str, *, hard: bool) -> None:
        """Count a reboot of a running guest; it stays running."""
        self._act(host, deploy_id, "reboot")

    def save(self, host: HostRef, deploy_id: str) -> None:
        """Turn a running guest into a saved one (a saved guest stays saved)."""
        self._act(host, deploy_id, "save")

    def restore(self, host: HostRef, deploy_id: str) -> None:
        """Run a saved guest again (a running guest stays running).

        A guest saved on another host is brought over first, as the storage driver would
        copy its memory image (cold migration, resuming a STOPPED VM elsewhere).
        """
        vm_id = vm_id_of(deploy_id)
        if vm_id is not None:
            here = self._record(host, vm_id)
            if here is None or here.state == ABSENT:
                self._move(vm_id, host, SAVED)
        self._act(host, deploy_id, "restore")

    def migrate_live(self, host: HostRef, deploy_id: str, target: HostRef) -> None:
        """Move a running guest to `target` without stopping it."""
        check_host_up(host)
        check_host_up(target)
        vm_id = vm_id_of(deploy_id)
        if vm_id is None or not self._is_running(host, vm_id):
            raise DriverError(f"cannot migrate guest {deploy_id}: it is not running on {host.name}")
        self._move(vm_id, target, RUNNING)

    def _move(self, vm_id: int, target: HostRef, state: str) -> None:
        """Take the VM's guest in `state` from whichever host has it and put it on `target`."""
        for name in self._store.host_names():
            if name == target.name:
                continue
            with self._store.open(name) as guests:
                guest = guests.get(vm_id)
                if guest is None or guest.state != state or not guest.present(time.time()):
                    continue
                moved = FakeGuest.from_json(asdict(guest))
                guest.state = ABSENT
                guests.put(guest)
            with self._store.open(target.name) as guests:
                here = guests.get(vm_id)
                moved.deploys = here.deploys if here else 0
                moved.failures = here.failures if here else {}
                guests.put(moved)
            return

    def cleanup(self, host: HostRef, deploy_id: str) -> None:
        """Remove whatever is left of the guest."""
        self._act(host, deploy_id, "cleanup")

    def poll(self, host: HostRef, deploy_id: str) -> GuestStatus:
        """Report one guest; "missing" when unknown, removed or vanished."""
        check_host_up(host)
        vm_id = vm_id_of(deploy_id)
        if vm_id is None:
            return GuestStatus(deploy_id=deploy_id, vm_id=-1, state="missing")
        with self._store.open(host.name) as guests:
            guest = guests.get(vm_id)
        now = time.time()
        if guest is None or not guest.present(now):
            return GuestStatus(deploy_id=deploy_id, vm_id=vm_id, state="missing")
        return _status(guest, now)

    def poll_all(self, host: HostRef) -> list[GuestStatus]:
        """Report every guest the host has (vanished ones are left out), by VM id."""
        check_host_up(host)
        with self._store.open(host.name) as guests:
            records = guests.all()
        now = time.time()
        present = sorted((g for g in records if g.present(now)), key=lambda g: g.vm_id)
        return [_status(g, now) for g in present]

    def attach_nic(
        self, host: HostRef, deploy_id: str, network: Mapping[str, Any], nic_id: int
    ) -> None:
        """Record NIC `nic_id` as plugged into the running guest."""
        self._nic(host, deploy_id, "nic_attach", nic_id)

    def detach_nic(self, host: HostRef, deploy_id: str, nic_id: int) -> None:
        """Record NIC `nic_id` as unplugged (one the guest does not have: nothing to do)."""
        self._nic(host, deploy_id, "nic_detach", nic_id)

    def nics(self, host: HostRef | str, vm_id: int) -> list[int]:
        """Return the NIC ids hot-plugged into the VM's guest on the host."""
        guest = self._record(host, vm_id)
        return [] if guest is None else list(guest.nics)

    def _nic(self, host: HostRef, deploy_id: str, action: str, nic_id: int) -> None:
        check_host_up(host)
        vm_id = vm_id_of(deploy_id)
        with self._store.open(host.name) as guests:
            guest = None if vm_id is None else guests.get(vm_id)
            if guest is None or _current_state(guest, time.time()) != RUNNING:
                raise DriverError(f"cannot {action} on guest {deploy_id}: it is not running")
            _fail_if_scripted(guests, guest, action)
            others = [n for n in guest.nics if n != nic_id]
            guest.nics = sorted([*others, nic_id]) if action == "nic_attach" else others
            guests.put(guest)

    def deploy_count(self, host: HostRef | str, vm_id: int) -> int:
        """Return how many times a guest of VM `vm_id` was started on the host."""
        guest = self._record(host, vm_id)
        return 0 if guest is None else guest.deploys

    def reboot_count(self, host: HostRef | str, vm_id: int) -> int:
        """Return how many times the VM's guest was rebooted on the host."""
        guest = self._record(host, vm_id)
        return 0 if guest is None else guest.reboots

    def _record(self, host: HostRef | str, vm_id: int) -> FakeGuest | None:
        """Read the VM's guest record on the host, whatever its state."""
        with self._store.open(host if isinstance(host, str) else host.name) as guests:
            return guests.get(vm_id)

    def _is_running(self, host: HostRef, vm_id: int) -> bool:
        """Tell whether the VM's guest runs on the host (and has not vanished)."""
        guest = self._record(host, vm_id)
        return guest is not None and guest.state == RUNNING and not guest.vanished(time.time())

    def _act(self, host: HostRef, deploy_id: str, action: str) -> None:
        """Run a guest action after its FAKE_ACTION_DELAY, failing it when FAKE_FAIL says so."""
        check_host_up(host)
        transition = _TRANSITIONS[action]
        vm_id = vm_id_of(deploy_id)
        if vm_id is None:
            transition.applies(action, deploy_id, ABSENT)
            return
        record = self._record(host, vm_id)
        if record is not None and record.action_delay:
            time.sleep(record.action_delay)  # outside the host's lock, like deploy's delay
        with self._store.open(host.name) as guests:
            guest = guests.get(vm_id)
            state = ABSENT if guest is None else _current_state(guest, time.time())
            if not transition.applies(action, deploy_id, state) or guest is None:
                return
            _fail_if_scripted(guests, guest, action)
            guest.state = transition.target
            if action == "reboot":
                guest.reboots += 1
            guests.put(guest)


def _current_state(guest: FakeGuest, now: float) -> str:
    """Return the guest's state as the host sees it: a vanished guest is absent."""
    return guest.state if guest.present(now) else ABSENT


def _take_script(guest: FakeGuest, script: GuestScript) -> None:
    """Keep what later actions need of the template: deploy is the only call that has it."""
    guest.cpu, guest.memory_mb = script.cpu, script.memory_mb
    guest.action_delay = script.action_delay
    guest.fail, guest.fail_times = list(script.fail), script.fail_times
    guest.vanish_after = script.vanish_after


def _fail_if_scripted(guests: GuestTable, guest: FakeGuest, action: str) -> None:
    """Raise DriverError if FAKE_FAIL names the action, counting the failure persistently."""
    if action not in guest.fail:
        return
    failed = guest.failures.get(action, 0)
    if guest.fail_times is not None and failed >= guest.fail_times:
        return
    guest.failures[action] = failed + 1
    guests.put(guest)  # so FAKE_FAIL_TIMES counts across retries and restarts
    raise DriverError(
        f"fake {action} of VM {guest.vm_id} failed as scripted (FAKE_FAIL, failure {failed + 1})"
    )


def _status(guest: FakeGuest, now: float) -> GuestStatus:
    """Describe a present guest; a running one gets figures the monitor stores."""
    figures: dict[str, float] = {}
    if guest.state == RUNNING:
        uptime = max(0.0, now - guest.started_at)
        figures = {
            "cpu": guest.cpu,
            "memory_mb": float(guest.memory_mb),
            "net_rx": round(uptime * NET_RX_BYTES_PER_S),
            "net_tx": round(uptime * NET_TX_BYTES_PER_S),
        }
    return GuestStatus(
        deploy_id=deploy_id_of(guest.vm_id), vm_id=guest.vm_id, state=guest.state, figures=figures
    )
