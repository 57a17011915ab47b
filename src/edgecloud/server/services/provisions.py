"""Provisions: create one from a template, ask for an operation, show it and its log.

The work itself (provider calls, configuration, registration) runs in the background
(`edgecloud.server.provision.runner`); here are the records and the state rules:

    PENDING → DEPLOYING → CONFIGURING → RUNNING      create, scale, configure
    any step fails → ERROR (operation and step kept; `retry` resumes there)
    RUNNING / ERROR → DELETING → DONE               delete (--force: whatever is there)
"""

from __future__ import annotations

import secrets as random
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.api import provision as wire
from edgecloud.api.common import Body
from edgecloud.provision import (
    InputSpec,
    ProvisionTemplate,
    TemplateError,
    example,
    load_template,
    password_inputs,
)
from edgecloud.provision.errors import pydantic_problems
from edgecloud.provision.template import INPUTS, parse_yaml
from edgecloud.server import secrets
from edgecloud.server.auth.access import Principal
from edgecloud.server.db.base import now
from edgecloud.server.db.models import Provision, ProvisionStep, Vm
from edgecloud.server.errors import Conflict, InvalidFields, InvalidInput
from edgecloud.server.services import objects
from edgecloud.server.services.resource import OwnedResource

PENDING, DEPLOYING, CONFIGURING, RUNNING, ERROR, DELETING, DONE = range(7)
BUSY = (PENDING, DEPLOYING, CONFIGURING, DELETING)
OPERATIONS = ("create", "scale", "configure", "delete")
HIDDEN = "***"


class Provisions(OwnedResource[Provision, wire.ProvisionCreate, Body, wire.Provision]):
    """Use cases of provisions (the CREATE right on HOST and CLUSTER is needed to make one)."""

    kind = "PROVISION"
    model = Provision
    read_type = wire.Provision
    unique_per_owner = False

    def __init__(self, home: Path) -> None:
        self.home = home

    def create(
        self, session: Session, principal: Principal, body: wire.ProvisionCreate
    ) -> wire.Provision:
        """Record a new provision, PENDING its `create` operation."""
        objects.require_create(principal, "HOST")
        objects.require_create(principal, "CLUSTER")
        text = source_of(body)
        tag = new_tag(session)
        template = resolve(text, body.inputs, tag)
        hidden = password_inputs(text)
        row = objects.new_owned(
            principal,
            Provision(
                name=template.name,
                tag=tag,
                provider=template.provider,
                state=PENDING,
                source=text,
                inputs={k: v for k, v in body.inputs.items() if k not in hidden},
                secrets=secrets.seal(
                    self.home, {k: v for k, v in body.inputs.items() if k in hidden}
                ),
                operation="create",
                updated_at=now(),
            ),
        )
        session.add(row)
        session.flush()
        return self.to_wire(session, row)

    def render(self, session: Session, row: Provision) -> dict[str, Any]:
        """Add state, operation, hosts and what was registered."""
        hidden = password_inputs(row.source) & set(secrets.unseal(self.home, row.secrets))
        return {
            "tag": row.tag,
            "provider": row.provider,
            "state": row.state,
            "state_name": wire.PROVISION_STATES.get(row.state, str(row.state)),
            "operation": row.operation,
            "step": row.step,
            "last_error": row.last_error,
            "inputs": {**row.inputs, **dict.fromkeys(hidden, HIDDEN)},
            "cluster_id": row.cluster_id,
            "hosts": [
                wire.ProvisionedHost(
                    name=name,
                    address=str(h.get("address", "")),
                    port=int(h.get("port", 22)),
                    resource_id=str(h.get("resource_id", "")),
                    host_id=(row.made.get("hosts") or {}).get(name),
                )
                for name, h in sorted(row.hosts.items(), key=lambda kv: kv[1].get("index", 0))
            ],
            "made": row.made,
            "updated_at": row.updated_at,
        }

    def filters(self, params: dict[str, Any]) -> list[Any]:
        """Filter by state; DONE ones are left out unless asked for."""
        state = params.get("state")
        if state is not None:
            return [Provision.state == state]
        return [] if params.get("all") else [Provision.state != DONE]

    def request(
        self,
        session: Session,
        principal: Principal,
        obj_id: int,
        operation: str,
        params: dict[str, Any] | None = None,
    ) -> wire.Provision:
        """Ask for `operation` (scale, configure, delete or retry); the runner does it."""
        row = objects.load(
            session, principal, Provision, self.kind, obj_id, right="MANAGE", lock=True
        )
        state = wire.PROVISION_STATES[row.state]
        if row.state in BUSY:
            raise Conflict(
                f"provision {row.id} is {state} ({row.operation} {row.step or 'waiting'}): "
                "wait for it to end",
                field="state",
            )
        if row.state == DONE:
            raise Conflict(f"provision {row.id} is deleted", field="state")
        if operation == "retry":
            if row.state != ERROR:
                raise Conflict(
                    f"provision {row.id} is {state}: only ERROR ones are retried", field="state"
                )
            operation, params = row.operation, dict(row.params)
        elif operation in ("scale", "configure") and row.state != RUNNING:
            raise Conflict(
                f"provision {row.id} is {state}: {operation} needs it RUNNING "
                "(retry or delete it first)",
                field="state",
            )
        if operation == "scale":
            count = int((params or {})["hosts"])
            target = resolve(
                row.source, self.inputs_of(row), row.tag, host_count=count, field="hosts"
            )
            _check_scale_down(session, row, {spec.name for spec in target.hosts})
            row.host_count = count
        if operation == "delete" and not (params or {}).get("force"):
            _check_no_vms(session, row)
        resumed = operation == row.operation and row.state == ERROR
        row.operation, row.params = operation, dict(params or {})
        row.step = row.step if resumed else ""
        row.state = DELETING if operation == "delete" else PENDING
        row.last_error, row.updated_at = "", now()
        session.flush()
        return self.to_wire(session, row)

    def inputs_of(self, row: Provision) -> dict[str, str]:
        """All the provision's inputs, passwords decrypted (for the runner only)."""
        return {**row.inputs, **secrets.unseal(self.home, row.secrets)}

    def template_of(self, row: Provision) -> ProvisionTemplate:
        """The provision's template resolved with its inputs, tag and current host count."""
        return load_template(row.source, self.inputs_of(row), row.tag, host_count=row.host_count)

    def log(
        self, session: Session, principal: Principal, obj_id: int
    ) -> list[wire.ProvisionStepLog]:
        """Every step run of the provision, oldest first, with its log."""
        self.load(session, principal, obj_id)
        steps = session.scalars(
            select(ProvisionStep)
            .where(ProvisionStep.provision_id == obj_id)
            .order_by(ProvisionStep.id)
        )
        return [wire.ProvisionStepLog.model_validate(step) for step in steps]

    def before_delete(self, session: Session, principal: Principal, row: Provision) -> None:
        """A provision is deleted by its `delete` operation, not by removing its record."""
        raise Conflict("use the delete operation (POST /provisions/{id}/delete)", field="id")


def _vms_on(session: Session, row: Provision, names: set[str] | None = None) -> list[int]:
    hosts = row.made.get("hosts") or {}
    ids = [i for n, i in hosts.items() if names is None or n in names]
    if not ids:
        return []
    stmt = select(Vm.id).where(Vm.host_id.in_(ids), Vm.state != 6).order_by(Vm.id)
    return list(session.scalars(stmt))


def _check_scale_down(session: Session, row: Provision, keep: set[str]) -> None:
    gone = {name for name in row.hosts if name not in keep}
    vms = _vms_on(session, row, gone) if gone else []
    if vms:
        raise Conflict(
            f"VMs {', '.join(map(str, vms))} run on the hosts scaling down would remove "
            f"({', '.join(sorted(gone))}): migrate or terminate them first",
            field="hosts",
        )


def _check_no_vms(session: Session, row: Provision) -> None:
    vms = _vms_on(session, row)
    if vms:
        raise Conflict(
            f"VMs {', '.join(map(str, vms))} run on the provision's hosts: terminate them "
            "first, or delete with force (which terminates them)",
            field="force",
        )


def source_of(body: wire.ProvisionSource) -> str:
    """The template's text: given, or a shipped example by name."""
    if (body.template is None) == (body.example is None):
        raise InvalidInput("template", "give the template's text or the name of an example")
    if body.example is not None:
        try:
            return example(body.example)
        except (FileNotFoundError, ValueError, KeyError):
            raise InvalidInput("example", f"no example template named {body.example!r}") from None
    assert body.template is not None
    return body.template


def resolve(
    text: str,
    inputs: dict[str, str],
    tag: str,
    *,
    host_count: int | None = None,
    field: str = "template",
) -> ProvisionTemplate:
    """Load the template, every problem a field error (`template.<yaml path>`)."""
    try:
        return load_template(text, inputs, tag, host_count=host_count)
    except TemplateError as exc:
        raise _invalid(exc, field) from None


def _invalid(exc: TemplateError, field: str) -> InvalidFields:
    return InvalidFields(
        [(f"{field}.{p.path}" if p.path else field, _where(p.reason, p.line)) for p in exc.problems]
    )


def validate(body: wire.ProvisionValidate) -> wire.ProvisionResolved:
    """Resolve a template with its inputs, passwords hidden, and say which inputs it declares.

    Every problem is a field error (422), a missing value too (`template.inputs.<name>: no
    value given and no default`); `declared_inputs` tells a form what to ask for before that.
    """
    text = source_of(body)
    template = resolve(text, body.inputs, "${provision_id}")
    specs = declared_inputs(text)
    used = {s.name: body.inputs.get(s.name, s.default) for s in specs if s.type == "password"}
    hidden = {_as_text(value) for value in used.values() if value is not None}
    return wire.ProvisionResolved(
        template=_masked(template.model_dump(), {h for h in hidden if h}),
        inputs_declared=input_info(specs),
    )


def declared_inputs(text: str) -> list[InputSpec]:
    """The inputs a template declares, in its order (a name written twice: its first).

    Only the YAML and its `inputs` section are read; a problem with either is a field error
    named as `resolve` names it. Whether the inputs agree with each other and with the
    values given is for `resolve` (validate, create) to say.
    """
    try:
        raw = parse_yaml(text).get("inputs")
        specs = INPUTS.validate_python([] if raw is None else raw)
    except TemplateError as exc:
        raise _invalid(exc, "template") from None
    except ValidationError as exc:
        found = TemplateError(pydantic_problems(exc.errors(), ("inputs",)))
        raise _invalid(found, "template") from None
    unique: dict[str, InputSpec] = {}
    for spec in specs:
        unique.setdefault(spec.name, spec)
    return list(unique.values())


def input_info(specs: list[InputSpec]) -> list[wire.ProvisionInputInfo]:
    """The inputs as the API shows them: a password's default is never told, only that it is."""
    return [
        wire.ProvisionInputInfo(
            name=spec.name,
            type=spec.type,
            default=None if spec.type == "password" else spec.default,
            has_default=spec.default is not None,
            description=spec.description,
            options=None if spec.options is None else list(spec.options),
        )
        for spec in specs
    ]


def _as_text(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _masked(data: Any, hidden: set[str]) -> Any:
    """`data` with every hidden text replaced by HIDDEN (longest first, inside strings too)."""
    if isinstance(data, dict):
        return {k: _masked(v, hidden) for k, v in data.items()}
    if isinstance(data, list):
        return [_masked(v, hidden) for v in data]
    if isinstance(data, str):
        for secret in sorted(hidden, key=len, reverse=True):
            data = data.replace(secret, HIDDEN)
    return data


def _where(reason: str, line: int | None) -> str:
    return f"{reason} (line {line})" if line else reason


def new_tag(session: Session) -> str:
    """A provision id for the provider: unique on this machine and in the store."""
    while True:
        tag = "p" + random.token_hex(3)
        if session.scalar(select(Provision.id).where(Provision.tag == tag)) is None:
            return tag
