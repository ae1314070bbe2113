"""Pure statistics over recorded arrivals: percentiles, intervals, tick spreads.

No clocks and no I/O here, so ``tests/test_bench_stats.py`` can check it with made-up numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation between closest ranks; NaN if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, not {q!r}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def intervals(arrivals: Sequence[float]) -> list[float]:
    """Gaps between consecutive arrivals of one client, in arrival order."""
    return [later - earlier for earlier, later in itertools.pairwise(arrivals)]


@dataclass(frozen=True)
class TickSpread:
    """How one tick (one snapshot, seen by many clients) spread over the clients' arrival times."""

    receivers: int
    first: float
    last: float

    @property
    def spread(self) -> float:
        """Latest minus earliest arrival, seconds."""
        return self.last - self.first


def tick_spreads(arrivals: Iterable[float], gap: float) -> list[TickSpread]:
    """Split the ``current`` arrivals of all clients into ticks: a tick ends where no client
    received anything for ``gap`` seconds.

    Both servers send a tick's ``current`` to every client in one burst after a snapshot, and
    snapshots are at least 0.5 s apart, so with ``gap`` well under 0.5 s each burst is one tick.
    (Message contents cannot tell ticks apart: each client's ``current`` carries what accumulated
    until its own send.) A burst that spreads over more than 0.5 s − ``gap`` merges with the next
    one; then a tick has more receivers than there are clients, which :func:`merged` counts.
    """
    ticks: list[TickSpread] = []
    ordered = sorted(arrivals)
    if not ordered:
        return ticks
    first = last = ordered[0]
    receivers = 1
    for arrival in ordered[1:]:
        if arrival - last >= gap:
            ticks.append(TickSpread(receivers, first, last))
            first, receivers = arrival, 0
        last = arrival
        receivers += 1
    ticks.append(TickSpread(receivers, first, last))
    return ticks


def merged(ticks: Iterable[TickSpread], clients: int) -> int:
    """How many ticks have more receivers than there are clients: bursts that ran into each other."""
    return sum(1 for tick in ticks if tick.receivers > clients)


@dataclass(frozen=True)
class Summary:
    """Median, p99 and max of a sample; ``count`` 0 means there was nothing to measure (NaNs)."""

    count: int
    median: float
    p99: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            len(values),
            percentile(values, 50),
            percentile(values, 99),
            max(values) if values else math.nan,
        )


def cpu_share(trace: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """CPU seconds per wall-clock second between ``start`` and ``end``, from ``(time, CPU
    seconds)`` samples in time order: from the last sample at or before ``start`` (else the first)
    to the first at or after ``end`` (else the last). NaN without two distinct samples."""
    if not trace:
        return math.nan
    before = [sample for sample in trace if sample[0] <= start]
    after = [sample for sample in trace if sample[0] >= end]
    (t0, cpu0), (t1, cpu1) = before[-1] if before else trace[0], after[0] if after else trace[-1]
    return (cpu1 - cpu0) / (t1 - t0) if t1 > t0 else math.nan
