"""The benchmark client's hand-written websocket: checked against wsproto, the server's own core.

If the bench client misread frames, every storm and fan-out figure would be wrong; wsproto is the
reference it must agree with, byte split by byte split.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, Request, TextMessage
from wsproto.handshake import H11Handshake

from bench._wsclient import (
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    ServerFrames,
    WebSocketProtocolError,
    check_handshake,
    client_frame,
    handshake_request,
)


def _server_bytes(texts: list[str], *, fragment: bool) -> bytes:
    server = Connection(ConnectionType.SERVER)
    data = b""
    for text in texts:
        if fragment and len(text) > 1:
            half = len(text) // 2
            data += server.send(Message(data=text[:half], message_finished=False))
            data += server.send(Ping(payload=b"between"))  # control frames may interleave (§5.4)
            data += server.send(Message(data=text[half:], message_finished=True))
        else:
            data += server.send(Message(data=text))
    return data


@settings(deadline=None)
@given(
    texts=st.lists(st.text(max_size=200) | st.just("x" * 70_000) | st.just("y" * 300), max_size=6),
    fragment=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=12),
)
def test_server_frames_match_what_wsproto_sends_however_the_bytes_are_split(
    texts: list[str], fragment: bool, cuts: list[int]
) -> None:
    data = _server_bytes(texts, fragment=fragment)
    reader = ServerFrames()
    received: list[tuple[int, bytes]] = []
    previous = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        received += reader.receive(data[previous:cut])
        previous = cut
    got_texts = [payload.decode() for opcode, payload in received if opcode == OPCODE_TEXT]
    assert got_texts == texts
    pings = [payload for opcode, payload in received if opcode == OPCODE_PING]
    assert pings == [b"between" for text in texts if fragment and len(text) > 1]


def test_server_close_frame_carries_code_and_reason() -> None:
    server = Connection(ConnectionType.SERVER)
    data = server.send(CloseConnection(code=1001, reason="Server shutting down"))
    [(opcode, payload)] = ServerFrames().receive(data)
    assert opcode == OPCODE_CLOSE
    assert int.from_bytes(payload[:2]) == 1001
    assert payload[2:] == b"Server shutting down"


def test_a_masked_frame_from_the_server_is_a_protocol_error() -> None:
    with pytest.raises(WebSocketProtocolError, match="masked"):
        ServerFrames().receive(client_frame(OPCODE_TEXT, b"{}"))


@given(payload=st.binary(max_size=1000))
def test_client_frames_are_what_a_wsproto_server_accepts(payload: bytes) -> None:
    server = Connection(ConnectionType.SERVER)
    server.receive_data(client_frame(OPCODE_TEXT, payload.hex().encode()) + client_frame(OPCODE_PONG, b"p"))
    events = list(server.events())
    assert isinstance(events[0], TextMessage)
    assert events[0].data == payload.hex()
    assert events[0].message_finished


def test_handshake_is_accepted_by_a_wsproto_server_and_its_answer_checked() -> None:
    request, accept = handshake_request("127.0.0.1:5000", "/sockjs/websocket")
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(request)
    [event] = list(server.events())
    assert isinstance(event, Request)
    assert event.target == "/sockjs/websocket"
    answer = server.send(AcceptConnection())
    check_handshake(answer.partition(b"\r\n\r\n")[0], accept)
    with pytest.raises(WebSocketProtocolError, match="wrong Sec-WebSocket-Accept"):
        check_handshake(answer.partition(b"\r\n\r\n")[0], b"bogus")
    with pytest.raises(WebSocketProtocolError, match=r"rejected: HTTP/1\.1 400"):
        check_handshake(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0", accept)
