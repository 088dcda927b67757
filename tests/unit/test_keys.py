"""API keys at rest: the database holds each key's SHA-256, never the key (SQLite, as `make up` has it)."""

import hashlib

import pytest
from sqlalchemy import create_engine, text

from shared.platform.db.migrate import upgrade
from shared.platform.keys import KEY_PREFIX, ApiKeys


@pytest.fixture
def database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.sqlite3'}"
    upgrade(url)
    return url


def _stored_rows(database_url: str) -> list[dict]:
    with create_engine(database_url).connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text("SELECT * FROM api_keys"))]


def test_a_key_is_stored_as_its_sha256_and_nowhere_in_clear(database_url):
    # GIVEN a new key
    record, key = ApiKeys(database_url).create("alice", "laptop")
    assert key.startswith(KEY_PREFIX) and len(key) > 40
    # THEN its row holds the SHA-256 of the key (computed here, as a reader of the table would)
    [row] = _stored_rows(database_url)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == key[:10] and record.prefix == key[:10]
    # AND the key itself is in no column, nor in what `list` shows
    for column, value in row.items():
        assert key not in str(value), column
    assert key not in str(ApiKeys(database_url).list("alice"))


def test_the_key_opens_the_door_its_hash_does_not(database_url):
    keys = ApiKeys(database_url)
    record, key = keys.create("alice")
    [row] = _stored_rows(database_url)
    assert keys.owner_of(key) == "alice"
    assert keys.owner_of(row["key_hash"]) is None  # a leaked table is not a set of keys
    assert keys.owner_of(KEY_PREFIX + row["key_hash"]) is None
    assert keys.revoke(record.id)
    assert keys.owner_of(key) is None
