"""SockJS sessions on trio: the adapter around the sans-IO core, and the registry that owns them.

A :class:`SockJSSession` is what the application sees (:class:`~octotrio.sockjs.SockJSConnection`)
and what every transport attaches to as a receiver; the decisions (what frame is due, when the
session expires) are the core's, :class:`octotrio.sockjs.Session`. A session of the polling and
streaming transports outlives the HTTP requests that carry it, so it lives in the
:class:`SessionRegistry`'s nursery, found by its id (S1, U7); a websocket session lives as long as
its connection and is only registered so that shutdown can close it (S11).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Protocol

import trio

from octotrio.sockjs import (
    INTERRUPTED_CLOSE,
    QUEUE_OVERFLOW_CLOSE,
    ConnectionClosed,
    Frame,
    Session,
    SockJSApp,
    SockJSOptions,
)

logger = logging.getLogger(__name__)

INCOMING_MESSAGE_BUFFER = 16
"""Client messages queued for an application that is busy. When full, the transport stops
reading (websocket) or holds the ``xhr_send`` request, and TCP pushes back on the client; an
application must keep calling ``receive()`` (OctoPrint's clients send a few messages per session:
auth, subscribe, throttle)."""

SESSION_CLOSE_TIMEOUT = 2.0
"""Seconds a closed session gives its application to return and its client to answer the close
frame before both are dropped."""

MAX_SESSIONS = 1000
"""Polling and streaming sessions a server keeps at once. Each costs a task and up to
``max_queued_bytes``; a session nobody polls is forgotten after the disconnect delay, so this only
binds a client that opens sessions faster than they expire. New ones beyond it get 503."""

APP_RETURNED_CLOSE = (3000, "Go away!")  # the SockJS default close (F3)
APP_FAILED_CLOSE = (1011, "Internal error")


class DirectWriter(Protocol):
    """A receiver that can write a frame from the application's task, without waiting (a
    websocket): see :attr:`SockJSSession.direct`."""

    @property
    def receiver(self) -> object:
        """The receiver it writes for, as attached to the session."""
        ...

    def ready(self) -> bool:
        """True when :meth:`write_nowait` may be called now (no write under way)."""
        ...

    def write_nowait(self, frame: Frame) -> None:
        """Write ``frame`` at once; bytes the connection does not take at once, and a broken
        connection, are the receiver's task's to deal with (as for any frame it writes)."""
        ...


class SockJSSession:
    """One SockJS session on trio, whatever transport carries it; implements
    :class:`~octotrio.sockjs.SockJSConnection` for the application.

    ``framed`` False makes a raw websocket session (U5): no ``o``, no heartbeats.
    ``write_timeout`` is how long :meth:`send` waits for a receiver to take a full queue before the
    session closes with ``QUEUE_OVERFLOW_CLOSE`` (the same patience as a websocket write).
    """

    def __init__(
        self, remote_address: str, options: SockJSOptions, *, write_timeout: float, framed: bool = True
    ) -> None:
        self._remote_address = remote_address
        self._write_timeout = write_timeout
        self.core = Session(
            now=trio.current_time(),
            disconnect_delay=options.disconnect_delay,
            heartbeat_interval=options.heartbeat_interval if framed else None,
            max_queued_bytes=options.max_queued_bytes,
            send_open=framed,
        )
        """The sans-IO state; call :meth:`notify` after changing it from outside."""
        self._incoming_send, self._incoming = trio.open_memory_channel[str](INCOMING_MESSAGE_BUFFER)
        self._changed = trio.Event()
        self.app_done = trio.Event()
        """Set once the application has returned."""
        self.direct: DirectWriter | None = None
        """Set by a transport whose receiver can write from :meth:`send` itself: a batch sent
        while nothing is queued and its connection is idle is then written at once (one write, no
        wake-up of the transport's task: the path of nearly every push)."""

    @property
    def remote_address(self) -> str:
        return self._remote_address

    def notify(self) -> None:
        """Wake every task waiting on the core (receivers, senders, the expiry timer); once the
        session is not open, end the application's :meth:`receive` after what is queued."""
        self._changed.set()
        self._changed = trio.Event()
        if not self.core.is_open:
            self._incoming_send.close()

    def send_nowait(self, messages: Sequence[str]) -> bool:
        """Write ``messages`` at once if a :attr:`direct` writer is ready and nothing is queued,
        else queue them if the queue has room: True. False (nothing done) when the session is not
        open or its queue is full: :meth:`send` then waits or raises."""
        direct = self.direct
        if direct is not None and direct.ready():
            frame = self.core.take_direct(direct.receiver, messages, trio.current_time())
            if frame is not None:
                direct.write_nowait(frame)
                return True
        if not self.core.is_open or self.core.queue_full:
            return False
        self.core.enqueue(messages)
        self.notify()
        return True

    async def send(self, messages: Sequence[str]) -> None:
        """Send ``messages`` as :meth:`send_nowait` does; waits while the queue is full; if no
        receiver takes it within the write timeout, closes the session with
        ``QUEUE_OVERFLOW_CLOSE``. Cancellable (a checkpoint, though it yields only when it waits
        or is cancelled)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.send_nowait(messages):
            return
        if self.core.is_open and self.core.queue_full:
            # The deadline is armed only when the send has to wait: a timer per send would cost
            # every push of every session, and the queue is rarely full.
            await self._wait_for_room()
        if not self.core.enqueue(messages):
            raise ConnectionClosed
        self.notify()

    async def _wait_for_room(self) -> None:
        """Wait until a receiver takes the full queue; close the session with
        ``QUEUE_OVERFLOW_CLOSE`` if none does within the write timeout. Cancellable."""
        with trio.move_on_after(self._write_timeout) as waiting:
            while self.core.is_open and self.core.queue_full:
                await self._changed.wait()
        if waiting.cancelled_caught:
            logger.warning(
                "closing the SockJS session of %s: it does not take its messages", self._remote_address
            )
            await self.close(*QUEUE_OVERFLOW_CLOSE)

    async def receive(self) -> str:
        try:
            return await self._incoming.receive()
        except trio.EndOfChannel:
            raise ConnectionClosed from None

    async def close(self, code: int, reason: str) -> None:
        """Close the session; the attached receiver (or the next one) delivers the close frame.
        Returns at once."""
        self.core.close(code, reason)
        self.notify()

    async def deliver(self, messages: Sequence[str]) -> None:
        """Hand messages from the client to the application, in order; waits while its buffer is
        full. Messages for a session that is no longer open are dropped. Cancellable."""
        for message in messages:
            try:
                await self._incoming_send.send(message)
            except trio.ClosedResourceError:
                return

    async def next_frame(self, receiver: object) -> Frame | None:
        """Wait for the next frame due to ``receiver`` (queued messages, the close frame, a
        heartbeat) and take it; None once ``receiver`` is no longer attached. Cancellable."""
        while self.core.attached(receiver):
            frame = self.take_frame(receiver)
            if frame is not None:
                return frame
            await self.wait_for_change()
        return None

    def take_frame(self, receiver: object) -> Frame | None:
        """The frame due to the attached ``receiver`` now, if any (:meth:`Session.take_frame
        <octotrio.sockjs.Session.take_frame>`)."""
        frame = self.core.take_frame(receiver, trio.current_time())
        if frame is not None:
            self.notify()  # the queue has room again
        return frame

    async def wait_for_change(self) -> None:
        """Wait until the session changes (:meth:`notify`) or a heartbeat is due. Cancellable."""
        with trio.move_on_at(self.core.wake_at()):
            await self._changed.wait()

    def detach(self, receiver: object, *, interrupted: bool) -> None:
        """Detach ``receiver`` (see :meth:`octotrio.sockjs.Session.detach`)."""
        self.core.detach(receiver, trio.current_time(), interrupted=interrupted)
        self.notify()

    def interrupt(self) -> None:
        """Close the session because a frame taken for the client did not reach it (S6)."""
        self.core.interrupt()
        self.notify()

    async def run_app(self, app: SockJSApp) -> None:
        """Run ``app`` over this session; close the session when it returns (3000) or fails
        (1011, logged). Cancellation cancels the application."""
        code, reason = APP_RETURNED_CLOSE
        try:
            await app(self)
        except* ConnectionClosed:
            pass  # the session ended under the application: nothing to report
        except* Exception:
            logger.exception("SockJS application failed (client %s)", self._remote_address)
            code, reason = APP_FAILED_CLOSE
        finally:
            self.app_done.set()
        await self.close(code, reason)

    async def run_until_expired(self, app: SockJSApp) -> None:
        """Run ``app`` and keep the session until it expires: no receiver for the disconnect
        delay (S4). A session still open then is closed and its application cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.run_app, app)
            while not self.core.expired(trio.current_time()):
                with trio.move_on_at(self.core.expires_at()):
                    await self._changed.wait()
            await self.close(*INTERRUPTED_CLOSE)  # for the application: the client is gone
            nursery.cancel_scope.cancel()


class SessionRegistry:
    """The live SockJS sessions of a server: polled ones by endpoint and id, in a nursery of
    their own; websocket ones only so that shutdown can close them.

    Start it with ``await nursery.start(registry.run)`` before serving requests.
    """

    def __init__(self, *, max_sessions: int = MAX_SESSIONS) -> None:
        self._max_sessions = max_sessions
        self._sessions: set[SockJSSession] = set()
        self._by_id: dict[tuple[str, str], SockJSSession] = {}
        self._nursery: trio.Nursery | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the polled sessions' tasks until cancelled; cancellation cancels them all."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def find(self, endpoint: str, session_id: str) -> SockJSSession | None:
        """The polled session ``session_id`` of the endpoint at ``endpoint`` (its prefix)."""
        return self._by_id.get((endpoint, session_id))

    def open(
        self,
        endpoint: str,
        session_id: str,
        app: SockJSApp,
        options: SockJSOptions,
        *,
        remote_address: str,
        write_timeout: float,
    ) -> SockJSSession | None:
        """Create the polled session ``session_id`` and start ``app`` on it (S1); None when
        :data:`MAX_SESSIONS` are live already."""
        if self._nursery is None:
            raise RuntimeError("SessionRegistry.run() is not running")
        if len(self._by_id) >= self._max_sessions:
            return None
        session = SockJSSession(remote_address, options, write_timeout=write_timeout)
        key = (endpoint, session_id)
        self._by_id[key] = session
        self._sessions.add(session)
        self._nursery.start_soon(self._run_polled, key, session, app)
        return session

    async def _run_polled(self, key: tuple[str, str], session: SockJSSession, app: SockJSApp) -> None:
        try:
            await session.run_until_expired(app)
        finally:
            del self._by_id[key]
            self._sessions.discard(session)

    @contextlib.contextmanager
    def register(self, session: SockJSSession) -> Iterator[None]:
        """Keep ``session`` (a websocket's) in the registry for the duration of the block."""
        self._sessions.add(session)
        try:
            yield
        finally:
            self._sessions.discard(session)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every live session: receivers deliver the close frames and end their
        responses; later requests get the close frame too (S5)."""
        for session in list(self._sessions):
            await session.close(code, reason)
