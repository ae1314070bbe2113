"""A lean push-API client for thousands of connections in one trio process.

One task per client, speaking the raw websocket endpoint (``/sockjs/websocket``: one JSON message
per text frame, the same on octotrio and OctoPrint). The websocket is spoken by hand rather than
through wsproto: every frame is still read, and every message classified, but a storm of 1000
clients makes each client receive about a thousand ``ClientOpened``/``ClientAuthed`` events, and at
wsproto's ~11 µs per frame the client process, not the server, was the bottleneck. Messages are not
parsed as JSON, only recognised by their first key. The socket is read with one ``recv`` each time
it becomes readable (:class:`RawConnection`), and what arrived is timestamped then.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import re
import socket
from dataclasses import dataclass, field

import httpx
import trio

RECEIVE_SIZE = 65536
MAX_HANDSHAKE_BYTES = 16384
"""The server's 101 (or refusal) head: a few hundred bytes; more is not a websocket server."""
_FIRST_KEY = re.compile(rb'\{\s*"(\w+)"')
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA
NO_STATUS = 1005
"""RFC 6455 §7.1.5: the code reported for a close frame without one."""


class WebSocketProtocolError(OSError):
    """The server broke RFC 6455 (a masked frame, a refused or garbled handshake)."""


class ServerFrames:
    """Sans-IO reader of what a server sends after its 101 (RFC 6455 §5.2: unmasked frames).

    :meth:`receive` takes bytes as they arrive and returns the complete messages (fragments
    joined) and control frames in them, as ``(opcode, payload)``.
    """

    def __init__(self) -> None:
        self._buffer = b""
        """An incomplete frame's bytes (usually none: a read holds whole frames)."""
        self._fragments: list[bytes] = []
        self._fragmented_opcode = OPCODE_TEXT

    def receive(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        size, offset = len(buffer), 0
        complete: list[tuple[int, bytes]] = []
        while size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            if second & 0x80:
                raise WebSocketProtocolError("the server sent a masked frame")
            length, start = second & 0x7F, offset + 2
            if length == 126:
                length, start = int.from_bytes(buffer[start : start + 2]), start + 2
            elif length == 127:
                length, start = int.from_bytes(buffer[start : start + 8]), start + 8
            end = start + length
            if end > size:
                break  # also when the extended length itself is incomplete: start > size then
            payload = buffer[start:end]
            offset = end
            opcode, final = first & 0x0F, first & 0x80
            if opcode >= OPCODE_CLOSE:
                complete.append((opcode, payload))  # control frames come between fragments (§5.4)
            elif final and not self._fragments:
                complete.append((opcode, payload))
            else:
                if opcode != OPCODE_CONTINUATION:
                    self._fragmented_opcode = opcode
                self._fragments.append(payload)
                if final:
                    complete.append((self._fragmented_opcode, b"".join(self._fragments)))
                    self._fragments.clear()
        self._buffer = buffer[offset:]
        return complete


class RawConnection:
    """A non-blocking TCP connection to 127.0.0.1 written and read with plain system calls.

    At 5000 clients a tick is 5000 messages in a fraction of a second, and the client processes
    share the two cores with the server. trio's ``receive_some`` makes two ``recv`` calls per
    message (the second to find nothing more), each behind a checkpoint; :meth:`receive` waits
    until the socket is readable and makes one. Cancellation: every wait is a trio wait, so
    cancelling is immediate; :meth:`close` must still be called (the owner's ``finally``).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock

    @classmethod
    async def connect(cls, port: int) -> RawConnection:
        """Connect to ``127.0.0.1:port``; raises :class:`OSError` as ``connect`` would."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            error = sock.connect_ex(("127.0.0.1", port))
            if error == errno.EINPROGRESS:
                await trio.lowlevel.wait_writable(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.socket.send(view) :]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.socket)

    async def receive(self) -> bytes:
        """Wait until the socket is readable and return what one ``recv`` gives (b"" at its end)."""
        while True:
            await trio.lowlevel.wait_readable(self.socket)
            try:
                return self.socket.recv(RECEIVE_SIZE)
            except BlockingIOError:
                continue  # readable was a false alarm: wait again

    def close(self) -> None:
        trio.lowlevel.notify_closing(self.socket)
        self.socket.close()


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final client → server frame, masked as RFC 6455 §5.3 requires (payload < 64 KiB)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    else:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2)
    mask = os.urandom(4)
    masked = int.from_bytes(payload) ^ int.from_bytes((mask * (size // 4 + 1))[:size])
    return header + mask + masked.to_bytes(size)


def handshake_request(host: str, path: str) -> tuple[bytes, bytes]:
    """The upgrade request (RFC 6455 §4.1) and the ``Sec-WebSocket-Accept`` the server must answer."""
    key = base64.b64encode(os.urandom(16))
    request = (
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        ).encode()
        + key
        + b"\r\n\r\n"
    )
    return request, base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())


def check_handshake(head: bytes, accept: bytes) -> None:
    """Raise :class:`WebSocketProtocolError` unless ``head`` is a 101 with the right accept token."""
    status_line, *header_lines = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[1] != b"101":
        raise WebSocketProtocolError(f"websocket upgrade rejected: {status_line.decode('latin-1')}")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"sec-websocket-accept") != accept:
        raise WebSocketProtocolError("websocket upgrade answered with a wrong Sec-WebSocket-Accept")


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
        except (OSError, httpx.HTTPError) as exc:
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
    connection = await RawConnection.connect(port)
    try:
        if plan.receive_buffer is not None:
            connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, plan.receive_buffer)
        record.local_port = connection.socket.getsockname()[1]
        request, accept = handshake_request(f"127.0.0.1:{port}", path)
        await connection.send_all(request)
        received = await _receive_handshake(connection, accept)
        frames = ServerFrames()
        now = trio.current_time()
        while True:
            for opcode, payload in frames.receive(received):
                if opcode in (OPCODE_TEXT, OPCODE_BINARY):
                    reply = _handle_message(payload, now, credentials, record, window)
                    if reply is not None:
                        await connection.send_all(client_frame(OPCODE_TEXT, reply))
                elif opcode == OPCODE_PING:
                    await connection.send_all(client_frame(OPCODE_PONG, payload))
                elif opcode == OPCODE_CLOSE:
                    code = int.from_bytes(payload[:2]) if len(payload) >= 2 else NO_STATUS
                    record.close = (now, code, payload[2:].decode("utf-8", "replace"))
                    await connection.send_all(client_frame(OPCODE_CLOSE, payload[:2]))
                    return
            if plan.stall is not None and plan.stall[0] <= trio.current_time() < plan.stall[1]:
                await trio.sleep_until(plan.stall[1])
            received = await connection.receive()
            now = trio.current_time()  # the bytes arrived by now: the socket just became readable
            if not received:
                record.close = (now, None, "TCP connection closed without a close frame")
                return
    finally:
        connection.close()


async def _receive_handshake(connection: RawConnection, accept: bytes) -> bytes:
    """Read the server's answer to the upgrade; return the bytes after it (the first frames)."""
    buffer = b""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > MAX_HANDSHAKE_BYTES:
            raise WebSocketProtocolError("no end to the server's handshake answer")
        data = await connection.receive()
        if not data:
            raise WebSocketProtocolError("the server closed the connection during the handshake")
        buffer += data
    check_handshake(buffer[:end], accept)
    return buffer[end + 4 :]


def _handle_message(
    payload: bytes, now: float, credentials: str | None, record: ClientRecord, window: Window
) -> bytes | None:
    """Record one message; return a message to send back (the ``auth`` after ``connected``)."""
    key = _FIRST_KEY.match(payload)
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
        return b'{"auth": "' + credentials.encode() + b'"}'
    return None
