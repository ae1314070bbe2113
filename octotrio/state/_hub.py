"""The hub: the read side of printer state, shared by every push session.

The aggregator writes here synchronously and never waits for a session; sessions read at
their own pace through a :class:`SessionView`. What is the same for every session is encoded
once: the state part of each tick, and every accumulated temperature point, log line, message
and event (see :mod:`octotrio.state._journal`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import trio

from octotrio.sockjs import SharedMessage

from ._journal import Journal
from ._model import JSONObject, PrinterModel

log = logging.getLogger(__name__)

TEMPS_JOURNAL_CAPACITY = 1024
"""Temperature points kept for slow sessions: over 30 minutes at one point per 2 s."""

TERMINAL_JOURNAL_CAPACITY = 8192
"""Log lines (and messages) kept for slow sessions: ~10 s of a 400 lines/s print, or 40 s of
accumulation at throttle 80. A session that falls further behind gets a marker line."""

EVENTS_JOURNAL_CAPACITY = 16384
"""Events kept for slow sessions. Events must not be lost silently, so a session that falls
further behind is closed (see ``octotrio.push``). Sized for bursts, not only for slowness: every
client's connect, login and disconnect is an event for every other session (``ClientOpened``,
``ClientAuthed``, ``ClientClosed``), so a storm of 5000 clients coming and going at once
publishes 15,000 events before a session may get to run; a session that is reading drains them
all in one pass. About 3 MiB when full."""


HOLD_RELEASE_INTERVAL = 0.5
"""Longest time a session holds non-urgent events (a client's connect, login, disconnect) waiting
for company: the tick interval, so that while the printer is busy they ride along with the next
``current`` at no extra write. The hub's driver releases them all at once
(:meth:`StateHub.release_held`), one timer for every session instead of one each."""


def encode_json(value: Any) -> str:
    """Compact, ASCII-only JSON, as OctoPrint writes push messages (non-ASCII as ``\\uXXXX``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def encode_members(obj: JSONObject) -> str:
    """The members of a JSON object without the braces, so fragments can be joined."""
    return encode_json(obj)[1:-1]


@dataclass(frozen=True)
class Broadcast:
    """One journalled message for every session (an event, a plugin message, ...), with what a
    session needs to filter it by permission and subscription without decoding it.

    ``kind`` is the message type (``event``, ``plugin``, ``slicingProgress``, ``renderProgress``,
    ``timelapse``); ``name`` the event type or plugin id; ``origin`` a token of the session that
    must not get it (``ClientOpened`` goes to the other sockets only, octoprint-push.md §2.1): a
    token, not the session, which the journal would keep alive.
    """

    kind: str
    name: str
    encoded: str
    origin: object | None = None
    release: int | None = None
    """For a non-urgent broadcast, the hub's release count when it was published: it is due
    once the count grows (:meth:`StateHub.release_held`); None: due at once."""


class JournalMarks(NamedTuple):
    """Sequence numbers in the hub's temperature, log and message journals: where a tick ends."""

    temps: int
    logs: int
    messages: int


JOURNALS_START = JournalMarks(0, 0, 0)
"""Where empty journals start: the marks of the hub's first, empty tick."""


@dataclass(frozen=True)
class Tick:
    """One change-driven snapshot of the state, encoded once for every session.

    ``head`` holds the members ``state`` … ``resends`` and ``tail`` the members ``busyFiles``
    and ``markings`` of a ``current`` payload, in OctoPrint's key order. ``published_at`` is when
    it was published, on the clock the sessions' rate limiters read (trio's): every session that
    sends it at once counts its next interval from there, not from its own turn; ``server_time``
    the same instant on the wall clock.

    A ``current`` carries what accumulated up to its tick: up to ``until`` in the journals. A
    session that sent the previous tick has read up to ``since`` (the previous tick's ``until``)
    and accumulated the same as every other such session, so what it sends depends only on its
    variant (permissions, subscription); the first session to encode a variant keeps it in
    ``shared`` and the others send the very same string. ``shared`` lives as long as the tick.
    """

    number: int
    head: str
    tail: str
    published_at: float = -math.inf
    server_time: float = 0.0
    since: JournalMarks = JOURNALS_START
    until: JournalMarks = JOURNALS_START
    shared: dict[Hashable, str] = field(default_factory=dict, compare=False, repr=False)


class History:
    """The ``history`` payload of one state version (without ``serverTime``), shared by every
    session that opens a view before the next change, each variant of it encoded once.

    A storm of clients connecting at once asks for the same history a thousand times, and a
    history holds up to 30 minutes of temperatures (hundreds of KiB of JSON): encoding it once per
    state version instead of once per client is what keeps a storm's cost linear in its size.
    """

    def __init__(self, payload: JSONObject) -> None:
        self.payload = payload
        """Do not change it: sessions share it."""
        self._encoded: dict[Hashable, str] = {}

    def encoded_members(self, variant: Hashable, select: Callable[[JSONObject], JSONObject]) -> str:
        """The members of ``select(payload)`` as JSON without braces (see :func:`encode_members`),
        encoded at the first call for ``variant``; ``select`` must depend on nothing else."""
        encoded = self._encoded.get(variant)
        if encoded is None:
            encoded = self._encoded[variant] = encode_members(select(self.payload))
        return encoded


class StateHub:
    """Latest tick and the journals of accumulated items; wakes sessions on change.

    Whoever changes the model calls :meth:`model_changed` first (the aggregator does, at each
    fold), so that the next view opened gets a new :class:`History`.
    """

    def __init__(self, model: PrinterModel, wall_clock: Callable[[], float]) -> None:
        self.model = model
        self.wall_clock = wall_clock
        self.temps: Journal[str] = Journal(TEMPS_JOURNAL_CAPACITY)
        self.logs: Journal[str] = Journal(TERMINAL_JOURNAL_CAPACITY)
        self.messages: Journal[str] = Journal(TERMINAL_JOURNAL_CAPACITY)
        self.events: Journal[str] = Journal(EVENTS_JOURNAL_CAPACITY)
        self._broadcasts: Journal[Broadcast] = Journal(EVENTS_JOURNAL_CAPACITY)  # aligned with events
        self.tick = Tick(number=0, head="", tail="")
        self._history: History | None = None
        """The current state version's history, made at the first :meth:`open_view` after a change."""
        self._waiting: dict[object, tuple[trio.Event, Callable[[], bool] | None]] = {}
        self.releases = 0
        """How many times :meth:`release_held` ran."""
        self.release_requested = trio.Event()
        """Set when a non-urgent broadcast waits for the next release: the driver then calls
        :meth:`release_held` within :data:`HOLD_RELEASE_INTERVAL`."""

    def wake_on_change(
        self, waiter: object, wake: trio.Event, serve_nowait: Callable[[], bool] | None = None
    ) -> None:
        """Set ``wake`` at the next tick, urgent broadcast or release; replaces ``waiter``'s
        previous wake-up. Call it *before* checking for news, so nothing published in between is
        missed.

        A wake-up is one-shot and only the sessions waiting get one: a burst of events while a
        session is busy costs one wake-up, and it then reads them all in one pass.

        ``serve_nowait``, if given, is called instead, right where the news is published: it does
        what the waiter would do if that needs no waiting and returns True (the waiter registers
        again itself), else returns False and ``wake`` is set. A tick then reaches thousands of idle
        sessions in one pass, without a task switch each. It must not raise; if it does, the error
        is logged and ``wake`` set, so one session's bug does not stop the others' news.
        """
        self._waiting[waiter] = (wake, serve_nowait)

    def forget(self, waiter: object) -> None:
        """Drop ``waiter``'s pending wake-up (its session ended)."""
        self._waiting.pop(waiter, None)

    def _wake_sessions(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for wake, serve_nowait in waiting.values():
            if serve_nowait is not None:
                try:
                    if serve_nowait():
                        continue
                except Exception:
                    log.exception("serving a session without waking it failed; waking it")
            wake.set()

    def release_held(self) -> None:
        """Release the non-urgent broadcasts published so far: count a release and wake every
        waiting session. Called by the driver, :data:`HOLD_RELEASE_INTERVAL` after the first of
        them; without a driver they go out with whatever a session sends next."""
        self.releases += 1
        self.release_requested = trio.Event()
        self._wake_sessions()

    def publish_tick(self, now: float) -> None:
        """Snapshot the model into a new tick published at ``now`` and wake every session."""
        model = self.model
        tail = {"busyFiles": model.busy_files(), "markings": list(model.markings)}
        self.tick = Tick(
            number=self.tick.number + 1,
            head=encode_members(model.snapshot_head()),
            tail=encode_members(tail),
            published_at=now,
            server_time=self.wall_clock(),
            since=self.tick.until,
            until=JournalMarks(self.temps.next_seq, self.logs.next_seq, self.messages.next_seq),
        )
        self._wake_sessions()

    def publish_event(
        self,
        event_type: str,
        payload: JSONObject | None,
        *,
        origin: object | None = None,
        urgent: bool = True,
    ) -> None:
        """Encode an event once, journal it and wake every session (except ``origin``'s); a
        non-``urgent`` one wakes nobody: it waits for the next release (:data:`HOLD_RELEASE_INTERVAL`)
        or goes out with whatever a session sends first."""
        self.publish(
            "event", {"type": event_type, "payload": payload}, name=event_type, origin=origin, urgent=urgent
        )

    def publish_plugin(self, plugin: str, data: object) -> None:
        """A ``plugin`` message ``{"plugin": plugin, "data": data}`` for every session."""
        self.publish("plugin", {"plugin": plugin, "data": data}, name=plugin)

    def publish(
        self, kind: str, payload: object, *, name: str = "", origin: object | None = None, urgent: bool = True
    ) -> None:
        """Encode ``{kind: payload}`` once, journal it in order with the events, wake every session
        (if not ``urgent``: request a release instead; a storm of N clients connecting publishes
        N events that would otherwise each wake every session). A :class:`SharedMessage`: the
        transports frame it once for every session that gets it alone."""
        encoded = SharedMessage(encode_json({kind: payload}))
        self.events.append(encoded)
        self._broadcasts.append(Broadcast(kind, name, encoded, origin, None if urgent else self.releases))
        if urgent:
            self._wake_sessions()
        else:
            self.release_requested.set()

    def broadcasts_since(self, seq: int) -> tuple[list[Broadcast], int, int]:
        """Broadcasts from sequence number ``seq`` on: (items, how many were lost, next seq)."""
        read = self._broadcasts.read_since(seq)
        return read.items, read.missed, read.next_seq

    def model_changed(self) -> None:
        """The model (or a journal of temperatures, logs or messages) is about to change: the
        next :meth:`open_view` takes a new history."""
        self._history = None

    def open_view(self) -> tuple[History, SessionView]:
        """A new session's ``history`` and its view, taken at the same instant.

        Everything accumulated after this call reaches the view and nothing before it, so a
        session's ``history`` and its first ``current`` neither overlap nor leave a gap.
        """
        history = self._history
        if history is None:
            history = self._history = History(self.model.history_payload())
        view = SessionView(
            hub=self,
            tick_number=self.tick.number,
            temps_seq=self.temps.next_seq,
            logs_seq=self.logs.next_seq,
            messages_seq=self.messages.next_seq,
            events_seq=self.events.next_seq,
        )
        return history, view


@dataclass
class Accumulated:
    """What a session accumulated since its previous ``current``, already encoded."""

    temps: list[str]
    logs: list[str]
    messages: list[str]
    missed: int
    """Items the journals dropped before this session read them (it fell far behind)."""


@dataclass
class SessionView:
    """One session's cursors into the hub. Plain data: the session task drives it."""

    hub: StateHub
    tick_number: int
    temps_seq: int
    logs_seq: int
    messages_seq: int
    events_seq: int

    def take_broadcasts(self) -> tuple[list[Broadcast], int]:
        """Events and other broadcasts since the last call, and how many were lost by falling behind."""
        items, missed, self.events_seq = self.hub.broadcasts_since(self.events_seq)
        return items, missed

    def has_broadcasts(self) -> bool:
        """True when broadcasts were published since the last :meth:`take_broadcasts`."""
        return self.events_seq != self.hub.events.next_seq

    def has_new_tick(self) -> bool:
        return self.hub.tick.number > self.tick_number

    def in_step(self, tick: Tick) -> bool:
        """True if this view read up to where ``tick`` starts: it accumulates what every session
        that sent the previous tick accumulates (:class:`Tick`)."""
        return (self.temps_seq, self.logs_seq, self.messages_seq) == tick.since

    def skip_tick(self) -> Tick:
        """Take the latest tick without reading what accumulated, for a view :meth:`in_step`
        with it whose ``current`` is already encoded: the cursors move to the tick's end."""
        tick = self.hub.tick
        self.tick_number = tick.number
        self.temps_seq, self.logs_seq, self.messages_seq = tick.until
        return tick

    def take_tick(self) -> tuple[Tick, Accumulated]:
        """The latest tick (latest wins) and everything accumulated up to it since the last take
        (what accumulated after it waits for the next tick)."""
        tick = self.hub.tick
        hub = self.hub
        self.tick_number = tick.number
        temps = hub.temps.read_since(self.temps_seq, tick.until.temps)
        logs = hub.logs.read_since(self.logs_seq, tick.until.logs)
        messages = hub.messages.read_since(self.messages_seq, tick.until.messages)
        self.temps_seq, self.logs_seq, self.messages_seq = temps.next_seq, logs.next_seq, messages.next_seq
        return tick, Accumulated(
            temps=temps.items,
            logs=logs.items,
            messages=messages.items,
            missed=temps.missed + logs.missed + messages.missed,
        )
