"""webhook deliveries are taken with a lease, as tasks are (one mechanism: shared/platform/leases.py)

A delivery's ``state`` becomes ``status`` (``pending -> sending -> delivered | failed``), its
attempt log ``attempts`` becomes ``attempt_log``, and ``attempts`` is now the lease's fencing
counter, beside ``lease_expires_at``. A delivery a sender held under the old claim (``pending``,
``next_attempt_at`` pushed past the attempt) is simply due again when that time comes.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DUE_INDEX = "ix_webhook_deliveries_due"


def upgrade() -> None:
    op.drop_index(DUE_INDEX, table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:  # batch: SQLite renames by copying the table
        batch.alter_column("state", new_column_name="status")
        batch.alter_column("attempts", new_column_name="attempt_log")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(DUE_INDEX, "webhook_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index(DUE_INDEX, table_name="webhook_deliveries")
    op.execute("UPDATE webhook_deliveries SET status = 'pending' WHERE status = 'sending'")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("attempts")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("attempt_log", new_column_name="attempts")
        batch.alter_column("status", new_column_name="state")
    op.create_index(DUE_INDEX, "webhook_deliveries", ["state", "next_attempt_at"])
