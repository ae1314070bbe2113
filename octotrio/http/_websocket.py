"""WebSocket (RFC 6455) over a trio stream: handshake checks and a wsproto-driven connection.

The HTTP part of the handshake (parsing the request, writing the 101) belongs to h11 in
:mod:`octotrio.http._exchange`; this module decides what the answer is and then speaks the
websocket protocol on the stream that h11 hands over. wsproto is the sans-IO core; this is the thin
adapter that does the I/O, bounds it, and turns every way a connection can end into
:class:`WebSocketClosed`.
"""

from __future__ import annotations

import abc
import base64
import binascii
import contextlib
import os
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage
from wsproto.utilities import generate_accept_token

from octotrio.sockjs import SharedMessage

from ._request import Request

SUPPORTED_VERSION = "13"
"""The only websocket version in use since RFC 6455 (2011)."""

RECEIVE_BUFFER_BYTES = 64 * 1024
"""Bytes asked of the stream per read; wsproto streams frame payloads, so this bounds what one
read adds to memory, not the size of a message."""

ABNORMAL_CLOSURE = 1006
"""RFC 6455 §7.1.5: the code reported when the connection ended without a close frame."""

_FIN_TEXT = 0x81
"""RFC 6455 §5.2: FIN set, opcode 1 (text): a whole text message in one frame."""


def encode_text_frame(text: str) -> bytes:
    """A server → client text frame, unmasked (RFC 6455 §5.1, §5.2).

    What wsproto's ``send(TextMessage(...))`` produces without extensions (none are negotiated
    here), at a fraction of its cost: this runs for every message of every session.
    """
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload


def encode_batch(texts: Sequence[str], encode_frame: Callable[[str], bytes]) -> bytes:
    """The frames of ``texts`` (``encode_frame`` frames one text), for one write.

    A :class:`~octotrio.sockjs.SharedMessage` is framed once for every connection that sends it,
    and a batch of one such message is its kept bytes object itself: at a tick thousands of
    connections write the same bytes, without a copy each.
    """
    if len(texts) == 1:
        return _encode_one(texts[0], encode_frame)
    return b"".join(_encode_one(text, encode_frame) for text in texts)


def _encode_one(text: str, encode_frame: Callable[[str], bytes]) -> bytes:
    return text.derived(encode_frame) if isinstance(text, SharedMessage) else encode_frame(text)


def unsent_part(data: bytes, written: int) -> bytes | memoryview:
    """What is left of ``data`` after ``written`` bytes went out: a view, not a copy, so that a
    connection whose socket is full holds on to shared bytes rather than copying a large frame."""
    return memoryview(data)[written:] if written < len(data) else b""


def write_nowait(stream: trio.SocketStream, data: bytes) -> int:
    """Write what ``stream``'s socket takes at once, from the caller's task and without waiting:
    how many bytes it took (0 when its buffer is full). Raises :class:`OSError` if the connection
    is broken. The caller makes sure no ``send_all`` is under way on the stream."""
    try:
        # trio's sockets are non-blocking, so this returns at once; trio has no synchronous send.
        return os.write(stream.socket.fileno(), data)
    except BlockingIOError:
        return 0


@dataclass(frozen=True)
class HandshakeRefusal:
    """Why an upgrade request is refused: the HTTP answer to give instead of 101."""

    status: int
    headers: Sequence[tuple[str, str]]
    body: bytes


NOT_A_WEBSOCKET_REQUEST = HandshakeRefusal(400, [], b"Not a valid websocket request")
"""sockjs-node's answer to a GET without a valid upgrade (W1)."""


def _header_tokens(request: Request, name: str) -> set[str]:
    return {token.strip().lower() for token in (request.header(name) or "").split(",")}


def websocket_handshake(request: Request) -> list[tuple[str, str]] | HandshakeRefusal:
    """Check an upgrade request (RFC 6455 §4.2.1); return the 101's headers or the refusal.

    ``Upgrade: WebSocket`` with ``Connection: close`` or without ``Connection: Upgrade`` is
    refused with 400 (W1); a version other than 13 with 426 naming the one supported. The 101
    carries ``Upgrade``, ``Connection`` and ``Sec-WebSocket-Accept`` and no ``Content-Length``
    (W3). The method is the router's business.
    """
    if "websocket" not in _header_tokens(request, "upgrade"):
        return NOT_A_WEBSOCKET_REQUEST
    if "upgrade" not in _header_tokens(request, "connection"):
        return NOT_A_WEBSOCKET_REQUEST
    if request.header("sec-websocket-version") != SUPPORTED_VERSION:
        return HandshakeRefusal(
            426, [("Sec-WebSocket-Version", SUPPORTED_VERSION)], b"Unsupported websocket version"
        )
    key = request.header("sec-websocket-key") or ""
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        valid_key = False
    if not valid_key:
        return NOT_A_WEBSOCKET_REQUEST
    accept = generate_accept_token(key.encode("ascii")).decode("ascii")
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]


class WebSocketClosed(Exception):
    """The websocket is over: closed by either side, or the connection broke.

    ``code`` and ``reason`` are those of the first close frame sent or received, or 1006 when the
    connection ended without one (including a write that timed out).
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class FrameWriter(abc.ABC):
    """The write side both websocket flavours share (RFC 6455 here, hixie-76 in
    :mod:`octotrio.http._hixie76`): sends are serialized by a lock, so frames never interleave on
    the wire; every write is bounded by ``write_timeout``, after which the peer is taken to have
    stopped reading and the stream is aborted (:class:`WebSocketClosed`, code 1006);
    :meth:`send_texts_nowait` writes from the caller's task without waiting (a socket stream only).
    ``encode_frame`` frames one text message.
    """

    def __init__(
        self, stream: trio.abc.Stream, *, write_timeout: float, encode_frame: Callable[[str], bytes]
    ) -> None:
        self._stream = stream
        self._socket_stream = stream if isinstance(stream, trio.SocketStream) else None
        self._write_timeout = write_timeout
        self._encode_frame = encode_frame
        self._send_lock = trio.Lock()
        self._unsent: bytes | memoryview = b""
        """What :meth:`send_texts_nowait` wrote that the socket did not take; written first by the
        next write."""
        self._broken = False
        self._close_code = ABNORMAL_CLOSURE
        self._close_reason = ""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """True until a close frame was sent or received or the connection broke."""

    def _closed(self) -> WebSocketClosed:
        return WebSocketClosed(self._close_code, self._close_reason)

    async def send_texts(self, texts: Sequence[str]) -> None:
        """Send each of ``texts`` as its own text message, all in one write: one system call and
        one timeout for a batch. Raises :class:`WebSocketClosed` once the websocket is closing or
        broken, or when the write times out. Cancellable; cancelling a send whose bytes are
        already being written aborts the connection, since the peer would otherwise get half a
        frame."""
        async with self._send_lock:
            if not self.is_open:
                raise self._closed()
            await self._write(encode_batch(texts, self._encode_frame))

    @property
    def can_send_nowait(self) -> bool:
        """True when :meth:`send_texts_nowait` may be called: the websocket is open, on a socket,
        no send is under way and nothing is left unsent."""
        return (
            self._socket_stream is not None
            and self.is_open
            and not self._unsent
            and not self._send_lock.locked()
        )

    @property
    def has_unsent(self) -> bool:
        """True while bytes of :meth:`send_texts_nowait` wait for :meth:`flush`."""
        return bool(self._unsent)

    def send_texts_nowait(self, texts: Sequence[str]) -> None:
        """Send ``texts`` as :meth:`send_texts` does, but from the caller's task and without waiting
        (no task switch, no timer): one system call. Only when :attr:`can_send_nowait`.

        What the socket does not take at once is kept (:attr:`has_unsent`): the caller must then
        have :meth:`flush` run, which writes it within the write timeout or aborts the connection,
        as any other write. Raises :class:`WebSocketClosed` (and the websocket is broken) if the
        connection is.
        """
        assert self.can_send_nowait, "check can_send_nowait first"
        assert self._socket_stream is not None
        data = encode_batch(texts, self._encode_frame)
        try:
            written = write_nowait(self._socket_stream, data)
        except OSError:
            self._broken = True
            raise self._closed() from None
        self._unsent = unsent_part(data, written)

    async def flush(self) -> None:
        """Write what :meth:`send_texts_nowait` left unsent, if anything; raises and cancels as
        :meth:`send_texts`."""
        async with self._send_lock:
            if self._unsent and not self._broken:
                await self._write(b"")

    async def _write(self, data: bytes | memoryview) -> None:
        # Called with the send lock held. Bytes a send without waiting left over go first.
        if self._unsent:
            data, self._unsent = b"".join((self._unsent, data)) if data else self._unsent, b""
        written = False
        try:
            with trio.move_on_after(self._write_timeout):
                await self._stream.send_all(data)
                written = True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if not written:
                # Timed out, broken or cancelled half-way: the stream cannot carry another frame.
                await self.abort()
        if not written:
            raise self._closed()

    async def abort(self) -> None:
        """Drop the connection at once, without a close frame; pending and later calls raise
        :class:`WebSocketClosed` (1006). Use when there is no time to be polite."""
        self._broken = True
        await trio.aclose_forcefully(self._stream)

    async def aclose(self) -> None:
        """Close the underlying stream (after the closing handshake, or to give up on it)."""
        self._broken = True
        await self._stream.aclose()


class WebSocket(FrameWriter):
    """A server-side websocket on a stream whose HTTP handshake is done. Text messages only.

    One task may receive while others send; sending is :class:`FrameWriter`'s (control frames,
    messages and the close frame never interleave on the wire, every write is bounded by
    ``write_timeout``).

    Incoming messages larger than ``max_message_bytes`` (UTF-8) close the websocket with 1009;
    binary messages close it with 1003. The caller owns the stream and closes it with
    :meth:`aclose` once the websocket is over.
    """

    def __init__(
        self, stream: trio.abc.Stream, received: bytes, *, write_timeout: float, max_message_bytes: int
    ) -> None:
        super().__init__(stream, write_timeout=write_timeout, encode_frame=encode_text_frame)
        # ``received``: bytes the client sent right after its handshake request (h11's trailing data).
        self._protocol = Connection(ConnectionType.SERVER, trailing_data=received)
        self._events: deque[Event] = deque(self._protocol.events())
        self._max_message_bytes = max_message_bytes
        self._message_parts: list[str] = []
        self._message_bytes = 0
        self._close_seen = False

    @property
    def is_open(self) -> bool:
        """True until a close frame was sent or received or the connection broke."""
        return not self._broken and self._protocol.state is ConnectionState.OPEN

    @property
    def is_finished(self) -> bool:
        """True once the closing handshake is complete or the connection broke."""
        return self._broken or self._protocol.state is ConnectionState.CLOSED

    def _record_close(self, code: int, reason: str) -> None:
        if not self._close_seen:
            self._close_seen = True
            self._close_code, self._close_reason = code, reason

    async def receive_message(self) -> str:
        """Return the next complete text message from the peer.

        Answers pings and the peer's close frame on the way. Keeps reading after a close frame was
        sent, dropping data messages, until the peer answers it; then raises
        :class:`WebSocketClosed`, as it does when the connection breaks. Only one task may call
        this at a time. Cancellable: a partly received message is kept for the next call.
        """
        while True:
            while self._events:
                message = await self._handle(self._events.popleft())
                if message is not None:
                    return message
            if self.is_finished:
                raise self._closed()
            try:
                data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._broken = True
                raise self._closed() from None
            # b"" is end of input; wsproto takes it as None and reports a 1006 close.
            self._protocol.receive_data(bytes(data) if data else None)
            self._events.extend(self._protocol.events())

    async def _handle(self, event: Event) -> str | None:
        if isinstance(event, TextMessage):
            return await self._add_message_part(event)
        if isinstance(event, BytesMessage):
            await self.close(1003, "Binary messages are not supported")
        elif isinstance(event, Ping):
            async with self._send_lock:
                if self.is_open:
                    await self._write(self._protocol.send(event.response()))
        elif isinstance(event, CloseConnection):
            self._record_close(event.code, event.reason or "")
            # The peer's close (REMOTE_CLOSING) is answered with the same code; wsproto also
            # reports a frame it cannot parse as a close while the state is still OPEN, and
            # that one is sent to the peer as our own close.
            await self.close(event.code, event.reason or "")
            raise self._closed()
        return None

    async def _add_message_part(self, event: TextMessage) -> str | None:
        if not self.is_open:
            return None  # closing: only the peer's close frame matters now
        self._message_bytes += len(event.data.encode("utf-8"))
        if self._message_bytes > self._max_message_bytes:
            self._message_parts.clear()
            await self.close(1009, "Message too big")
            return None
        self._message_parts.append(event.data)
        if not event.message_finished:
            return None
        message = "".join(self._message_parts)
        self._message_parts.clear()
        self._message_bytes = 0
        return message

    async def send_text(self, text: str) -> None:
        """Send one text message.

        Raises :class:`WebSocketClosed` once the websocket is closing or broken, or when the write
        times out. Cancellable; cancelling a send whose bytes are already being written aborts the
        connection, since the peer would otherwise get half a frame.
        """
        await self.send_texts([text])

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame with ``code`` and ``reason`` (truncated to fit 125 bytes).

        Idempotent, and never raises for a peer that is gone: does nothing once a close frame was
        sent or the connection broke. Answers the peer's close when it closed first. Bounded by
        the write timeout (twice, if a send is ahead of it). Does not wait for the peer's answer:
        :meth:`receive_message` sees it.
        """
        async with self._send_lock:
            if self._broken or self._protocol.state not in (
                ConnectionState.OPEN,
                ConnectionState.REMOTE_CLOSING,
            ):
                return
            self._record_close(code, reason)
            data = self._protocol.send(CloseConnection(code=code, reason=reason))
            with contextlib.suppress(WebSocketClosed):
                await self._write(data)
