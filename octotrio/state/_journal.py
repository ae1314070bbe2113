"""A bounded journal that many readers follow with their own cursors.

Accumulated items (temperature points, log lines, messages, events) are encoded to JSON once
and appended here; each push session remembers the sequence number it has read up to. Appending
is O(1) whatever the number of sessions, and memory is bounded by the capacity: a reader that
falls more than ``capacity`` items behind is told how many it missed instead of holding the
writer back (architecture: the aggregator never waits for a session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class JournalRead(Generic[T]):
    """What a reader gets: the items since its cursor, how many it missed, and its new cursor."""

    items: list[T]
    missed: int
    next_seq: int


class Journal(Generic[T]):
    """Fixed-capacity ring addressed by sequence number: of pre-encoded JSON values, or of any
    item that travels with them (the hub keeps each event's routing data in a second journal)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._ring: list[T] = []
        self._capacity = capacity
        self._next_seq = 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended item will get: a new reader's cursor."""
        return self._next_seq

    def append(self, item: T) -> None:
        if len(self._ring) < self._capacity:
            self._ring.append(item)
        else:
            self._ring[self._next_seq % self._capacity] = item
        self._next_seq += 1

    def read_since(self, seq: int, until: int | None = None) -> JournalRead[T]:
        """Items appended at or after ``seq`` (and before ``until``, a sequence number this
        journal has reached, if given); those already overwritten are counted in ``missed``.
        O(items read), whatever the capacity."""
        end = self._next_seq if until is None else until
        start = max(seq, end - self._capacity, 0)
        if start >= end:
            return JournalRead(items=[], missed=start - seq, next_seq=end)
        ring, first, last = self._ring, start % self._capacity, end % self._capacity
        items = ring[first:last] if first < last else ring[first:] + ring[:last]
        return JournalRead(items=items, missed=start - seq, next_seq=end)
