"""provisions: edge clusters from a template on a provider, with their step logs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "provisions",
        sa.Column("tag", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("inputs", _JSON, nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("host_count", sa.Integer(), nullable=True),
        sa.Column("hosts", _JSON, nullable=False),
        sa.Column("made", _JSON, nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=True),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("perms", sa.Integer(), nullable=False),
        sa.Column("template", _JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_provisions_group_id_groups")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_provisions_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisions")),
        sa.UniqueConstraint("tag", name=op.f("uq_provisions_tag")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("provisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provisions_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provisions_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_provisions_state"), ["state"], unique=False)

    op.create_table(
        "provision_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provision_id", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["provision_id"],
            ["provisions.id"],
            name=op.f("fk_provision_steps_provision_id_provisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provision_steps")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("provision_steps", schema=None) as batch_op:
        batch_op.create_index(
            "ix_provision_steps_provision_id_id", ["provision_id", "id"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("provision_steps")
    op.drop_table("provisions")
