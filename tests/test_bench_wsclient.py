"""The bench client's own websocket framing, checked against wsproto (the server side of the
project's websockets) and octotrio's frame encoder: the bench must read what servers send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Message, Ping, TextMessage

from bench._wsclient import (
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_TEXT,
    ProtocolError,
    ServerFrames,
    client_frame,
)
from octotrio.http._websocket import encode_text_frame


@given(
    st.lists(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]), max_size=5), st.integers(1, 4096)
)
def test_server_messages_of_every_length_class_come_whole_however_the_bytes_are_cut(
    sizes: list[int], chunk: int
) -> None:
    texts = ['{"current":' + "x" * size + "}" for size in sizes]
    wire = b"".join(encode_text_frame(text) for text in texts)
    frames = ServerFrames()
    received: list[tuple[int, bytes]] = []
    for start in range(0, len(wire), chunk):
        received.extend(frames.feed(wire[start : start + chunk]))
    assert received == [(OPCODE_TEXT, text.encode()) for text in texts]


def test_fragments_are_joined_and_control_frames_pass_between_them() -> None:
    server = Connection(ConnectionType.SERVER)
    wire = (
        server.send(Message(data='{"history":', message_finished=False))
        + server.send(Ping(payload=b"p"))
        + server.send(Message(data="{}}", message_finished=True))
        + server.send(CloseConnection(code=1001, reason="Server shutting down"))
    )
    assert list(ServerFrames().feed(wire)) == [
        (OPCODE_PING, b"p"),
        (OPCODE_TEXT, b'{"history":{}}'),
        (OPCODE_CLOSE, b"\x03\xe9Server shutting down"),
    ]


def test_a_masked_server_frame_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        list(ServerFrames().feed(client_frame(OPCODE_TEXT, b"{}")))


@pytest.mark.parametrize("size", [0, 60, 200, 70000])
def test_client_frames_are_masked_frames_a_server_reads(size: int) -> None:
    server = Connection(ConnectionType.SERVER)
    text = "a" * size
    server.receive_data(client_frame(OPCODE_TEXT, text.encode()))
    server.receive_data(client_frame(OPCODE_CLOSE, b"\x03\xe8"))
    events = list(server.events())
    assert "".join(event.data for event in events if isinstance(event, TextMessage)) == text
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1000
