"""What a provision makes in the front-end: its cluster, datastores, networks, hosts, images
and VM templates, created through the same services as the API (with the owner's rights).

Each object is created and recorded in `Provision.made` in one transaction, so a retried
step skips what exists and `delete` finds everything, even after a failure half-way.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from edgecloud.api import infra as infra_wire
from edgecloud.api import network as net_wire
from edgecloud.api import workload as work_wire
from edgecloud.drivers.provision.api import ProvidedHost
from edgecloud.provision import NetworkSpec, ProvisionTemplate
from edgecloud.server.auth.access import Principal
from edgecloud.server.auth.authn import principal_of
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Host, Provision, User, Vm
from edgecloud.server.errors import ApiError, NotFound
from edgecloud.server.services.clusters import Clusters
from edgecloud.server.services.datastores import Datastores
from edgecloud.server.services.hosts import Hosts
from edgecloud.server.services.images import Images
from edgecloud.server.services.vm_lifecycle import request_action
from edgecloud.server.services.vm_templates import VmTemplates
from edgecloud.server.services.vnets import Vnets

Log = Callable[[str], None]
DONE_VM = 6
# What `made` holds, in the order objects are removed (the reverse of their making).
REMOVE_ORDER = ("templates", "images", "vnets", "hosts", "datastores", "cluster")
_SERVICES: dict[str, Any] = {
    "templates": VmTemplates(),
    "images": Images(),
    "vnets": Vnets(),
    "hosts": Hosts(),
    "datastores": Datastores(),
    "cluster": Clusters(),
}


class RegisterError(Exception):
    """A front-end object could not be made or removed (the service's reason)."""


def owner_of(store: Store, provision_id: int) -> Principal:
    """The principal of the provision's owner: objects are made with their rights."""
    with store.read() as session:
        row = session.get(Provision, provision_id)
        user = session.get(User, row.owner_id) if row is not None else None
        if user is None:
            raise RegisterError(f"provision {provision_id} or its owner no longer exists")
        return principal_of(session, user)


class Registrar:
    """Makes and removes one provision's objects."""

    def __init__(self, store: Store, provision_id: int, owner: Principal, log: Log) -> None:
        self.store, self.provision_id, self.owner, self.log = store, provision_id, owner, log

    # --- making ----------------------------------------------------------------------

    def register(
        self,
        template: ProvisionTemplate,
        hosts: dict[str, ProvidedHost],
        hypervisor: Callable[[list[str]], str],
    ) -> None:
        """Make whatever of the template is not made yet; hosts in template order."""
        cluster = self._ensure(
            "cluster",
            template.cluster.name,
            partial(
                infra_wire.ClusterCreate,
                name=template.cluster.name,
                reserved_cpu=template.cluster.reserved_cpu,
                reserved_memory_mb=template.cluster.reserved_memory_mb,
            ),
        )
        for spec in template.hosts:
            found = hosts.get(spec.name)
            if found is None:
                raise RegisterError(f"host {spec.name} was not created by the provider")
            self._ensure(
                "hosts",
                spec.name,
                partial(
                    infra_wire.HostCreate,
                    name=found.name,
                    cluster_id=cluster,
                    hypervisor=hypervisor(list(spec.hypervisors)),
                    address=found.address,
                    port=found.port,
                    root=found.root,
                    host_key=found.host_key or None,
                ),
            )
        by_index = {spec.index: spec.name for spec in template.hosts}
        for ds in template.datastores:
            extra = {}
            if ds.replica_host is not None:
                extra["REPLICA_HOST"] = by_index[ds.replica_host]
            self._ensure(
                "datastores",
                ds.name,
                partial(
                    infra_wire.DatastoreCreate,
                    name=ds.name,
                    kind=ds.kind,
                    cluster_ids=[cluster],
                    template=extra,
                ),
            )
        for net in template.networks:
            self._ensure("vnets", net.name, partial(_vnet, net, cluster))
        image_ds = self._made("datastores")
        first_image_ds = next(
            (self._made("datastores")[d.name] for d in template.datastores if d.kind == "image"),
            None,
        )
        for image in template.images:
            ds_id = image_ds.get(image.datastore) if image.datastore else first_image_ds
            if ds_id is None:
                raise RegisterError(f"image {image.name}: the provision has no image datastore")
            self._ensure(
                "images",
                image.name,
                partial(
                    work_wire.ImageCreate,
                    name=image.name,
                    datastore_id=ds_id,
                    kind=image.kind,
                    url=image.url,
                    checksum=_sha256(image.checksum),
                ),
            )
        for vm_template in template.vm_templates:
            self._ensure(
                "templates",
                vm_template.name,
                partial(
                    work_wire.VmTemplateCreate, name=vm_template.name, template=vm_template.template
                ),
            )

    def _ensure(self, kind: str, name: str, body: Callable[[], Any]) -> int:
        """The id of the object `name` of `kind` the provision made; make it if needed."""
        service = _SERVICES[kind]
        with self.store.write() as session:
            row = session.get(Provision, self.provision_id, with_for_update=True)
            assert row is not None
            made = _made_of(row, kind)
            known = made.get("cluster" if kind == "cluster" else name)
            if known is not None and session.get(service.model, known) is not None:
                return int(known)
            try:
                created = service.create(session, self.owner, body())
            except ValidationError as exc:
                reasons = "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                )
                raise RegisterError(f"{_singular(kind)} {name}: {reasons}") from None
            except ApiError as exc:
                raise RegisterError(f"{_singular(kind)} {name}: {exc.message}") from None
            _record(row, kind, name, created.id)
            if kind == "cluster":
                row.cluster_id = created.id
        self.log(f"registered {_singular(kind)} {name} (id {created.id})")
        return int(created.id)

    def _made(self, kind: str) -> dict[str, int]:
        with self.store.read() as session:
            row = session.get(Provision, self.provision_id)
            return dict(_made_of(row, kind)) if row is not None else {}

    # --- removing --------------------------------------------------------------------

    def vms_on(self, host_names: list[str] | None = None) -> list[int]:
        """The VMs (not DONE) on the provision's hosts (or on those named)."""
        hosts = self._made("hosts")
        ids = [i for n, i in hosts.items() if host_names is None or n in host_names]
        if not ids:
            return []
        with self.store.read() as session:
            return list(
                session.scalars(
                    select(Vm.id).where(Vm.host_id.in_(ids), Vm.state != DONE_VM).order_by(Vm.id)
                )
            )

    def end_vms(self, vm_ids: list[int], timeout: float = 180.0) -> None:
        """Hard-terminate the VMs (a forced delete); wait for them to be DONE."""
        for vm_id in vm_ids:
            said = []  # logged after the transaction: the log writes to the store too
            with self.store.write() as session:
                vm = session.get(Vm, vm_id)
                if vm is None or vm.state == DONE_VM:
                    continue
                for action in (
                    work_wire.VmAction(action="terminate", hard=True),
                    work_wire.VmAction(action="recover", recover="delete"),
                ):
                    try:
                        with session.begin_nested():
                            request_action(session, self.owner, vm, action)
                        said.append(f"VM {vm_id}: {action.action} requested")
                        break
                    except ApiError as exc:
                        said.append(f"VM {vm_id}: {action.action} refused: {exc.message}")
            for line in said:
                self.log(line)
        deadline = time.monotonic() + timeout
        while left := self._not_done(vm_ids):
            if time.monotonic() > deadline:
                raise RegisterError(f"VMs {_ids(left)} did not end within {timeout:.0f} s")
            time.sleep(0.5)

    def _not_done(self, vm_ids: list[int]) -> list[int]:
        with self.store.read() as session:
            return list(
                session.scalars(select(Vm.id).where(Vm.id.in_(vm_ids), Vm.state != DONE_VM))
            )

    def unregister(
        self,
        kinds: tuple[str, ...] = REMOVE_ORDER,
        names: list[str] | None = None,
        *,
        best_effort: bool = False,
    ) -> None:
        """Remove what the provision made (of `kinds`, or only hosts `names`)."""
        for kind in kinds:
            for name, obj_id in self._made(kind).items():
                if names is not None and name not in names:
                    continue
                self._remove(kind, name, obj_id, best_effort=best_effort)

    def _remove(self, kind: str, name: str, obj_id: int, *, best_effort: bool) -> None:
        service = _SERVICES[kind]
        what = f"{_singular(kind)} {name} (id {obj_id})"
        with self.store.write() as session:
            row = session.get(Provision, self.provision_id, with_for_update=True)
            assert row is not None
            try:
                with session.begin_nested():
                    service.delete(session, self.owner, obj_id)
                said = f"removed {what}"
            except NotFound:
                said = f"{what} was already gone"
            except ApiError as exc:
                said = f"cannot remove {what}: {exc.message}"
                if not best_effort:
                    raise RegisterError(said) from None
                said += " (forced delete: left behind)"
            made = _made_of(row, kind)
            made.pop("cluster" if kind == "cluster" else name, None)
            _set_made(row, kind, made)
            if kind == "cluster":
                row.cluster_id = None
        self.log(said)

    def host_states(self) -> dict[str, tuple[str, str]]:
        """Each registered host's state name and last error, by name."""
        hosts = self._made("hosts")
        with self.store.read() as session:
            rows = session.scalars(select(Host).where(Host.id.in_(list(hosts.values())))).all()
            return {
                r.name: (infra_wire.HOST_STATES.get(r.state, str(r.state)), r.last_error)
                for r in rows
            }


def _vnet(net: NetworkSpec, cluster: int) -> net_wire.VnetCreate:
    first = ipaddress.IPv4Address(net.address_range.ip)
    last = ipaddress.IPv4Address(net.address_range.last_ip)
    network = ipaddress.IPv4Network(f"{first}/24", strict=False)
    while last not in network and network.prefixlen > 8:
        network = network.supernet()
    template = {
        "NETWORK_ADDRESS": str(network.network_address),
        "NETWORK_MASK": str(network.netmask),
    }
    if net.public:
        template["PUBLIC"] = "YES"
    return net_wire.VnetCreate(
        name=net.name,
        driver=net.driver,
        cluster_ids=[cluster],
        address_ranges=[
            net_wire.AddressRangeIn(type="IP4", ip=str(first), size=net.address_range.size)
        ],
        template=template,
    )


def _sha256(checksum: str | None) -> str:
    if checksum and checksum.startswith("sha256:"):
        return checksum
    return ""


def _made_of(row: Provision | None, kind: str) -> dict[str, int]:
    if row is None:
        return {}
    value = row.made.get(kind)
    if kind == "cluster":
        return {"cluster": value} if isinstance(value, int) else {}
    return dict(value) if isinstance(value, dict) else {}


def _set_made(row: Provision, kind: str, made: dict[str, int]) -> None:
    value: Any = made.get("cluster") if kind == "cluster" else made
    updated = {**row.made, kind: value}
    row.made = {k: v for k, v in updated.items() if v not in (None, {})}


def _record(row: Provision, kind: str, name: str, obj_id: int) -> None:
    made = _made_of(row, kind)
    made["cluster" if kind == "cluster" else name] = obj_id
    _set_made(row, kind, made)


def _singular(kind: str) -> str:
    return {
        "templates": "VM template",
        "images": "image",
        "vnets": "network",
        "hosts": "host",
        "datastores": "datastore",
        "cluster": "cluster",
    }[kind]


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids))
