"""A lean push-API client for thousands of connections in one trio process.

One task per client, speaking the raw websocket endpoint (``/sockjs/websocket``: one JSON message
per text frame, the same on octotrio and OctoPrint). Messages are not parsed as JSON, only
recognised by their first key, and frames are cut with a few lines of RFC 6455 rather than a
general websocket library, which keeps the client's own cost per message small: a client
process that reads a thousand sockets must not itself be what spreads a tick's arrivals.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import trio

RECEIVE_SIZE = 65536
_FIRST_KEY = re.compile(rb'\{\s*"(\w+)"')
_HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 16384
"""Longest handshake answer accepted: a 101 is a few hundred bytes."""

OPCODE_CONTINUATION, OPCODE_TEXT = 0x0, 0x1
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA


class ProtocolError(OSError):
    """The server broke the websocket protocol (or refused the upgrade)."""


def handshake_request(host: str, path: str) -> bytes:
    """The HTTP upgrade request of a websocket client (RFC 6455 §4.1)."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode("ascii")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked as RFC 6455 §5.3 requires of clients."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


class ServerFrames:
    """Cuts the server's byte stream into messages: feed bytes, take ``(opcode, payload)``.

    Text messages come whole (fragments joined); control frames as they arrive. Server frames
    are never masked; a masked one is a :class:`ProtocolError`.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._parts: list[bytes] = []
        self._opcode = OPCODE_TEXT

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        offset = 0
        try:
            while len(buffer) - offset >= 2:
                first, second = buffer[offset], buffer[offset + 1]
                if second & 0x80:
                    raise ProtocolError("masked frame from the server")
                size, start = second & 0x7F, offset + 2
                if size == 126:
                    if len(buffer) - offset < 4:
                        break
                    (size,) = struct.unpack_from("!H", buffer, offset + 2)
                    start = offset + 4
                elif size == 127:
                    if len(buffer) - offset < 10:
                        break
                    (size,) = struct.unpack_from("!Q", buffer, offset + 2)
                    start = offset + 10
                if len(buffer) < start + size:
                    break
                payload = bytes(buffer[start : start + size])
                offset = start + size
                opcode = first & 0x0F
                if opcode >= OPCODE_CLOSE:
                    yield opcode, payload
                    continue
                if opcode != OPCODE_CONTINUATION:
                    self._opcode = opcode
                self._parts.append(payload)
                if first & 0x80:
                    message, self._parts = b"".join(self._parts), []
                    yield self._opcode, message
        finally:
            del buffer[:offset]


class Auth:
    """Passive login with the API key (``POST /api/login {"passive": true}``), shared by clients.

    ``credentials()`` returns ``"name:session"`` for the socket's ``auth`` message, or None when the
    server has no login endpoint yet (then every client is authorised, as octotrio was before its
    auth landed). One login is shared by all clients; ``renew`` forces a new one (after a restart).
    """

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self._lock = trio.Lock()
        self._credentials: str | None = None
        self._generation = -1

    async def credentials(self, generation: int = 0) -> str | None:
        """Log in unless a login of this ``generation`` (a count of server restarts) exists."""
        if self.api_key is None:
            return None
        async with self._lock:
            if self._generation < generation:
                self._credentials = await self._login()
                self._generation = generation
            return self._credentials

    async def _login(self) -> str | None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            response = await http.post(
                "/api/login", json={"passive": True}, headers={"X-Api-Key": self.api_key or ""}
            )
        if response.status_code != 200:
            return None
        body = response.json()
        return f"{body['name']}:{body['session']}"


@dataclass
class ClientRecord:
    """What one client saw. Times are ``time.monotonic()`` (one clock for all local processes)."""

    local_port: int = 0
    history_times: list[float] = field(default_factory=list)
    """When each connection of this client received ``history`` (more than one after reconnects)."""
    currents: list[float] = field(default_factory=list)
    """Arrival of each ``current`` inside the recording window."""
    events: int = 0
    close: tuple[float, int | None, str] | None = None
    """``(time, websocket close code or None for a dropped TCP connection, reason)`` of the last end."""
    error: str | None = None
    settled: trio.Event = field(default_factory=trio.Event)
    """Set at the first ``history`` or when the first connection attempt failed."""


@dataclass
class ClientPlan:
    """What one client does besides reading."""

    receive_buffer: int | None = None
    """``SO_RCVBUF`` in bytes, to model a client behind a slow link; None keeps the default."""
    stall: tuple[float, float] | None = None
    """``(start, end)``: stop reading at ``start`` and resume at ``end`` (monotonic times)."""
    reconnect_until: float = 0.0
    """After the server goes away, reconnect (every ``RECONNECT_INTERVAL``) until this time."""


RECONNECT_INTERVAL = 0.1
"""Seconds between reconnect attempts while a restarted server is not up yet."""


@dataclass
class Window:
    """The recording window shared by every client of a process; set by the runner."""

    start: float = float("inf")
    end: float = float("inf")

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


async def run_client(
    port: int,
    path: str,
    auth: Auth,
    record: ClientRecord,
    plan: ClientPlan,
    window: Window,
) -> None:
    """Connect, authenticate, read until the server closes; with a plan, reconnect after that.

    After a connection that got its ``history`` ends (a server restart), the next attempt asks
    ``auth`` for a login of the next generation: one new login per restart, shared by all clients.
    Returns when the connection ends and no reconnect is planned. Never raises for network
    errors: they end up in ``record.error`` / ``record.close``.
    """
    generation = 0
    while True:
        histories = len(record.history_times)
        try:
            await _connect_once(port, path, await auth.credentials(generation), record, plan, window)
        except (OSError, trio.BrokenResourceError, httpx.HTTPError) as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            if record.close is None or record.close[0] < trio.current_time():
                record.close = (trio.current_time(), None, record.error)
        record.settled.set()
        if trio.current_time() >= plan.reconnect_until:
            return
        if len(record.history_times) > histories:
            generation += 1
        await trio.sleep(RECONNECT_INTERVAL)


async def _connect_once(
    port: int, path: str, credentials: str | None, record: ClientRecord, plan: ClientPlan, window: Window
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        if plan.receive_buffer is not None:
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, plan.receive_buffer)
        record.local_port = stream.socket.getsockname()[1]
        await stream.send_all(handshake_request(f"127.0.0.1:{port}", path))
        frames = ServerFrames()
        data = await _read_handshake(stream)
        while True:
            now = trio.current_time()
            for opcode, payload in frames.feed(data):
                if opcode == OPCODE_TEXT:
                    reply = _handle_message(payload, now, credentials, record, window)
                    if reply is not None:
                        await stream.send_all(client_frame(OPCODE_TEXT, reply.encode("utf-8")))
                elif opcode == OPCODE_PING:
                    await stream.send_all(client_frame(OPCODE_PONG, payload))
                elif opcode == OPCODE_CLOSE:
                    code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
                    record.close = (now, code, payload[2:].decode("utf-8", "replace"))
                    await stream.send_all(client_frame(OPCODE_CLOSE, payload[:2]))
                    return
                else:
                    raise ProtocolError(f"unexpected frame opcode {opcode}")
            if plan.stall is not None and plan.stall[0] <= trio.current_time() < plan.stall[1]:
                await trio.sleep_until(plan.stall[1])
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                record.close = (trio.current_time(), None, "TCP connection closed without a close frame")
                return


async def _read_handshake(stream: trio.SocketStream) -> bytes:
    """Read the server's answer to the upgrade; return the bytes after it (the first frames)."""
    head = bytearray()
    while _HEAD_END not in head:
        if len(head) > MAX_HEAD_BYTES:
            raise ProtocolError("handshake answer too long")
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise ProtocolError("connection closed during the handshake")
        head += data
    answer, _, rest = bytes(head).partition(_HEAD_END)
    status = answer.split(b" ", 2)[1] if answer.count(b" ") >= 1 else b"?"
    if status != b"101":
        raise ProtocolError(f"websocket upgrade rejected with HTTP {status.decode('ascii', 'replace')}")
    return rest


def _handle_message(
    message: bytes, now: float, credentials: str | None, record: ClientRecord, window: Window
) -> str | None:
    """Record one message; return a message to send back (the ``auth`` after ``connected``)."""
    key = _FIRST_KEY.match(message)
    kind = key.group(1) if key else b""
    if kind == b"current":
        if window.contains(now):
            record.currents.append(now)
    elif kind == b"event":
        record.events += 1
    elif kind == b"history":
        record.history_times.append(now)
        record.settled.set()
    elif kind == b"connected" and credentials is not None:
        return '{"auth": "' + credentials + '"}'
    return None
