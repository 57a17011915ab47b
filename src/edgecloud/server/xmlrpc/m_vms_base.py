"""What the VM methods share: input bodies, templates, OpenNebula's codes for a VM the
caller may not see, and telling the engine and watchers that a VM changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.server.db.models import Vm
from edgecloud.server.errors import NotFound
from edgecloud.server.rest.deps import FrontEnd
from edgecloud.server.services.vms import Vms
from edgecloud.server.xmlrpc.core import ACTION, AUTHORIZATION, Ctx, OneError, not_found
from edgecloud.server.xmlrpc.xml import attributes as template_attributes

B = TypeVar("B", bound=BaseModel)
vms = Vms()


def wire_body(model: type[B], code: int = ACTION, **values: Any) -> B:
    """A service's input body; a value it refuses answers `code` naming the field."""
    try:
        return model(**values)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise OneError(code, reasons) from None


def attributes(text: str, field: str) -> dict[str, Any]:
    """A template parameter: OpenNebula's syntax, or the XML pyone sends for a dict."""
    return template_attributes(text, field=field)


@contextmanager
def vm_access(ctx: Ctx, vm_id: int, right: str = "MANAGE") -> Iterator[None]:
    """Answer OpenNebula's codes for the VM itself: NO_EXISTS if there is no such VM,
    AUTHORIZATION if the caller may not see it (our services hide it: not found)."""
    try:
        yield
    except NotFound as exc:
        if exc.field in ("disk_id", "nic_id"):
            raise OneError(ACTION, exc.message, vm_id) from None  # as OpenNebula answers
        if exc.message != f"vm {vm_id} does not exist":
            raise  # something else the call names (an image, a vnet)
        with ctx.frontend.store.read() as session:
            exists = session.get(Vm, vm_id) is not None
        if not exists:
            raise not_found("virtual machine", vm_id) from None
        raise OneError(
            AUTHORIZATION,
            f"User [{ctx.principal.user_id}] : Not authorized to perform {right} VM [{vm_id}].",
            vm_id,
        ) from None


def publish(frontend: FrontEnd, vm: wire.Vm) -> None:
    """Wake the engine for what was queued and tell watchers the VM changed (as REST does)."""
    frontend.vm_changed(vm)


def changed(session: Session, row: Vm) -> wire.Vm:
    """The VM as it is now, once its changes are flushed."""
    session.flush()
    return vms.to_wire(session, row)
