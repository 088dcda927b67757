"""Alembic environment: online migrations against the configured URL."""

from alembic import context
from sqlalchemy import pool

from shared.platform.db.engine import get_engine
from shared.platform.db.models import Base

url = context.config.get_main_option("sqlalchemy.url")
with get_engine(url).connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
del pool
