"""The sans-IO SockJS session core, every transition, and each transport's encoding decoded the way
sockjs-client decodes it."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octotrio.sockjs import (
    ANOTHER_CONNECTION_CLOSE,
    EVENTSOURCE_PRELUDE,
    INTERRUPTED_CLOSE,
    XHR_STREAMING_PRELUDE,
    Session,
    SessionState,
    encode_messages,
    encode_string,
    eventsource_chunk,
    htmlfile_chunk,
    htmlfile_prelude,
    jsonp_body,
    valid_callback,
    xhr_chunk,
)

RECEIVER = "first receiver"
OTHER = "second receiver"


def new_session() -> Session:
    return Session(now=0.0, disconnect_delay=5.0, heartbeat_interval=25.0, max_queued_bytes=100)


def state_of(session: Session) -> SessionState:
    """The state, read through a call so that mypy does not keep an earlier narrowing."""
    return session.state


def texts(session: Session, receiver: object, now: float) -> list[str]:
    """Every frame due to ``receiver`` at ``now``."""
    frames = []
    while (frame := session.take_frame(receiver, now)) is not None:
        frames.append(frame.text)
        if frame.close is not None:
            break
    return frames


def test_a_new_session_owes_the_open_frame_first() -> None:
    # F1, S1: o first, even when messages were queued before the first receiver came.
    session = new_session()
    assert session.enqueue(['"early"'])
    assert session.attach(RECEIVER, 0.0) is None
    assert texts(session, RECEIVER, 0.0) == ["o", 'a["early"]']


def test_messages_queued_without_a_receiver_come_batched() -> None:
    # F2: one a[...] frame for everything queued meanwhile.
    session = new_session()
    session.attach(RECEIVER, 0.0)
    assert texts(session, RECEIVER, 0.0) == ["o"]
    session.detach(RECEIVER, 1.0)
    session.enqueue(['"1"'])
    session.enqueue(['"2"', '"3"'])
    session.attach(RECEIVER, 2.0)
    frame = session.take_frame(RECEIVER, 2.0)
    assert frame is not None
    assert frame.text == 'a["1","2","3"]'
    assert frame.messages == ('"1"', '"2"', '"3"')
    assert session.take_frame(RECEIVER, 2.0) is None


def test_second_receiver_gets_2010_and_the_first_stays() -> None:
    # S3
    session = new_session()
    session.attach(RECEIVER, 0.0)
    refusal = session.attach(OTHER, 0.0)
    assert refusal is not None
    assert refusal.text == 'c[2010,"Another connection still open"]'
    assert refusal.close == ANOTHER_CONNECTION_CLOSE
    assert session.attached(RECEIVER)
    assert session.is_open
    session.detach(OTHER, 0.0)  # not attached: ignored
    assert session.attached(RECEIVER)


def test_close_delivers_what_was_queued_then_the_close_frame() -> None:
    # F3, S5: CLOSING until the close frame went out, then CLOSED.
    session = new_session()
    session.attach(RECEIVER, 0.0)
    session.enqueue(['"last words"'])
    session.close(3000, "Go away!")
    assert session.state is SessionState.CLOSING
    assert not session.enqueue(['"too late"'])
    session.close(1000, "second close is ignored")
    assert texts(session, RECEIVER, 0.0) == ["o", 'a["last words"]', 'c[3000,"Go away!"]']
    assert state_of(session) is SessionState.CLOSED


def test_close_frame_stays_served_until_the_session_expires() -> None:
    # S5: every later receiver gets the same close frame at once and is not attached.
    session = new_session()
    session.attach(RECEIVER, 0.0)
    session.close(3000, "Go away!")
    assert texts(session, RECEIVER, 0.0) == ["o", 'c[3000,"Go away!"]']
    session.detach(RECEIVER, 1.0)
    for now in (1.0, 3.0, 5.9):
        frame = session.attach(OTHER, now)
        assert frame is not None
        assert frame.text == 'c[3000,"Go away!"]'
        assert not session.attached(OTHER)
    assert not session.expired(5.9)
    assert session.expired(6.0)


def test_interrupted_receiver_closes_with_1002() -> None:
    # S6: queued messages are dropped; the next receiver gets c[1002,...].
    session = new_session()
    session.attach(RECEIVER, 0.0)
    texts(session, RECEIVER, 0.0)
    session.enqueue(['"lost"'])
    session.detach(RECEIVER, 1.0, interrupted=True)
    assert session.state is SessionState.CLOSED
    assert not session.is_open
    frame = session.attach(OTHER, 1.5)
    assert frame is not None
    assert frame.text == 'c[1002,"Connection interrupted"]'
    assert frame.close == INTERRUPTED_CLOSE


def test_interrupted_while_closing_keeps_the_close_it_was_closing_with() -> None:
    session = new_session()
    session.attach(RECEIVER, 0.0)
    session.close(3000, "Go away!")
    session.detach(RECEIVER, 0.0, interrupted=True)
    frame = session.attach(OTHER, 0.0)
    assert frame is not None
    assert frame.text == 'c[3000,"Go away!"]'


def test_a_frame_lost_after_detaching_interrupts_the_session() -> None:
    # A polling receiver detaches as soon as it took its frame; if the answer then fails, S6.
    session = new_session()
    session.attach(RECEIVER, 0.0)
    texts(session, RECEIVER, 0.0)
    session.enqueue(['"lost"'])
    assert texts(session, RECEIVER, 0.0) == ['a["lost"]']
    session.detach(RECEIVER, 0.0)
    session.interrupt()
    frame = session.attach(OTHER, 0.0)
    assert frame is not None
    assert frame.close == INTERRUPTED_CLOSE
    session.interrupt()  # a closed session stays as it is
    assert session.attach(OTHER, 0.0) == frame


def test_a_normal_detach_keeps_the_session_open() -> None:
    session = new_session()
    session.attach(RECEIVER, 0.0)
    texts(session, RECEIVER, 0.0)
    session.detach(RECEIVER, 1.0)
    assert session.is_open
    assert session.attach(OTHER, 2.0) is None


def test_expiry_counts_only_time_without_a_receiver() -> None:
    # S4: 5 s after the last receiver left; never while one is attached.
    session = new_session()
    assert session.expires_at() == 5.0  # created, nobody attached yet
    session.attach(RECEIVER, 1.0)
    assert not session.expired(1000.0)
    session.detach(RECEIVER, 1000.0)
    assert session.expires_at() == 1005.0
    assert not session.expired(1004.9)
    session.attach(RECEIVER, 1004.9)
    session.detach(RECEIVER, 1010.0)
    assert not session.expired(1014.9)
    assert session.expired(1015.0)


def test_heartbeat_is_due_after_the_interval_without_frames() -> None:
    # S9: h after 25 s without any frame; every frame restarts the count.
    session = new_session()
    session.attach(RECEIVER, 0.0)
    assert texts(session, RECEIVER, 0.0) == ["o"]
    assert session.wake_at() == 25.0
    assert session.take_frame(RECEIVER, 24.9) is None
    session.enqueue(['"x"'])
    assert texts(session, RECEIVER, 10.0) == ['a["x"]']
    assert session.wake_at() == 35.0
    assert session.take_frame(RECEIVER, 34.0) is None
    assert texts(session, RECEIVER, 35.0) == ["h"]
    assert session.wake_at() == 60.0


def test_raw_sessions_have_no_open_frame_and_no_heartbeat() -> None:
    session = Session(now=0.0, heartbeat_interval=None, send_open=False)
    session.attach(RECEIVER, 0.0)
    assert session.take_frame(RECEIVER, 1e9) is None
    assert session.wake_at() == float("inf")
    session.enqueue(['{"a":1}'])
    frame = session.take_frame(RECEIVER, 0.0)
    assert frame is not None
    assert frame.messages == ('{"a":1}',)


def test_queue_full_is_reported_and_freed_by_a_receiver() -> None:
    # The limit is in message bytes; a batch is never split.
    session = new_session()
    assert session.enqueue(["x" * 60])
    assert not session.queue_full
    assert session.enqueue(["y" * 60])
    assert session.queue_full
    session.attach(RECEIVER, 0.0)
    texts(session, RECEIVER, 0.0)
    assert not session.queue_full


def test_messages_bypass_the_queue_only_when_nothing_is_owed_before_them() -> None:
    session = new_session()
    assert session.take_direct(RECEIVER, ['"x"'], 0.0) is None  # no receiver: queue them
    session.attach(RECEIVER, 0.0)
    assert session.take_direct(RECEIVER, ['"x"'], 0.0) is None  # o is owed first (F1)
    assert texts(session, RECEIVER, 0.0) == ["o"]
    session.enqueue(['"queued"'])
    assert session.take_direct(RECEIVER, ['"x"'], 0.0) is None  # behind the queue, in order
    assert texts(session, RECEIVER, 0.0) == ['a["queued"]']
    assert session.take_direct(OTHER, ['"x"'], 0.0) is None  # only for the attached receiver
    frame = session.take_direct(RECEIVER, ['"1"', '"2"'], 10.0)
    assert frame is not None
    assert frame.text == 'a["1","2"]'
    assert session.wake_at() == 35.0  # a frame like any other for the heartbeat (S9)
    session.close(3000, "Go away!")
    assert session.take_direct(RECEIVER, ['"late"'], 10.0) is None  # closing: enqueue refuses it
    assert texts(session, RECEIVER, 10.0) == ['c[3000,"Go away!"]']


def test_take_frame_from_a_receiver_that_is_not_attached_is_a_bug() -> None:
    session = new_session()
    with pytest.raises(ValueError, match="not attached"):
        session.take_frame(RECEIVER, 0.0)


# Encodings, decoded the way sockjs-client does.

# J1/J2: any unicode, lone surrogates, line separators, % and control characters included.
awkward_pieces = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.sampled_from(["\u2028", "\u2029", "%", "%25", "%41", "\0", "\r", "\n", "\ud800", "\udfff"]),
    st.just("</script>"),
)
awkward_text = st.lists(awkward_pieces, max_size=20).map("".join)
messages = st.lists(awkward_text, max_size=5)

# decodeURI leaves these escapes alone (ECMA-262 reservedURISet and '#').
_DECODE_URI_KEEPS = set(";/?:@&=+$,#")


def decode_uri(text: str) -> str:
    """JavaScript's decodeURI for the ASCII text an eventsource data line holds."""

    def replace(match: re.Match[str]) -> str:
        character = chr(int(match.group(1), 16))
        return match.group(0) if character in _DECODE_URI_KEEPS else character

    return re.sub(r"%([0-9A-Fa-f]{2})", replace, text)


def frame_of(values: list[str]) -> str:
    return encode_messages([encode_string(value) for value in values])


def utf16(value: str) -> str:
    """What a JavaScript client sees of ``value``: UTF-16 code units, surrogate pairs joined."""
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")


def decoded_messages(frame: str) -> list[str]:
    assert frame.startswith("a")
    values: list[str] = json.loads(frame[1:])
    return values


@given(messages)
def test_xhr_round_trip(values: list[str]) -> None:
    chunk = xhr_chunk(frame_of(values))
    assert chunk.isascii()  # J1
    (line, rest) = chunk.decode("ascii").split("\n")  # the client splits on \n
    assert rest == ""
    assert decoded_messages(line) == [utf16(value) for value in values]


@given(messages)
def test_eventsource_round_trip(values: list[str]) -> None:
    # J5: no raw CR, LF or NUL in the data line; % survives decodeURI.
    chunk = eventsource_chunk(frame_of(values)).decode("ascii")
    assert chunk.startswith("data: ")
    assert chunk.endswith("\r\n\r\n")
    data = chunk.removeprefix("data: ").removesuffix("\r\n\r\n")
    assert not set(data) & {"\r", "\n", "\0"}
    assert decoded_messages(decode_uri(data)) == [utf16(value) for value in values]


def test_eventsource_escapes_percent_and_line_breaks() -> None:
    assert eventsource_chunk('a["100%"]') == b'data: a["100%25"]\r\n\r\n'
    assert eventsource_chunk("a\r\n\0") == b"data: a%0D%0A%00\r\n\r\n"


@given(messages)
def test_htmlfile_round_trip(values: list[str]) -> None:
    # J4: the frame is a JavaScript string literal inside a script element.
    chunk = htmlfile_chunk(frame_of(values)).decode("ascii")
    match = re.fullmatch(r"<script>\np\((.*)\);\n</script>\r\n", chunk, re.DOTALL)
    assert match is not None
    literal = match.group(1)
    assert "<" not in literal  # no </script> inside the script
    assert decoded_messages(json.loads(literal)) == [utf16(value) for value in values]


@given(messages)
def test_jsonp_round_trip(values: list[str]) -> None:
    body = jsonp_body("_jp.a1b2c3", frame_of(values)).decode("ascii")
    match = re.fullmatch(r"/\*\*/_jp\.a1b2c3\((.*)\);\r\n", body, re.DOTALL)
    assert match is not None
    assert decoded_messages(json.loads(match.group(1))) == [utf16(value) for value in values]


def test_preludes() -> None:
    # §8: 2048 h and a newline; CRLF for eventsource; htmlfile over 1024 bytes.
    assert XHR_STREAMING_PRELUDE == b"h" * 2048 + b"\n"
    assert EVENTSOURCE_PRELUDE == b"\r\n"
    prelude = htmlfile_prelude("_jp.a1b2c3")
    assert len(prelude) > 1024
    assert b"var c = parent._jp.a1b2c3;" in prelude
    assert prelude.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("name", ["c", "_jp.a1b2c3", "a-b_c.d", "x" * 32])
def test_valid_callbacks(name: str) -> None:
    assert valid_callback(name)


@pytest.mark.parametrize("name", ["", " ", "a b", "*", "abc(", "a;b", "x" * 33, "é"])
def test_invalid_callbacks(name: str) -> None:
    # T1
    assert not valid_callback(name)
