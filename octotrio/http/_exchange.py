"""One request and its answer: what a route handler gets to work with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import h11
import trio

from ._request import Request
from ._websocket import HandshakeRefusal, WebSocket, websocket_handshake

if TYPE_CHECKING:
    from ._body import RequestBody

# Statuses whose responses never carry a body, hence no Content-Length (P1).
_BODILESS_STATUSES = frozenset({204, 304})

RECEIVE_BUFFER_BYTES = 16 * 1024
"""Bytes asked of the socket per read while parsing HTTP."""

MAX_PIPELINED_BYTES = 16 * 1024
"""Bytes of a next (pipelined) request kept while a response is held open; one request head at
most. Beyond them the client is no longer read until the response is over, so TCP pushes back."""


class ClientGone(Exception):
    """The client stopped taking bytes (write timeout), stopped sending its request body (read
    timeout) or closed the connection mid-request or mid-response."""


async def send_bytes(stream: trio.abc.Stream, data: bytes | memoryview, *, write_timeout: float) -> None:
    """Write ``data``, or raise :class:`ClientGone` if the client does not take it in time.

    After :class:`ClientGone` or a cancellation the stream is in an unknown state: close it.
    """
    with trio.move_on_after(write_timeout):
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone from exc
        return
    raise ClientGone


def encode_response(
    connection: h11.Connection,
    status: int,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    keep_alive: bool = True,
) -> bytes:
    """The bytes of a complete response, ``Content-Length`` included where a body is allowed."""
    all_headers = list(headers)
    if status not in _BODILESS_STATUSES:
        all_headers.append(("Content-Length", str(len(body))))
    if not keep_alive:
        all_headers.append(("Connection", "close"))
    data = connection.send(h11.Response(status_code=status, headers=all_headers)) or b""
    if body:
        data += connection.send(h11.Data(data=body)) or b""
    return data + (connection.send(h11.EndOfMessage()) or b"")


class HttpExchange:
    """A request read from one connection, with the means to answer it exactly once.

    A handler either calls :meth:`respond` or, for an upgrade, :meth:`accept_websocket` and then
    owns the connection until it returns. Writes are bounded by the server's write timeout and
    raise :class:`ClientGone` when it expires; the server then drops the connection.

    On a route added with ``stream_body=True`` the handler reads the body from :attr:`body`
    before it answers; an answer given before the body was read to the end closes the connection.
    """

    def __init__(
        self,
        connection: h11.Connection,
        stream: trio.abc.Stream,
        request: Request,
        body: RequestBody,
        path_params: Mapping[str, str],
        *,
        remote_address: str,
        write_timeout: float,
        keep_alive: bool,
    ) -> None:
        self._connection = connection
        self._stream = stream
        self.request = request
        self.body = body
        """The request body as a stream of chunks; already taken whole (into ``request.body``)
        unless the route streams its body."""
        self.path_params = path_params
        """Named groups of the route pattern that matched the path."""
        self.remote_address = remote_address
        self.write_timeout = write_timeout
        self._keep_alive = keep_alive
        self.responded = False
        """True once a response (or a 101) went out."""
        self.upgraded = False
        """True once the connection switched to another protocol; it is then not reused."""

    async def respond(self, status: int, headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> None:
        """Send a complete response. ``Content-Length`` is added (except for 204 and 304, P1);
        ``Connection: close`` too when the server is shutting down or the request body was not
        read to the end."""
        self.responded = True
        data = encode_response(self._connection, status, headers, body, keep_alive=self._reusable())
        await send_bytes(self._stream, data, write_timeout=self.write_timeout)

    async def start_response(self, status: int, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Start a streamed response. Without a ``Content-Length`` in ``headers`` h11 makes it
        chunked for HTTP/1.1 (P4) and, for HTTP/1.0, raw bytes ended by closing the connection
        (P3); with one, send exactly that many bytes (none for a HEAD request). Follow with
        :meth:`send_chunk` and :meth:`end_response`."""
        self.responded = True
        all_headers = list(headers)
        if not self._reusable():
            all_headers.append(("Connection", "close"))
        data = self._connection.send(h11.Response(status_code=status, headers=all_headers)) or b""
        await send_bytes(self._stream, data, write_timeout=self.write_timeout)

    async def send_chunk(self, data: bytes) -> None:
        """Send one chunk of a streamed response, as one HTTP chunk (P2: one frame, one chunk)
        when the response is chunked."""
        await send_bytes(
            self._stream, self._connection.send(h11.Data(data=data)) or b"", write_timeout=self.write_timeout
        )

    async def end_response(self) -> None:
        """End a streamed response (the zero-length chunk, P4)."""
        await send_bytes(
            self._stream, self._connection.send(h11.EndOfMessage()) or b"", write_timeout=self.write_timeout
        )

    async def wait_until_client_gone(self) -> None:
        """Return when the client closes the connection or it breaks: run it beside a response
        that is held open (a long poll, a stream) to notice an aborted request (S6).

        Bytes the client sends meanwhile (a pipelined request) are kept for the server's next
        request, up to :data:`MAX_PIPELINED_BYTES`; beyond that this stops reading and waits
        until cancelled. Cancel it before the response ends.
        """
        pipelined = 0
        while pipelined <= MAX_PIPELINED_BYTES:
            try:
                data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            self._connection.receive_data(bytes(data))
            pipelined += len(data)
        await trio.sleep_forever()

    async def accept_websocket(self, *, max_message_bytes: int) -> WebSocket | None:
        """Complete a websocket handshake and return the websocket, or refuse it and return None.

        A request that is not a valid upgrade is answered here (400 ``Not a valid websocket
        request``, W1; 426 for another version). On success the 101 has been sent and the
        connection belongs to the caller, who must :meth:`WebSocket.aclose` it. (Legacy hixie-76
        requests: :func:`octotrio.http._hixie76.accept_hixie76`.)
        """
        handshake = websocket_handshake(self.request)
        if isinstance(handshake, HandshakeRefusal):
            await self.respond(handshake.status, handshake.headers, handshake.body)
            return None
        received = await self.switch_protocols(handshake)
        return WebSocket(
            self._stream, received, write_timeout=self.write_timeout, max_message_bytes=max_message_bytes
        )

    async def switch_protocols(self, headers: Sequence[tuple[str, str]], *, reason: bytes = b"") -> bytes:
        """Send a 101 with ``headers`` (and no ``Content-Length``, W3/W5) and hand the connection
        over: returns what the client sent after its request (body included), which belongs to
        the new protocol; read the rest from :attr:`stream`. Only for a request with an
        ``Upgrade`` header (h11 allows a 101 for no other), and then h11 keeps what followed the
        head unparsed.
        """
        self.responded = self.upgraded = True
        response = h11.InformationalResponse(status_code=101, headers=list(headers), reason=reason)
        await send_bytes(
            self._stream, self._connection.send(response) or b"", write_timeout=self.write_timeout
        )
        received, _ = self._connection.trailing_data
        return self.request.body + received

    def _reusable(self) -> bool:
        return self._keep_alive and self.body.at_end()

    @property
    def stream(self) -> trio.abc.Stream:
        """The connection; a handler uses it only after :meth:`switch_protocols`."""
        return self._stream
