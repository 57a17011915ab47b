"""Wire types of provisions: edge clusters created from a template on a provider."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from edgecloud.api.common import Body, Ownership, Wire

PROVISION_STATES = {
    0: "PENDING",
    1: "DEPLOYING",
    2: "CONFIGURING",
    3: "RUNNING",
    4: "ERROR",
    5: "DELETING",
    6: "DONE",
}
TemplateText = Annotated[str, StringConstraints(min_length=1, max_length=256 * 1024)]
InputValue = Annotated[str, StringConstraints(max_length=4096)]
Inputs = Annotated[dict[str, InputValue], Field(max_length=256)]
InputKind = Literal["text", "number", "boolean", "list", "password"]
InputScalar = bool | int | float | str


class ProvisionSource(Body):
    """A template: its YAML text, or the name of a shipped example (one of the two)."""

    template: TemplateText | None = Field(default=None, description="the template's YAML text")
    example: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,64}$")] | None = Field(
        default=None, description="the name of a template shipped with edgecloud"
    )


class ProvisionCreate(ProvisionSource):
    """Create a provision from a template (YAML text) or a shipped example, and inputs."""

    inputs: Inputs = Field(default_factory=dict, description="values of the template's inputs")


class ProvisionValidate(ProvisionCreate):
    """Check a template and inputs without creating anything."""


class ProvisionScale(Body):
    """Change the number of hosts (templates with a host count only)."""

    hosts: Annotated[int, Field(ge=1, le=64)]


class ProvisionedHost(Wire):
    """A host of the provision: what the provider made and its id in the front-end."""

    name: str
    address: str
    port: int
    resource_id: str
    host_id: int | None = None


class ProvisionStepLog(Wire):
    """One run of a step, with the lines it logged."""

    id: int
    operation: str
    name: str
    state: str
    started_at: int
    ended_at: int | None
    log: str = ""


class Provision(Ownership):
    """A provision and where its current operation stands."""

    tag: str = Field(description="the provision's id at the provider (names, tags)")
    provider: str
    state: int
    state_name: str
    operation: str = Field(description="create, scale, configure or delete")
    step: str = Field(description="the step running, or where it failed")
    last_error: str
    inputs: dict[str, Any] = Field(description="inputs given (passwords shown as ***)")
    cluster_id: int | None
    hosts: list[ProvisionedHost]
    made: dict[str, Any] = Field(description="ids of what was registered, by kind and name")
    updated_at: int


class ProvisionInputInfo(Wire):
    """An input a template declares: what to ask for and how (a password's default untold)."""

    name: str
    type: InputKind = "text"
    default: InputScalar | None = Field(
        default=None, description="the value used when none is given (null for a password)"
    )
    has_default: bool = Field(
        default=False, description="whether it has a default (if not, a value must be given)"
    )
    description: str = ""
    options: list[InputScalar] | None = Field(
        default=None, description="the values a list input may take"
    )


class ProvisionResolved(Wire):
    """A template resolved with its inputs (as `validate` shows it)."""

    template: dict[str, Any]
    inputs_declared: list[ProvisionInputInfo] = Field(
        default_factory=list, description="the inputs the template declares, in its order"
    )
