"""API keys: who is calling. Keys are random, shown once, stored as SHA-256 hashes.

``python -m shared.platform.keys create --owner alice [--name laptop]``  prints a new key (once)
``python -m shared.platform.keys list [--owner alice]``                    id, owner, name, prefix, dates
``python -m shared.platform.keys revoke KEY_ID``                           the key stops working

``DATABASE_URL`` chooses the database, as for the functions. ``make key OWNER=alice`` runs
``create`` against the local platform's database.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import secrets
import sys
import uuid
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import CursorResult, select, update

from shared.platform.db.engine import session_scope
from shared.platform.db.models import ApiKey, utc_now

KEY_PREFIX = "vfn_"
OWNER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


class ApiKeyOut(BaseModel):
    """A key as listed: never the key itself, only its first characters."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    owner: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def create(self, owner: str, name: str = "") -> tuple[ApiKeyOut, str]:
        """A new key for ``owner``: its record, and the key (shown this once, stored hashed)."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(id=uuid.uuid4().hex, owner=owner, name=name, prefix=key[:10], key_hash=key_hash(key), created_at=utc_now())
        with session_scope(self.database_url) as session:
            session.add(row)
            session.flush()
            return ApiKeyOut.model_validate(row), key

    def list(self, owner: str | None = None) -> list[ApiKeyOut]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if owner:
            query = query.where(ApiKey.owner == owner)
        with session_scope(self.database_url) as session:
            return [ApiKeyOut.model_validate(row) for row in session.scalars(query)]

    def revoke(self, key_id: str) -> bool:
        with session_scope(self.database_url) as session:
            statement = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utc_now())
            result = cast("CursorResult[Any]", session.execute(statement))  # an UPDATE: it counts its rows
            return result.rowcount == 1

    def owner_of(self, key: str) -> str | None:
        """The owner of a valid (known, not revoked) key; None otherwise."""
        if not key.startswith(KEY_PREFIX):
            return None
        with session_scope(self.database_url) as session:
            return session.scalar(select(ApiKey.owner).where(ApiKey.key_hash == key_hash(key), ApiKey.revoked_at.is_(None)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.platform.keys", description="Create, list and revoke API keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="a new key for an owner (printed once)")
    create.add_argument("--owner", required=True)
    create.add_argument("--name", default="")
    listing = commands.add_parser("list", help="the keys (never the keys themselves)")
    listing.add_argument("--owner")
    revoke = commands.add_parser("revoke", help="stop a key from working")
    revoke.add_argument("key_id")
    options = parser.parse_args(argv)
    keys = ApiKeys()
    if options.command == "create":
        if not re.match(OWNER_PATTERN, options.owner):
            parser.error(f"--owner must match {OWNER_PATTERN}")
        record, key = keys.create(options.owner, options.name)
        print(f"key {record.id} for {record.owner}: {key}")
        print("Store it now: it is not shown again (only its hash is kept).", file=sys.stderr)
    elif options.command == "list":
        for record in keys.list(options.owner):
            state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
            print(f"{record.id}  {record.owner:<20} {record.name:<16} {record.prefix}...  {record.created_at:%Y-%m-%d %H:%M}  {state}")
    elif not keys.revoke(options.key_id):
        print(f"no active key {options.key_id}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
