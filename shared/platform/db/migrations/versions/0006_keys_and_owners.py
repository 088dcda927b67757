"""api_keys; tasks and tool settings belong to an owner

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("tasks", sa.Column("owner", sa.String(64), nullable=False, server_default=""))
    op.create_index("ix_tasks_owner_created_at", "tasks", ["owner", "created_at"])
    # tool settings are per owner: (owner, tool) is the key now; stored rows keep owner ""
    op.create_table(
        "owner_tool_settings",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("tool", sa.String(32), primary_key=True),
        sa.Column("params", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("INSERT INTO owner_tool_settings (owner, tool, params, updated_at) SELECT '', tool, params, updated_at FROM tool_settings")
    op.drop_table("tool_settings")
    op.rename_table("owner_tool_settings", "tool_settings")


def downgrade() -> None:
    raise NotImplementedError("0006 is not reversible: settings of several owners cannot share one row")
