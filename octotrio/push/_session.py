"""One push session: what a single client sees of the printer.

The session sends ``connected``, then ``history`` and ``timelapse``, then ``event`` messages
as they happen and ``current`` at most once every 0.5 s × throttle, carrying what accumulated
since this client's previous ``current``. It runs two loops under one nursery: one reads
client messages (``throttle``, ``auth``, ``subscribe``), one pushes updates. Either ending
ends the session.
"""

from __future__ import annotations

import logging

import trio

from octotrio.sockjs import ConnectionClosed, SockJSConnection
from octotrio.state import SessionView, StateHub

from ._client_messages import Ignored, SetThrottle, parse_client_message
from ._messages import ServerInfo, encode_current, encode_message
from ._ratelimit import PushRateLimiter

log = logging.getLogger(__name__)

CLOSE_EVENTS_LOST = 4001
"""Close code for a client that fell so far behind that events it had not received were
dropped from the hub's bounded journal. Events cannot be re-derived, so rather than lose them
silently the session ends; the client reconnects and gets a fresh ``history``."""


async def serve_push_session(connection: SockJSConnection, *, hub: StateHub, server: ServerInfo) -> None:
    """Run the push API for one client until it leaves or the server closes the session.

    Returns normally when the connection closes (:class:`ConnectionClosed` is the normal end).
    On cancellation both loops stop at once; the SockJS layer owns closing the connection.
    """
    limiter = PushRateLimiter()
    try:
        await connection.send([encode_message("connected", server.connected_payload())])
        history, view = hub.open_view()
        await connection.send([encode_message("history", history), encode_message("timelapse", None)])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive_client_messages, connection, limiter)
            await _push_updates(connection, view, limiter)
            nursery.cancel_scope.cancel()
    except* ConnectionClosed:
        log.debug("push session with %s ended", connection.remote_address)


async def _receive_client_messages(connection: SockJSConnection, limiter: PushRateLimiter) -> None:
    while True:
        text = await connection.receive()
        match parse_client_message(text):
            case SetThrottle(factor=factor):
                limiter.throttle = factor
            case Ignored(reason=reason):
                log.info("ignored a message from %s: %s", connection.remote_address, reason)
            case _:
                # auth and subscribe are accepted; every client counts as authorised until the
                # push API issue adds users, permissions and subscriptions.
                pass


async def _push_updates(connection: SockJSConnection, view: SessionView, limiter: PushRateLimiter) -> None:
    """Send events at once and ``current`` when the rate limiter allows; return if events were lost."""
    hub = view.hub
    while True:
        changed = hub.changed  # taken before looking, so no wake-up is missed
        batch, lost = view.take_events()
        if lost:
            log.warning("closing %s: it fell %d events behind", connection.remote_address, lost)
            await connection.close(CLOSE_EVENTS_LOST, "Client fell behind, events were lost")
            return
        now = trio.current_time()
        due = view.has_new_tick() and limiter.may_send(now)
        if due:
            tick, accumulated = view.take_tick()
            limiter.record_send(now)
            batch.append(encode_current(tick, accumulated, hub.wall_clock()))
        if batch:
            await connection.send(batch)
            continue
        # Held back (latest wins): wake at the limiter's deadline if a tick is waiting.
        deadline = limiter.earliest_send() if view.has_new_tick() else float("inf")
        with trio.move_on_at(deadline):
            await changed.wait()
