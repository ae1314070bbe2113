"""Request bodies, read from the connection only as fast as the handler takes them.

A route either gets its body whole in :attr:`Request.body` (the default: small bodies, read before
the handler runs) or opts in with ``Router.add(..., stream_body=True)`` and reads it piece by
piece from :attr:`HttpExchange.body`. Either way the same :class:`RequestBody` does the reading,
so the size limit, ``100 Continue`` and the answers to bad bodies are the same.

Backpressure: the socket is read only when the handler asks for the next piece and h11 has
nothing buffered, so a handler that stops asking (a slow disk) stops the client through TCP, and
one connection holds at most one read's worth of body in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import h11
import trio

from ._exchange import RECEIVE_BUFFER_BYTES, ClientGone, send_bytes

BODY_RECEIVE_BYTES = 64 * 1024
"""Bytes asked of the socket per read of a body: big enough that an upload costs few wake-ups,
small enough to be the whole of what one connection buffers."""


class RequestBodyError(Exception):
    """The request body cannot be taken; answer ``status`` with ``message``: 413 over the route's
    limit, 400 malformed framing (bad chunked encoding). The connection closes after the answer
    unless the body had been read to its end anyway (only just over the limit)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def receive_event(
    connection: h11.Connection, stream: trio.abc.ReceiveStream, max_bytes: int = RECEIVE_BUFFER_BYTES
) -> object:
    """The next h11 event, reading up to ``max_bytes`` from ``stream`` whenever h11 needs data.

    Raises :class:`ClientGone` when the connection breaks, ``h11.RemoteProtocolError`` for bytes
    that are not HTTP (a client that closes mid-message is one of those).
    """
    while (event := connection.next_event()) is h11.NEED_DATA:
        try:
            data = await stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone from exc
        connection.receive_data(bytes(data))  # no copy when it is bytes already
    return event


class RequestBody:
    """The body of one request, taken from the connection as the handler asks for it.

    Use ``async for chunk in exchange.body`` (or :meth:`receive_some`). Pieces are at most
    :data:`BODY_RECEIVE_BYTES`; the size limit holds for ``Content-Length`` and chunked bodies
    alike, checked as bytes arrive (and before any when ``Content-Length`` already says too much).

    Raises :class:`RequestBodyError` (413, 400), after which the body is unusable, and
    :class:`ClientGone` when the client closes or breaks the connection mid-body, or sends
    nothing for ``read_timeout`` seconds. A handler that does not read its body to the end may
    still answer; the connection is closed after that answer. Cancellation while reading leaves
    the connection in an unknown state: the server closes it.
    """

    def __init__(
        self,
        connection: h11.Connection,
        stream: trio.abc.Stream,
        headers: Sequence[tuple[bytes, bytes]],
        *,
        max_bytes: int,
        read_timeout: float,
        write_timeout: float,
    ) -> None:
        self._connection = connection
        self._stream = stream
        self.max_bytes = max_bytes
        """The route's limit: more than this is answered 413."""
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self.bytes_received = 0
        """Body bytes taken from the connection so far."""
        self._complete = False
        # h11 has checked the framing headers: a Content-Length is one valid number, and it does
        # not count when the body is chunked.
        lengths = [value for name, value in headers if name == b"content-length"]
        chunked = any(name == b"transfer-encoding" for name, _ in headers)
        self._announced = int(lengths[0]) if lengths and not chunked else None

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.receive_some()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def receive_some(self) -> bytes:
        """The next piece of the body (never empty), or ``b""`` once the body is complete."""
        if self._announced is not None and self._announced > self.max_bytes:
            raise RequestBodyError(413, "Request body too large.")  # before the client sends it
        if self._connection.they_are_waiting_for_100_continue:
            # RFC 9110 §10.1.1: the client holds its body back until told to send it.
            go_on = self._connection.send(h11.InformationalResponse(status_code=100, headers=[]))
            await send_bytes(self._stream, go_on or b"", write_timeout=self._write_timeout)
        while not self._complete:
            event = await self._receive_event()
            if isinstance(event, h11.EndOfMessage):
                self._complete = True
            elif isinstance(event, h11.Data) and event.data:
                self.bytes_received += len(event.data)
                if self.bytes_received > self.max_bytes:
                    raise RequestBodyError(413, "Request body too large.")
                return bytes(event.data)
        return b""

    async def read_all(self) -> bytes:
        """The whole body (bounded by :attr:`max_bytes`), read now."""
        body = bytearray()
        async for chunk in self:
            body += chunk
        return bytes(body)

    def at_end(self) -> bool:
        """Whether the whole body has been taken, after taking whatever of it is already
        buffered (without reading the socket). A handler that answers before this is true gets
        ``Connection: close`` on its answer: the rest of the body is never read."""
        while not self._complete:
            try:
                event = self._connection.next_event()
            except h11.RemoteProtocolError:
                return False
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.EndOfMessage):
                self._complete = True
        return True

    async def _receive_event(self) -> object:
        with trio.move_on_after(self._read_timeout) as scope:
            try:
                return await receive_event(self._connection, self._stream, BODY_RECEIVE_BYTES)
            except h11.RemoteProtocolError as exc:
                if self._connection.trailing_data[1]:
                    # h11 calls a connection closed mid-body a protocol error: the client is gone.
                    raise ClientGone from exc
                raise RequestBodyError(exc.error_status_hint, "Bad request.") from exc
        assert scope.cancelled_caught
        raise ClientGone  # nothing arrived for read_timeout seconds: the client stopped sending
