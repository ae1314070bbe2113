"""``multipart/form-data`` request bodies (RFC 7578), parsed without I/O.

The body is already in memory (bounded by the route's ``max_body_bytes``); each part's data is
sliced out once. Anything malformed raises :class:`MultipartError`, which REST answers with 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PARTS = 32
"""Parts accepted in one form: an upload has ``file`` and a handful of fields."""

MAX_PART_HEAD_BYTES = 8 * 1024
"""Headers of one part: a Content-Disposition with a long file name and a Content-Type fit easily."""

_PARAMETER = re.compile(r';\s*([\w*.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


class MultipartError(ValueError):
    """The body is not valid ``multipart/form-data``; ``str()`` says why."""


@dataclass(frozen=True)
class FormPart:
    """One form field: ``filename`` is set for file fields (possibly ``""``)."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def header_parameters(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="file"`` → ``("form-data", {"name": "file"})`` (names lowercased)."""
    main, _, rest = value.partition(";")
    parameters = {}
    for match in _PARAMETER.finditer(";" + rest):
        quoted, plain = match.group(2), match.group(3)
        parameters[match.group(1).lower()] = (
            re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain.strip()
        )
    return main.strip().lower(), parameters


def parse_form_data(content_type: str | None, body: bytes) -> dict[str, FormPart]:
    """The fields of a ``multipart/form-data`` body by name (the first of repeated names wins)."""
    kind, parameters = header_parameters(content_type or "")
    if kind != "multipart/form-data":
        raise MultipartError("Expected a multipart/form-data request body")
    boundary = parameters.get("boundary", "")
    if not 1 <= len(boundary) <= 70:
        raise MultipartError("The multipart boundary is missing or invalid")
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2 : start] != b"\r\n"):
        raise MultipartError("The multipart body has no opening boundary")
    parts: dict[str, FormPart] = {}
    position = start + len(delimiter)
    separator = b"\r\n" + delimiter
    count = 0
    while True:
        if body[position : position + 2] == b"--":
            return parts
        if body[position : position + 2] != b"\r\n":
            raise MultipartError("Malformed multipart boundary line")
        head_start = position + 2
        head_end = body.find(b"\r\n\r\n", head_start, head_start + MAX_PART_HEAD_BYTES)
        if head_end < 0:
            raise MultipartError("A multipart part has no end of headers")
        data_end = body.find(separator, head_end + 4)
        if data_end < 0:
            raise MultipartError("The multipart body has no closing boundary")
        count += 1
        if count > MAX_PARTS:
            raise MultipartError(f"More than {MAX_PARTS} multipart parts")
        part = _part(body[head_start:head_end], body[head_end + 4 : data_end])
        parts.setdefault(part.name, part)
        position = data_end + len(separator)


def _part(head: bytes, data: bytes) -> FormPart:
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise MultipartError("Malformed multipart part header")
        headers[name.strip().lower()] = value.strip()
    disposition, parameters = header_parameters(headers.get("content-disposition", ""))
    if disposition != "form-data" or "name" not in parameters:
        raise MultipartError("A multipart part lacks Content-Disposition: form-data; name=...")
    return FormPart(parameters["name"], parameters.get("filename"), headers.get("content-type"), data)
