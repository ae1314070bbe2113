"""A lean push-API client for thousands of connections in one trio process.

One task per client, speaking the raw websocket endpoint (``/sockjs/websocket``: one JSON message
per text frame, the same on octotrio and OctoPrint) through wsproto. Messages are not parsed as
JSON, only recognised by their first key, which keeps the client's own cost per message small.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

import httpx
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
)

RECEIVE_SIZE = 65536
_FIRST_KEY = re.compile(r'\{\s*"(\w+)"')


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
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=f"127.0.0.1:{port}", target=path)))
        parts: list[str] = []
        while True:
            if plan.stall is not None and plan.stall[0] <= trio.current_time() < plan.stall[1]:
                await trio.sleep_until(plan.stall[1])
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                record.close = (trio.current_time(), None, "TCP connection closed without a close frame")
                return
            now = trio.current_time()
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Message):
                    parts.append(str(event.data))
                    if event.message_finished:
                        reply = _handle_message("".join(parts), now, credentials, record, window)
                        parts.clear()
                        if reply is not None:
                            await stream.send_all(ws.send(Message(data=reply)))
                elif isinstance(event, Ping):
                    await stream.send_all(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    record.close = (now, event.code, event.reason or "")
                    await stream.send_all(ws.send(event.response()))
                    return
                elif isinstance(event, RejectConnection):
                    raise OSError(f"websocket upgrade rejected with HTTP {event.status_code}")
                elif isinstance(event, AcceptConnection):
                    pass


def _handle_message(
    text: str, now: float, credentials: str | None, record: ClientRecord, window: Window
) -> str | None:
    """Record one message; return a message to send back (the ``auth`` after ``connected``)."""
    key = _FIRST_KEY.match(text)
    kind = key.group(1) if key else ""
    if kind == "current":
        if window.contains(now):
            record.currents.append(now)
    elif kind == "event":
        record.events += 1
    elif kind == "history":
        record.history_times.append(now)
        record.settled.set()
    elif kind == "connected" and credentials is not None:
        return '{"auth": "' + credentials + '"}'
    return None
