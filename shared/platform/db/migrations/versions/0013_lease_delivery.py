"""the delivery (SQS receive count) of the message whose worker holds a lease: a later delivery of
the same message may take the lease over at once (the earlier one's worker is gone)

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("tasks", "processed_objects"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("lease_delivery", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in ("tasks", "processed_objects"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_delivery")
