"""What a scheduled function does less often than it runs: in the cloud its schedule is a
minute, locally it may run every second (the tests' VISIONFN_LOCAL_SCHEDULE_SECONDS)."""

from __future__ import annotations

import time


class Every:
    """``due()`` is true at the first call and then at most once every ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.seconds
        return True
