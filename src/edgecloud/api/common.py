"""Wire types shared by every resource: names, templates, pages, ownership, errors."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

MAX_ID = 2**31 - 1

Id = Annotated[int, Field(ge=0, le=MAX_ID)]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
# A template as OpenNebula text (`KEY = "value"`) or as a JSON object.
TemplateIn = Annotated[
    dict[str, Any] | Annotated[str, StringConstraints(max_length=1024 * 1024)],
    Field(description="OpenNebula template text or a JSON object of attributes"),
]
Mib = Annotated[int, Field(ge=0, le=2**40)]
Cpu = Annotated[float, Field(ge=0, le=1_000_000)]


class Body(BaseModel):
    """A request body: unknown fields are refused, so a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid")


class Wire(BaseModel):
    """A response body."""

    model_config = ConfigDict(from_attributes=True)


class Ownership(Wire):
    """Owner, group and permissions of an object, plus its version for optimistic updates."""

    id: int
    name: str
    owner_id: int
    group_id: int
    permissions: str = Field(description="OpenNebula style, e.g. 'um-u-----'")
    version: int
    created_at: int
    template: dict[str, Any] = Field(default_factory=dict)


class Page(Wire, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` to get the next one."""

    items: list[T]
    next_cursor: int | None = None


class Chmod(Body):
    """New permission bits: '640' or 'um-u-----'."""

    permissions: Annotated[str, StringConstraints(min_length=3, max_length=9)]


class Chown(Body):
    """New owner and/or group."""

    owner_id: Id | None = None
    group_id: Id | None = None


class FieldError(Wire):
    """One refused field."""

    field: str
    reason: str


class ErrorBody(Wire):
    """Every error response: a code, a message naming the field, the request id."""

    error: str
    message: str
    field: str | None = None
    fields: list[FieldError] = Field(default_factory=list)
    request_id: str = ""


class Version(Wire):
    """The running front-end's version."""

    version: str
    api: str = "v1"
    store: str


class LoginRequest(Body):
    """Ask for a bearer token (credentials go in the Authorization header)."""

    ttl_seconds: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)
    name: Annotated[str, StringConstraints(max_length=128)] = ""


class LoginResponse(Wire):
    """A bearer token and when it expires."""

    token: str
    expires_at: int
    user_id: int
    user_name: str
