"""File names as the platform records them (task params, database rows, events): what a client
sent, less what no record should hold."""

from __future__ import annotations


def printable_name(name: str | None, default: str = "") -> str:
    """``name`` with its unprintable characters left out: control characters (NUL included, which
    Postgres JSONB refuses), line breaks, lone surrogates; ``default`` when nothing is left."""
    return "".join(character for character in name or "" if character.isprintable()) or default
