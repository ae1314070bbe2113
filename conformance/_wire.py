"""Client connections to a push API server over the wire: the raw websocket, the SockJS websocket,
xhr_streaming and xhr polling. Each records every message it receives with its arrival time, and every
framing violation it sees, for the checks to judge afterwards.

Connections run their reader in a nursery the caller owns (:func:`open_connection`); closing the
connection (or cancelling that nursery) stops the reader. Nothing here imports server code.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from ._frames import FrameError, encode_client_frame, loads_strict, parse_frame

Transport = Literal["raw", "websocket", "xhr_streaming", "xhr"]
TRANSPORTS: tuple[Transport, ...] = ("raw", "websocket", "xhr_streaming", "xhr")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest websocket message accepted from the server: a long `history` is ~150 KB (octoprint-push.md
§3.3); four MiB leaves room without letting a broken server exhaust memory."""

HTTP_TIMEOUT = 40.0
"""Seconds an HTTP request may take: an xhr long poll is held up to the 25 s heartbeat (S8, S9)."""

STREAMING_PRELUDE = "h" * 2048
"""xhr_streaming's first chunk without its newline (sockjs-protocol.md §8)."""


@dataclass(frozen=True)
class Received:
    """A push message and when it arrived (``trio.current_time()``)."""

    at: float
    message: Any

    @property
    def type(self) -> str:
        return next(iter(self.message)) if isinstance(self.message, dict) and self.message else "?"

    @property
    def payload(self) -> Any:
        return self.message.get(self.type) if isinstance(self.message, dict) else None


@dataclass
class Connection:
    """One push connection: what it received, what it saw wrong, and how it ended."""

    name: str
    transport: Transport
    opened_at: float
    received: list[Received] = field(default_factory=list)
    frames: list[tuple[float, str]] = field(default_factory=list)
    """SockJS frames as received (not for the raw endpoint)."""
    violations: list[tuple[str, str]] = field(default_factory=list)
    """(requirement id, evidence) for framing and JSON violations seen while reading."""
    ended: str | None = None
    """Why the connection ended: ``"close 3000 Broken framing."``, ``"abort"``, ``"client"``."""
    _wakeup: trio.Event = field(default_factory=trio.Event)
    _send: Callable[[str], Any] | None = None
    _send_raw: Callable[[str], Any] | None = None
    _cancel: trio.CancelScope = field(default_factory=trio.CancelScope)

    def of_type(self, message_type: str) -> list[Received]:
        return [item for item in self.received if item.type == message_type]

    @property
    def open(self) -> bool:
        return self.ended is None

    def _notify(self) -> None:
        self._wakeup.set()
        self._wakeup = trio.Event()

    def _on_message(self, message: Any) -> None:
        self.received.append(Received(trio.current_time(), message))
        self._notify()

    def _on_end(self, how: str) -> None:
        if self.ended is None:
            self.ended = how
        self._notify()

    async def wait_for(
        self, predicate: Callable[[Received], bool], seconds: float, *, start: int = 0
    ) -> Received | None:
        """The first message from index ``start`` on that satisfies ``predicate``; None after
        ``seconds`` or when the connection ends first."""
        with trio.move_on_after(seconds):
            while True:
                for item in self.received[start:]:
                    if predicate(item):
                        return item
                start = max(start, len(self.received))
                if self.ended is not None:
                    return None
                await self._wakeup.wait()
        return None

    async def wait_type(self, message_type: str, seconds: float, *, start: int = 0) -> Received | None:
        return await self.wait_for(lambda item: item.type == message_type, seconds, start=start)

    async def send(self, message: object) -> None:
        """Send one client message (a JSON value) the way this transport frames it."""
        await self.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        """Send one client message's text: a raw text frame, or one string in a SockJS frame."""
        assert self._send is not None
        await self._send(text)

    async def send_raw(self, text: str) -> None:
        """Send ``text`` as the whole transport-level message, bypassing SockJS framing."""
        assert self._send_raw is not None
        await self._send_raw(text)

    def close(self) -> None:
        """Stop reading and drop the connection (the reader's task ends soon after)."""
        self._on_end("client")
        self._cancel.cancel()


def _base(url: str) -> str:
    return url.rstrip("/") + "/sockjs"


@asynccontextmanager
async def _tcp_websocket(url: str, path: str) -> AsyncIterator[WebSocketConnection]:
    """A websocket on a TCP stream this function owns, so the stream is closed however the websocket
    ends (trio-websocket's own ``open_websocket_url`` may leave it open when the server closes first)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    async with trio.open_nursery() as nursery, await trio.open_tcp_stream(host, port) as stream:
        websocket = await wrap_client_stream(
            nursery, stream, host, path, message_queue_size=0, max_message_size=MAX_MESSAGE_BYTES
        )
        try:
            yield websocket
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await websocket.aclose()
            nursery.cancel_scope.cancel()


def _ended_by(error: ConnectionClosed) -> str:
    reason = error.reason
    if reason is None or reason.code == 1006:
        return "abort"
    return f"close {reason.code} {reason.reason or ''}".rstrip()


def _handle_frame(connection: Connection, text: str) -> None:
    """Record one SockJS frame: its messages, its close, or its violation."""
    connection.frames.append((trio.current_time(), text))
    try:
        frame = parse_frame(text)
    except FrameError as error:
        requirement = "SOCKJS-FRAME-2" if "SOCKJS-FRAME-2" in str(error) else "SOCKJS-FRAME-1"
        if "PUSH-MSG-3" in str(error):
            requirement = "PUSH-MSG-3"
        connection.violations.append((requirement, str(error)))
        return
    for message in frame.messages:
        connection._on_message(message)
    if frame.kind == "close":
        connection._on_end(f"sockjs-close {frame.close_code} {frame.close_reason}")


async def _read_raw(connection: Connection, websocket: WebSocketConnection) -> None:
    try:
        while True:
            text = await websocket.get_message()
            if isinstance(text, bytes):
                connection.violations.append(("SOCKJS-RAW-1", "binary websocket message"))
                continue
            try:
                connection._on_message(loads_strict(text))
            except FrameError as error:
                connection.violations.append(("PUSH-MSG-3", f"{error}: {text[:200]!r}"))
            except ValueError:
                connection.violations.append(
                    ("SOCKJS-RAW-1", f"text frame is not a JSON message: {text[:200]!r}")
                )
    except ConnectionClosed as error:
        connection._on_end(_ended_by(error))


async def _read_sockjs_websocket(connection: Connection, websocket: WebSocketConnection) -> None:
    try:
        while True:
            text = await websocket.get_message()
            if isinstance(text, bytes):
                connection.violations.append(("SOCKJS-FRAME-1", "binary websocket message"))
                continue
            _handle_frame(connection, text)
    except ConnectionClosed as error:
        if connection.ended is None:
            connection._on_end(_ended_by(error))
        elif connection.ended.startswith("sockjs-close") and _ended_by(error) == "abort":
            connection.violations.append(("PUSH-BAD-6", f"{connection.ended} then no websocket close"))


async def _run_websocket(
    connection: Connection,
    url: str,
    path: str,
    *,
    raw: bool,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        async with _tcp_websocket(url, path) as websocket:

            async def send(text: str) -> None:
                with trio.move_on_after(5):
                    with suppress(ConnectionClosed):
                        await websocket.send_message(text if raw else encode_client_frame(text))

            async def send_raw(text: str) -> None:
                with trio.move_on_after(5):
                    with suppress(ConnectionClosed):
                        await websocket.send_message(text)

            connection._send, connection._send_raw = send, send_raw
            task_status.started()
            with connection._cancel:
                await (_read_raw if raw else _read_sockjs_websocket)(connection, websocket)
    except (OSError, trio.BrokenResourceError, httpx.HTTPError) as error:
        connection._on_end(f"abort ({type(error).__name__})")
        task_status.started()
    except Exception as error:  # a failed handshake raises trio-websocket's HandshakeError family
        connection._on_end(f"handshake failed: {error!r}")
        task_status.started()


async def _xhr_send(client: httpx.AsyncClient, session_url: str, connection: Connection, body: str) -> None:
    try:
        response = await client.post(f"{session_url}/xhr_send", content=body.encode())
    except httpx.HTTPError as error:
        connection.violations.append(("SOCKJS-SEND-1", f"xhr_send failed: {error!r}"))
        return
    if response.status_code != 204:
        connection.violations.append(("SOCKJS-SEND-1", f"xhr_send answered {response.status_code}"))


async def _run_xhr_streaming(
    connection: Connection,
    client: httpx.AsyncClient,
    session_url: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    connection._send = lambda text: _xhr_send(client, session_url, connection, encode_client_frame(text))
    connection._send_raw = lambda text: _xhr_send(client, session_url, connection, text)
    started = False
    try:
        with connection._cancel:
            # A streaming response ends after its byte limit (S7); the client then reconnects.
            while connection.ended is None:
                async with client.stream("POST", f"{session_url}/xhr_streaming") as response:
                    if response.status_code != 200:
                        connection._on_end(f"xhr_streaming answered {response.status_code}")
                        return
                    buffer = ""
                    first = True
                    async for chunk in response.aiter_text():
                        buffer += chunk
                        *lines, buffer = buffer.split("\n")
                        for line in lines:
                            if first:
                                first = False
                                if line != STREAMING_PRELUDE:
                                    connection.violations.append(
                                        ("SOCKJS-STREAM-1", f"first chunk is not 2048 h: {line[:60]!r}")
                                    )
                                    _handle_frame(connection, line)
                                if not started:
                                    started = True
                                    task_status.started()
                                continue
                            _handle_frame(connection, line)
                    if buffer:
                        connection.violations.append(
                            ("SOCKJS-FRAME-1", f"frame without \\n: {buffer[:200]!r}")
                        )
    except httpx.HTTPError as error:
        connection._on_end(f"abort ({type(error).__name__})")
    finally:
        if not started:
            task_status.started()


async def _run_xhr_polling(
    connection: Connection,
    client: httpx.AsyncClient,
    session_url: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    connection._send = lambda text: _xhr_send(client, session_url, connection, encode_client_frame(text))
    connection._send_raw = lambda text: _xhr_send(client, session_url, connection, text)
    started = False
    try:
        with connection._cancel:
            while connection.ended is None:
                response = await client.post(f"{session_url}/xhr")
                if response.status_code != 200:
                    connection._on_end(f"xhr answered {response.status_code}")
                    return
                body = response.text
                if not body.endswith("\n") or body.count("\n") != 1:
                    connection.violations.append(
                        ("SOCKJS-POLL-1", f"response is not exactly one frame + \\n: {body[:200]!r}")
                    )
                for line in body.split("\n"):
                    if line:
                        _handle_frame(connection, line)
                if not started:
                    started = True
                    task_status.started()
    except httpx.HTTPError as error:
        connection._on_end(f"abort ({type(error).__name__})")
    finally:
        if not started:
            task_status.started()


async def open_connection(
    nursery: trio.Nursery, url: str, transport: Transport, name: str, client: httpx.AsyncClient
) -> Connection:
    """Open a push connection to the server at ``url`` (``http://host:port``) over ``transport``.

    Returns once the connection is open (or has failed: see :attr:`Connection.ended`); its reader runs
    in ``nursery`` until :meth:`Connection.close` or until the server ends it.
    """
    connection = Connection(name, transport, trio.current_time())
    server_id = f"{secrets.randbelow(1000):03d}"
    session_url = f"{_base(url)}/{server_id}/{secrets.token_hex(4)}"
    if transport == "raw":
        await nursery.start(partial(_run_websocket, connection, url, "/sockjs/websocket", raw=True))
    elif transport == "websocket":
        path = urlsplit(session_url).path + "/websocket"
        await nursery.start(partial(_run_websocket, connection, url, path, raw=False))
    elif transport == "xhr_streaming":
        await nursery.start(_run_xhr_streaming, connection, client, session_url)
    else:
        await nursery.start(_run_xhr_polling, connection, client, session_url)
    return connection
