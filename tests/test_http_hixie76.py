"""Legacy hixie-76 websockets (W5): the sans-IO handshake and codec, then end to end over a raw
TCP socket on loopback against the echo test app and the push API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.http import HttpServer, Request, serve_http
from octotrio.http._hixie76 import (
    CloseFrame,
    Hixie76Codec,
    Hixie76Handshake,
    Hixie76ProtocolError,
    InputEnded,
    TextFrame,
    challenge_response,
    hixie76_handshake,
    key_number,
)

from .test_end_to_end import API_KEY
from .test_http_websocket import EchoApp

HANG_GUARD = 30  # seconds; only to turn a hang into a failure, never a performance claim

# The worked example of draft-hixie-thewebsocketprotocol-76, §1.3.
KEY1 = "4 @1  46546xW%0l 1 5"
KEY2 = "12998 5 Y3 1  .P00"
KEY3 = b"^n:ds[4U"
ANSWER = b"8jKS'y:G*Co,Wxa-"


def hixie_request(*, path: str = "/sockjs/000/abc/websocket", query: str = "", **headers: str) -> Request:
    fields = {
        "host": "example.com",
        "upgrade": "WebSocket",
        "connection": "Upgrade",
        "sec-websocket-key1": KEY1,
        "sec-websocket-key2": KEY2,
        "origin": "http://example.com",
        **headers,
    }
    encoded = tuple((name.encode(), value.encode()) for name, value in fields.items() if value)
    return Request("GET", path, query, encoded, b"")


# The handshake.


def test_the_drafts_example_answer() -> None:
    assert challenge_response(KEY1, KEY2, KEY3) == ANSWER


@pytest.mark.parametrize(
    "key",
    [
        "12345",  # no space: division by zero
        "1 2 3",  # 123 / 2 leaves a remainder
        "   ",  # no digits
        "9 9 9 9 9 9 9 9 9 9 9",  # 99999999999 / 10 does not fit 32 bits
    ],
)
def test_invalid_keys_are_refused(key: str) -> None:
    assert key_number(key) is None
    refusal = hixie76_handshake(hixie_request(**{"sec-websocket-key2": key}))
    assert not isinstance(refusal, Hixie76Handshake)
    assert (refusal.status, refusal.body) == (400, b"Not a valid websocket request")


def test_the_101_names_the_exact_url_and_the_origin() -> None:
    handshake = hixie76_handshake(hixie_request(query="t=1&x=%20", origin="http://a.example"))
    assert isinstance(handshake, Hixie76Handshake)
    assert handshake.headers == [
        ("Upgrade", "WebSocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Location", "ws://example.com/sockjs/000/abc/websocket?t=1&x=%20"),
        ("Sec-WebSocket-Origin", "http://a.example"),
    ]


@pytest.mark.parametrize("headers", [{"upgrade": "h2c"}, {"connection": "close"}])
def test_an_upgrade_that_is_not_one_is_refused(headers: dict[str, str]) -> None:
    refusal = hixie76_handshake(hixie_request(**headers))
    assert not isinstance(refusal, Hixie76Handshake)
    assert refusal.status == 400


# The codec.


def events(codec: Hixie76Codec) -> list[object]:
    found: list[object] = []
    while (event := codec.next_event()) is not None:
        found.append(event)
        if isinstance(event, InputEnded):
            break
    return found


def test_frames_split_anywhere_are_reassembled() -> None:
    codec = Hixie76Codec(max_frame_bytes=100)
    wire = codec.send_text("héllo") + codec.send_text("") + codec.send_close()
    seen: list[object] = []
    for byte in wire:
        codec.receive_data(bytes([byte]))
        seen += events(codec)
    assert seen == [TextFrame("héllo"), TextFrame(""), CloseFrame()]


def test_the_end_of_input_mid_frame_is_reported() -> None:
    codec = Hixie76Codec(max_frame_bytes=100)
    codec.receive_data(b"\x00half")
    assert codec.next_event() is None
    codec.receive_data(b"")
    assert codec.next_event() == InputEnded()


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"\x00" + b"x" * 11, 1009),  # over the bound, before its end byte arrived
        (b"\x00" + b"x" * 11 + b"\xff", 1009),
        (b"\x00\xc3\x28\xff", 1007),  # not UTF-8
        (b"\x80\x03abc", 1002),  # a length-prefixed (binary) frame type
        (b"\xff\x01a", 1003),  # a binary frame of type 0xFF with a length
        (b"\x05text\xff", 1002),  # a sentinel frame of an unknown type
    ],
)
def test_malformed_input_is_a_lasting_protocol_error(wire: bytes, code: int) -> None:
    codec = Hixie76Codec(max_frame_bytes=10)
    codec.receive_data(wire)
    with pytest.raises(Hixie76ProtocolError) as error:
        codec.next_event()
    assert error.value.code == code
    codec.receive_data(codec.send_text("ok"))
    with pytest.raises(Hixie76ProtocolError):
        codec.next_event()


@given(st.lists(st.text(max_size=50), max_size=8), st.lists(st.integers(min_value=1, max_value=40)))
def test_text_frames_round_trip(texts: list[str], cuts: list[int]) -> None:
    codec = Hixie76Codec(max_frame_bytes=200)
    wire = b"".join(map(Hixie76Codec.send_text, texts)) + Hixie76Codec.send_close()
    seen: list[object] = []
    position = 0
    for cut in [*cuts, len(wire)]:
        if chunk := wire[position : position + cut]:  # b"" would mean the end of input
            codec.receive_data(chunk)
        position += cut
        seen += events(codec)
    assert seen == [*map(TextFrame, texts), CloseFrame()]


# End to end, over a raw socket.


class HixieClient:
    """A hixie-76 client by hand: the draft's example keys, frames read off a trio stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = bytearray()

    async def _fill(self) -> None:
        data = await self.stream.receive_some(4096)
        if not data:
            raise EOFError
        self._buffer += data

    async def read_until(self, end: bytes) -> bytes:
        while (index := self._buffer.find(end)) == -1:
            await self._fill()
        data = bytes(self._buffer[: index + len(end)])
        del self._buffer[: index + len(end)]
        return data

    async def read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            await self._fill()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def send_head(
        self, port: int, path: str, *, key1: str = KEY1, origin: str = "http://example.com", then: bytes = b""
    ) -> bytes:
        head = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: WebSocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key1: {key1}\r\nSec-WebSocket-Key2: {KEY2}\r\n"
            f"Origin: {origin}\r\n\r\n"
        )
        await self.stream.send_all(head.encode() + then)
        return await self.read_until(b"\r\n\r\n")

    async def handshake(self, port: int, path: str, *, origin: str = "http://example.com") -> bytes:
        """Send the head, read the 101 (before sending the 8 bytes, W5), then check the answer."""
        response = await self.send_head(port, path, origin=origin)
        await self.stream.send_all(KEY3)
        assert await self.read_exactly(16) == ANSWER
        return response

    async def handshake_at_once(self, port: int, path: str) -> None:
        """Send the head, the 8 bytes and a first frame in one write, as a browser does."""
        await self.send_head(port, path, then=KEY3 + b"\x00first\xff")
        assert await self.read_exactly(16) == ANSWER

    async def receive_text(self) -> str:
        frame_type = await self.read_exactly(1)
        assert frame_type == b"\x00", f"expected a text frame, got {frame_type!r}"
        return (await self.read_until(b"\xff"))[:-1].decode("utf-8")

    async def send_text(self, text: str) -> None:
        await self.stream.send_all(b"\x00" + text.encode() + b"\xff")

    async def expect_close(self) -> None:
        assert await self.read_exactly(2) == b"\xff\x00"


@pytest.fixture
async def server(nursery: trio.Nursery) -> HttpServer:
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=EchoApp(), heartbeat_interval=3600)
    )
    return server


@asynccontextmanager
async def open_client(port: int) -> AsyncIterator[HixieClient]:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        yield HixieClient(stream)


async def test_framed_session_over_hixie76(server: HttpServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with open_client(server.port) as client:
            path = "/sockjs/000/hixie1/websocket?t=1"
            response = await client.handshake(server.port, path)
            status, *header_lines = response.decode("latin-1").rstrip("\r\n").split("\r\n")
            headers = {name.lower(): value for name, _, value in (h.partition(": ") for h in header_lines)}
            assert status == "HTTP/1.1 101 WebSocket Protocol Handshake"
            assert headers == {
                "upgrade": "WebSocket",
                "connection": "Upgrade",
                "sec-websocket-location": f"ws://127.0.0.1:{server.port}{path}",
                "sec-websocket-origin": "http://example.com",
            }  # and so no Content-Length
            assert await client.receive_text() == "o"
            await client.send_text('["x\\u2028\\uffff"]')
            assert await client.receive_text() == 'a["x\\u2028\\uffff"]'
            await client.send_text('["close 3000 Go away!"]')
            assert await client.receive_text() == 'c[3000,"Go away!"]'
            await client.expect_close()
            await client.stream.send_all(b"\xff\x00")
            assert await client.stream.receive_some(16) == b""  # the server closed the connection


async def test_raw_websocket_over_hixie76(server: HttpServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with open_client(server.port) as client:
            await client.handshake_at_once(server.port, "/sockjs/websocket")
            assert await client.receive_text() == json.dumps("first")
            await client.send_text("Hello world!\uffff")
            assert await client.receive_text() == json.dumps("Hello world!\uffff")
            await client.stream.send_all(b"\xff\x00")  # the client closes first
            await client.expect_close()


async def test_a_bad_key_is_refused_without_an_upgrade(server: HttpServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with open_client(server.port) as client:
            response = await client.send_head(server.port, "/sockjs/000/hixie2/websocket", key1="12345")
            assert response.startswith(b"HTTP/1.1 400 ")
            assert b"Not a valid websocket request" in await client.read_exactly(29)


async def test_a_malformed_frame_closes_only_its_connection(server: HttpServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with open_client(server.port) as good:
            await good.handshake(server.port, "/sockjs/000/good/websocket")
            assert await good.receive_text() == "o"
            async with open_client(server.port) as bad:
                await bad.handshake(server.port, "/sockjs/000/bad/websocket")
                assert await bad.receive_text() == "o"
                await bad.stream.send_all(b"\x80\x01x")  # a binary frame
                await bad.expect_close()
                assert await bad.stream.receive_some(16) == b""
            await good.send_text('["still here"]')
            assert await good.receive_text() == 'a["still here"]'


async def test_push_api_over_hixie76(nursery: trio.Nursery) -> None:
    running: RunningServer = await nursery.start(run, ServerConfig(port=0, api_key=API_KEY))
    try:
        with trio.fail_after(HANG_GUARD):
            async with open_client(running.http.port) as client:
                # OctoPrint's push API refuses cross-origin websockets: come from its own origin.
                origin = f"http://127.0.0.1:{running.http.port}"
                await client.handshake(running.http.port, "/sockjs/000/pushhixie/websocket", origin=origin)
                assert await client.receive_text() == "o"
                frame = await client.receive_text()
                assert frame.startswith("a[")
                messages = json.loads(frame[1:])
                assert list(messages[0]) == ["connected"]
                assert "version" in messages[0]["connected"]
    finally:
        running.request_shutdown()
