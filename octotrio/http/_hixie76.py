"""Legacy hixie-76 websockets (draft-hixie-thewebsocketprotocol-76), for old proxies and clients (W5).

Three parts, from the wire inwards:

* :func:`hixie76_handshake` checks the upgrade request and says what the 101 carries, and
  :func:`challenge_response` computes the 16 bytes that follow it: sans-IO.
* :class:`Hixie76Codec` parses and writes the framing (text ``0x00 <utf-8> 0xFF``, close
  ``0xFF 0x00``): sans-IO, ``receive_data`` / ``next_event`` / ``send_*`` in the style of wsproto.
* :class:`Hixie76WebSocket` is the thin trio adapter. It has the interface of
  :class:`~octotrio.http._websocket.WebSocket`, so the SockJS websocket transports and the
  applications above them run over it unchanged. :func:`accept_hixie76` does the handshake on an
  :class:`~octotrio.http.HttpExchange` and returns one.

Hixie-76 has neither close codes nor pings: a close is two bytes, so the code and reason given to
:meth:`Hixie76WebSocket.close` reach the peer only through the SockJS ``c[...]`` frame sent before
it (framed sessions); a raw websocket session's close code (R2) cannot be carried.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from dataclasses import dataclass

import trio

from ._exchange import ClientGone, HttpExchange, send_bytes
from ._request import Request
from ._websocket import (
    NOT_A_WEBSOCKET_REQUEST,
    FrameWriter,
    HandshakeRefusal,
    WebSocketClosed,
)

CHALLENGE_BYTES = 8
"""The client's third key: the bytes after the request head (draft-76 §4.1, "key3")."""

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a client may take to send its 8 challenge bytes after the 101 went out: a real client
sends them with its request head (a proxy right after the 101), so ten seconds only ever bind a
client that will not send them."""

RECEIVE_BUFFER_BYTES = 64 * 1024
"""Bytes asked of the stream per read; with the frame bound this caps the buffered input."""

STATUS_REASON = b"WebSocket Protocol Handshake"
"""The 101's reason phrase that draft-76 servers (faye-websocket, browsers' test servers) send."""

TEXT_FRAME_START = 0x00
FRAME_END = 0xFF
CLOSE_FRAME = b"\xff\x00"  # draft-76 §5.3: a 0xFF frame of length 0

# Why the codec gave up, as RFC 6455 close codes: hixie-76 cannot send them, but the adapter
# reports them in WebSocketClosed, as the RFC 6455 websocket does for the same faults.
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009
NO_STATUS = 1005  # the peer's close: hixie-76 closes carry no code


def is_hixie76_request(request: Request) -> bool:
    """True for a hixie-76 upgrade request: it has both ``Sec-WebSocket-Key1`` and ``Key2``
    and, unlike RFC 6455, no ``Sec-WebSocket-Version``."""
    return (
        request.header("sec-websocket-key1") is not None
        and request.header("sec-websocket-key2") is not None
        and request.header("sec-websocket-version") is None
    )


def key_number(key: str) -> int | None:
    """The number a ``Sec-WebSocket-Key1``/``Key2`` stands for: its digits read as one number,
    divided by its count of spaces (draft-76 §5.2). None when it has no space, the division
    leaves a remainder, or the quotient does not fit 32 bits: such a key is refused."""
    digits = "".join(character for character in key if "0" <= character <= "9")
    spaces = key.count(" ")
    if not digits or spaces == 0:
        return None
    number, remainder = divmod(int(digits), spaces)
    if remainder or number >= 2**32:
        return None
    return number


def challenge_response(key1: str, key2: str, key3: bytes) -> bytes:
    """The 16 bytes the server sends after the 101: MD5 over both key numbers (big-endian
    32-bit each) and the client's 8 bytes. Raises ValueError for a key :func:`key_number`
    refuses or a ``key3`` that is not 8 bytes long."""
    number1, number2 = key_number(key1), key_number(key2)
    if number1 is None or number2 is None or len(key3) != CHALLENGE_BYTES:
        raise ValueError("not a valid hixie-76 challenge")
    challenge = struct.pack(">II", number1, number2) + key3
    return hashlib.md5(challenge, usedforsecurity=False).digest()


@dataclass(frozen=True)
class Hixie76Handshake:
    """An accepted hixie-76 request: the 101's headers and the keys for the challenge."""

    headers: list[tuple[str, str]]
    key1: str
    key2: str


def hixie76_handshake(request: Request) -> Hixie76Handshake | HandshakeRefusal:
    """Check a hixie-76 upgrade request (:func:`is_hixie76_request`); the 101 or a refusal.

    Refused with 400 ``Not a valid websocket request``, as RFC 6455 requests (W1): without
    ``Upgrade: WebSocket`` and ``Connection: Upgrade``, without ``Host``, or with a key that has
    no space or does not divide evenly (:func:`key_number`). The 101 carries ``Upgrade``,
    ``Connection``, ``Sec-WebSocket-Location`` (the URL asked for, path and query included) and
    ``Sec-WebSocket-Origin`` (the request's ``Origin``, when it has one), and no
    ``Content-Length`` (W5). The method is the router's business.
    """
    upgrade = (request.header("upgrade") or "").strip().lower()
    connection = {token.strip().lower() for token in (request.header("connection") or "").split(",")}
    host = request.header("host")
    key1 = request.header("sec-websocket-key1") or ""
    key2 = request.header("sec-websocket-key2") or ""
    if upgrade != "websocket" or "upgrade" not in connection or not host:
        return NOT_A_WEBSOCKET_REQUEST
    if key_number(key1) is None or key_number(key2) is None:
        return NOT_A_WEBSOCKET_REQUEST
    target = f"{request.path}?{request.query}" if request.query else request.path
    headers = [
        ("Upgrade", "WebSocket"),
        ("Connection", "Upgrade"),
        # No TLS here: a server behind a TLS-terminating proxy sees ws:// like the proxy's clients
        # would not, but a draft-76 client behind such a proxy is not one this legacy path serves.
        ("Sec-WebSocket-Location", f"ws://{host}{target}"),
    ]
    origin = request.header("origin")
    if origin is not None:
        headers.append(("Sec-WebSocket-Origin", origin))
    return Hixie76Handshake(headers, key1, key2)


@dataclass(frozen=True)
class TextFrame:
    """A complete text frame from the peer."""

    text: str


@dataclass(frozen=True)
class CloseFrame:
    """The peer's close frame (``0xFF 0x00``)."""


@dataclass(frozen=True)
class InputEnded:
    """The peer closed the connection without a close frame (or in the middle of a frame)."""


Hixie76Event = TextFrame | CloseFrame | InputEnded


class Hixie76ProtocolError(Exception):
    """The peer sent something hixie-76 framing does not allow here; the connection is over.

    ``code`` is the RFC 6455 close code of the same fault, for the record.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class Hixie76Codec:
    """Hixie-76 framing, sans-IO: feed bytes with :meth:`receive_data`, take events with
    :meth:`next_event`, get bytes to write from :meth:`send_text` and :meth:`send_close`.

    Only text frames (type ``0x00``) and the close frame are accepted: a frame of another type, a
    text frame over ``max_frame_bytes`` (before its end byte arrives, so the buffer stays bounded)
    or one that is not UTF-8 raises :class:`Hixie76ProtocolError`, and so does every call after.
    Draft-76 would have a server skip other frame types; no client sends them, and skipping is
    what would let a broken or hostile peer go unnoticed.
    """

    def __init__(self, *, max_frame_bytes: int) -> None:
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._scanned = 1  # where the search for the current text frame's end byte resumes
        self._ended = False
        self._error: Hixie76ProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed the connection."""
        if data:
            self._buffer += data
        else:
            self._ended = True

    def next_event(self) -> Hixie76Event | None:
        """The next event, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        try:
            return self._parse()
        except Hixie76ProtocolError as error:
            self._error = error
            self._buffer.clear()
            raise

    def _parse(self) -> Hixie76Event | None:
        buffer = self._buffer
        if not buffer:
            return InputEnded() if self._ended else None
        frame_type = buffer[0]
        if frame_type == TEXT_FRAME_START:
            end = buffer.find(FRAME_END, self._scanned)
            if end == -1:
                self._scanned = len(buffer)
                if len(buffer) - 1 > self._max_frame_bytes:
                    raise Hixie76ProtocolError(MESSAGE_TOO_BIG, "Message too big")
                return InputEnded() if self._ended else None
            if end - 1 > self._max_frame_bytes:
                raise Hixie76ProtocolError(MESSAGE_TOO_BIG, "Message too big")
            payload = bytes(buffer[1:end])
            del buffer[: end + 1]
            self._scanned = 1
            try:
                return TextFrame(payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise Hixie76ProtocolError(INVALID_PAYLOAD, "Text frame is not UTF-8") from None
        if frame_type == FRAME_END:
            if len(buffer) < len(CLOSE_FRAME):
                return InputEnded() if self._ended else None
            if buffer[1] == 0x00:
                del buffer[: len(CLOSE_FRAME)]
                return CloseFrame()
            raise Hixie76ProtocolError(UNSUPPORTED_DATA, "Binary frames are not supported")
        raise Hixie76ProtocolError(PROTOCOL_ERROR, f"Unknown frame type 0x{frame_type:02x}")

    @staticmethod
    def send_text(text: str) -> bytes:
        """The bytes of a text frame. UTF-8 never contains 0xFF, so no escaping is needed."""
        return bytes([TEXT_FRAME_START]) + text.encode("utf-8") + bytes([FRAME_END])

    @staticmethod
    def send_close() -> bytes:
        """The bytes of a close frame."""
        return CLOSE_FRAME


class Hixie76WebSocket(FrameWriter):
    """A server-side hixie-76 websocket on a stream whose handshake is complete: the same
    interface as :class:`~octotrio.http._websocket.WebSocket`, with the same guarantees (sends
    serialized by a lock, every write bounded by ``write_timeout``, the caller closes the stream
    with :meth:`aclose`). Malformed input closes this connection only (:class:`Hixie76Codec`).

    Create it with :func:`accept_hixie76`.
    """

    def __init__(
        self, stream: trio.abc.Stream, received: bytes, *, write_timeout: float, max_message_bytes: int
    ) -> None:
        super().__init__(stream, write_timeout=write_timeout, encode_frame=Hixie76Codec.send_text)
        self._codec = Hixie76Codec(max_frame_bytes=max_message_bytes)
        if received:
            self._codec.receive_data(received)
        self._close_sent = False
        self._close_received = False

    @property
    def is_open(self) -> bool:
        """True until a close frame was sent or received or the connection broke."""
        return not (self._broken or self._close_sent or self._close_received)

    @property
    def is_finished(self) -> bool:
        """True once both sides sent their close frame or the connection broke."""
        return self._broken or (self._close_sent and self._close_received)

    def _record_close(self, code: int, reason: str) -> None:
        if not (self._close_sent or self._close_received):
            self._close_code, self._close_reason = code, reason

    async def receive_message(self) -> str:
        """Return the next text message from the peer.

        Answers the peer's close frame; after a close frame was sent, reads on (dropping
        messages) until the peer answers it. Then, or when the connection breaks or the peer
        sends something malformed, raises :class:`WebSocketClosed`. Only one task may call this
        at a time. Cancellable: bytes already read are kept for the next call.
        """
        while True:
            if self.is_finished:
                raise self._closed()
            try:
                event = self._codec.next_event()
            except Hixie76ProtocolError as error:
                await self.close(error.code, error.reason)
                self._broken = True  # the codec cannot read on
                raise self._closed() from None
            if isinstance(event, TextFrame):
                if self.is_open:
                    return event.text
                continue  # closing: only the peer's close frame matters now
            if isinstance(event, CloseFrame):
                self._record_close(NO_STATUS, "")
                self._close_received = True
                await self._send_close()
                raise self._closed()
            if isinstance(event, InputEnded):
                self._broken = True
                raise self._closed()
            try:
                data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._broken = True
                raise self._closed() from None
            self._codec.receive_data(bytes(data))

    async def send_text(self, text: str) -> None:
        """Send one text message; raises :class:`WebSocketClosed` once closing or broken, or when
        the write times out. Cancelling a write half-way aborts the connection."""
        async with self._send_lock:
            if not self.is_open:
                raise self._closed()
            await self._write(self._codec.send_text(text))

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame; ``code`` and ``reason`` are only recorded (hixie-76 cannot carry
        them). Idempotent, never raises for a peer that is gone, bounded by the write timeout;
        does not wait for the peer's answer (:meth:`receive_message` sees it)."""
        self._record_close(code, reason)
        await self._send_close()

    async def _send_close(self) -> None:
        async with self._send_lock:
            if self._broken or self._close_sent:
                return
            self._close_sent = True
            with contextlib.suppress(WebSocketClosed):
                await self._write(self._codec.send_close())


async def accept_hixie76(exchange: HttpExchange, *, max_message_bytes: int) -> Hixie76WebSocket | None:
    """Complete a hixie-76 handshake (:func:`is_hixie76_request`) and return the websocket, or
    refuse it (400, :func:`hixie76_handshake`) or give up on it, and return None.

    The 101 goes out first; only then are the client's 8 bytes read (W5: some proxies forward
    them only after seeing the 101), for at most :data:`HANDSHAKE_TIMEOUT`, and the 16-byte
    answer written. None after the 101 means the client closed the connection or did not send
    its bytes in time: the connection is over. On success the caller must ``aclose`` the
    websocket. Cancellable.
    """
    handshake = hixie76_handshake(exchange.request)
    if isinstance(handshake, HandshakeRefusal):
        await exchange.respond(handshake.status, handshake.headers, handshake.body)
        return None
    # h11 took the request as bodiless (no Content-Length): the 8 bytes, if they came along with
    # the head, are in what it kept unparsed for the new protocol.
    received = bytearray(await exchange.switch_protocols(handshake.headers, reason=STATUS_REASON))
    stream = exchange.stream
    with trio.move_on_after(HANDSHAKE_TIMEOUT):
        while len(received) < CHALLENGE_BYTES:
            try:
                data = await stream.receive_some(RECEIVE_BUFFER_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            received += data
    if len(received) < CHALLENGE_BYTES:
        return None
    key3, rest = bytes(received[:CHALLENGE_BYTES]), bytes(received[CHALLENGE_BYTES:])
    try:
        answer = challenge_response(handshake.key1, handshake.key2, key3)
        await send_bytes(stream, answer, write_timeout=exchange.write_timeout)
    except ClientGone:
        return None
    return Hixie76WebSocket(
        stream, rest, write_timeout=exchange.write_timeout, max_message_bytes=max_message_bytes
    )
