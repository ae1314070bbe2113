"""Sans-IO SockJS frame parsing for the client side (sockjs-protocol.md §2), and the JSON checks that
apply to every server frame (PUSH-MSG-3). No I/O, no clock."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

FrameKind = Literal["open", "heartbeat", "array", "close"]

_CLOSE = re.compile(r'c\[(-?\d+),("(?:[^"\\]|\\.)*")\]')


class FrameError(ValueError):
    """A server frame that breaks SOCKJS-FRAME-1 or SOCKJS-FRAME-2; the message says how."""


@dataclass(frozen=True)
class Frame:
    kind: FrameKind
    messages: tuple[Any, ...] = ()
    close_code: int | None = None
    close_reason: str | None = None


def _reject_constant(name: str) -> Any:
    raise FrameError(f"JSON contains {name} (PUSH-MSG-3)")


def loads_strict(text: str) -> Any:
    """Parse server JSON, rejecting NaN/Infinity and non-ASCII text (PUSH-MSG-3)."""
    if not text.isascii():
        raise FrameError("JSON text is not ASCII-only (PUSH-MSG-3)")
    return json.loads(text, parse_constant=_reject_constant)


def parse_frame(text: str) -> Frame:
    """One server frame, without its transport terminator. Raises :class:`FrameError`."""
    if text == "o":
        return Frame("open")
    if text == "h":
        return Frame("heartbeat")
    if text.startswith("c"):
        match = _CLOSE.fullmatch(text)
        if match is None:
            raise FrameError(f"malformed close frame {text[:200]!r} (SOCKJS-FRAME-1)")
        return Frame("close", close_code=int(match.group(1)), close_reason=json.loads(match.group(2)))
    if text.startswith("a"):
        try:
            elements = loads_strict(text[1:])
        except json.JSONDecodeError as error:
            raise FrameError(f"a-frame is not JSON: {error} in {text[:200]!r} (SOCKJS-FRAME-1)") from None
        if not isinstance(elements, list):
            raise FrameError(f"a-frame payload is not an array: {text[:200]!r} (SOCKJS-FRAME-1)")
        for element in elements:
            if not isinstance(element, dict):
                raise FrameError(
                    f"a-frame element is a {type(element).__name__}, not a message object: "
                    f"{json.dumps(element)[:200]} (SOCKJS-FRAME-2)"
                )
        return Frame("array", messages=tuple(elements))
    raise FrameError(f"unknown frame {text[:200]!r} (SOCKJS-FRAME-1)")


def encode_client_frame(*messages: str) -> str:
    """A client → server SockJS frame: a JSON array of JSON-encoded strings (SOCKJS-SEND-1)."""
    return json.dumps(list(messages))
