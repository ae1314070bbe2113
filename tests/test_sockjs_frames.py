"""Sans-IO SockJS framing: synchronous unit tests and hypothesis round-trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from octotrio.sockjs import (
    HEARTBEAT_FRAME,
    MAX_CLIENT_FRAME_BYTES,
    MAX_CLIENT_FRAME_DEPTH,
    OPEN_FRAME,
    BrokenFraming,
    decode_client_frame,
    encode_close,
    encode_messages,
    encode_string,
    escape_json,
)

# Every code point, lone surrogates included, with the ones the escaping rules name (J1, J2, J5)
# drawn often enough that each example is likely to meet some of them.
SPECIAL_CHARACTERS = st.sampled_from(
    list('\x00\x1f\x7f%"\\/\u2028\u2029\u200c\u2060\ufff0\uffff\ud800\udbff\udc00\udfff\U0001f600\U0010ffff')
)
ANY_TEXT = st.lists(st.one_of(st.characters(codec=None), SPECIAL_CHARACTERS)).map("".join)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4),
    max_leaves=12,
)


def as_utf16(value: object) -> object:
    """``value`` as JavaScript sees it: strings as UTF-16, so that a high and a low surrogate
    side by side in a Python string equal the astral character they encode."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(value, list):
        return [as_utf16(item) for item in value]
    if isinstance(value, dict):
        return {as_utf16(key): as_utf16(item) for key, item in value.items()}
    return value


def test_constant_frames() -> None:
    assert OPEN_FRAME == "o"
    assert HEARTBEAT_FRAME == "h"


def test_encode_messages_joins_values_compactly() -> None:
    # F5: no spaces; OctoPrint puts objects in the array (Q15), standard SockJS strings.
    assert encode_messages(['{"connected":{}}']) == 'a[{"connected":{}}]'
    assert encode_messages([encode_string("a"), encode_string("b")]) == 'a["a","b"]'
    assert encode_messages([]) == "a[]"


def test_encode_messages_escapes_non_ascii() -> None:
    value = json.dumps({"text": "é\u2028\ud800😀"}, ensure_ascii=False)
    frame = encode_messages([value])
    assert frame == 'a[{"text": "\\u00e9\\u2028\\ud800\\ud83d\\ude00"}]'
    assert json.loads(frame[1:]) == [{"text": "é\u2028\ud800😀"}]


def test_encode_close_is_compact() -> None:
    assert encode_close(3000, "Go away!") == 'c[3000,"Go away!"]'
    assert encode_close(1001, "Server shutting down") == 'c[1001,"Server shutting down"]'
    assert encode_close(3000, 'say "é"') == 'c[3000,"say \\"\\u00e9\\""]'


def test_escape_json_returns_ascii_input_unchanged() -> None:
    text = '{"a":[1,2,"x"]}'
    assert escape_json(text) is text


def test_escape_uses_lowercase_hex() -> None:
    # J1: lowercase hex digits.
    assert escape_json('"\ufeff"') == '"\\ufeff"'
    assert encode_string("\u2028\uffff") == '"\\u2028\\uffff"'


@given(ANY_TEXT)
@example("\ud800")
@example("100%\u2028\u2029\x00")
def test_encode_string_round_trips_as_ascii(value: str) -> None:
    encoded = encode_string(value)
    assert encoded.isascii()
    assert json.loads(encoded) == as_utf16(value)


def test_adjacent_surrogates_become_the_character_they_encode() -> None:
    # JSON (like JavaScript) cannot tell the pair apart from the character: equal as UTF-16.
    assert json.loads(encode_string("\ud83d\ude00")) == "\U0001f600"
    assert json.loads(escape_json('"\ud83d\ude00"')) == "\U0001f600"


@given(ANY_TEXT)
@example("\udfff\ud800")
@example("\U0001f600")
def test_escape_json_round_trips_as_ascii(value: str) -> None:
    escaped = escape_json(json.dumps(value, ensure_ascii=False))
    assert escaped.isascii()
    assert json.loads(escaped) == as_utf16(value)
    escaped.encode("utf-8")  # J2: lone surrogates can no longer break the transport's encoding


@given(st.lists(JSON_VALUES, max_size=5))
def test_encode_messages_round_trips(values: list[object]) -> None:
    frame = encode_messages([json.dumps(value, ensure_ascii=False) for value in values])
    assert frame.isascii()
    assert frame.startswith("a")
    assert json.loads(frame[1:]) == as_utf16(values)


@given(st.lists(ANY_TEXT, max_size=5))
def test_client_string_frames_round_trip(messages: list[str]) -> None:
    # What sockjs-client sends: a JSON array of strings, escaped.
    assert decode_client_frame(json.dumps(messages)) == as_utf16(messages)
    assert decode_client_frame(json.dumps(messages, ensure_ascii=False)) == messages


@given(st.lists(JSON_VALUES, max_size=5))
def test_client_elements_of_any_type_are_delivered_as_json(elements: list[object]) -> None:
    decoded = decode_client_frame(json.dumps(elements))
    assert len(decoded) == len(elements)
    for text, element in zip(decoded, elements, strict=True):
        assert (text if isinstance(element, str) else json.loads(text)) == as_utf16(element)


@pytest.mark.parametrize(
    ("frame", "messages"),
    [
        ("", []),
        ("[]", []),
        ('["x"]', ["x"]),
        (' [ "a" , "b" ] ', ["a", "b"]),
        ('["\\ud800"]', ["\ud800"]),  # J2: a lone surrogate from the client
        ('["[{\\"a\\":1}]"]', ['[{"a":1}]']),
        ('[{"auth": "admin:token"}]', ['{"auth":"admin:token"}']),  # Q14: objects accepted
        ('[1, null, true, [2, {"b": []}]]', ["1", "null", "true", '[2,{"b":[]}]']),
        ('[{"t": "é"}]', ['{"t":"é"}']),
    ],
)
def test_decode_client_frame(frame: str, messages: list[str]) -> None:
    assert decode_client_frame(frame) == messages


@pytest.mark.parametrize(
    "frame",
    ['["a', "[", "]", "x", '"a"', '{"a":1}', "1", "null", "[NaN]", "[Infinity]", "[-Infinity]", '["a"]x'],
)
def test_broken_framing(frame: str) -> None:
    with pytest.raises(BrokenFraming):
        decode_client_frame(frame)


def test_frame_size_is_bounded_in_utf8_bytes() -> None:
    ascii_frame = json.dumps(["x" * (MAX_CLIENT_FRAME_BYTES - 4)])
    assert len(ascii_frame) == MAX_CLIENT_FRAME_BYTES
    assert decode_client_frame(ascii_frame) == ["x" * (MAX_CLIENT_FRAME_BYTES - 4)]
    with pytest.raises(BrokenFraming, match="larger"):
        decode_client_frame(json.dumps(["x" * (MAX_CLIENT_FRAME_BYTES - 3)]))
    # Fewer characters than the limit, but more bytes once encoded.
    with pytest.raises(BrokenFraming, match="larger"):
        decode_client_frame(json.dumps(["é" * (MAX_CLIENT_FRAME_BYTES // 2)], ensure_ascii=False))
    assert decode_client_frame('["ab"]', max_bytes=6) == ["ab"]
    with pytest.raises(BrokenFraming):
        decode_client_frame('["abc"]', max_bytes=6)


def test_nesting_depth_is_bounded() -> None:
    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    assert decode_client_frame(nested(MAX_CLIENT_FRAME_DEPTH)) == [nested(MAX_CLIENT_FRAME_DEPTH - 1)]
    with pytest.raises(BrokenFraming, match="deeper"):
        decode_client_frame(nested(MAX_CLIENT_FRAME_DEPTH + 1))
    # Far deeper than the interpreter's recursion limit: rejected, not a RecursionError.
    half = MAX_CLIENT_FRAME_BYTES // 2
    with pytest.raises(BrokenFraming, match="deeper"):
        decode_client_frame(nested(half))
    with pytest.raises(BrokenFraming):
        decode_client_frame("[" * MAX_CLIENT_FRAME_BYTES)
    assert decode_client_frame('[{"a":[1]}]', max_depth=3) == ['{"a":[1]}']
    with pytest.raises(BrokenFraming):
        decode_client_frame('[{"a":[1]}]', max_depth=2)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    deep_looking = "[" * 1000 + '\\"{' * 1000
    assert decode_client_frame(json.dumps([deep_looking])) == [deep_looking]


@pytest.mark.parametrize(
    "frame",
    [
        '"' * MAX_CLIENT_FRAME_BYTES,
        '"' + '\\"' * (MAX_CLIENT_FRAME_BYTES // 2 - 1),
        '["' + "\\" * (MAX_CLIENT_FRAME_BYTES - 2),
        '["\\"[' * (MAX_CLIENT_FRAME_BYTES // 4),
    ],
)
def test_pathological_quotes_are_rejected(frame: str) -> None:
    # Unbalanced quotes and backslashes: the depth scan stays linear (this would take minutes
    # with a backtracking string pattern), and the parser rejects the text.
    with pytest.raises(BrokenFraming):
        decode_client_frame(frame)
