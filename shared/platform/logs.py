"""One log format for every process (one line per event, to the process's own log)."""

from __future__ import annotations

import logging

from shared.platform.settings import get_settings


def configure_logging(name: str) -> logging.Logger:
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
    )
    return logging.getLogger(f"visionfn.{name}")
