"""multipart/form-data parsing, without I/O: what httpx encodes comes back field by field."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from octotrio.rest._multipart import MAX_PARTS, MultipartError, parse_form_data

field_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


def encode(data: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://127.0.0.1/", data=data, files=files)
    return request.headers["content-type"], request.read()


@given(
    st.dictionaries(field_names, st.text(max_size=40), max_size=5),
    st.binary(max_size=2000),
    st.text(alphabet="abc-_.", min_size=1, max_size=10),
)
def test_fields_and_file_round_trip(data: dict[str, str], content: bytes, stem: str) -> None:
    data.pop("file", None)
    content_type, body = encode(data, {"file": (f"{stem}.gcode", content)})
    parts = parse_form_data(content_type, body)
    assert parts["file"].filename == f"{stem}.gcode"
    assert parts["file"].data == content
    assert {name: parts[name].text() for name in data} == data
    assert all(parts[name].filename is None for name in data)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{}"),
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=x", b"no boundary here"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\nunterminated",
        ),
        ("multipart/form-data; boundary=x", b"--x\r\nno header end"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Type: text/plain\r\n\r\nv\r\n--x--"),
    ],
)
def test_malformed_bodies_are_refused(content_type: str, body: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_form_data(content_type, body)


def test_the_number_of_parts_is_bounded() -> None:
    content_type, body = encode({f"f{n}": "v" for n in range(MAX_PARTS)}, {"file": ("a.gcode", b"G28")})
    with pytest.raises(MultipartError, match="parts"):
        parse_form_data(content_type, body)
