"""VM templates: stored OpenNebula templates that VMs are instantiated from."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from edgecloud.api import workload as wire
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.models import VmTemplate
from edgecloud.server.errors import InvalidInput
from edgecloud.server.scheduler.expressions import check_expressions
from edgecloud.server.services.objects import parse_template_input
from edgecloud.server.services.resource import OwnedResource
from edgecloud.server.services.vm_template import validate_vm_template


def checked_template(value: dict[str, Any] | str, *, field: str = "template") -> dict[str, Any]:
    """Parse and validate a VM template body without filling defaults."""
    attrs = validate_vm_template(parse_template_input(value, field=field), defaults=False)
    check_expressions(attrs)
    return attrs


class VmTemplates(
    OwnedResource[VmTemplate, wire.VmTemplateCreate, wire.VmTemplateUpdate, wire.VmTemplate]
):
    """Use cases of VM templates."""

    kind = "TEMPLATE"
    model = VmTemplate
    read_type = wire.VmTemplate

    def build(
        self, session: Session, principal: Principal, body: wire.VmTemplateCreate
    ) -> VmTemplate:
        """Return a new template row; its name comes from `name` or the template's NAME."""
        attrs = checked_template(body.template)
        name = body.name or attrs.get("NAME")
        if not name:
            raise InvalidInput("name", "give a name, or NAME in the template")
        attrs["NAME"] = name
        return VmTemplate(name=name, template=attrs)

    def change(
        self, session: Session, principal: Principal, row: VmTemplate, body: wire.VmTemplateUpdate
    ) -> None:
        """Replace or merge the attributes, and rename."""
        if body.template is not None:
            attrs = checked_template(body.template)
            merged = {**row.template, **attrs} if body.merge else attrs
            row.template = validate_vm_template(merged, defaults=False)
        if body.name is not None:
            self.rename(session, principal, row, body.name)
        row.template = {**row.template, "NAME": row.name}
