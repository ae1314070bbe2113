"""One SockJS session, sans-IO: its state, its outgoing queue, its receiver and its timers.

A session outlives the HTTP requests of the polling and streaming transports, so what it owes the
client is kept here, between requests, rather than in any connection. Every transport is a
*receiver*: it attaches, takes frames with :meth:`Session.take_frame` and writes them its own way,
then detaches. A websocket is a receiver that stays attached for the session's whole life.

States (§7 of sockjs-protocol.md)::

    OPEN ──close()──► CLOSING ──close frame taken──► CLOSED ──expired──► forgotten
      │                                                ▲
      └──────────── receiver interrupted ──────────────┘

* OPEN: ``o`` is owed to the first receiver (F1, S1); messages are queued and delivered batched
  in one ``a[...]`` frame (F2); a receiver that waits long enough gets ``h`` (S9).
* CLOSING: the application or the server closed the session; what was queued is still
  delivered, then the close frame.
* CLOSED: the close frame was delivered (or the receiver was interrupted, S6); every later
  receiver gets the same close frame at once, without attaching (S5), until the session expires.

A session with no receiver expires ``disconnect_delay`` seconds after the last one left (S4); its
owner then forgets it. Time is an argument everywhere: nothing here reads a clock.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from ._connection import SharedMessage
from ._frames import HEARTBEAT_FRAME, OPEN_FRAME, encode_close, encode_messages

DISCONNECT_DELAY = 5.0
"""S4: seconds a session without a receiver lives on; sockjs-node and OctoPrint use 5. Long
enough for a polling client to send its next request, short enough that abandoned sessions
free their memory soon."""

HEARTBEAT_INTERVAL = 25.0
"""S9: seconds without a frame after which a waiting receiver gets ``h``; sockjs-node and
OctoPrint use 25, under the 30 s after which common proxies drop an idle response."""

MAX_QUEUED_BYTES = 1024 * 1024
"""Message bytes a session queues for its receiver before the application has to wait. A polling
client is away between two requests for milliseconds, and at most :data:`DISCONNECT_DELAY` before
the session expires; the push API queues about 10 KiB at connect (``connected``, ``history``) and
about 2 KiB/s after that. A MiB is two orders of magnitude of headroom."""

QUEUE_OVERFLOW_CLOSE = (3001, "Client too slow, send queue full")
"""The close of a session whose queue stayed full because no receiver took it in time: the
client stopped reading, or reads slower than the application sends. A SockJS-layer code
(3000-3999, as sockjs-node's 3000 for broken framing)."""

ANOTHER_CONNECTION_CLOSE = (2010, "Another connection still open")
"""S3: the answer to a second concurrent receiver; the first stays attached."""

INTERRUPTED_CLOSE = (1002, "Connection interrupted")
"""S6: the close of a session whose receiver was aborted by the network or the client."""


class SessionState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class Frame:
    """A server → client frame as a transport sees it.

    ``text`` is the SockJS encoding (``o``, ``h``, ``a[...]``, ``c[...]``: ASCII, J1), computed
    on first use, so a transport without SockJS framing (the raw websocket, U5) never pays for
    it; it uses ``messages``, the values of an ``a`` frame, and ``close``, the code and reason of
    a ``c`` frame. The ``a`` frame of a lone :class:`SharedMessage` is encoded once and shared.
    """

    literal: str = ""
    messages: tuple[str, ...] = ()
    close: tuple[int, str] | None = None

    @cached_property
    def text(self) -> str:
        if len(self.messages) == 1 and isinstance(message := self.messages[0], SharedMessage):
            return message.derived(_shared_array_frame)
        return encode_messages(self.messages) if self.messages else self.literal


def _shared_array_frame(message: str) -> SharedMessage:
    """The ``a`` frame of one message that many sessions send: shared in turn, so a transport
    frames it once too."""
    return SharedMessage(encode_messages((message,)))


OPEN = Frame(OPEN_FRAME)
HEARTBEAT = Frame(HEARTBEAT_FRAME)


def close_frame(code: int, reason: str) -> Frame:
    """The frame that closes a session with ``code`` and ``reason`` (F3)."""
    return Frame(encode_close(code, reason), close=(code, reason))


class Session:
    """The state of one SockJS session; see the module docstring for the transitions.

    ``now`` is the creation time, in the seconds of whatever clock the owner uses for every later
    call. ``heartbeat_interval`` None turns heartbeats off (the raw websocket has none, §10);
    ``send_open`` False skips the ``o`` frame (same reason).
    """

    def __init__(
        self,
        *,
        now: float,
        disconnect_delay: float = DISCONNECT_DELAY,
        heartbeat_interval: float | None = HEARTBEAT_INTERVAL,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        send_open: bool = True,
    ) -> None:
        self.state = SessionState.OPEN
        self._disconnect_delay = disconnect_delay
        self._heartbeat_interval = heartbeat_interval
        self._max_queued_bytes = max_queued_bytes
        self._open_owed = send_open
        self._queue: list[str] = []
        self._queued_bytes = 0
        self._close: Frame | None = None
        self._receiver: object | None = None
        self._last_frame_at = now
        self._idle_since: float | None = now

    @property
    def is_open(self) -> bool:
        """True while the application may send and receive (OPEN)."""
        return self.state is SessionState.OPEN

    def attached(self, receiver: object) -> bool:
        """True while ``receiver`` is the attached receiver."""
        return receiver is not None and receiver is self._receiver

    # The application's side.

    @property
    def queue_full(self) -> bool:
        """True while the queued messages reach the byte limit: the application should wait for a
        receiver to take them, and close the session with :data:`QUEUE_OVERFLOW_CLOSE` if none
        does in time (its owner decides how long that is)."""
        return self._queued_bytes >= self._max_queued_bytes

    def enqueue(self, messages: Sequence[str]) -> bool:
        """Queue already-encoded JSON values for the client; False if the session is not open.

        Accepted even when :attr:`queue_full`: the limit is the caller's to respect, so that one
        batch is never split.
        """
        if not self.is_open:
            return False
        self._queue.extend(messages)
        self._queued_bytes += sum(len(message) for message in messages)
        return True

    def take_direct(self, receiver: object, messages: Sequence[str], now: float) -> Frame | None:
        """The ``a`` frame of ``messages`` for the attached ``receiver`` to write at once,
        bypassing the queue, when nothing is owed before them (OPEN, ``o`` delivered, nothing
        queued); None otherwise, and the caller queues them with :meth:`enqueue`.

        For a receiver that can write from the sender's task (a websocket whose socket is idle):
        a message then costs no queueing and no wake-up of the receiver's task.
        """
        if (
            receiver is not self._receiver
            or not self.is_open
            or self._open_owed
            or self._queue
            or not messages
        ):
            return None
        self._last_frame_at = now
        return Frame(messages=tuple(messages))

    def close(self, code: int, reason: str) -> None:
        """Close the session (F3): queued messages are still delivered, then ``c[code,"reason"]``.

        Does nothing once the session is closing or closed: the first close wins.
        """
        if self.is_open:
            self.state = SessionState.CLOSING
            self._close = close_frame(code, reason)

    # The receivers' side.

    def attach(self, receiver: object, now: float) -> Frame | None:
        """Attach ``receiver`` (any object that identifies it); None when attached.

        Otherwise returns the one frame to answer with and end at once, without attaching: the
        close frame of a CLOSED session (S5), or ``c[2010,...]`` when another receiver is
        attached (S3).
        """
        if self.state is SessionState.CLOSED:
            assert self._close is not None
            return self._close
        if self._receiver is not None:
            return close_frame(*ANOTHER_CONNECTION_CLOSE)
        self._receiver = receiver
        self._idle_since = None
        return None

    def detach(self, receiver: object, now: float, *, interrupted: bool = False) -> None:
        """Detach ``receiver``; from ``now`` on the session counts towards its expiry (S4).

        ``interrupted``: the receiver was aborted (the client closed its request, or a write
        failed) rather than having finished its response. An OPEN or CLOSING session then becomes
        CLOSED at once: what was queued is dropped and later receivers get
        ``c[1002,"Connection interrupted"]`` (or, if closing, the close frame it was closing
        with) (S6). A receiver that is not attached is ignored.
        """
        if receiver is not self._receiver:
            return
        self._receiver = None
        self._idle_since = now
        if interrupted:
            self.interrupt()

    def interrupt(self) -> None:
        """Close the session at once because what was sent to the client may not have reached it:
        an aborted receiver (see :meth:`detach`), or a frame taken after its receiver detached whose
        response then failed. Does nothing to a CLOSED session (S6)."""
        if self.state is SessionState.CLOSED:
            return
        if self._close is None:
            self._close = close_frame(*INTERRUPTED_CLOSE)
        self._queue.clear()
        self._queued_bytes = 0
        self.state = SessionState.CLOSED

    def take_frame(self, receiver: object, now: float) -> Frame | None:
        """The next frame for the attached ``receiver``, or None when nothing is due yet.

        In order: ``o`` if still owed, every queued message as one ``a`` frame (F2), the close
        frame once closing (which makes the session CLOSED), ``h`` when the heartbeat is due
        (:meth:`wake_at`). After a close frame the receiver should end its response and detach.
        """
        if receiver is not self._receiver:
            raise ValueError("take_frame() from a receiver that is not attached")
        frame: Frame | None = None
        if self._open_owed:
            self._open_owed = False
            frame = OPEN
        elif self._queue:
            messages = tuple(self._queue)
            frame = Frame(messages=messages)
            self._queue.clear()
            self._queued_bytes = 0
        elif self.state is SessionState.CLOSING:
            assert self._close is not None
            self.state = SessionState.CLOSED
            frame = self._close
        elif now >= self.wake_at():
            frame = HEARTBEAT
        if frame is not None:
            self._last_frame_at = now
        return frame

    def wake_at(self) -> float:
        """When the attached receiver should next call :meth:`take_frame` if nothing else
        happens: the heartbeat's due time (inf without heartbeats)."""
        if self._heartbeat_interval is None:
            return math.inf
        return self._last_frame_at + self._heartbeat_interval

    # The owner's side.

    def expires_at(self) -> float:
        """When the session is to be forgotten: ``disconnect_delay`` after its last receiver left;
        inf while one is attached (S4)."""
        if self._idle_since is None:
            return math.inf
        return self._idle_since + self._disconnect_delay

    def expired(self, now: float) -> bool:
        """True once :meth:`expires_at` has passed: the owner forgets the session (S4)."""
        return now >= self.expires_at()
