"""One clock for every bench process: ``trio.current_time()`` equal to ``time.monotonic()``.

trio's default clock adds a random offset per run; the runner, the client processes and the
firmware compare times with each other, so every ``trio.run`` here uses :class:`MonotonicClock`.
"""

from __future__ import annotations

import time

import trio


class MonotonicClock(trio.abc.Clock):
    """``CLOCK_MONOTONIC`` as is: the same numbers in every process on this machine."""

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.monotonic()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - time.monotonic()
