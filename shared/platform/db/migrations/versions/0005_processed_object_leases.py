"""processed_objects are taken with a lease, as tasks are (one mechanism: shared/platform/leases.py)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("processed_objects", sa.Column("status", sa.String(16), nullable=False, server_default="done"))
    op.add_column("processed_objects", sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("processed_objects", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("processed_objects", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("processed_objects", sa.Column("error", sa.Text, nullable=True))


def downgrade() -> None:
    for column in ("error", "updated_at", "lease_expires_at", "attempts", "status"):
        op.drop_column("processed_objects", column)
