"""What a face-privacy request hides: the one list the ``hide`` option, the inbox's setting
(``VISIONFN_FACE_INBOX_HIDE``) and the CLI take their names from. A module of its own, so that the
settings read it without loading OpenCV (text.py). The CLI (client/) keeps a copy: a unit test
holds it to this one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

HideTarget = Literal["faces", "text", "numbers"]
#: Every name, in the order above.
HIDE_TARGETS: tuple[HideTarget, ...] = get_args(HideTarget)


def parse_hide(value: str | Iterable[str] | None) -> frozenset[HideTarget]:
    """A comma list of ``faces``, ``text``, ``numbers`` (at least one; spaces and case ignored);
    ``None`` is faces alone."""
    if value is None:
        return frozenset({"faces"})
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = {part.strip().lower() for part in parts if part.strip()}
    unknown = sorted(names - set(HIDE_TARGETS))
    if unknown or not names:
        raise ValueError(f"hide is a comma list of {', '.join(HIDE_TARGETS)} (at least one); got {value!r}")
    return frozenset(name for name in HIDE_TARGETS if name in names)
