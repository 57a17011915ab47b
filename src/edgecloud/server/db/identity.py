"""Tables of who: groups, users, tokens, ACL rules and quotas."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from edgecloud.server.db.base import Base, Epoch, Json, Versioned


class Group(Versioned, Base):
    """A group of users; objects are shared through their group."""

    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    template: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class User(Versioned, Base):
    """A user: a primary group, secondary groups, an argon2 password hash."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(256), nullable=False)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), nullable=False, index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    template: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class UserGroup(Base):
    """Membership of a user in a group (the primary group is a member too)."""

    __tablename__ = "user_groups"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Token(Base):
    """A bearer token: only its SHA-256 is stored."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[int] = mapped_column(Epoch, nullable=False)
    expires_at: Mapped[int] = mapped_column(Epoch, nullable=False, index=True)


class AclRuleRow(Base):
    """An ACL rule granting rights on resources beyond the permission bits."""

    __tablename__ = "acl_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_kind: Mapped[str] = mapped_column(String(8), nullable=False)  # user | group | all
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resource_types: Mapped[str] = mapped_column(String(512), nullable=False)  # "VM+NET"
    resource_kind: Mapped[str] = mapped_column(String(8), nullable=False)  # id|group|cluster|all
    resource_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rights: Mapped[str] = mapped_column(String(64), nullable=False)  # "USE+MANAGE"
    zone: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Quota(Base):
    """Limits of one user or group; NULL means unlimited."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("scope", "subject_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8), nullable=False)  # user | group
    subject_id: Mapped[int] = mapped_column(Integer, nullable=False)
    vms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpu: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    system_disk_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    images: Mapped[int | None] = mapped_column(Integer, nullable=True)
    leases: Mapped[int | None] = mapped_column(Integer, nullable=True)
