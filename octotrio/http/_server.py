"""The HTTP server: trio listeners, one h11 connection per client, routes, ordered shutdown."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import replace

import h11
import trio

from octotrio.sockjs import (
    DEFAULT_SOCKJS_URL,
    DISCONNECT_DELAY,
    HEARTBEAT_INTERVAL,
    RESPONSE_LIMIT,
    SockJSApp,
    SockJSOptions,
    sockjs_test_services,
)

from ._body import RequestBody, RequestBodyError, receive_event
from ._exchange import RECEIVE_BUFFER_BYTES, ClientGone, HttpExchange, encode_response, send_bytes
from ._request import Request
from ._router import Router
from ._sessions import SessionRegistry
from ._sockjs import SHUTDOWN_CLOSE, SockJSEndpoint

logger = logging.getLogger(__name__)

WRITE_TIMEOUT = 10.0
"""Seconds one write to a client may take. A client that reads drains its socket within
milliseconds once the kernel buffers are full; one that has not taken a frame in ten seconds has
stopped reading (or its network is gone), and its session is closed and its connection dropped
so that it holds neither memory nor a task (OctoPrint buffers without limit, Q18)."""

REQUEST_TIMEOUT = 30.0
"""Seconds a connection may take to deliver a complete request, counted from when the server is
ready for it: closes idle keep-alive connections and clients that send too slowly."""

MAX_REQUEST_HEAD_BYTES = 16 * 1024
"""Largest request line plus headers accepted (h11's default); browsers send well under 8 KiB."""

LINGER_TIMEOUT = 2.0
"""Seconds a connection is drained after an answer that left its request body unread (a 413, a
refused upload), so that the client gets to read that answer; long enough for a client to notice
the answer and stop, short enough that a client which keeps sending costs little."""

ACCEPT_BATCH = 128
"""Connections accepted in one go before the accept loop lets other tasks run: each costs tens
of microseconds, so a batch stays within a few milliseconds."""

ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""accept(2) errors that mean the process or system is out of resources: wait, then retry."""

ACCEPT_CAPACITY_PAUSE = 0.1
"""Seconds the accept loop waits after running out of resources (as trio's serve_listeners)."""

IGNORABLE_ACCEPT_ERRNOS = frozenset(
    {errno.ECONNABORTED, errno.EPERM, errno.EPROTO, errno.ENETDOWN, errno.ENOPROTOOPT}
    | {errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH}
)
"""accept(2) errors about the one connection being accepted (accept(2): Linux passes pending
network errors on; a firewall refusal is EPERM): skip it, go on with the next."""


class _ConnectionTracker:
    """Counts open connections; at shutdown, drops those that wait for a request."""

    def __init__(self) -> None:
        self._open = 0
        self._waiting: set[trio.CancelScope] = set()
        self._all_closed = trio.Event()
        self.closing = False

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the current connection as open for the duration of the ``with`` block."""
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1
            if self.closing and self._open == 0:
                self._all_closed.set()

    @contextlib.contextmanager
    def waiting_for_request(self, timeout: float) -> Iterator[trio.CancelScope]:
        """A cancel scope around waiting for the next request: expires after ``timeout`` and is
        cancelled by :meth:`close`. Check ``cancelled_caught`` afterwards."""
        scope = trio.CancelScope(deadline=trio.current_time() + timeout)
        if self.closing:
            scope.cancel()
        self._waiting.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._waiting.discard(scope)

    def close(self) -> None:
        """Drop connections waiting for a request now, and those that finish one from now on."""
        self.closing = True
        for scope in self._waiting:
            scope.cancel()
        if self._open == 0:
            self._all_closed.set()

    async def wait_all_closed(self) -> None:
        """Wait until :meth:`close` was called and every connection is closed."""
        await self._all_closed.wait()


class HttpServer:
    """A running server, as :func:`serve_http` reports it through ``task_status``."""

    def __init__(
        self,
        listener: trio.SocketListener,
        router: Router,
        sessions: SessionRegistry,
        connections_scope: trio.CancelScope,
        *,
        write_timeout: float,
    ) -> None:
        host, port = listener.socket.getsockname()[:2]
        self.port: int = port
        """The port listened on; the real one when 0 was asked for."""
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        """The server's base URL, e.g. ``http://127.0.0.1:5000``."""
        self._router = router
        self._sessions = sessions
        self._connections_scope = connections_scope
        self._accept_scope = trio.CancelScope()
        self._write_timeout = write_timeout
        self._tracker = _ConnectionTracker()
        self._stopped = trio.Event()

    # The timeout is the grace period that shutdown grants the clients, not a deadline on the caller.
    async def shutdown(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Stop the server in order; :func:`serve_http` returns when this does.

        1. Stop accepting connections; drop keep-alive connections waiting for a request.
        2. Close every SockJS session: framed ones get ``c[1001,"Server shutting down"]``, all get
           a websocket close 1001 with that reason.
        3. Give connections up to ``timeout`` seconds (counted from the call) to finish: sessions
           see the client's close answer, their applications return, HTTP responses complete.
        4. Cancel whatever is left.

        Safe to call more than once. If the caller is cancelled, step 4 happens at once.
        """
        self._accept_scope.cancel()
        self._tracker.close()
        try:
            with trio.move_on_after(timeout):
                await self._sessions.close_all(*SHUTDOWN_CLOSE)
                await self._tracker.wait_all_closed()
        finally:
            self._connections_scope.cancel()
        await self._stopped.wait()

    async def _accept(
        self,
        listeners: list[trio.SocketListener],
        handler_nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until :meth:`shutdown`; connection tasks run in ``handler_nursery``."""
        with self._accept_scope:
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(self._accept_from, listener, handler_nursery)
                task_status.started()

    async def _accept_from(self, listener: trio.SocketListener, handler_nursery: trio.Nursery) -> None:
        """Accept connections on ``listener`` until cancelled, each served by a task of its own.

        Every connection that waits is accepted before the loop yields (up to
        :data:`ACCEPT_BATCH`). ``listener.accept()`` yields after each connection, so in a storm
        every connection cost a trip around the scheduler, as long as everything else that was
        running: the thousandth client waited seconds for its websocket handshake with its TCP
        connection long established. The listener is not closed here (:func:`serve_http` does).
        """
        # The standard socket's accept() does not yield: take a handle of that kind on the
        # listening socket, on a duplicate descriptor so that closing it leaves the listener open.
        with socket.socket(fileno=os.dup(listener.socket.fileno())) as listening:
            listening.setblocking(False)
            while True:
                await trio.lowlevel.wait_readable(listening)
                for _ in range(ACCEPT_BATCH):
                    try:
                        connection, address = listening.accept()
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno in IGNORABLE_ACCEPT_ERRNOS:
                            continue
                        if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                            raise
                        logger.error("accept failed, retrying in %s s: %s", ACCEPT_CAPACITY_PAUSE, exc)
                        await trio.sleep(ACCEPT_CAPACITY_PAUSE)
                        break
                    stream = trio.SocketStream(trio.socket.from_stdlib_socket(connection))
                    handler_nursery.start_soon(self._serve_connection, stream, str(address[0]))

    async def _serve_connection(self, stream: trio.SocketStream, remote_address: str) -> None:
        """Serve one client connection; contains and logs its failures, and closes the stream.

        Cancellation (shutdown, or the server's own cancellation) ends it; the stream is then
        closed forcefully.
        """
        try:
            with self._tracker.track():
                try:
                    await self._serve_requests(stream, remote_address)
                except* ClientGone:
                    pass  # nothing to answer, nobody to tell
                except* Exception:
                    logger.exception("HTTP connection from %s failed", remote_address)
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve_requests(self, stream: trio.SocketStream, remote_address: str) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
        while True:
            received = await self._read_request(connection, stream)
            if received is None:
                return
            request, body = received
            handler, path_params = self._router.resolve(request.method, request.path)
            exchange = HttpExchange(
                connection,
                stream,
                request,
                body,
                path_params,
                remote_address=remote_address,
                write_timeout=self._write_timeout,
                keep_alive=not self._tracker.closing,
            )
            try:
                await handler(exchange)
                if not exchange.responded:
                    raise RuntimeError(f"{request.method} {request.path}: handler sent no response")
            except ClientGone:
                raise  # nobody left to answer
            except RequestBodyError as error:
                if not exchange.responded:
                    await self._answer_error(connection, stream, error.status, error.message)
            except Exception:
                if not exchange.responded:
                    await exchange.respond(
                        500, [("Content-Type", "text/plain; charset=UTF-8")], b"Internal server error.\n"
                    )
                raise
            if exchange.upgraded:
                return  # the other protocol is over
            if not body.at_end():
                await _close_unread(stream)
                return
            if connection.our_state is not h11.DONE:
                return  # h11 decided the connection must close
            connection.start_next_cycle()

    async def _read_request(
        self, connection: h11.Connection, stream: trio.SocketStream
    ) -> tuple[Request, RequestBody] | None:
        """Read the next request: its head, and its body too unless its route streams it. None
        when the connection should close: the client closed it, timed out, sent garbage
        (answered 400) or too big a body (answered 413), or the server is shutting down."""
        with self._tracker.waiting_for_request(REQUEST_TIMEOUT):
            try:
                head = await receive_event(connection, stream)
                if not isinstance(head, h11.Request):
                    return None  # h11.ConnectionClosed: the client is done
                target = head.target.decode("latin-1")  # h11 lets obs-text through
                request = Request.from_target(head.method.decode("latin-1"), target, tuple(head.headers), b"")
                rules = self._router.body_rules(request.path)
                body = RequestBody(
                    connection,
                    stream,
                    head.headers,
                    max_bytes=rules.max_bytes,
                    read_timeout=REQUEST_TIMEOUT,
                    write_timeout=self._write_timeout,
                )
                if not rules.streamed:
                    request = replace(request, body=await body.read_all())
                return request, body
            except h11.RemoteProtocolError as exc:
                await self._answer_error(connection, stream, exc.error_status_hint, "Bad request.")
                return None
            except RequestBodyError as error:
                await self._answer_error(connection, stream, error.status, error.message)
                await _close_unread(stream)
                return None
        return None

    async def _answer_error(
        self, connection: h11.Connection, stream: trio.SocketStream, status: int, message: str
    ) -> None:
        if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        headers = [("Content-Type", "text/plain; charset=UTF-8")]
        data = encode_response(connection, status, headers, f"{message}\n".encode(), keep_alive=False)
        await send_bytes(stream, data, write_timeout=self._write_timeout)


async def _close_unread(stream: trio.SocketStream) -> None:
    """Close a connection whose request body was not read to the end, after its answer.

    Closing a socket with unread bytes makes the kernel reset the connection, and a client still
    sending its body may then lose the answer (a 413) before reading it; so stop sending, then
    read and drop what still comes for up to :data:`LINGER_TIMEOUT` (RFC 9112 §9.6).
    """
    with trio.move_on_after(LINGER_TIMEOUT):
        try:
            await stream.send_eof()
            while await stream.receive_some(RECEIVE_BUFFER_BYTES):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client is gone already


async def serve_http(
    *,
    host: str,
    port: int,
    sockjs_app: SockJSApp,
    prefix: str = "/sockjs",
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
    response_limit: int = RESPONSE_LIMIT,
    disconnect_delay: float = DISCONNECT_DELAY,
    sockjs_url: str = DEFAULT_SOCKJS_URL,
    test_services: bool = False,
    write_timeout: float = WRITE_TIMEOUT,
    router: Router | None = None,
    task_status: trio.TaskStatus[HttpServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP on ``host``:``port`` (0 picks a free port) with SockJS at ``prefix``.

    Start it with ``server = await nursery.start(partial(serve_http, ...))``: the
    :class:`HttpServer` reports the real port and URL, and ``await server.shutdown()`` stops it
    in order and makes this function return. ``heartbeat_interval`` is the seconds between SockJS
    heartbeats (S9); ``response_limit`` the bytes after which a streaming response ends (S7);
    ``disconnect_delay`` the seconds a session without a receiver lives on (S4);
    ``sockjs_url`` the script the SockJS iframe page loads (H4); ``write_timeout`` the seconds a
    write may take before its client counts as gone (:data:`WRITE_TIMEOUT`). ``test_services``
    mounts the SockJS protocol test services at the root (``/echo``, ``/close``,
    ``/disabled_websocket_echo``, ``/cookie_needed_echo``; see
    :func:`octotrio.sockjs.sockjs_test_services`). ``router`` carries routes of your own (the
    REST API, a status page); the SockJS routes are added after them.

    Cancelling this function instead of calling ``shutdown()`` drops every connection at once;
    websocket clients get a best-effort close 1001, bounded to half a second.
    """
    options = SockJSOptions(
        heartbeat_interval=heartbeat_interval,
        response_limit=response_limit,
        disconnect_delay=disconnect_delay,
        sockjs_url=sockjs_url,
    )
    router = router or Router()
    sessions = SessionRegistry()
    SockJSEndpoint(sockjs_app, sessions, options).add_routes(router, prefix)
    if test_services:
        for service_prefix, (service, service_options) in sockjs_test_services(options).items():
            SockJSEndpoint(service, sessions, service_options).add_routes(router, service_prefix)
    listeners = await trio.open_tcp_listeners(port, host=host)
    server: HttpServer | None = None
    try:
        async with trio.open_nursery() as connections:
            await connections.start(sessions.run)  # polled sessions outlive their requests
            server = HttpServer(
                listeners[0], router, sessions, connections.cancel_scope, write_timeout=write_timeout
            )
            await connections.start(server._accept, listeners, connections)
            task_status.started(server)
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
        if server is not None:
            server._stopped.set()
