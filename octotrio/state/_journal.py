"""A bounded journal that many readers follow with their own cursors.

Accumulated items (temperature points, log lines, messages, events) are encoded to JSON once
and appended here; each push session remembers the sequence number it has read up to. Appending
is O(1) whatever the number of sessions, and memory is bounded by the capacity: a reader that
falls more than ``capacity`` items behind is told how many it missed instead of holding the
writer back (architecture: the aggregator never waits for a session).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JournalRead:
    """What a reader gets: the items since its cursor, how many it missed, and its new cursor."""

    items: list[str]
    missed: int
    next_seq: int


class Journal:
    """Fixed-capacity ring of pre-encoded JSON values, addressed by sequence number."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._ring: list[str] = [""] * capacity
        self._capacity = capacity
        self._next_seq = 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended item will get: a new reader's cursor."""
        return self._next_seq

    def append(self, encoded: str) -> None:
        self._ring[self._next_seq % self._capacity] = encoded
        self._next_seq += 1

    def read_since(self, seq: int) -> JournalRead:
        """Items appended at or after ``seq``; those already overwritten are counted in ``missed``."""
        oldest = max(0, self._next_seq - self._capacity)
        start = max(seq, oldest)
        items = [self._ring[i % self._capacity] for i in range(start, self._next_seq)]
        return JournalRead(items=items, missed=start - seq, next_seq=self._next_seq)
