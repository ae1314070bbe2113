"""When a session may send its next ``current``: a pure function of time.

OctoPrint sends ``current`` at most once every 0.5 s × throttle per connection; a snapshot
that arrives earlier is held back until then, and a newer one replaces it (latest wins, so
nothing is dropped for good). The throttle in force when a send happens decides the gap
before it (a new throttle is effective from the next push). Reference: octoprint-push.md §6.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BASE_INTERVAL = 0.5
"""Seconds between two ``current`` messages at throttle 1 (OctoPrint's StateMonitor interval)."""


@dataclass
class PushRateLimiter:
    """Tracks the last ``current`` sent and the client's throttle factor."""

    throttle: int = 1
    last_sent: float = -math.inf

    def earliest_send(self) -> float:
        """The first instant at which the next ``current`` may go out."""
        return self.last_sent + BASE_INTERVAL * self.throttle

    def may_send(self, now: float) -> bool:
        return now >= self.earliest_send()

    def record_send(self, now: float) -> None:
        self.last_sent = now
