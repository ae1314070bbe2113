"""When a session may send its next ``current``: a pure function of time.

OctoPrint sends ``current`` at most once every 0.5 s × throttle per connection; a snapshot
that arrives earlier is held back until then, and a newer one replaces it (latest wins, so
nothing is dropped for good). The throttle in force when a send happens decides the gap
before it (a new throttle is effective from the next push). Reference: octoprint-push.md §6.2.

Intervals count from the tick a session sends, not from the moment its turn came: all sessions
send a tick from the same instant, so one that got its turn late in a busy tick (the 1000th of
1000) is not held back at the next tick for the time it lost, which would keep every tick spread
over the clients by that much, and cost a timer per late session.
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

    def record_send(self, now: float, published_at: float) -> bool:
        """Record a ``current`` sent at ``now`` carrying the tick published at ``published_at``;
        True if it counts as sent at the tick's publication.

        It does if the tick was already allowed then (the usual case: the session sent it on the
        tick's wake-up, however late its turn came); else (a tick held back until the interval was
        over) the next interval counts from ``now``.
        """
        on_time = published_at >= self.earliest_send()
        self.last_sent = published_at if on_time else now
        return on_time


LOG_BURST = 5
"""Log lines one session may write about ignored client messages per :data:`LOG_WINDOW`."""

LOG_WINDOW = 10.0
"""Seconds after which a session's log budget refills; what was suppressed is then counted in
one line. A client flooding bad messages costs the log at most 6 lines per 10 s."""


@dataclass
class LogLimiter:
    """Rate-limits one session's log lines about bad input; sans-IO (``now`` is an argument)."""

    window_start: float = -math.inf
    written: int = 0
    suppressed: int = 0

    def allow(self, now: float) -> tuple[bool, int]:
        """Whether to log now, and how many lines were suppressed before (to mention them)."""
        if now >= self.window_start + LOG_WINDOW:
            suppressed, self.suppressed = self.suppressed, 0
            self.window_start, self.written = now, 1
            return True, suppressed
        if self.written < LOG_BURST:
            self.written += 1
            return True, 0
        self.suppressed += 1
        return False, 0
