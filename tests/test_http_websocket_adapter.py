"""The websocket adapter over in-memory streams: handshake checks, control frames, bounds, timeouts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Event, Ping, Pong, TextMessage

from octotrio.http import Request, WebSocket, WebSocketClosed
from octotrio.http._websocket import HandshakeRefusal, websocket_handshake

UPGRADE = (
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-key", b"x3JJHMbDL1EzLkh9GBhXDw=="),
)


def upgrade_request(*headers: tuple[bytes, bytes]) -> Request:
    return Request.from_target("GET", "/sockjs/websocket?t=1", headers, b"")


def test_handshake_accepts_rfc_example_key() -> None:
    # W3: the accept token of RFC 6455's example key.
    assert websocket_handshake(upgrade_request(*UPGRADE)) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="),
    ]


@pytest.mark.parametrize(
    ("replaced", "status"),
    [
        ((b"upgrade", b"h2c"), 400),
        ((b"connection", b"close"), 400),  # W1
        ((b"sec-websocket-version", b"8"), 426),
        ((b"sec-websocket-key", b"c2hvcnQ="), 400),
        ((b"sec-websocket-key", b"not base64!"), 400),
    ],
)
def test_handshake_refusals(replaced: tuple[bytes, bytes], status: int) -> None:
    headers = [replaced if name == replaced[0] else (name, value) for name, value in UPGRADE]
    refusal = websocket_handshake(upgrade_request(*headers))
    assert isinstance(refusal, HandshakeRefusal)
    assert refusal.status == status


class Client:
    """A wsproto client on the other end of the server's stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.protocol = Connection(ConnectionType.CLIENT)
        self.events: list[Event] = []

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.protocol.send(event))

    async def next_event(self) -> Event:
        while not self.events:
            self.protocol.receive_data(bytes(await self.stream.receive_some(65536)) or None)
            self.events.extend(self.protocol.events())
        return self.events.pop(0)


def pair(
    *, write_timeout: float = 10.0, max_message_bytes: int = 100, lockstep: bool = False
) -> tuple[WebSocket, Client]:
    server_stream, client_stream = (
        trio.testing.lockstep_stream_pair() if lockstep else trio.testing.memory_stream_pair()
    )
    server = WebSocket(server_stream, b"", write_timeout=write_timeout, max_message_bytes=max_message_bytes)
    return server, Client(client_stream)


async def test_fragmented_messages_are_reassembled_and_pings_answered() -> None:
    server, client = pair()
    await client.send(TextMessage(data="hel", message_finished=False))
    await client.send(Ping(payload=b"p"))  # control frames may come between fragments
    await client.send(TextMessage(data="lo", message_finished=True))
    assert await server.receive_message() == "hello"
    assert await client.next_event() == Pong(payload=b"p")


async def test_bytes_the_handshake_left_over_are_read_first() -> None:
    client_protocol = Connection(ConnectionType.CLIENT)
    early = client_protocol.send(TextMessage(data="early"))
    server_stream, _ = trio.testing.memory_stream_pair()
    server = WebSocket(server_stream, early, write_timeout=1.0, max_message_bytes=100)
    assert await server.receive_message() == "early"


async def test_peer_close_is_answered_and_reported() -> None:
    server, client = pair()
    await client.send(CloseConnection(code=1000, reason="bye"))
    with pytest.raises(WebSocketClosed) as closed:
        await server.receive_message()
    assert (closed.value.code, closed.value.reason) == (1000, "bye")
    assert await client.next_event() == CloseConnection(code=1000, reason="bye")
    assert server.is_finished
    with pytest.raises(WebSocketClosed):
        await server.send_text("too late")


async def test_server_close_waits_for_the_answer_and_drops_late_messages() -> None:
    server, client = pair()
    await server.close(3000, "Go away!")
    await server.close(3001, "twice")  # idempotent
    assert await client.next_event() == CloseConnection(code=3000, reason="Go away!")
    assert not server.is_open
    with pytest.raises(WebSocketClosed):
        await server.send_text("after close")
    # A message the client sent before it saw the close, then its answer to the close.
    late_client = Connection(ConnectionType.CLIENT)
    await client.stream.send_all(late_client.send(TextMessage(data="late")))
    await client.stream.send_all(late_client.send(CloseConnection(code=3000)))
    with pytest.raises(WebSocketClosed) as closed:
        await server.receive_message()
    assert (closed.value.code, closed.value.reason) == (3000, "Go away!")
    assert server.is_finished


async def test_end_of_stream_is_an_abnormal_close() -> None:
    server, client = pair()
    await client.stream.aclose()
    with pytest.raises(WebSocketClosed) as closed:
        await server.receive_message()
    assert closed.value.code == 1006


@pytest.mark.parametrize(
    "parts", [["x" * 101], ["x" * 60, "x" * 41], ["é" * 51]], ids=["one", "fragments", "utf8"]
)
async def test_oversized_messages_close_with_1009(
    parts: list[str], autojump_clock: trio.testing.MockClock
) -> None:
    server, client = pair(max_message_bytes=100)
    for index, part in enumerate(parts):
        await client.send(TextMessage(data=part, message_finished=index == len(parts) - 1))
    await client.send(TextMessage(data="dropped"))
    with trio.move_on_after(1):  # the client has not answered the close yet
        await server.receive_message()
    assert await client.next_event() == CloseConnection(code=1009, reason="Message too big")


async def test_a_write_that_times_out_aborts_the_connection(autojump_clock: trio.testing.MockClock) -> None:
    # A lockstep stream blocks every write until the peer reads: a peer that never reads.
    server, _ = pair(write_timeout=10.0, lockstep=True)
    with pytest.raises(WebSocketClosed) as closed:
        await server.send_text("nobody reads this")
    assert closed.value.code == 1006
    assert server.is_finished
    await server.close(1001, "never sent")  # never raises for a client that is gone
    with pytest.raises(WebSocketClosed):
        await server.receive_message()


async def test_a_send_cancelled_mid_write_aborts_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server, _ = pair(write_timeout=10.0, lockstep=True)
    with trio.move_on_after(1.0):
        await server.send_text("half a frame")
    assert server.is_finished  # the peer might have part of a frame: nothing else can follow
    with pytest.raises(WebSocketClosed):
        await server.send_text("next")


async def test_sends_are_serialized(autojump_clock: trio.testing.MockClock) -> None:
    server, client = pair()
    async with trio.open_nursery() as nursery:
        for index in range(20):
            nursery.start_soon(server.send_text, f"message {index}" * 100)
    received = set()
    for _ in range(20):
        event = await client.next_event()
        assert isinstance(event, TextMessage)
        received.add(event.data)
    assert received == {f"message {index}" * 100 for index in range(20)}


@asynccontextmanager
async def socket_pair(*, write_timeout: float) -> AsyncIterator[tuple[WebSocket, Client]]:
    """A websocket on a real (Unix) socket pair with small buffers, and its client."""
    server_socket, client_socket = trio.socket.socketpair()
    for sock in (server_socket, client_socket):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client = Client(trio.SocketStream(client_socket))
    server = WebSocket(
        trio.SocketStream(server_socket), b"", write_timeout=write_timeout, max_message_bytes=100
    )
    try:
        yield server, client
    finally:
        await server.aclose()
        await client.stream.aclose()


async def test_a_send_without_waiting_keeps_what_the_socket_did_not_take_for_flush() -> None:
    async with socket_pair(write_timeout=10.0) as (server, client):
        await check_send_without_waiting(server, client)


async def check_send_without_waiting(server: WebSocket, client: Client) -> None:
    assert server.can_send_nowait
    server.send_texts_nowait(["first"])
    assert not server.has_unsent
    big = ["x" * 1000] * 200  # far more than the socket buffers hold
    server.send_texts_nowait(big)
    assert server.has_unsent
    assert not server.can_send_nowait  # the rest must go out first, in order
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.flush)
        nursery.start_soon(server.send_text, "last")
        received, parts = [], []
        while len(received) < 202:
            event = await client.next_event()
            assert isinstance(event, TextMessage)
            parts.append(event.data)
            if event.message_finished:
                received.append("".join(parts))
                parts.clear()
    assert received == ["first", *big, "last"]
    assert server.can_send_nowait


async def test_unsent_bytes_of_a_client_that_stops_reading_time_out_like_any_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with socket_pair(write_timeout=10.0) as (server, _client):
        server.send_texts_nowait(["x" * 1000] * 200)
        with pytest.raises(WebSocketClosed) as closed:
            await server.flush()
        assert closed.value.code == 1006
        assert server.is_finished
