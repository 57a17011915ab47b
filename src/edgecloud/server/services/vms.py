"""VMs: create from a template, show, list (fast short form), rename, request actions."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from edgecloud.api import network as net_wire
from edgecloud.api import workload as wire
from edgecloud.api.states import lcm_state_name, vm_state_name
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import ClusterVnet, Image, Vm, VmHistory, VmTemplate, Vnet, now
from edgecloud.server.errors import InvalidInput
from edgecloud.server.scheduler.expressions import check_expressions
from edgecloud.server.services import ipam, objects, operations, quotas
from edgecloud.server.services.images import check_usable, take
from edgecloud.server.services.objects import ListQuery, load, parse_template_input
from edgecloud.server.services.resource import OwnedResource
from edgecloud.server.services.vm_lifecycle import history, request_action
from edgecloud.server.services.vm_template import validate_vm_template, vm_shape

PENDING, HOLD, DONE = 1, 2, 6
SHORT_COLUMNS = (
    Vm.id,
    Vm.name,
    Vm.owner_id,
    Vm.group_id,
    Vm.state,
    Vm.lcm_state,
    Vm.hypervisor,
    Vm.cpu,
    Vm.memory_mb,
    Vm.host_id,
)
SHORT_FIELDS = tuple(c.key for c in SHORT_COLUMNS)
# An image's attributes a disk made from it carries: how an application image runs.
APP_ATTRIBUTES = ("OCI_DIGEST", "OCI_ENTRYPOINT", "OCI_CMD", "OCI_ENV", "OCI_WORKDIR")


class Vms(OwnedResource[Vm, wire.VmCreate, wire.VmUpdate, wire.Vm]):
    """Use cases of VMs."""

    kind = "VM"
    model = Vm
    read_type = wire.Vm
    unique_per_owner = False

    def create(self, session: Session, principal: Principal, body: wire.VmCreate) -> wire.Vm:
        """Create a VM: check the template, quotas, images and vnets; lease its NICs."""
        objects.require_create(principal, self.kind)
        attrs = self._attributes(session, principal, body.template_id, body.template)
        shape = vm_shape(attrs)
        quotas.charge(
            session,
            principal.user_id,
            principal.group_id,
            quotas.Usage(
                vms=1, cpu=shape.cpu, memory_mb=shape.memory_mb, system_disk_mb=shape.disk_mb
            ),
        )
        resolve_disks(session, principal, attrs)
        row = objects.new_owned(
            principal,
            Vm(
                name=body.name or str(attrs.get("NAME") or "vm"),
                template_id=body.template_id,
                state=HOLD if body.hold else PENDING,
                lcm_state=0,
                hypervisor=shape.hypervisor,
                cpu=shape.cpu,
                vcpu=shape.vcpu,
                memory_mb=shape.memory_mb,
                disk_mb=shape.disk_mb,
                template=attrs,
                updated_at=now(),
            ),
        )
        session.add(row)
        session.flush()
        if not body.name and not attrs.get("NAME"):
            row.name = f"vm-{row.id}"
        _lease_nics(session, principal, row)
        history(session, row, "create", principal.user_id)
        session.flush()
        return self.to_wire(session, row)

    def _attributes(
        self,
        session: Session,
        principal: Principal,
        template_id: int | None,
        extra: dict[str, Any] | str,
    ) -> dict[str, Any]:
        base: dict[str, Any] = {}
        if template_id is not None:
            tpl = load(session, principal, VmTemplate, "TEMPLATE", template_id, right="USE")
            base = dict(tpl.template)
        overrides = parse_template_input(extra)
        attrs = validate_vm_template({**base, **overrides}, defaults=True)
        check_expressions(attrs)  # a bad SCHED_REQUIREMENTS is a 4xx now, not a stuck VM later
        return attrs

    def change(self, session: Session, principal: Principal, row: Vm, body: wire.VmUpdate) -> None:
        """Rename the VM or replace its user attributes."""
        if body.name is not None:
            row.name = body.name
        if body.user_template is not None:
            row.user_template = parse_template_input(body.user_template, field="user_template")
        row.updated_at = now()

    def delete(self, session: Session, principal: Principal, obj_id: int) -> None:
        """Delete means terminate: a VM record stays, in state DONE, for accounting."""
        self.act(session, principal, obj_id, wire.VmAction(action="terminate"))

    def render(self, session: Session, row: Vm) -> dict[str, Any]:
        """Add state names, capacity, placement and NICs."""
        return {
            "template_id": row.template_id,
            "state": row.state,
            "state_name": vm_state_name(row.state),
            "lcm_state": row.lcm_state,
            "lcm_state_name": lcm_state_name(row.lcm_state),
            "hypervisor": row.hypervisor,
            "cpu": row.cpu,
            "vcpu": row.vcpu,
            "memory_mb": row.memory_mb,
            "disk_mb": row.disk_mb,
            "host_id": row.host_id,
            "cluster_id": row.cluster_id,
            "deploy_id": row.deploy_id,
            "updated_at": row.updated_at,
            "error": row.error,
            "resched": row.resched,
            "runtime": row.runtime,
            "user_template": row.user_template,
            "nics": _nics(row),
        }

    def filters(self, params: dict[str, Any]) -> list[ColumnElement[bool]]:
        """Filter by state, host and cluster; DONE VMs only when asked for."""
        terms: list[ColumnElement[bool]] = []
        if params.get("state") is not None:
            terms.append(Vm.state == params["state"])
        elif not params.get("include_done"):
            terms.append(Vm.state != DONE)
        if params.get("host_id") is not None:
            terms.append(Vm.host_id == params["host_id"])
        if params.get("cluster_id") is not None:
            terms.append(Vm.cluster_id == params["cluster_id"])
        return terms

    def list_short(
        self,
        session: Session,
        principal: Principal,
        query: ListQuery,
        params: dict[str, Any],
    ) -> tuple[list[tuple[Any, ...]], int | None]:
        """Return one page of the short form as plain tuples (no ORM objects: it is hot)."""
        stmt = (
            select(*SHORT_COLUMNS)
            .where(principal.visible(self.kind), *objects.common_filters(Vm, query))
            .where(*self.filters(params))
            .order_by(Vm.id)
            .limit(query.limit + 1)
        )
        rows = session.execute(stmt).all()
        return objects.split_page(rows, query.limit, id_of=lambda r: r[0])

    def act(
        self, session: Session, principal: Principal, vm_id: int, body: wire.VmAction
    ) -> wire.VmActionAccepted:
        """Carry out or queue a lifecycle action, refusing it in a state where it is invalid."""
        row = self.load(session, principal, vm_id, "MANAGE")
        op = request_action(session, principal, row, body)
        session.flush()
        return wire.VmActionAccepted(
            vm=self.to_wire(session, row),
            operation=None if op is None else operations.to_wire(session, op),
        )

    def history(
        self, session: Session, principal: Principal, vm_id: int
    ) -> list[wire.HistoryRecord]:
        """Return what happened to a VM, oldest first."""
        self.load(session, principal, vm_id, "USE")
        rows = session.scalars(
            select(VmHistory).where(VmHistory.vm_id == vm_id).order_by(VmHistory.id)
        )
        return [wire.HistoryRecord.model_validate(r) for r in rows]


def resolve_disks(
    session: Session, principal: Principal, attrs: dict[str, Any], field_prefix: str = "template."
) -> None:
    """Fill in each disk's image (SOURCE, FORMAT, TYPE) and the OS's kernel and initrd files."""
    for index, disk in enumerate(attrs.get("DISK", [])):
        field = f"{field_prefix}DISK[{index}]"
        if "IMAGE_ID" in disk:
            image = load(session, principal, Image, "IMAGE", int(disk["IMAGE_ID"]), right="USE")
        elif "IMAGE" in disk:
            image = _by_name(session, principal, Image, "IMAGE", disk["IMAGE"], f"{field}.IMAGE")
        else:
            continue
        check_usable(image, f"{field}.IMAGE_ID")
        disk["IMAGE_ID"] = str(image.id)
        disk["IMAGE"] = image.name
        disk.setdefault("SIZE", str(image.size_mb))
        disk["FORMAT"], disk["TYPE"] = image.format, image.kind
        if image.source:  # in a datastore: the host gets a copy (see drivers.hypervisor.disks)
            disk["SOURCE"], disk["CHECKSUM"] = image.source, image.checksum
            disk["DATASTORE_ID"] = str(image.datastore_id)
            disk["PERSISTENT"] = "YES" if image.persistent else "NO"
            disk["CLONE"] = "NO" if image.persistent else "YES"
        else:  # a path on the hosts, used in place
            disk["SOURCE"] = image.path
        for key in APP_ATTRIBUTES:
            if key in image.template:
                disk.setdefault(key, image.template[key])
        take(image)
    os_ = attrs.get("OS")
    if not isinstance(os_, dict):
        return
    for key, kind in (("KERNEL", "KERNEL"), ("INITRD", "RAMDISK")):
        if key in os_ and not principal.is_admin:
            raise InvalidInput(
                f"template.OS.{key}",
                f"a path on the host is for administrators; use {key}_DS with an image",
            )
        ref = os_.get(f"{key}_DS")
        if ref is None:
            continue
        field = f"template.OS.{key}_DS"
        image = _file_image(session, principal, str(ref), field)
        if image.kind != kind:
            raise InvalidInput(field, f"image {image.id} is a {image.kind} image, not {kind}")
        os_[key] = image.path


_FILE_REF = re.compile(r'^\$FILE\[\s*IMAGE(_ID)?\s*=\s*"?([^"\]]+)"?\s*\]$')


def _file_image(session: Session, principal: Principal, ref: str, field: str) -> Image:
    """Resolve OpenNebula's $FILE[IMAGE_ID=n] or $FILE[IMAGE="name"] to a usable image."""
    match = _FILE_REF.match(ref.strip())
    if match is None:
        raise InvalidInput(field, 'must be $FILE[IMAGE_ID=<id>] or $FILE[IMAGE="<name>"]')
    if match.group(1):
        if not match.group(2).strip().isdigit():
            raise InvalidInput(field, f"IMAGE_ID must be a number, got {match.group(2)!r}")
        image: Image = load(session, principal, Image, "IMAGE", int(match.group(2)), right="USE")
        return image
    found: Image = _by_name(session, principal, Image, "IMAGE", match.group(2).strip(), field)
    return found


def _by_name(
    session: Session, principal: Principal, model: Any, kind: str, name: str, field: str
) -> Any:
    stmt = select(model).where(model.name == name, principal.visible(kind)).order_by(model.id)
    found = session.scalars(stmt.limit(1)).first()
    if found is None:
        raise InvalidInput(field, f"no {kind.lower()} named '{name}' that you may use")
    return found


def _lease_nics(session: Session, principal: Principal, row: Vm) -> None:
    nics = [dict(n) for n in row.template.get("NIC", [])]
    reachable: set[int] | None = None  # clusters that have every vnet seen so far
    for index, nic in enumerate(nics):
        field = f"template.NIC[{index}]"
        vnet = nic_vnet(session, principal, nic, f"{field}.NETWORK")
        clusters = vnet_clusters(session, vnet.id)
        if reachable is not None and not (reachable & clusters):
            raise InvalidInput(
                f"{field}.NETWORK",
                f"vnet '{vnet.name}' is in cluster(s) {sorted(clusters)}, the VM's other NICs "
                f"in {sorted(reachable)}: no cluster has all of its networks",
            )
        reachable = clusters if reachable is None else reachable & clusters
        lease_nic(session, row, vnet, nic, index)
    row.template = {**row.template, "NIC": nics}


def nic_vnet(session: Session, principal: Principal, nic: dict[str, Any], field: str) -> Vnet:
    """Return the vnet a NIC names (NETWORK_ID, else NETWORK: `field`), usable by the caller."""
    if "NETWORK_ID" in nic:
        found: Vnet = load(session, principal, Vnet, "NET", int(nic["NETWORK_ID"]), right="USE")
        return found
    named: Vnet = _by_name(session, principal, Vnet, "NET", nic["NETWORK"], field)
    return named


def lease_nic(
    session: Session, row: Vm, vnet: Vnet, nic: dict[str, Any], nic_id: int
) -> dict[str, Any]:
    """Lease an address of `vnet` for the VM's NIC `nic` (its IP or MAC if it asks for one)
    and fill in the NIC's attributes (NIC_ID, lease, MAC, addresses, security groups)."""
    request = net_wire.LeaseRequest(ip=nic.get("IP"), mac=nic.get("MAC"))
    lease = ipam.allocate(
        session,
        vnet_id=vnet.id,
        owner_id=row.owner_id,
        group_id=row.group_id,
        request=request,
        vm_id=row.id,
    )
    groups = list(vnet.security_groups)
    groups += [int(g) for g in nic.get("SECURITY_GROUPS", "").split(",") if g]
    nic.update(
        NIC_ID=str(nic_id),
        NETWORK_ID=str(vnet.id),
        NETWORK=vnet.name,
        BRIDGE=vnet.bridge,
        VN_MAD=vnet.driver,
        AR_ID=str(lease.ar_id),
        LEASE_ID=str(lease.id),
        MAC=lease.mac,
        SECURITY_GROUPS=",".join(str(g) for g in dict.fromkeys(groups)),
    )
    for key, value in (("IP", lease.ip), ("IP6", lease.ip6), ("IP6_GLOBAL", lease.ip6_global)):
        if value:
            nic[key] = value
    return nic


def vnet_clusters(session: Session, vnet_id: int) -> set[int]:
    return set(
        session.scalars(select(ClusterVnet.cluster_id).where(ClusterVnet.vnet_id == vnet_id))
    )


def _nics(row: Vm) -> list[wire.Nic]:
    return [
        wire.Nic(
            nic_id=int(n["NIC_ID"]),
            vnet_id=int(n["NETWORK_ID"]),
            lease_id=int(n["LEASE_ID"]),
            mac=n["MAC"],
            ip=n.get("IP"),
            ip6=n.get("IP6") or n.get("IP6_GLOBAL"),
            security_groups=[int(g) for g in n.get("SECURITY_GROUPS", "").split(",") if g],
        )
        for n in row.template.get("NIC", [])
        if "LEASE_ID" in n
    ]
