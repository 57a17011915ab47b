"""Typed accessors for each REST resource."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel

from edgecloud.api import identity, infra, network, workload
from edgecloud.api.states import state_label
from edgecloud.client.vm_disks import VmDisks

if TYPE_CHECKING:
    from edgecloud.client.client import Client

R = TypeVar("R", bound=BaseModel)


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class Resource(Generic[R]):
    """CRUD of one kind of object: list, get, create, update, delete, chmod, chown."""

    def __init__(self, client: Client, path: str, read: type[R]) -> None:
        """Bind to `client` at `path` (e.g. "/hosts")."""
        self.client = client
        self.path = path
        self.read = read

    def _one(self, data: Any) -> R:
        return self.read.model_validate(data)

    def page(
        self, *, limit: int = 100, cursor: int | None = None, **filters: Any
    ) -> tuple[list[R], int | None]:
        """Fetch one page; return its items and the cursor of the next one."""
        params = _clean({"limit": limit, "cursor": cursor, **filters})
        data = self.client.request("GET", self.path, params=params)
        return [self._one(x) for x in data["items"]], data.get("next_cursor")

    def list(self, *, page_size: int = 1000, **filters: Any) -> list[R]:
        """Fetch every object the caller may see (following the pages)."""
        return list(self.iter(page_size=page_size, **filters))

    def iter(self, *, page_size: int = 1000, **filters: Any) -> Iterator[R]:
        """Yield every visible object, one page at a time."""
        cursor = None
        while True:
            items, cursor = self.page(limit=page_size, cursor=cursor, **filters)
            yield from items
            if cursor is None:
                return

    def get(self, obj_id: int) -> R:
        """Fetch one object."""
        return self._one(self.client.request("GET", f"{self.path}/{obj_id}"))

    def create(self, **fields: Any) -> R:
        """Create an object from the fields of its create body."""
        return self._one(self.client.request("POST", self.path, json=_clean(fields)))

    def update(self, obj_id: int, **fields: Any) -> R:
        """Change an object (pass version=N to refuse a stale update)."""
        return self._one(self.client.request("PATCH", f"{self.path}/{obj_id}", json=_clean(fields)))

    def delete(self, obj_id: int) -> None:
        """Delete an object."""
        self.client.request("DELETE", f"{self.path}/{obj_id}")


class Owned(Resource[R]):
    """An object with an owner, a group and permission bits."""

    def chmod(self, obj_id: int, permissions: str) -> R:
        """Change permission bits ('640' or 'um-u-----')."""
        body = {"permissions": permissions}
        return self._one(self.client.request("POST", f"{self.path}/{obj_id}/chmod", json=body))

    def chown(self, obj_id: int, *, owner_id: int | None = None, group_id: int | None = None) -> R:
        """Change owner and/or group."""
        body = _clean({"owner_id": owner_id, "group_id": group_id})
        return self._one(self.client.request("POST", f"{self.path}/{obj_id}/chown", json=body))


class Hosts(Owned[infra.Host]):
    """Hosts, plus enable/disable/offline and monitoring."""

    def monitoring(self, obj_id: int, *, seconds: int = 3600) -> list[workload.Sample]:
        """Return the host's monitoring samples of the last `seconds`."""
        params = {"seconds": seconds}
        data = self.client.request("GET", f"{self.path}/{obj_id}/monitoring", params=params)
        return [workload.Sample.model_validate(x) for x in data]

    def sync(self, obj_id: int) -> infra.Host:
        """Copy the node code to the host now; return the host with its node version."""
        return self._one(self.client.request("POST", f"{self.path}/{obj_id}/sync"))

    def status(self, obj_id: int, status: Literal["enabled", "disabled", "offline"]) -> infra.Host:
        """Set 'enabled', 'disabled' or 'offline'."""
        return self._one(
            self.client.request("POST", f"{self.path}/{obj_id}/status", json={"status": status})
        )


class Clusters(Owned[infra.Cluster]):
    """Clusters, plus adding and removing datastores and vnets."""

    def add(self, obj_id: int, member: str, member_id: int) -> None:
        """Add a datastore (member="datastores") or vnet ("vnets") to a cluster."""
        self.client.request("PUT", f"{self.path}/{obj_id}/{member}/{member_id}")

    def remove(self, obj_id: int, member: str, member_id: int) -> None:
        """Remove a datastore or vnet from a cluster."""
        self.client.request("DELETE", f"{self.path}/{obj_id}/{member}/{member_id}")


class Vnets(Owned[network.Vnet]):
    """Virtual networks, plus address ranges and leases."""

    def add_range(self, obj_id: int, **ar: Any) -> network.Vnet:
        """Add an address range."""
        return self._one(self.client.request("POST", f"{self.path}/{obj_id}/ars", json=_clean(ar)))

    def remove_range(self, obj_id: int, ar_id: int) -> network.Vnet:
        """Remove an address range without leases."""
        return self._one(self.client.request("DELETE", f"{self.path}/{obj_id}/ars/{ar_id}"))

    def reserve(self, obj_id: int, *, size: int, **fields: Any) -> network.Vnet:
        """Reserve `size` addresses as a new vnet of yours (name, ar_id, ip optional)."""
        body = _clean({"size": size, **fields})
        return self._one(self.client.request("POST", f"{self.path}/{obj_id}/reserve", json=body))

    def leases(self, obj_id: int) -> list[network.Lease]:
        """List the vnet's leases."""
        data = self.client.request("GET", f"{self.path}/{obj_id}/leases")
        return [network.Lease.model_validate(x) for x in data]

    def take_lease(self, obj_id: int, **request: Any) -> network.Lease:
        """Allocate (state='used') or hold (state='hold') an address."""
        data = self.client.request("POST", f"{self.path}/{obj_id}/leases", json=_clean(request))
        return network.Lease.model_validate(data)

    def release_lease(self, obj_id: int, lease_id: int) -> None:
        """Give an address back."""
        self.client.request("DELETE", f"{self.path}/{obj_id}/leases/{lease_id}")


class Templates(Owned[workload.VmTemplate]):
    """VM templates, plus instantiate."""

    def instantiate(self, obj_id: int, **fields: Any) -> workload.Vm:
        """Create a VM from the template."""
        data = self.client.request("POST", f"{self.path}/{obj_id}/instantiate", json=_clean(fields))
        return workload.Vm.model_validate(data)


class Vms(VmDisks, Owned[workload.Vm]):
    """VMs: lists default to the short form; actions and history."""

    def page_short(
        self, *, limit: int = 100, cursor: int | None = None, **filters: Any
    ) -> tuple[list[workload.VmShort], int | None]:
        """Fetch one page of the short form."""
        params = _clean({"limit": limit, "cursor": cursor, "view": "short", **filters})
        data = self.client.request("GET", self.path, params=params)
        return [workload.VmShort.model_validate(x) for x in data["items"]], data.get("next_cursor")

    def page(
        self, *, limit: int = 100, cursor: int | None = None, **filters: Any
    ) -> tuple[list[workload.Vm], int | None]:
        """Fetch one page of the full form."""
        return super().page(limit=limit, cursor=cursor, view="full", **filters)

    def action(self, obj_id: int, action: str, **options: Any) -> workload.VmActionAccepted:
        """Request a lifecycle action (poweroff, resume, terminate, ...)."""
        body = _clean({"action": action, **options})
        data = self.client.request("POST", f"{self.path}/{obj_id}/actions", json=body)
        return workload.VmActionAccepted.model_validate(data)

    def wait(
        self,
        obj_id: int,
        states: Collection[str],
        *,
        timeout: float = 300.0,
        on_change: Callable[[workload.Vm], None] | None = None,
    ) -> workload.Vm:
        """Wait until the VM is in one of `states` ("ACTIVE/RUNNING", "POWEROFF", ...).

        Follows the event stream rather than polling; the state is read again after each
        event, and once before waiting, so no change is missed.
        """
        deadline = time.monotonic() + timeout
        events = self.client.events(kind="vm", obj_id=obj_id, timeout=min(timeout, 20.0))
        try:
            next(events)  # subscribed: a change after this read is not lost
            vm = self.get(obj_id)
            while True:
                if on_change is not None:
                    on_change(vm)
                if state_label(vm.state, vm.lcm_state) in states:
                    return vm
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"VM {obj_id} is {state_label(vm.state, vm.lcm_state)} after {timeout:g}s"
                    )
                try:
                    next(events)
                except (StopIteration, httpx.ReadTimeout):
                    events.close()
                    events = self.client.events(
                        kind="vm", obj_id=obj_id, timeout=min(timeout, 20.0)
                    )
                    next(events)
                vm = self.get(obj_id)
        finally:
            events.close()

    def monitoring(self, obj_id: int, *, seconds: int = 3600) -> list[workload.Sample]:
        """Return the VM's monitoring samples (CPU, memory, network) of the last `seconds`."""
        params = {"seconds": seconds}
        data = self.client.request("GET", f"{self.path}/{obj_id}/monitoring", params=params)
        return [workload.Sample.model_validate(x) for x in data]

    def attach_secgroup(self, obj_id: int, nic_id: int, group_id: int) -> workload.Vm:
        """Add a security group to one NIC (a running guest's filters follow)."""
        path = f"{self.path}/{obj_id}/nics/{nic_id}/security-groups/{group_id}"
        return self._one(self.client.request("PUT", path))

    def detach_secgroup(self, obj_id: int, nic_id: int, group_id: int) -> workload.Vm:
        """Remove a security group from one NIC."""
        path = f"{self.path}/{obj_id}/nics/{nic_id}/security-groups/{group_id}"
        return self._one(self.client.request("DELETE", path))

    def attach_nic(
        self,
        obj_id: int,
        *,
        network_id: int | None = None,
        network: str | None = None,
        ip: str | None = None,
        mac: str | None = None,
        security_groups: list[int] | None = None,
    ) -> workload.VmActionAccepted:
        """Attach a NIC on a vnet (by id or name); a running VM gets it hot-plugged by the
        returned operation, any other just has it recorded."""
        body = _clean(
            {
                "network_id": network_id,
                "network": network,
                "ip": ip,
                "mac": mac,
                "security_groups": security_groups,
            }
        )
        data = self.client.request("POST", f"{self.path}/{obj_id}/nics", json=body)
        return workload.VmActionAccepted.model_validate(data)

    def detach_nic(self, obj_id: int, nic_id: int) -> workload.VmActionAccepted:
        """Detach a NIC (unplugged from a running VM first); its lease is given back."""
        data = self.client.request("DELETE", f"{self.path}/{obj_id}/nics/{nic_id}")
        return workload.VmActionAccepted.model_validate(data)

    def console_log(self, obj_id: int, *, tail_bytes: int = 65536) -> str:
        """Return the tail of the guest's console output."""
        params = {"tail_bytes": tail_bytes}
        data = self.client.request("GET", f"{self.path}/{obj_id}/console-log", params=params)
        return workload.ConsoleLog.model_validate(data).text

    def history(self, obj_id: int) -> list[workload.HistoryRecord]:
        """Return what happened to the VM."""
        data = self.client.request("GET", f"{self.path}/{obj_id}/history")
        return [workload.HistoryRecord.model_validate(x) for x in data]


class Operations:
    """Long actions: show and list."""

    def __init__(self, client: Client) -> None:
        """Bind to `client`."""
        self.client = client

    def get(self, op_id: int) -> workload.Operation:
        """Fetch an operation with its steps."""
        return workload.Operation.model_validate(self.client.request("GET", f"/operations/{op_id}"))

    def page(
        self, *, limit: int = 100, cursor: int | None = None, **filters: Any
    ) -> tuple[list[workload.Operation], int | None]:
        """Fetch one page of operations; return it and the next cursor."""
        params = _clean({"limit": limit, "cursor": cursor, **filters})
        data = self.client.request("GET", "/operations", params=params)
        items = [workload.Operation.model_validate(x) for x in data["items"]]
        return items, data.get("next_cursor")

    def list(self, *, page_size: int = 1000, **filters: Any) -> list[workload.Operation]:
        """Fetch every operation of the caller (admins: all), following the pages."""
        out: list[workload.Operation] = []
        cursor = None
        while True:
            items, cursor = self.page(limit=page_size, cursor=cursor, **filters)
            out.extend(items)
            if cursor is None:
                return out


class Quotas:
    """Quota calls shared by users and groups."""

    client: Client
    path: str

    def quota(self, obj_id: int) -> identity.Quota:
        """Show limits and usage."""
        return identity.Quota.model_validate(
            self.client.request("GET", f"{self.path}/{obj_id}/quota")
        )

    def set_quota(self, obj_id: int, **limits: Any) -> identity.Quota:
        """Replace the limits (missing = unlimited)."""
        data = self.client.request("PUT", f"{self.path}/{obj_id}/quota", json=limits)
        return identity.Quota.model_validate(data)


class Users(Quotas, Resource[identity.User]):
    """Users, plus passwords, group membership and quotas."""

    def set_password(self, obj_id: int, password: str) -> None:
        """Set a new password (revokes the user's tokens)."""
        self.client.request("POST", f"{self.path}/{obj_id}/password", json={"password": password})

    def add_group(self, obj_id: int, group_id: int) -> identity.User:
        """Add the user to a secondary group."""
        return self._one(
            self.client.request("POST", f"{self.path}/{obj_id}/groups", json={"group_id": group_id})
        )

    def remove_group(self, obj_id: int, group_id: int) -> identity.User:
        """Remove the user from a secondary group."""
        return self._one(self.client.request("DELETE", f"{self.path}/{obj_id}/groups/{group_id}"))


class Groups(Quotas, Resource[identity.Group]):
    """Groups, plus quotas."""


class Acls:
    """ACL rules."""

    def __init__(self, client: Client) -> None:
        """Bind to `client`."""
        self.client = client

    def list(self) -> list[identity.Acl]:
        """List rules."""
        return [identity.Acl.model_validate(x) for x in self.client.request("GET", "/acls")]

    def get(self, rule_id: int) -> identity.Acl:
        """Fetch one rule."""
        return identity.Acl.model_validate(self.client.request("GET", f"/acls/{rule_id}"))

    def create(self, rule: str) -> identity.Acl:
        """Add a rule like '@1 VM/* USE'."""
        return identity.Acl.model_validate(
            self.client.request("POST", "/acls", json={"rule": rule})
        )

    def delete(self, rule_id: int) -> None:
        """Remove a rule."""
        self.client.request("DELETE", f"/acls/{rule_id}")
