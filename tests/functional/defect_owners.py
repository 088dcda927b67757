"""The owners of the defect functions' tests: a new one per test, and the headers of its requests."""

import uuid

from tests.conftest import as_owner


def _owner() -> str:
    return f"owner-{uuid.uuid4().hex[:12]}"


def _as(owner: str) -> dict[str, str]:
    return as_owner(owner)
