"""defect_records: one row per inspected image, owned; indexes of the data service's queries

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "defect_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("num", sa.Integer, nullable=False),
        sa.Column("dice", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_day", sa.Date, nullable=False),
        sa.Column("result_key", sa.String(1024), nullable=False),
        sa.Column("source_key", sa.String(1024), nullable=True),
        sa.Column("source_etag", sa.String(64), nullable=True),
        sa.Column("defects", sa.JSON, nullable=False),
        sa.Column("processing_time_ms", sa.Integer, nullable=False),
        sa.UniqueConstraint("source_key", "source_etag", name="uq_defect_records_source"),
    )
    # getRecent, getPaginated, search (newest first, date range) and analysis; on Postgres it also
    # holds every column they answer with, so pages (deep ones too) are read from the index alone
    op.create_index("ix_defect_records_owner_created", "defect_records", ["owner", "created_at", "id"],
                    postgresql_include=["name", "result_key", "label", "num", "dice"])
    # statByDate: an index-only scan of one owner's days
    op.create_index("ix_defect_records_owner_day", "defect_records", ["owner", "created_day", "num"])
    # search by exact number of defects
    op.create_index("ix_defect_records_owner_num", "defect_records", ["owner", "num", "created_at", "id"])
    # search by any part of the name (lower(name) LIKE '%...%'): a trigram index, where Postgres has pg_trgm
    # and the role may create it (else searches by name scan the owner's rows; nothing else changes)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        savepoint = bind.begin_nested()
        try:
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            bind.exec_driver_sql("CREATE INDEX ix_defect_records_name_trgm ON defect_records USING gin (lower(name) gin_trgm_ops)")
        except sa.exc.DBAPIError as error:
            savepoint.rollback()
            print(f"0008: no trigram index on defect_records.name ({type(error.orig).__name__}); name searches will scan")
        else:
            savepoint.commit()


def downgrade() -> None:
    op.drop_table("defect_records")
