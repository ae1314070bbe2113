"""``multipart/form-data`` request bodies (RFC 7578, RFC 2046 §5.1), parsed incrementally without I/O.

Feed the body in pieces of any size with :meth:`MultipartParser.receive_data` (``b""`` at its
end) and take :meth:`MultipartParser.next_event` until it returns None: a :class:`PartStart`
with a part's name, file name and type, its data in :class:`PartData` pieces, :class:`PartEnd`,
and :class:`FormEnd` after the closing delimiter. The parser keeps at most one piece plus the
length of a delimiter (and one part's headers, bounded) in memory, so a file part can be
streamed to disk whatever its size. Anything malformed raises :class:`MultipartError`, which
REST answers with 400.
"""

from __future__ import annotations

import enum
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
class PartStart:
    """A part begins: ``filename`` is set for file fields (possibly ``""``)."""

    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class PartData:
    """The next piece of the current part's data (never empty)."""

    data: bytes


@dataclass(frozen=True)
class PartEnd:
    """The current part is complete."""


@dataclass(frozen=True)
class FormEnd:
    """The closing delimiter: the form is complete; what follows it (an epilogue) is ignored."""


MultipartEvent = PartStart | PartData | PartEnd | FormEnd


class _State(enum.Enum):
    PREAMBLE = enum.auto()
    AFTER_DELIMITER = enum.auto()
    HEADERS = enum.auto()
    DATA = enum.auto()
    EPILOGUE = enum.auto()


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


class MultipartParser:
    """An incremental ``multipart/form-data`` parser for one body; see the module docstring."""

    def __init__(self, boundary: str) -> None:
        if not 1 <= len(boundary) <= 70:
            raise MultipartError("The multipart boundary is missing or invalid")
        # Every delimiter but the first follows a CRLF, which belongs to it (RFC 2046 §5.1.1);
        # starting the buffer with a CRLF makes the first one look the same.
        self._separator = b"\r\n--" + boundary.encode("latin-1")
        self._buffer = bytearray(b"\r\n")
        self._state = _State.PREAMBLE
        self._ended = False
        self._parts = 0

    @classmethod
    def for_content_type(cls, content_type: str | None) -> MultipartParser:
        """A parser for a body sent with ``content_type`` (which names the boundary)."""
        kind, parameters = header_parameters(content_type or "")
        if kind != "multipart/form-data":
            raise MultipartError("Expected a multipart/form-data request body")
        return cls(parameters.get("boundary", ""))

    def receive_data(self, data: bytes) -> None:
        """Add the next piece of the body; ``b""`` says the body is over."""
        if not data:
            self._ended = True
        elif self._state is not _State.EPILOGUE:
            self._buffer += data

    def next_event(self) -> MultipartEvent | None:
        """The next event, or None when more data is needed (or, after :class:`FormEnd`, ever).

        Raises :class:`MultipartError` for a malformed body, including one that ends before its
        closing delimiter.
        """
        event = self._step()
        if event is None and self._ended and self._state is not _State.EPILOGUE:
            raise MultipartError(_TRUNCATED[self._state])
        return event

    def _step(self) -> MultipartEvent | None:
        buffer, separator = self._buffer, self._separator
        if self._state is _State.PREAMBLE:
            start = buffer.find(separator)
            if start < 0:
                del buffer[: max(0, len(buffer) - len(separator) + 1)]  # keep what may start one
                return None
            del buffer[: start + len(separator)]
            self._state = _State.AFTER_DELIMITER
        if self._state is _State.AFTER_DELIMITER:
            if len(buffer) < 2:
                return None
            if buffer.startswith(b"--"):
                self._state = _State.EPILOGUE
                buffer.clear()
                return FormEnd()
            if not buffer.startswith(b"\r\n"):
                raise MultipartError("Malformed multipart boundary line")
            del buffer[:2]
            self._state = _State.HEADERS
        if self._state is _State.HEADERS:
            return self._part_start()
        if self._state is _State.DATA:
            end = buffer.find(separator)
            if end == 0:
                del buffer[: len(separator)]
                self._state = _State.AFTER_DELIMITER
                return PartEnd()
            # Data ends at the next delimiter; without one in sight, keep back what may start one.
            available = end if end > 0 else len(buffer) - len(separator) + 1
            if available <= 0:
                return None
            data = bytes(buffer[:available])
            del buffer[:available]
            return PartData(data)
        return None

    def _part_start(self) -> PartStart | None:
        buffer = self._buffer
        if buffer.startswith(b"\r\n"):
            head_end, data_start = 0, 2  # a part without headers: the blank line comes at once
        else:
            head_end = buffer.find(b"\r\n\r\n", 0, MAX_PART_HEAD_BYTES)
            if head_end < 0:
                if len(buffer) >= MAX_PART_HEAD_BYTES:
                    raise MultipartError("A multipart part has no end of headers")
                return None
            data_start = head_end + 4
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise MultipartError(f"More than {MAX_PARTS} multipart parts")
        head = bytes(buffer[:head_end])
        del buffer[:data_start]
        self._state = _State.DATA
        return _part_start(head)


_TRUNCATED = {
    _State.PREAMBLE: "The multipart body has no opening boundary",
    _State.AFTER_DELIMITER: "The multipart body has no closing boundary",
    _State.HEADERS: "A multipart part has no end of headers",
    _State.DATA: "The multipart body has no closing boundary",
}


def _part_start(head: bytes) -> PartStart:
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n") if head else ():
        name, colon, value = line.partition(":")
        if not colon:
            raise MultipartError("Malformed multipart part header")
        headers[name.strip().lower()] = value.strip()
    disposition, parameters = header_parameters(headers.get("content-disposition", ""))
    if disposition != "form-data" or "name" not in parameters:
        raise MultipartError("A multipart part lacks Content-Disposition: form-data; name=...")
    return PartStart(parameters["name"], parameters.get("filename"), headers.get("content-type"))
