"""The SockJS endpoint over HTTP: every URL of sockjs-protocol.md under one prefix.

Framing, transport encodings and the session state machine are the sans-IO cores of
:mod:`octotrio.sockjs`; sessions on trio are :mod:`octotrio.http._sessions`. This module is the
thin layer between them and the wire: each transport is a handler that attaches a receiver to a
session, writes the frames the session hands it in its own encoding, and detaches.

| URL under the prefix | handler |
| --- | --- |
| ``""``, ``/`` | greeting (U1) |
| ``/info`` | :meth:`SockJSEndpoint._info`, OPTIONS too (§4) |
| ``/iframe.html``, ``/iframe-<v>.html`` | the iframe page (H3, H4) |
| ``/websocket`` | raw websocket (U5, §10) |
| ``/<server>/<session>/websocket`` | SockJS websocket |
| ``/<server>/<session>/{xhr,xhr_streaming,eventsource,htmlfile,jsonp}`` | receiving transports |
| ``/<server>/<session>/{xhr_send,jsonp_send}`` | sending transports |
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from functools import partial
from urllib.parse import parse_qs

import trio

from octotrio.sockjs import (
    EVENTSOURCE_PRELUDE,
    XHR_STREAMING_PRELUDE,
    BrokenFraming,
    Frame,
    NotAnArray,
    SockJSApp,
    SockJSOptions,
    decode_client_frame,
    encode_close,
    eventsource_chunk,
    htmlfile_chunk,
    htmlfile_prelude,
    jsonp_body,
    valid_callback,
    xhr_chunk,
)

from ._exchange import ClientGone, HttpExchange
from ._hixie76 import Hixie76WebSocket, accept_hixie76, is_hixie76_request
from ._router import NOT_FOUND_BODY, Router
from ._sessions import SESSION_CLOSE_TIMEOUT, SessionRegistry, SockJSSession
from ._websocket import WebSocket, WebSocketClosed

AnyWebSocket = WebSocket | Hixie76WebSocket
"""A websocket of either protocol: RFC 6455, or legacy hixie-76 (W5); same interface."""

GREETING = b"Welcome to SockJS!\n"
"""U1: the exact body of ``GET <prefix>`` and ``GET <prefix>/``."""

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
"""H1: the exact Cache-Control of ``/info`` and the HTTP transports."""

CACHE_FOREVER_SECONDS = 31_536_000
"""H2/I5: one year, for OPTIONS answers and the iframe page."""

CLEANUP_TIMEOUT = 0.5
"""Seconds the shielded cleanup of a cancelled websocket session may take to say goodbye."""

SHUTDOWN_CLOSE = (1001, "Server shutting down")
BROKEN_FRAMING_CLOSE = (3000, "Broken framing.")  # W4, as sockjs-node

PAYLOAD_EXPECTED = b"Payload expected."  # T2
BROKEN_JSON = b"Broken JSON encoding."  # T2
CALLBACK_REQUIRED = b'"callback" parameter required'  # T1
INVALID_CALLBACK = b'invalid "callback" parameter'  # T1
TOO_MANY_SESSIONS = b"Too many sessions.\n"

JSONP_SEND_BODY_FACTOR = 3
"""jsonp_send bodies are percent-encoded forms, up to three bytes per byte of the frame."""

TEXT_PLAIN = ("Content-Type", "text/plain; charset=UTF-8")
JAVASCRIPT = ("Content-Type", "application/javascript; charset=UTF-8")

# H4: the reference server's page, loading the client first, then bootstrapping it.
IFRAME_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""

_JSESSIONID = re.compile(r"(?:^|;)\s*JSESSIONID=([^;]*)")


@dataclass(frozen=True)
class _Receiving:
    """How one receiving transport puts frames on the wire."""

    headers: Sequence[tuple[str, str]]
    encode: Callable[[str], bytes]
    streaming: bool
    prelude: bytes = b""


class SockJSEndpoint:
    """The SockJS routes under one prefix, serving one application with one set of options."""

    def __init__(self, app: SockJSApp, sessions: SessionRegistry, options: SockJSOptions) -> None:
        self._app = app
        self._sessions = sessions
        self._options = options
        self._prefix = ""
        iframe = IFRAME_PAGE.format(sockjs_url=html.escape(options.sockjs_url)).encode("utf-8")
        self._iframe_page = iframe
        self._iframe_etag = f'"{hashlib.md5(iframe, usedforsecurity=False).hexdigest()}"'

    def add_routes(self, router: Router, prefix: str) -> None:
        """Route ``prefix`` (``/sockjs``: starts with ``/``, does not end with one) to SockJS."""
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"SockJS prefix must start and not end with '/': {prefix!r}")
        self._prefix = prefix
        base = re.escape(prefix)
        options = self._options
        router.add(f"{base}/?", {"GET": self._greet})  # U1
        info_preflight = partial(self._preflight, methods="OPTIONS, GET", cookie=False)
        router.add(f"{base}/info", {"GET": self._info, "OPTIONS": info_preflight})  # U3
        router.add(f"{base}/iframe(?:-[0-9a-z._-]*)?\\.html", {"GET": self._iframe})  # U2
        # U4/U6: <server> and <session> are non-empty and hold neither '/' nor '.'; U7: the
        # session is found by <session> alone.
        session = f"{base}/[^/.]+/(?P<session>[^/.]+)"
        xhr_preflight = partial(self._preflight, methods="OPTIONS, POST", cookie=True)
        if options.websocket:
            router.add(f"{base}/websocket", {"GET": partial(self._serve_websocket, framed=False)})  # U5
            router.add(f"{session}/websocket", {"GET": partial(self._serve_websocket, framed=True)})
        router.add(f"{session}/xhr", {"POST": self._xhr, "OPTIONS": xhr_preflight})
        router.add(f"{session}/xhr_streaming", {"POST": self._xhr_streaming, "OPTIONS": xhr_preflight})
        router.add(f"{session}/eventsource", {"GET": self._eventsource})
        router.add(f"{session}/htmlfile", {"GET": self._htmlfile})
        router.add(f"{session}/jsonp", {"GET": self._jsonp})
        router.add(
            f"{session}/xhr_send",
            {"POST": self._xhr_send, "OPTIONS": xhr_preflight},
            max_body_bytes=options.max_message_bytes,
        )
        router.add(
            f"{session}/jsonp_send",
            {"POST": self._jsonp_send},
            max_body_bytes=options.max_message_bytes * JSONP_SEND_BODY_FACTOR,
        )

    # Helper pages.

    async def _greet(self, exchange: HttpExchange) -> None:
        await exchange.respond(200, [TEXT_PLAIN], GREETING)

    async def _info(self, exchange: HttpExchange) -> None:
        body = {
            "websocket": self._options.websocket,
            "cookie_needed": self._options.cookie_needed,
            "origins": ["*:*"],
            "entropy": secrets.randbelow(2**32),  # I2: from a good RNG, new on every call
        }
        headers = [
            ("Content-Type", "application/json; charset=UTF-8"),
            ("Cache-Control", NO_CACHE),  # H1; I1: and never Set-Cookie
            *_cors_headers(exchange),
        ]
        await exchange.respond(200, headers, json.dumps(body, separators=(",", ":")).encode("ascii"))

    async def _preflight(self, exchange: HttpExchange, *, methods: str, cookie: bool) -> None:
        # I5/C3: 204, cache forever (H2), the methods of the URL, CORS with the preflight echo.
        headers = [
            *_cache_forever(),
            ("Access-Control-Max-Age", str(CACHE_FOREVER_SECONDS)),
            ("Access-Control-Allow-Methods", methods),
            *_cors_headers(exchange),
        ]
        requested_headers = exchange.request.header("access-control-request-headers")
        if requested_headers:
            headers.append(("Access-Control-Allow-Headers", requested_headers))
        if cookie:
            headers.extend(self._cookie(exchange))  # I1: never on /info
        await exchange.respond(204, headers)

    async def _iframe(self, exchange: HttpExchange) -> None:
        # H2, H3: cache forever, a stable ETag, no Last-Modified; 304 without body or type.
        headers = [*_cache_forever(), ("ETag", self._iframe_etag)]
        if self._iframe_etag in _entity_tags(exchange.request.header("if-none-match")):
            await exchange.respond(304, headers)
            return
        await exchange.respond(
            200, [("Content-Type", "text/html; charset=UTF-8"), *headers], self._iframe_page
        )

    # Receiving transports.

    async def _xhr(self, exchange: HttpExchange) -> None:
        headers = [JAVASCRIPT, *self._session_headers(exchange, cors=True)]
        await self._serve_receiver(exchange, _Receiving(headers, xhr_chunk, streaming=False))

    async def _xhr_streaming(self, exchange: HttpExchange) -> None:
        headers = [JAVASCRIPT, *self._session_headers(exchange, cors=True)]
        await self._serve_receiver(
            exchange, _Receiving(headers, xhr_chunk, streaming=True, prelude=XHR_STREAMING_PRELUDE)
        )

    async def _eventsource(self, exchange: HttpExchange) -> None:
        # §8: exactly text/event-stream, without a charset.
        headers = [("Content-Type", "text/event-stream"), *self._session_headers(exchange)]
        await self._serve_receiver(
            exchange, _Receiving(headers, eventsource_chunk, streaming=True, prelude=EVENTSOURCE_PRELUDE)
        )

    async def _htmlfile(self, exchange: HttpExchange) -> None:
        callback = await self._callback(exchange)
        if callback is None:
            return
        headers = [("Content-Type", "text/html; charset=UTF-8"), *self._session_headers(exchange)]
        await self._serve_receiver(
            exchange, _Receiving(headers, htmlfile_chunk, streaming=True, prelude=htmlfile_prelude(callback))
        )

    async def _jsonp(self, exchange: HttpExchange) -> None:
        callback = await self._callback(exchange)
        if callback is None:
            return
        headers = [JAVASCRIPT, ("X-Content-Type-Options", "nosniff"), *self._session_headers(exchange)]
        await self._serve_receiver(
            exchange, _Receiving(headers, partial(jsonp_body, callback), streaming=False)
        )

    async def _serve_receiver(self, exchange: HttpExchange, transport: _Receiving) -> None:
        """Find or create the session (S1) and serve it to this request until the response is
        over: one frame for polling (S8), frames up to the response limit for streaming (S7).

        A client that closes its connection meanwhile interrupts the session (S6). Cancellation
        (server shutdown without ``shutdown()``) also counts as an interruption.
        """
        session_id = exchange.path_params["session"]
        session = self._sessions.find(self._prefix, session_id)
        if session is None:
            session = self._sessions.open(
                self._prefix,
                session_id,
                self._app,
                self._options,
                remote_address=exchange.remote_address,
                write_timeout=exchange.write_timeout,
            )
            if session is None:
                await exchange.respond(503, [TEXT_PLAIN], TOO_MANY_SESSIONS)
                return
        receiver = object()
        refusal = session.core.attach(receiver, trio.current_time())
        if refusal is not None:
            # S3/S5: answered at once (S10), and the attached receiver, if any, is untouched.
            await self._respond_frames(exchange, transport, [refusal.text])
            return
        finished = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when_client_gone, exchange, nursery.cancel_scope)
                await self._write_frames(exchange, session, receiver, transport)
                finished = True
                nursery.cancel_scope.cancel()
        except* ClientGone:
            pass  # a write failed: the same interruption as the client closing
        finally:
            # Still attached here only if the response ended before its last frame (S6).
            session.detach(receiver, interrupted=True)
        if not finished:
            raise ClientGone

    async def _write_frames(
        self, exchange: HttpExchange, session: SockJSSession, receiver: object, transport: _Receiving
    ) -> None:
        if not transport.streaming:
            frame = await session.next_frame(receiver)
            assert frame is not None, "only this request detaches its receiver"
            # Free the session before answering: the client's next poll may arrive (on another
            # connection) before this handler has run its course, and must not get 2010 (S3).
            session.detach(receiver, interrupted=False)
            delivered = False
            try:
                await exchange.respond(200, transport.headers, transport.encode(frame.text))
                delivered = True
            finally:
                if not delivered:
                    session.interrupt()  # the frame is lost: S6, as if the request were aborted
            return
        await exchange.start_response(200, transport.headers)
        await exchange.send_chunk(transport.prelude)  # P2: a chunk of its own
        sent = 0  # S7: frames and their framing, not the prelude
        while sent < self._options.response_limit:
            frame = await session.next_frame(receiver)
            if frame is None:
                break
            data = transport.encode(frame.text)
            await exchange.send_chunk(data)
            sent += len(data)
            if frame.close is not None:
                break
        session.detach(receiver, interrupted=False)  # before the end, as for polling above
        await exchange.end_response()

    async def _respond_frames(self, exchange: HttpExchange, transport: _Receiving, frames: list[str]) -> None:
        if not transport.streaming:
            await exchange.respond(200, transport.headers, b"".join(map(transport.encode, frames)))
            return
        await exchange.start_response(200, transport.headers)
        await exchange.send_chunk(transport.prelude)
        for frame in frames:
            await exchange.send_chunk(transport.encode(frame))
        await exchange.end_response()

    async def _callback(self, exchange: HttpExchange) -> str | None:
        """T1: the ``c`` (or ``callback``) parameter, or None after answering 500."""
        query = parse_qs(exchange.request.query, keep_blank_values=True)
        values = query.get("c") or query.get("callback")
        if not values or not values[0]:
            await exchange.respond(500, [TEXT_PLAIN], CALLBACK_REQUIRED)
            return None
        if not valid_callback(values[0]):
            await exchange.respond(500, [TEXT_PLAIN], INVALID_CALLBACK)
            return None
        return values[0]

    # Sending transports.

    async def _xhr_send(self, exchange: HttpExchange) -> None:
        # §8: 204 with a Content-Type all the same (a Firefox quirk).
        headers = [TEXT_PLAIN, *self._session_headers(exchange, cors=True)]
        if await self._deliver(exchange, exchange.request.body):
            await exchange.respond(204, headers)

    async def _jsonp_send(self, exchange: HttpExchange) -> None:
        body = exchange.request.body
        content_type = (exchange.request.header("content-type") or "").partition(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            form = parse_qs(body.decode("latin-1"), keep_blank_values=True, errors="replace")
            body = (form.get("d") or [""])[0].encode("utf-8")
        if await self._deliver(exchange, body):
            await exchange.respond(200, [TEXT_PLAIN, *self._session_headers(exchange)], b"ok")

    async def _deliver(self, exchange: HttpExchange, body: bytes) -> bool:
        """Decode ``body`` (T2, T3: whatever its content type) and hand its messages to the
        session; True when the caller should answer success, False when answered here."""
        if not body:
            await exchange.respond(500, [TEXT_PLAIN], PAYLOAD_EXPECTED)
            return False
        try:
            messages = decode_client_frame(body.decode("utf-8"), max_bytes=self._options.max_message_bytes)
        except NotAnArray:
            await exchange.respond(500, [TEXT_PLAIN], PAYLOAD_EXPECTED)  # as sockjs-node
            return False
        except (UnicodeDecodeError, BrokenFraming):
            await exchange.respond(500, [TEXT_PLAIN], BROKEN_JSON)
            return False
        session = self._sessions.find(self._prefix, exchange.path_params["session"])
        if session is None:
            await exchange.respond(404, [TEXT_PLAIN], NOT_FOUND_BODY)  # S2
            return False
        await session.deliver(messages)
        return True

    def _session_headers(self, exchange: HttpExchange, *, cors: bool = False) -> list[tuple[str, str]]:
        headers = [("Cache-Control", NO_CACHE), *self._cookie(exchange)]  # H1
        if cors:
            headers.extend(_cors_headers(exchange))  # C1: the xhr transports
        return headers

    def _cookie(self, exchange: HttpExchange) -> list[tuple[str, str]]:
        """The JSESSIONID cookie for sticky load balancing, when the endpoint needs it: the
        client's own value, else ``dummy`` (as sockjs-node)."""
        if not self._options.cookie_needed:
            return []
        match = _JSESSIONID.search(exchange.request.header("cookie") or "")
        value = match.group(1).strip() if match else "dummy"
        return [("Set-Cookie", f"JSESSIONID={value or 'dummy'}; path=/")]

    # Websocket transports.

    async def _serve_websocket(self, exchange: HttpExchange, *, framed: bool) -> None:
        """One websocket session: framed (``o``, ``a[...]``, ``h``, ``c[...]``) or raw (one
        text message per application message, no heartbeat, U5/R1). It lives exactly as long as
        its connection, so it needs no lookup by id (S11).

        Returns once the session is closed and both the application and the closing handshake
        are over, or ``SESSION_CLOSE_TIMEOUT`` after the close. On cancellation the client still
        gets a close 1001 (shielded, bounded by :data:`CLEANUP_TIMEOUT`).
        """
        max_message_bytes = self._options.max_message_bytes
        websocket: AnyWebSocket | None
        if is_hixie76_request(exchange.request):
            websocket = await accept_hixie76(exchange, max_message_bytes=max_message_bytes)  # W5
        else:
            websocket = await exchange.accept_websocket(max_message_bytes=max_message_bytes)
        if websocket is None:
            return  # refused with 400/426 (W1), or a hixie-76 client gave up on its handshake
        session = SockJSSession(
            exchange.remote_address, self._options, write_timeout=exchange.write_timeout, framed=framed
        )
        session.core.attach(websocket, trio.current_time())
        writer = _WebSocketWriter(websocket, session, framed)
        session.direct = writer
        reader_done = trio.Event()
        try:
            with self._sessions.register(session):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_websocket, websocket, session, framed, reader_done)
                    nursery.start_soon(session.run_app, self._app)
                    await writer.run()
                    with trio.move_on_after(SESSION_CLOSE_TIMEOUT):
                        await session.app_done.wait()
                        await reader_done.wait()
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + CLEANUP_TIMEOUT):
                # A no-op after a normal end; after a cancellation (the server is going away
                # without shutdown()) or a failure here, the client still gets a close frame.
                await _say_goodbye(websocket, framed, *SHUTDOWN_CLOSE)
                await websocket.aclose()

    async def _read_websocket(
        self, websocket: AnyWebSocket, session: SockJSSession, framed: bool, done: trio.Event
    ) -> None:
        try:
            while True:
                text = await websocket.receive_message()
                if not session.core.is_open:
                    continue  # closing: read on only to see the client's close frame
                if not framed:
                    messages = [text]  # R1
                else:
                    try:
                        # F7: an empty message decodes to nothing; [] too.
                        messages = decode_client_frame(text, max_bytes=self._options.max_message_bytes)
                    except BrokenFraming:
                        await session.close(*BROKEN_FRAMING_CLOSE)  # W4: this session only
                        continue
                await session.deliver(messages)
        except WebSocketClosed:
            session.detach(websocket, interrupted=True)
        finally:
            done.set()


class _WebSocketWriter:
    """Writes one websocket session's frames, framed (``a[...]``) or raw (one text message per
    value, R1).

    A batch the application sends while the socket is idle and nothing is queued is written at
    once from its own task (:meth:`write_nowait`): one system call, no wake-up of another task, no
    timer; that is the path of nearly every push. Everything else (a batch queued behind a write
    under way, ``o``, heartbeats, the close frame, and bytes the socket did not take at once) is
    written by :meth:`run`, in the session's writer task, each write bounded by the write timeout
    as before: a client that stops reading is dropped the same way.
    """

    def __init__(self, websocket: AnyWebSocket, session: SockJSSession, framed: bool) -> None:
        self._websocket = websocket
        self._session = session
        self._framed = framed

    @property
    def receiver(self) -> object:
        return self._websocket

    def ready(self) -> bool:
        return self._websocket.can_send_nowait

    def write_nowait(self, frame: Frame) -> None:
        try:
            self._websocket.send_texts_nowait(self._texts(frame))
        except WebSocketClosed:
            self._session.detach(self._websocket, interrupted=True)  # as when run()'s write fails
            return
        if self._websocket.has_unsent:
            self._session.notify()  # run() writes the rest

    def _texts(self, frame: Frame) -> Sequence[str]:
        return [frame.text] if self._framed else frame.messages

    async def run(self) -> None:
        """Write the session's frames until its close frame went out or the websocket is over."""
        websocket, session = self._websocket, self._session
        try:
            while session.core.attached(websocket):
                if websocket.has_unsent:
                    await websocket.flush()
                    continue
                frame = session.take_frame(websocket)
                if frame is None:
                    await session.wait_for_change()
                elif frame.close is not None:
                    await _say_goodbye(websocket, self._framed, *frame.close)  # F3; R2 for the raw one
                    return
                else:
                    await websocket.send_texts(self._texts(frame))  # one write for the whole batch
        except WebSocketClosed:
            pass
        finally:
            # After the close frame this changes nothing; after a failed write the session is over.
            session.detach(websocket, interrupted=True)


async def _say_goodbye(websocket: AnyWebSocket, framed: bool, code: int, reason: str) -> None:
    """Send the SockJS close frame (framed) and a websocket close with ``code`` and ``reason``
    (R2), unless the websocket is closing already."""
    if not websocket.is_open:
        return
    if framed:
        with contextlib.suppress(WebSocketClosed):
            await websocket.send_text(encode_close(code, reason))
    await websocket.close(code, reason)


async def _cancel_when_client_gone(exchange: HttpExchange, scope: trio.CancelScope) -> None:
    await exchange.wait_until_client_gone()
    scope.cancel()


def _cache_forever() -> list[tuple[str, str]]:
    # H2
    return [
        ("Cache-Control", f"public, max-age={CACHE_FOREVER_SECONDS}"),
        ("Expires", formatdate(time.time() + CACHE_FOREVER_SECONDS, usegmt=True)),
    ]


def _entity_tags(if_none_match: str | None) -> set[str]:
    """The entity tags of an ``If-None-Match`` header, weak ones compared weakly (RFC 9110)."""
    if not if_none_match:
        return set()
    return {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}


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
