"""Wire types of users, groups, ACL rules and quotas."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from edgecloud.api.common import Body, Id, Mib, Name, TemplateIn, Wire

Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]


class UserCreate(Body):
    """Create a user."""

    name: Name
    password: Password
    group_id: Id | None = Field(default=None, description="primary group; default 'users'")
    template: TemplateIn = Field(default_factory=dict)


class UserUpdate(Body):
    """Change a user's attributes, primary group or enabled flag."""

    template: TemplateIn | None = None
    group_id: Id | None = None
    enabled: bool | None = None
    version: int | None = Field(default=None, description="refuse if the object changed")


class PasswordChange(Body):
    """Set a new password."""

    password: Password


class GroupMembership(Body):
    """Add a user to a secondary group."""

    group_id: Id


class User(Wire):
    """A user as clients see it (never the password hash)."""

    id: int
    name: str
    group_id: int
    group_ids: list[int]
    enabled: bool
    version: int
    created_at: int
    template: dict[str, object]


class GroupCreate(Body):
    """Create a group."""

    name: Name
    template: TemplateIn = Field(default_factory=dict)


class GroupUpdate(Body):
    """Change a group's attributes."""

    template: TemplateIn | None = None
    version: int | None = None


class Group(Wire):
    """A group and its members."""

    id: int
    name: str
    user_ids: list[int]
    version: int
    created_at: int
    template: dict[str, object]


class AclCreate(Body):
    """An ACL rule in OpenNebula's syntax, e.g. '@1 VM+NET/* USE'."""

    rule: Annotated[str, StringConstraints(min_length=3, max_length=512)]


class Acl(Wire):
    """A stored ACL rule."""

    id: int
    rule: str


class QuotaLimits(Body):
    """Limits; null means unlimited."""

    vms: int | None = Field(default=None, ge=0, le=2**31 - 1)
    cpu: float | None = Field(default=None, ge=0, le=1e9)
    memory_mb: Mib | None = None
    system_disk_mb: Mib | None = None
    images: int | None = Field(default=None, ge=0, le=2**31 - 1)
    leases: int | None = Field(default=None, ge=0, le=2**31 - 1)


class QuotaUsage(Wire):
    """What a user or group holds now."""

    vms: int = 0
    cpu: float = 0.0
    memory_mb: int = 0
    system_disk_mb: int = 0
    images: int = 0
    leases: int = 0


class Quota(Wire):
    """Limits and current usage of a user or a group."""

    scope: str
    subject_id: int
    limits: QuotaLimits
    usage: QuotaUsage
