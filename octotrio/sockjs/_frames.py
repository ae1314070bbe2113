"""SockJS frames, sans-IO: encode what the server sends, decode what the client sends.

Nothing here touches a socket or a clock; every transport (websocket today, the HTTP transports
later) frames through these functions, so the escaping rules live in one place.

Server → client frames (sockjs-protocol.md §2): :data:`OPEN_FRAME`, :data:`HEARTBEAT_FRAME`,
:func:`encode_messages` and :func:`encode_close`. Their output is pure ASCII, which satisfies the
escaping rule J1 and keeps lone surrogates (J2) from breaking the UTF-8 encoding of the transport.

Client → server data (F7) goes through :func:`decode_client_frame`, which is bounded in size and
in nesting depth so that a hostile client can make it neither slow nor recurse deeply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import accumulate

OPEN_FRAME = "o"
"""Sent once when a session opens (F1, S1)."""

HEARTBEAT_FRAME = "h"
"""Sent periodically so proxies and the client see the session alive (F4, S9)."""

MAX_CLIENT_FRAME_BYTES = 64 * 1024
"""Largest client frame accepted, in UTF-8 bytes.

OctoPrint's clients send ``auth``, ``subscribe`` and ``throttle`` messages of a few hundred bytes;
64 KiB leaves two orders of magnitude of headroom while bounding what one frame can cost to parse.
"""

MAX_CLIENT_FRAME_DEPTH = 32
"""Deepest JSON nesting accepted in a client frame (the SockJS array counts as one level).

The deepest OctoPrint client message (``subscribe`` with per-topic options) nests four levels
inside the array. The json module parses and re-encodes nested values recursively, so the bound
also keeps that recursion far from the interpreter's limit.
"""


class BrokenFraming(ValueError):
    """A client frame is not a JSON array, is not valid JSON, or exceeds a bound.

    The websocket transport answers it with ``c[3000,"Broken framing."]`` (W4), xhr_send and
    jsonp_send with 500 ``Broken JSON encoding.`` (T2).
    """


class NotAnArray(BrokenFraming):
    """Valid JSON that is not an array; xhr_send and jsonp_send answer ``Payload expected.``
    (T2, as sockjs-node)."""


# J1/J2: every non-ASCII code point, including lone surrogates, is written as a \u escape.
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape_code_point(match: re.Match[str]) -> str:
    code_point = ord(match.group())
    if code_point <= 0xFFFF:
        # J1: lowercase hex, like json.dumps(ensure_ascii=True) and sockjs-node.
        return f"\\u{code_point:04x}"
    # Outside the BMP: a UTF-16 surrogate pair, the only form JSON can express in ASCII.
    code_point -= 0x10000
    return f"\\u{0xD800 | (code_point >> 10):04x}\\u{0xDC00 | (code_point & 0x3FF):04x}"


def escape_json(json_text: str) -> str:
    """Return ``json_text`` with every non-ASCII code point written as a ``\\u`` escape.

    Use it on JSON produced with ``ensure_ascii=False`` before it goes to a client: the result is
    pure ASCII, which covers every range J1 requires and makes lone surrogates (J2), which cannot
    be encoded as UTF-8, safe. In valid JSON non-ASCII can only occur inside strings, so the
    escapes keep the value unchanged. ASCII input is returned as is, without copying.
    """
    if json_text.isascii():
        return json_text
    return _NON_ASCII.sub(_escape_code_point, json_text)


def encode_string(value: str) -> str:
    """Encode ``value`` as a JSON string literal that is pure ASCII (J1, J2).

    ``json.loads(encode_string(s)) == s`` for every string, lone surrogates included, up to
    UTF-16 equivalence: a high and a low surrogate side by side in ``s`` come back as the one
    character they encode, which is the same string to a JavaScript client.
    """
    # ensure_ascii escapes every non-ASCII code point with lowercase hex, surrogates included.
    return json.dumps(value, ensure_ascii=True)


def encode_messages(values: Sequence[str]) -> str:
    """Encode a batch of messages as one ``a[...]`` frame (F2, F5).

    ``values`` are already-encoded JSON values: OctoPrint puts objects in the array (Q15), a
    standard SockJS application puts strings (use :func:`encode_string` for those). They are not
    re-validated; invalid JSON in, invalid frame out. Non-ASCII is escaped (J1, J2).
    """
    return escape_json("a[" + ",".join(values) + "]")


def encode_close(code: int, reason: str) -> str:
    """Encode a close frame, compact and ASCII: ``encode_close(3000, "Go away!")`` is
    ``c[3000,"Go away!"]`` (F3, F5, J1)."""
    return "c" + json.dumps([code, reason], separators=(",", ":"), ensure_ascii=True)


# A JSON string literal, or an unterminated one running to the end of the text. Possessive
# quantifiers and an alternative that always matches keep this linear on any input, even text
# full of unbalanced quotes and backslashes.
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _nesting_depth(text: str) -> int:
    """The deepest bracket nesting of ``text`` outside string literals, without recursion.

    Exact for valid JSON; for invalid JSON it may be anything, which is fine since the parser
    rejects such text anyway.
    """
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(_DEPTH_STEP[bracket] for bracket in brackets), default=0)


def _reject_constant(name: str) -> object:
    raise BrokenFraming(f"{name} is not JSON")


def decode_client_frame(
    text: str,
    *,
    max_bytes: int = MAX_CLIENT_FRAME_BYTES,
    max_depth: int = MAX_CLIENT_FRAME_DEPTH,
) -> list[str]:
    """Decode client → server data (F7) into the messages it carries, in order.

    * ``["a","b"]`` (standard SockJS) → ``["a", "b"]``; ``[]`` and ``""`` → ``[]`` (a keep-alive
      and an empty websocket message, both valid and doing nothing).
    * Elements that are not strings (OctoPrint clients that send objects, Q14/Q15) are
      re-encoded as compact JSON and delivered as text, where OctoPrint silently drops them.
    * Lone surrogates in escapes (``"\\ud800"``) decode to lone surrogates (J2, J3).

    Raises :class:`BrokenFraming` for invalid JSON, ``NaN``/``Infinity``, a value that is not an
    array, more than ``max_bytes`` UTF-8 bytes or nesting deeper than ``max_depth``.
    """
    if not text:
        return []
    # Characters never outnumber UTF-8 bytes, so the cheap check comes first.
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise BrokenFraming(f"frame larger than {max_bytes} bytes")
    if _nesting_depth(text) > max_depth:
        raise BrokenFraming(f"frame nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # json.JSONDecodeError, or BrokenFraming from _reject_constant
        raise BrokenFraming(str(exc)) from exc
    if not isinstance(value, list):
        raise NotAnArray("frame is not a JSON array")
    return [
        element
        if isinstance(element, str)
        else json.dumps(element, separators=(",", ":"), ensure_ascii=False)
        for element in value
    ]
