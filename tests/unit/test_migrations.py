"""The migrations run on SQLite too: the database `make up` uses when DATABASE_URL is unset."""

from sqlalchemy import create_engine, inspect

from shared.platform.db.migrate import upgrade


def test_every_migration_runs_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'visionfn.sqlite3'}"
    upgrade(url)
    tables = inspect(create_engine(url))
    assert {"tasks", "processed_objects", "outbox", "api_keys", "tool_settings"} <= set(tables.get_table_names())
    assert {"owner", "tool"} == set(tables.get_pk_constraint("tool_settings")["constrained_columns"])
    assert {"status", "attempts", "lease_expires_at"} <= {column["name"] for column in tables.get_columns("processed_objects")}
