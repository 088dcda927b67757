"""chain matching: a chain's steps are tasks with a parent; the chain keeps its execution ARN

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:  # batch: SQLite cannot add columns with constraints otherwise
        batch.add_column(sa.Column("parent_uid", sa.String(32), nullable=True))
        batch.add_column(sa.Column("step", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("execution_arn", sa.Text(), nullable=True))
    op.create_index("ix_tasks_parent_uid", "tasks", ["parent_uid"])


def downgrade() -> None:
    op.drop_index("ix_tasks_parent_uid", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("execution_arn")
        batch.drop_column("step")
        batch.drop_column("parent_uid")
