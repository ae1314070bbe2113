"""multipart/form-data parsing, without I/O: what httpx encodes comes back field by field, however
the body is cut into pieces."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from octotrio.rest._multipart import (
    MAX_PART_HEAD_BYTES,
    MAX_PARTS,
    FormEnd,
    MultipartError,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
)

field_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)

Part = tuple[str, str | None, str | None, bytes]
"""name, filename, content type, data"""


def encode(data: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://127.0.0.1/", data=data, files=files)
    return request.headers["content-type"], request.read()


def parse(content_type: str, pieces: Iterable[bytes]) -> list[Part]:
    """Every part of the body sent as ``pieces``, checking the order of events on the way."""
    parser = MultipartParser.for_content_type(content_type)
    parts: list[Part] = []
    current: tuple[PartStart, bytearray] | None = None
    ended = False
    for piece in [*pieces, b""]:
        parser.receive_data(piece)
        while (event := parser.next_event()) is not None:
            assert not ended
            if isinstance(event, PartStart):
                assert current is None
                current = (event, bytearray())
            elif isinstance(event, PartData):
                assert current is not None
                assert event.data
                current[1].extend(event.data)
            elif isinstance(event, PartEnd):
                assert current is not None
                start, data = current
                parts.append((start.name, start.filename, start.content_type, bytes(data)))
                current = None
            else:
                assert isinstance(event, FormEnd)
                assert current is None
                ended = True
    assert ended
    return parts


def cut(body: bytes, sizes: list[int]) -> list[bytes]:
    """``body`` in pieces of the given sizes, cycled."""
    pieces, position, index = [], 0, 0
    while position < len(body):
        size = sizes[index % len(sizes)]
        pieces.append(body[position : position + size])
        position += size
        index += 1
    return pieces


@given(
    st.dictionaries(field_names, st.text(max_size=40), max_size=5),
    st.binary(max_size=2000),
    st.text(alphabet="abc-_.", min_size=1, max_size=10),
)
def test_fields_and_file_round_trip(data: dict[str, str], content: bytes, stem: str) -> None:
    data.pop("file", None)
    content_type, body = encode(data, {"file": (f"{stem}.gcode", content)})
    parts = parse(content_type, [body])
    *fields, file = parts
    assert file[:2] == ("file", f"{stem}.gcode")
    assert file[3] == content
    assert {name: value.decode() for name, filename, _, value in fields if filename is None} == data
    assert len(fields) == len(data)


# Data that looks like the start of a delimiter, or all of one but the last byte, or CRLFs, so
# that cuts fall inside near-delimiters as well as real ones.
tricky_data = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"-", b"--", b"\r\n--", b"\r\n--boundar", b"x", b"G1 X1\n"]),
    max_size=40,
).map(b"".join)


@given(
    st.lists(st.tuples(field_names, tricky_data), min_size=1, max_size=5),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=20),
)
@example(parts=[("a", b"\r\n--boundar")], sizes=[1])
def test_any_cut_of_a_body_gives_the_same_parts_as_the_whole(
    parts: list[tuple[str, bytes]], sizes: list[int]
) -> None:
    body = b"preamble\r\n"
    for name, data in parts:
        body += b"--boundary\r\nContent-Disposition: form-data; name=" + name.encode()
        body += b'; filename="f.gcode"\r\nContent-Type: text/plain\r\n\r\n' + data + b"\r\n"
    body += b"--boundary--\r\nepilogue"
    content_type = "multipart/form-data; boundary=boundary"
    whole = parse(content_type, [body])
    assert [(name, data) for name, _, _, data in whole] == parts
    assert all(part[1:3] == ("f.gcode", "text/plain") for part in whole)
    assert parse(content_type, cut(body, sizes)) == whole


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        ("application/json", b"{}", "Expected a multipart/form-data"),
        ("multipart/form-data", b"--x\r\n", "boundary is missing"),
        ("multipart/form-data; boundary=x", b"no boundary here", "no opening boundary"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\nunterminated",
            "no closing boundary",
        ),
        ("multipart/form-data; boundary=x", b"--x\r\nno header end", "no end of headers"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Type: text/plain\r\n\r\nv\r\n--x--", "lacks"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\nno headers at all\r\n--x--", "lacks"),
        ("multipart/form-data; boundary=x", b"--xjunk\r\n", "Malformed multipart boundary line"),
        ("multipart/form-data; boundary=x", b"--x\r\nbad header line\r\n\r\n\r\n--x--", "Malformed"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(content_type: str, body: bytes, error: str) -> None:
    with pytest.raises(MultipartError, match=error):
        parse(content_type, [body])


def test_the_number_of_parts_is_bounded() -> None:
    content_type, body = encode({f"f{n}": "v" for n in range(MAX_PARTS)}, {"file": ("a.gcode", b"G28")})
    with pytest.raises(MultipartError, match="parts"):
        parse(content_type, [body])


def test_part_headers_are_bounded_even_when_they_never_end() -> None:
    parser = MultipartParser("x")
    parser.receive_data(b"--x\r\nContent-Disposition: form-data; name=a; filler=")
    assert parser.next_event() is None
    for _ in range(MAX_PART_HEAD_BYTES // 1024 - 1):
        parser.receive_data(b"y" * 1024)
        assert parser.next_event() is None
    parser.receive_data(b"y" * 1024)
    with pytest.raises(MultipartError, match="no end of headers"):
        parser.next_event()


def test_a_large_part_is_handed_out_in_pieces_as_it_arrives() -> None:
    parser = MultipartParser("x")
    parser.receive_data(b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.gcode"\r\n\r\n')
    assert parser.next_event() == PartStart("file", "a.gcode", None)
    held_back = len(b"\r\n--x") - 1  # what may be the start of the delimiter
    for _ in range(100):
        parser.receive_data(b"G1 X1\n" * 1000)
        event = parser.next_event()
        assert isinstance(event, PartData)
        assert parser.next_event() is None
        assert len(parser._buffer) <= held_back  # nothing accumulates
    parser.receive_data(b"\r\n--x--")
    assert parser.next_event() == PartData(b"G1 X1\n"[-held_back:])
    assert parser.next_event() == PartEnd()
    assert parser.next_event() == FormEnd()
