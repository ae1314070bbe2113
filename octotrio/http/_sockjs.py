"""The SockJS endpoint over HTTP: greeting, ``/info``, and the websocket transports.

Framing comes from the sans-IO core :mod:`octotrio.sockjs`; this module is the adapter that puts it
on the wire and implements :class:`~octotrio.sockjs.SockJSConnection` per session. The polling and
streaming transports (xhr, eventsource, ...) will join here; they need sessions that outlive one
request (S4-S6), which a websocket session does not (S11).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from email.utils import formatdate

import trio

from octotrio.sockjs import (
    HEARTBEAT_FRAME,
    MAX_CLIENT_FRAME_BYTES,
    OPEN_FRAME,
    BrokenFraming,
    ConnectionClosed,
    SockJSApp,
    SockJSConnection,
    decode_client_frame,
    encode_close,
    encode_messages,
)

from ._exchange import HttpExchange
from ._router import Router
from ._websocket import WebSocket, WebSocketClosed

logger = logging.getLogger(__name__)

GREETING = b"Welcome to SockJS!\n"
"""U1: the exact body of ``GET <prefix>`` and ``GET <prefix>/``."""

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
"""H1: the exact Cache-Control of ``/info`` and the HTTP transports."""

CACHE_FOREVER_SECONDS = 31_536_000
"""H2/I5: one year, for OPTIONS answers (and, later, the iframe page)."""

INCOMING_MESSAGE_BUFFER = 16
"""Client messages queued for an application that is busy. When full, the session stops
reading its socket and TCP pushes back on the client; an application must keep calling
``receive()`` (OctoPrint's clients send a few messages per session: auth, subscribe, throttle)."""

SESSION_CLOSE_TIMEOUT = 2.0
"""Seconds a closed session gives its application to return and its client to answer the close
frame before both are dropped."""

CLEANUP_TIMEOUT = 0.5
"""Seconds the shielded cleanup of a cancelled session may take to say goodbye and close."""

SHUTDOWN_CLOSE = (1001, "Server shutting down")
APP_RETURNED_CLOSE = (3000, "Go away!")  # the SockJS default close (F3)
APP_FAILED_CLOSE = (1011, "Internal error")
BROKEN_FRAMING_CLOSE = (3000, "Broken framing.")  # W4, as sockjs-node


class SessionRegistry:
    """The live SockJS sessions of a server, so that shutdown can close each of them."""

    def __init__(self) -> None:
        self._sessions: set[SockJSConnection] = set()

    def __len__(self) -> int:
        return len(self._sessions)

    @contextlib.contextmanager
    def register(self, session: SockJSConnection) -> Iterator[None]:
        """Keep ``session`` in the registry for the duration of the ``with`` block."""
        self._sessions.add(session)
        try:
            yield
        finally:
            self._sessions.discard(session)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every live session concurrently; returns when every close frame went out (or its
        client was dropped). Each close is bounded by the write timeout."""
        async with trio.open_nursery() as nursery:
            for session in list(self._sessions):
                nursery.start_soon(session.close, code, reason)


class WebSocketSession:
    """One SockJS session carried by one websocket: framed (``o``, ``a[...]``, ``h``,
    ``c[...]``) or raw (one text message per application message, no heartbeat, U5/R1).

    Implements :class:`~octotrio.sockjs.SockJSConnection`. A websocket session lives exactly as
    long as its connection, so it needs no lookup by id (S11).
    """

    def __init__(self, websocket: WebSocket, remote_address: str, *, framed: bool) -> None:
        self._websocket = websocket
        self._remote_address = remote_address
        self._framed = framed
        self._incoming_send, self._incoming = trio.open_memory_channel[str](INCOMING_MESSAGE_BUFFER)
        self._closed = trio.Event()
        self._app_done = trio.Event()
        self._reader_done = trio.Event()

    @property
    def remote_address(self) -> str:
        return self._remote_address

    def _mark_closed(self) -> None:
        self._closed.set()
        # Messages already queued are still delivered; then receive() raises ConnectionClosed.
        self._incoming_send.close()

    async def send(self, messages: Sequence[str]) -> None:
        if self._closed.is_set():
            raise ConnectionClosed
        try:
            if self._framed:
                await self._websocket.send_text(encode_messages(messages))
            else:
                for message in messages:
                    await self._websocket.send_text(message)
        except WebSocketClosed as exc:
            self._mark_closed()
            raise ConnectionClosed from exc

    async def receive(self) -> str:
        try:
            return await self._incoming.receive()
        except trio.EndOfChannel:
            raise ConnectionClosed from None

    async def close(self, code: int, reason: str) -> None:
        if self._closed.is_set():
            return
        self._mark_closed()
        if self._framed:
            with contextlib.suppress(WebSocketClosed):
                await self._websocket.send_text(encode_close(code, reason))  # F3
        await self._websocket.close(code, reason)  # R2: the raw endpoint gets code and reason too

    async def serve(self, app: SockJSApp, *, heartbeat_interval: float) -> None:
        """Run ``app`` over this session, with the reader and (framed) the heartbeat beside it.

        Returns once the session is closed and both the application and the closing handshake
        are over, or :data:`SESSION_CLOSE_TIMEOUT` after the close, cancelling what is left.
        Cancellation cancels the application; the caller says goodbye to the client.
        """
        if self._framed:
            try:
                await self._websocket.send_text(OPEN_FRAME)  # F1, S1
            except WebSocketClosed:
                return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_messages)
            if self._framed:
                nursery.start_soon(self._send_heartbeats, heartbeat_interval)
            nursery.start_soon(self._run_app, app)
            await self._closed.wait()
            with trio.move_on_after(SESSION_CLOSE_TIMEOUT):
                await self._app_done.wait()
                await self._reader_done.wait()
            nursery.cancel_scope.cancel()

    async def _run_app(self, app: SockJSApp) -> None:
        code, reason = APP_RETURNED_CLOSE
        try:
            await app(self)
        except* ConnectionClosed:
            pass  # the session ended under the application: nothing to report
        except* Exception:
            logger.exception("SockJS application failed (client %s)", self._remote_address)
            code, reason = APP_FAILED_CLOSE
        self._app_done.set()
        await self.close(code, reason)

    async def _read_messages(self) -> None:
        try:
            while True:
                text = await self._websocket.receive_message()
                if self._closed.is_set():
                    continue  # closing: read on only to see the client's close frame
                if not self._framed:
                    messages = [text]  # R1
                else:
                    try:
                        # F7: an empty message decodes to nothing; [] too.
                        messages = decode_client_frame(text)
                    except BrokenFraming:
                        await self.close(*BROKEN_FRAMING_CLOSE)
                        continue
                for message in messages:
                    try:
                        await self._incoming_send.send(message)
                    except trio.ClosedResourceError:
                        break  # the session closed while the application was not receiving
        except WebSocketClosed:
            self._mark_closed()
        finally:
            self._reader_done.set()

    async def _send_heartbeats(self, interval: float) -> None:
        # S9: plain ``h`` frames; sockjs-client resets its timers on any frame.
        while True:
            await trio.sleep(interval)
            if self._closed.is_set():
                return
            try:
                await self._websocket.send_text(HEARTBEAT_FRAME)
            except WebSocketClosed:
                return


class SockJSEndpoint:
    """The SockJS routes under one prefix, serving one application.

    ``heartbeat_interval`` is the seconds between ``h`` frames (S9, 25 in OctoPrint);
    ``max_message_bytes`` bounds one incoming websocket message (larger ones close with 1009).
    """

    def __init__(
        self,
        app: SockJSApp,
        sessions: SessionRegistry,
        *,
        heartbeat_interval: float,
        max_message_bytes: int = MAX_CLIENT_FRAME_BYTES,
    ) -> None:
        self._app = app
        self._sessions = sessions
        self._heartbeat_interval = heartbeat_interval
        self._max_message_bytes = max_message_bytes

    def add_routes(self, router: Router, prefix: str) -> None:
        """Route ``prefix`` (``/sockjs``: starts with ``/``, does not end with one) to SockJS."""
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"SockJS prefix must start and not end with '/': {prefix!r}")
        base = re.escape(prefix)
        router.add(f"{base}/?", {"GET": self._greet})  # U1
        router.add(f"{base}/info", {"GET": self._info, "OPTIONS": self._info_options})  # U3
        router.add(f"{base}/websocket", {"GET": self._serve_raw_websocket})  # U5
        # U4/U6: <server> and <session> are non-empty and hold neither '/' nor '.'; U7/U8: the
        # server does not need either of them on a websocket (S11).
        router.add(f"{base}/[^/.]+/[^/.]+/websocket", {"GET": self._serve_framed_websocket})

    async def _greet(self, exchange: HttpExchange) -> None:
        await exchange.respond(200, [("Content-Type", "text/plain; charset=UTF-8")], GREETING)

    async def _info(self, exchange: HttpExchange) -> None:
        body = {
            "websocket": True,
            "cookie_needed": False,
            "origins": ["*:*"],
            "entropy": secrets.randbelow(2**32),  # I2: from a good RNG, new on every call
        }
        headers = [
            ("Content-Type", "application/json; charset=UTF-8"),
            ("Cache-Control", NO_CACHE),  # H1; I1: and never Set-Cookie
            *_cors_headers(exchange),
        ]
        await exchange.respond(200, headers, json.dumps(body, separators=(",", ":")).encode("ascii"))

    async def _info_options(self, exchange: HttpExchange) -> None:
        # I5: 204, cache forever (H2), the methods /info answers, CORS with the preflight echo (C3).
        headers = [
            ("Cache-Control", f"public, max-age={CACHE_FOREVER_SECONDS}"),
            ("Expires", formatdate(time.time() + CACHE_FOREVER_SECONDS, usegmt=True)),
            ("Access-Control-Max-Age", str(CACHE_FOREVER_SECONDS)),
            ("Access-Control-Allow-Methods", "OPTIONS, GET"),
            *_cors_headers(exchange),
        ]
        requested_headers = exchange.request.header("access-control-request-headers")
        if requested_headers:
            headers.append(("Access-Control-Allow-Headers", requested_headers))
        await exchange.respond(204, headers)

    async def _serve_framed_websocket(self, exchange: HttpExchange) -> None:
        await self._serve_websocket(exchange, framed=True)

    async def _serve_raw_websocket(self, exchange: HttpExchange) -> None:
        await self._serve_websocket(exchange, framed=False)

    async def _serve_websocket(self, exchange: HttpExchange, *, framed: bool) -> None:
        websocket = await exchange.accept_websocket(max_message_bytes=self._max_message_bytes)
        if websocket is None:
            return  # refused with 400/426 (W1)
        session = WebSocketSession(websocket, exchange.remote_address, framed=framed)
        try:
            with self._sessions.register(session):
                await session.serve(self._app, heartbeat_interval=self._heartbeat_interval)
        finally:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + CLEANUP_TIMEOUT):
                # A no-op after a normal end; after a cancellation (the server is going away
                # without shutdown()) or a failure here, the client still gets a close frame.
                await session.close(*SHUTDOWN_CLOSE)
                await websocket.aclose()


def _cors_headers(exchange: HttpExchange) -> list[tuple[str, str]]:
    origin = exchange.request.header("origin")
    if origin is None:
        return [("Access-Control-Allow-Origin", "*"), ("Vary", "Origin")]  # C2, C4
    # C1/C5: echo the origin, the literal "null" included, and allow credentials.
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ]
