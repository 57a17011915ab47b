"""`edgecloud secgroup`: security groups, the firewall rules applied to vnets and NICs."""

from typing import Annotated

import typer

from edgecloud.cli.nouns import (
    Noun,
    ObjId,
    TemplateFile,
    add_common,
    changes,
    created,
    noun_app,
    read_template,
    updated,
)
from edgecloud.cli.specs import RULE_HELP, parse_rule

SECGROUP = Noun(
    "secgroup",
    lambda client: client.secgroups,
    [
        ("ID", lambda s: s.id),
        ("NAME", lambda s: s.name),
        ("OWNER", lambda s: s.owner_id),
        ("GROUP", lambda s: s.group_id),
        ("RULES", lambda s: len(s.rules)),
    ],
)
app = noun_app("Security groups: firewall rules.")
add_common(app, SECGROUP)

Rules = Annotated[list[str] | None, typer.Option("--rule", help=RULE_HELP + " Repeatable.")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Security group name.")],
    rule: Rules = None,
    file: TemplateFile = None,
) -> None:
    """Create a security group."""
    rules = [parse_rule(spec) for spec in rule or []]
    state, secgroups = SECGROUP.of(ctx)
    group = secgroups.create(name=name, rules=rules, template=read_template(file))
    created(state, "secgroup", group)


@app.command("update")
def update(
    ctx: typer.Context,
    obj_id: ObjId,
    rule: Rules = None,
    file: TemplateFile = None,
) -> None:
    """Replace a security group's rules (all of them) or attributes."""
    rules = [parse_rule(spec) for spec in rule] if rule else None
    body = changes(rules=rules, template=read_template(file))
    state, secgroups = SECGROUP.of(ctx)
    updated(state, "secgroup", obj_id, secgroups.update(obj_id, **body))
