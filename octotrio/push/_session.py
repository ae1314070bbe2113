"""One push session: what a single client sees of the printer, given who it is and what it asked for.

Lifecycle (octoprint-push.md §2): ``connected`` at once; ``ClientOpened`` for the other sockets;
then, when the socket's user holds STATUS (an anonymous socket holds the guests group's
permissions, none by default), registration: ``history`` and ``timelapse``, then ``event``,
``plugin`` and ``current`` messages. Until then, broadcasts wait in a bounded backlog (100, as
OctoPrint) that is delivered in order at ``auth``, before ``history``.

Two tasks run per session: the receive loop applies client messages to the session's state
synchronously; the push loop is the only writer, so everything reaches the client in the order
it was decided; the hub wakes it directly (one wake-up per session and tick). It drains
everything pending in one pass and hands the transport one batch, so a burst of events (a storm
of clients connecting) costs each session one wake-up and one write. Per-session work stays small:
broadcasts are encoded once by the hub, and a session only re-encodes when its permissions
(stripped ``ClientOpened``/``ClientAuthed`` payloads) or a regular-expression filter require it.
"""

from __future__ import annotations

import logging
from collections import deque

import trio

from octotrio.auth import AccessControl, Principal
from octotrio.sockjs import ConnectionClosed, SharedMessage, SockJSConnection
from octotrio.state import SessionView, StateHub
from octotrio.state._hub import Broadcast

from ._client_messages import Auth, ClientMessage, Ignored, SetThrottle, Subscribe, parse_client_message
from ._messages import ServerInfo, encode_current, encode_history, encode_message, reauth_required
from ._ratelimit import LogLimiter, PushRateLimiter
from ._subscription import DEFAULT_SUBSCRIPTION, Subscription

log = logging.getLogger(__name__)

CLOSE_EVENTS_LOST = 4001
"""Close code for a client that fell so far behind that events it had not received were
dropped from the hub's bounded journal. Events cannot be re-derived, so rather than lose them
silently the session ends; the client reconnects and gets a fresh ``history``."""

BACKLOG_LIMIT = 100
"""Broadcasts kept for a socket that may not see them yet (OctoPrint's unauthed backlog, §5.2).
octotrio keeps the newest 100 (OctoPrint keeps the first 100): ``history`` follows the backlog
and gives the state anyway, so the latest events are the ones worth keeping."""

OUTBOX_LIMIT = 64
"""Answers to client messages (``reauthRequired``, ``history``) waiting for the push loop. When
full, the receive loop stops reading until they are sent, so a client that floods ``auth``
without reading pushes back on its own TCP connection instead of growing memory."""

ADMIN_ONLY_EVENTS = frozenset({"UserLoggedIn", "UserLoggedOut"})
"""Dropped (not backlogged) for sockets without ADMIN (§5.3)."""

STRIPPED_EVENTS = {
    name: SharedMessage(encode_message("event", {"type": name, "payload": {}}))
    for name in ("ClientOpened", "ClientAuthed")
}
"""Payloads replaced by ``{}`` for sockets without ADMIN (§5.3), encoded once."""


class PushSession:
    """The state of one client's session; the push loop is its only writer."""

    def __init__(
        self, connection: SockJSConnection, hub: StateHub, server: ServerInfo, access: AccessControl
    ) -> None:
        self.connection = connection
        self.hub = hub
        self.server = server
        self.access = access
        self.principal: Principal = access.guest
        self.token: str | None = None
        self.registered = False
        self.history_sent = False
        self.subscription: Subscription = DEFAULT_SUBSCRIPTION
        self.limiter = PushRateLimiter()
        self.log_limiter = LogLimiter()
        self.backlog: deque[Broadcast] = deque(maxlen=BACKLOG_LIMIT)
        self.backlog_dropped = 0
        self.events_lost = 0
        self.outbox: list[str] = []
        self.view: SessionView = hub.open_view()[1]
        self.identity = object()
        """The ``origin`` of this session's own broadcasts, which it must not get (§2.1). Not the
        session itself: the events journal outlives it, and would keep a session whose client
        left (and what it had queued) in memory until 16384 more events were published."""
        self._wake = trio.Event()
        self._pending: list[str] = []
        """A batch :meth:`serve_nowait` took but could not send without waiting: the loop's."""
        self._drained = trio.Event()
        self._held_queued = 0
        """Outbox entries that may wait for company: non-urgent broadcasts. Every client's connect,
        login and disconnect (``ClientOpened``, ``ClientAuthed``, ``ClientClosed``) is an event for
        every other session, N² of them for N clients; they wait up to the hub's
        ``HOLD_RELEASE_INTERVAL`` (0.5 s) unless something else is sent first, which takes them
        along, in order. While the printer is busy they ride along with the next ``current`` at no
        extra write, and a storm of a thousand connects costs an idle session two writes a second.
        No client acts on them within half a second."""
        self._held_since = 0
        """The hub's release count when the first of them was published: they are due after it."""

    # -- decisions (synchronous) -------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        return self.token is not None

    def _notify(self) -> None:
        self._wake.set()

    def route(self, item: Broadcast) -> None:
        """Deliver one broadcast to the outbox, keep it in the backlog, or drop it (§5)."""
        principal = self.principal
        if item.origin is self.identity:
            return
        if item.kind == "event" and item.name in ADMIN_ONLY_EVENTS and not principal.has("ADMIN"):
            return
        if not principal.has("STATUS"):
            if not self.authenticated:
                if len(self.backlog) == BACKLOG_LIMIT:
                    self.backlog_dropped += 1
                self.backlog.append(item)
            return
        encoded = item.encoded
        if item.kind == "event":
            if not self.subscription.wants_event(item.name):
                return
            if item.name in STRIPPED_EVENTS and not principal.has("ADMIN"):
                encoded = STRIPPED_EVENTS[item.name]
        elif item.kind == "plugin" and not self.subscription.wants_plugin(item.name):
            return
        if item.release is not None:
            if not self._held_queued:
                self._held_since = item.release
            self._held_queued += 1
        self.outbox.append(encoded)

    def take_broadcasts(self) -> None:
        """Route every broadcast since the last call; count those lost by falling behind."""
        if not self.view.has_broadcasts():
            return  # the usual case at a tick: nothing to read
        items, lost = self.view.take_broadcasts()
        self.events_lost += lost
        for item in items:
            self.route(item)

    def register(self) -> None:
        """Registration and (re)start of state delivery: ``history`` if ``state`` is subscribed,
        then ``timelapse`` the first time (§2.1). Cursors restart at the history's instant, so
        ``history`` and the next ``current`` neither overlap nor leave a gap (fixes Q6)."""
        if self.subscription.state:
            history, fresh = self.hub.open_view()
            view = self.view
            view.tick_number, view.temps_seq = fresh.tick_number, fresh.temps_seq
            view.logs_seq, view.messages_seq = fresh.logs_seq, fresh.messages_seq
            self.outbox.append(
                encode_history(
                    history,
                    self.hub.wall_clock(),
                    terminal=self.principal.has("MONITOR_TERMINAL"),
                    logs=self.subscription.logs,
                    messages=self.subscription.messages,
                )
            )
            self.history_sent = True
        if not self.registered:
            self.registered = True
            self.outbox.append(encode_message("timelapse", None))

    def log_ignored(self, reason: str) -> None:
        allowed, suppressed = self.log_limiter.allow(trio.current_time())
        if suppressed:
            log.info("%d more ignored messages from %s", suppressed, self.connection.remote_address)
        if allowed:
            log.info("ignored a message from %s: %s", self.connection.remote_address, reason)

    def apply(self, message: ClientMessage) -> None:
        """Apply one client message (§4); answers go to the outbox."""
        match message:
            case SetThrottle(factor=factor):
                self.limiter.throttle = factor
            case Auth(user=user, session=token):
                self._authenticate(user, token)
            case Subscribe(subscription=subscription):
                self._subscribe(subscription)
            case Ignored(reason=reason):
                self.log_ignored(reason)

    def _authenticate(self, user: str, token: str) -> None:
        # Route what arrived so far under the old identity first: the order the client sees is
        # backlog → history → what comes after the auth (§2.2).
        self.take_broadcasts()
        now = trio.current_time()
        self.detach(now)
        principal = self.access.attach_socket(token, self.on_reauth_required, now)
        if principal is None or principal.name != user:
            if principal is not None:
                self.access.detach_socket(token, self.on_reauth_required, now)
            self._log_out()
            self.outbox.append(reauth_required("stale"))
            return
        self.principal, self.token = principal, token
        backlog, self.backlog = list(self.backlog), deque(maxlen=BACKLOG_LIMIT)
        if self.backlog_dropped:
            log.info("%s: %d backlogged messages were dropped before auth", user, self.backlog_dropped)
            self.backlog_dropped = 0
        for item in backlog:
            self.route(item)
        if principal.has("STATUS") and not self.history_sent:
            self.register()
        self.hub.publish_event(
            "ClientAuthed",
            {"username": user, "remoteAddress": self.connection.remote_address},
            origin=self.identity,
            urgent=False,  # may wait for company (PushSession._held_queued)
        )

    def _subscribe(self, subscription: Subscription) -> None:
        old = self.subscription
        self.subscription = subscription
        if not subscription.state:
            self.history_sent = False  # current stops until a new history (§4.3)
        elif (
            self.registered
            and self.principal.has("STATUS")
            and (not self.history_sent or subscription.state_key() != old.state_key())
        ):
            self.take_broadcasts()
            self.register()

    def detach(self, now: float) -> None:
        if self.token is not None:
            self.access.detach_socket(self.token, self.on_reauth_required, now)

    def _log_out(self) -> None:
        self.principal, self.token = self.access.guest, None
        if not self.principal.has("STATUS"):
            self.history_sent = False

    def on_reauth_required(self, reason: str) -> None:
        """The socket's login session ended (``logout``): back to the guests' permissions (§2.4)."""
        self.take_broadcasts()
        self._log_out()
        self.outbox.append(reauth_required(reason))
        self._notify()

    def may_send_current(self) -> bool:
        return self.history_sent and self.subscription.state and self.principal.has("STATUS")

    def take_current(self, now: float) -> str:
        """The ``current`` of the latest tick for this session, sent at ``now``.

        Sent on time (:meth:`PushRateLimiter.record_send`) by a session in step with the tick
        (nearly all of them, nearly always), it is the same for every session of the same
        variant, so it is encoded once per tick and variant and shared (:class:`Tick`), as a
        :class:`SharedMessage` that the transport frames once too; its ``serverTime`` is the
        tick's. A tick held back, a session that just got its ``history`` or fell behind, and
        regular-expression filters get their own, as before.
        """
        view, subscription = self.view, self.subscription
        tick = self.hub.tick
        in_step = view.in_step(tick)
        on_time = self.limiter.record_send(now, tick.published_at)
        terminal = self.principal.has("MONITOR_TERMINAL")
        logs, messages = subscription.logs, subscription.messages
        variant = (
            (terminal, logs, messages) if isinstance(logs, bool) and isinstance(messages, bool) else None
        )
        shareable = in_step and on_time and variant is not None
        if shareable and (shared := tick.shared.get(variant)) is not None:
            view.skip_tick()
            return shared
        tick, accumulated = view.take_tick()
        server_time = tick.server_time if on_time else self.hub.wall_clock()
        encoded = encode_current(
            tick, accumulated, server_time, terminal=terminal, logs=logs, messages=messages
        )
        if shareable:
            encoded = tick.shared[variant] = SharedMessage(encoded)
        return encoded

    def outbox_due(self) -> bool:
        """True when the outbox should be written now: it holds anything but held broadcasts, or
        the hub released them since the first of them was published."""
        if len(self.outbox) > self._held_queued:
            return True
        return bool(self.outbox) and self.hub.releases > self._held_since

    # -- tasks ---------------------------------------------------------------------------------

    async def receive_loop(self) -> None:
        while True:
            text = await self.connection.receive()
            self.apply(parse_client_message(text))
            self._notify()
            while len(self.outbox) >= OUTBOX_LIMIT:
                self._drained = trio.Event()
                await self._drained.wait()

    async def push_loop(self) -> None:
        """Send events at once (client lifecycle events at the hub's next release) and ``current`` when
        the rate limiter allows, everything pending in one batch; return if events were lost.

        While it waits, the hub may do its next round right where news is published
        (:meth:`serve_nowait`); it registers for that only when idle, so the two never overlap.
        """
        while True:
            self._wake = trio.Event()  # reset before looking, so no wake-up is missed
            self.hub.wake_on_change(self, self._wake)
            if self._pending:
                batch, self._pending = self._pending, []
                await self.connection.send(batch)
                continue
            self.take_broadcasts()
            if self.events_lost:
                address, lost = self.connection.remote_address, self.events_lost
                log.warning("closing %s: it fell %d events behind", address, lost)
                await self.connection.close(CLOSE_EVENTS_LOST, "Client fell behind, events were lost")
                return
            batch = self.take_batch(trio.current_time())
            if batch:
                await self.connection.send(batch)
                continue
            self.hub.wake_on_change(self, self._wake, self.serve_nowait)
            if not (self.may_send_current() and self.view.has_new_tick()):
                await self._wake.wait()  # no timer to arm: the common case
                continue
            # A tick held back (latest wins): wake at the limiter's deadline at the latest.
            with trio.move_on_at(self.limiter.earliest_send()):
                await self._wake.wait()

    def take_batch(self, now: float) -> list[str]:
        """Take what is due at ``now``, in order: the outbox (when due, and always along with a
        ``current``), then the ``current`` if one is due and the rate limiter allows it."""
        current_due = self.may_send_current() and self.view.has_new_tick() and self.limiter.may_send(now)
        batch: list[str] = []
        if current_due or self.outbox_due():
            batch, self.outbox = self.outbox, []
            self._held_queued = 0
            self._drained.set()
        if current_due:
            batch.append(self.take_current(now))
        return batch

    def serve_nowait(self) -> bool:
        """One round of the push loop, done by the hub where it publishes news while the loop is
        idle (``StateHub.wake_on_change``): at a tick, thousands of sessions get their
        ``current`` in one pass, without a task switch each.

        True if what was due went out without waiting (registered again for the next news);
        False to have the loop woken instead: nothing was due (the loop may need a timer), events
        were lost, or the connection would wait, and then the batch already taken is left in
        ``_pending``, which the loop sends before anything else.
        """
        self.take_broadcasts()
        if self.events_lost:
            return False
        batch = self.take_batch(trio.current_time())
        if not batch:
            return False
        if not self.connection.send_nowait(batch):
            self._pending = batch
            return False
        self.hub.wake_on_change(self, self._wake, self.serve_nowait)
        return True


async def serve_push_session(
    connection: SockJSConnection, *, hub: StateHub, server: ServerInfo, access: AccessControl
) -> None:
    """Run the push API for one client until it leaves or the server closes the session.

    Returns normally when the connection closes (:class:`ConnectionClosed` is the normal end).
    On cancellation every loop stops at once; ``ClientClosed`` is still published and the login
    session released (both synchronous). The SockJS layer owns closing the connection.
    """
    session = PushSession(connection, hub, server, access)
    address = connection.remote_address
    try:
        await connection.send([server.connected_message])
        hub.publish_event("ClientOpened", {"remoteAddress": address}, origin=session.identity, urgent=False)
        if session.principal.has("STATUS"):
            session.register()  # guests hold STATUS: registered without auth (§2.1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.receive_loop)
            await session.push_loop()
            nursery.cancel_scope.cancel()
    except* ConnectionClosed:
        log.debug("push session with %s ended", address)
    finally:
        session.detach(trio.current_time())
        hub.forget(session)
        hub.publish_event("ClientClosed", {"remoteAddress": address}, origin=session.identity, urgent=False)
