"""The steps of a provision's operations. Each is idempotent: a retry runs it again and it
does only what is missing, so a failed operation resumes where it stopped.

    create, scale:  remove → hosts → configure → register → monitor
    configure:      configure (every host again) → monitor
    delete:         unregister → deprovision
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecloud.drivers.provision.api import ProvidedHost, Provider
from edgecloud.drivers.transport.keys import ensure_client_key, public_key_line
from edgecloud.drivers.transport.ssh import REFUSED
from edgecloud.provision import ProvisionTemplate
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Provision
from edgecloud.server.provision.register import Registrar

Log = Callable[[str], None]
DEPLOYING, CONFIGURING, DELETING = 1, 2, 5


class StepError(Exception):
    """A step cannot go on; the message says why (and what to do)."""


@dataclass
class Ctx:
    """What a step works with."""

    store: Store
    provision_id: int
    tag: str
    operation: str
    params: dict[str, Any]
    template: ProvisionTemplate
    provider: Provider
    registrar: Registrar
    log: Log
    home: Path
    host_timeout: float
    wake_monitor: Callable[[], None]
    configure: Callable[..., None] | None  # the Ansible runner (None: configured already)
    stopping: Callable[[], bool] = field(default=lambda: False)

    # --- the provision's host records -------------------------------------------

    def hosts(self) -> dict[str, dict[str, Any]]:
        """What the provider returned for each host, by name (plus `index`, `configured`)."""
        with self.store.read() as session:
            row = session.get(Provision, self.provision_id)
            return {k: dict(v) for k, v in (row.hosts if row is not None else {}).items()}

    def save_hosts(self, change: Callable[[dict[str, dict[str, Any]]], None]) -> None:
        """Change the host records in one transaction."""
        with self.store.write() as session:
            row = session.get(Provision, self.provision_id, with_for_update=True)
            assert row is not None
            hosts = {k: dict(v) for k, v in row.hosts.items()}
            change(hosts)
            row.hosts = hosts


def provided(record: dict[str, Any]) -> ProvidedHost:
    """A host record back as the provider's `ProvidedHost`."""
    names = {f.name for f in dataclasses.fields(ProvidedHost)}
    return ProvidedHost(**{k: v for k, v in record.items() if k in names})


def remove(ctx: Ctx) -> None:
    """Scale down: remove the hosts the template no longer has (none may run VMs)."""
    wanted = {spec.name for spec in ctx.template.hosts}
    extra = sorted(name for name in ctx.hosts() if name not in wanted)
    if not extra:
        ctx.log("no host to remove")
        return
    vms = ctx.registrar.vms_on(extra)
    if vms:
        raise StepError(
            f"VMs {', '.join(map(str, vms))} run on hosts to remove ({', '.join(extra)}): "
            "migrate or terminate them first"
        )
    ctx.registrar.unregister(("hosts",), extra)
    ctx.log(f"deleting hosts {', '.join(extra)} at the provider")
    ctx.provider.delete_hosts(ctx.tag, extra)

    def drop(records: dict[str, dict[str, Any]]) -> None:
        for name in extra:
            records.pop(name, None)

    ctx.save_hosts(drop)


def hosts(ctx: Ctx) -> None:
    """Create the template's hosts the provider has not made yet."""
    have = ctx.hosts()
    missing = [spec for spec in ctx.template.hosts if spec.name not in have]
    if not missing:
        ctx.log("every host exists")
        return
    names = ", ".join(spec.name for spec in missing)
    ctx.log(f"creating {len(missing)} host(s) with provider {ctx.template.provider}: {names}")
    key = public_key_line(ensure_client_key(ctx.home / "ssh"))
    started = time.monotonic()
    made = ctx.provider.create_hosts(ctx.tag, missing, ctx.template.provider_settings, key)
    by_name = {spec.name: spec for spec in missing}
    for host in made:
        ctx.log(
            f"host {host.name}: {host.address}:{host.port} ({host.resource_id})"
            + (" host key pinned" if host.host_key else " host key pinned on first contact")
        )

    def record(records: dict[str, dict[str, Any]]) -> None:
        for host in made:
            entry = dataclasses.asdict(host)
            entry["config"] = dict(host.config)
            entry.update(index=by_name[host.name].index if host.name in by_name else 0)
            entry["configured"] = False
            records[host.name] = entry

    ctx.save_hosts(record)
    ctx.log(f"{len(made)} host(s) ready at the provider in {time.monotonic() - started:.1f} s")


def configure(ctx: Ctx) -> None:
    """Run the host playbook on hosts not configured yet (every host for `configure`)."""
    records = ctx.hosts()
    again = ctx.operation == "configure"
    targets = [r for r in records.values() if again or not r.get("configured")]
    targets.sort(key=lambda r: r.get("index", 0))
    if not targets:
        ctx.log("every host is configured")
        return
    if ctx.configure is None:
        ctx.log("this provider's hosts need no configuration")
    else:
        kinds = sorted({k for spec in ctx.template.hosts for k in spec.hypervisors})
        started = time.monotonic()
        ctx.configure(
            [provided(r) for r in targets],
            private_key=ensure_client_key(ctx.home / "ssh"),
            authorized_key=public_key_line(ensure_client_key(ctx.home / "ssh")),
            work_dir=ctx.home / "provision" / "ansible" / ctx.tag,
            hypervisors=kinds,
            on_line=ctx.log,
        )
        ctx.log(f"configured {len(targets)} host(s) in {time.monotonic() - started:.1f} s")
    names = {r["name"] for r in targets}

    def mark(hosts: dict[str, dict[str, Any]]) -> None:
        for name in names:
            if name in hosts:
                hosts[name]["configured"] = True

    ctx.save_hosts(mark)


def register(ctx: Ctx) -> None:
    """Make the cluster, hosts, datastores, networks, images and templates not made yet."""
    records = {name: provided(r) for name, r in ctx.hosts().items()}
    kind = getattr(ctx.provider, "hypervisor", None)

    def hypervisor(kinds: list[str]) -> str:
        if isinstance(kind, str):
            return kind
        return "kvm" if "kvm" in kinds else kinds[0]

    ctx.registrar.register(ctx.template, records, hypervisor)


def monitor(ctx: Ctx) -> None:
    """Wait for every host to be MONITORED: the front-end reaches it and its node code runs."""
    ctx.wake_monitor()
    deadline = time.monotonic() + ctx.host_timeout
    seen: dict[str, str] = {}
    while True:
        states = ctx.registrar.host_states()
        for name, (state, error) in sorted(states.items()):
            if seen.get(name) != state:
                ctx.log(f"host {name}: {state}" + (f" ({error})" if error else ""))
                seen[name] = state
        if states and all(state == "MONITORED" for state, _ in states.values()):
            return
        refused = [f"{n}: {e}" for n, (s, e) in sorted(states.items()) if REFUSED in e]
        if refused:  # a pinned key the host does not have: waiting will not change it
            raise StepError("; ".join(refused))
        if time.monotonic() > deadline or ctx.stopping():
            waiting = [
                f"{n} {s}" + (f": {e}" if e else "")
                for n, (s, e) in sorted(states.items())
                if s != "MONITORED"
            ]
            raise StepError(
                f"hosts not MONITORED after {ctx.host_timeout:.0f} s: {'; '.join(waiting)}"
            )
        time.sleep(0.25)


def unregister(ctx: Ctx) -> None:
    """Remove what the provision made in the front-end; VMs on it only when forced."""
    force = bool(ctx.params.get("force"))
    vms = ctx.registrar.vms_on()
    if vms and not force:
        raise StepError(
            f"VMs {', '.join(map(str, vms))} run on the provision's hosts: terminate them, "
            "or delete with --force (which terminates them)"
        )
    if vms:
        ctx.log(f"forced: terminating VMs {', '.join(map(str, vms))}")
        ctx.registrar.end_vms(vms)
    ctx.registrar.unregister(best_effort=force)


def deprovision(ctx: Ctx) -> None:
    """Remove everything the provider has under the provision's tag (not only the records)."""
    removed = ctx.provider.delete_all(ctx.tag)
    for item in removed:
        ctx.log(f"removed {item}")
    left = ctx.provider.resources(ctx.tag)
    if left:
        raise StepError(
            "still at the provider: "
            + "; ".join(f"{r.kind} {r.resource_id} ({r.detail})" for r in left)
        )
    ctx.save_hosts(lambda hosts: hosts.clear())
    ctx.log("nothing left at the provider")


Step = tuple[str, Callable[[Ctx], None], int]
PLANS: dict[str, tuple[Step, ...]] = {
    "create": (
        ("hosts", hosts, DEPLOYING),
        ("configure", configure, CONFIGURING),
        ("register", register, CONFIGURING),
        ("monitor", monitor, CONFIGURING),
    ),
    "scale": (
        ("remove", remove, DEPLOYING),
        ("hosts", hosts, DEPLOYING),
        ("configure", configure, CONFIGURING),
        ("register", register, CONFIGURING),
        ("monitor", monitor, CONFIGURING),
    ),
    "configure": (("configure", configure, CONFIGURING), ("monitor", monitor, CONFIGURING)),
    "delete": (("unregister", unregister, DELETING), ("deprovision", deprovision, DELETING)),
}
