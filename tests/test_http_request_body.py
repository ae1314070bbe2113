"""Streamed request bodies over loopback: pieces come from the socket only when the handler asks,
the limit holds for announced and chunked bodies, and a connection whose body was left unread is
answered, then closed, without the client losing the answer."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from functools import partial

import h11
import httpx
import pytest
import trio
import trio.testing

from octotrio.http import ClientGone, HttpExchange, HttpServer, Router, serve_http
from octotrio.http._body import BODY_RECEIVE_BYTES
from octotrio.http._server import REQUEST_TIMEOUT
from octotrio.sockjs import SockJSConnection

from .test_http_routes import next_event

LIMIT = 4 * 1024 * 1024
HANG_GUARD = 30  # seconds; only to turn a hang into a failure


class Recorder:
    """Routes whose handlers report what they saw."""

    def __init__(self) -> None:
        self.pieces: list[int] = []
        self.first_piece_taken = trio.Event()
        self.go_on = trio.Event()
        self.handler_saw: list[str] = []
        self.router = Router()
        self.router.add("/count", {"POST": self.count}, max_body_bytes=LIMIT, stream_body=True)
        self.router.add("/held", {"POST": self.held}, max_body_bytes=1 << 30, stream_body=True)
        self.router.add("/refuse", {"POST": self.refuse}, max_body_bytes=LIMIT, stream_body=True)
        self.router.add("/whole", {"POST": self.count}, max_body_bytes=LIMIT)

    async def count(self, exchange: HttpExchange) -> None:
        """Answers with the number of body bytes, read piece by piece (or whole)."""
        try:
            async for piece in exchange.body:
                self.pieces.append(len(piece))
        except ClientGone:
            self.handler_saw.append("client gone")
            raise
        total = sum(self.pieces) + len(exchange.request.body)
        await exchange.respond(200, [("Content-Type", "text/plain")], str(total).encode())

    async def held(self, exchange: HttpExchange) -> None:
        """Takes one piece, then waits for the test before taking the rest."""
        self.pieces.append(len(await exchange.body.receive_some()))
        self.first_piece_taken.set()
        await self.go_on.wait()
        await self.count(exchange)

    async def refuse(self, exchange: HttpExchange) -> None:
        """Answers at once, without reading the body."""
        await exchange.respond(403, [("Content-Type", "text/plain")], b"no thanks\n")


async def idle_app(connection: SockJSConnection) -> None:
    await connection.receive()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(nursery: trio.Nursery, recorder: Recorder) -> HttpServer:
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=idle_app, router=recorder.router)
    )
    return server


@pytest.fixture
async def client(server: HttpServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=HANG_GUARD) as client:
        yield client


async def pieces_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_announced_and_chunked_bodies_arrive_whole_in_bounded_pieces(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB
    announced = await client.post("/count", content=body)
    assert announced.text == str(len(body))
    recorder.pieces.clear()
    chunked = await client.post("/count", content=pieces_of(body, 100_000))
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert chunked.text == str(len(body))
    assert max(recorder.pieces) <= BODY_RECEIVE_BYTES
    # Both answers came over one connection: a body read to its end leaves it reusable.
    assert "connection" not in chunked.headers


async def test_a_handler_that_does_not_ask_for_its_body_holds_the_client_back(
    server: HttpServer, recorder: Recorder
) -> None:
    total = 256 * 1024 * 1024  # far more than the kernel buffers of both ends hold
    head = f"POST /held HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        sent, piece = 65536, b"x" * 65536
        raw.sendall(head + piece)
        raw.setblocking(False)
        with trio.fail_after(HANG_GUARD):
            await recorder.first_piece_taken.wait()
            while True:
                try:
                    sent += raw.send(piece)
                except BlockingIOError:
                    # Full: give the server every chance to read more (it must not), then retry.
                    await trio.testing.wait_all_tasks_blocked()
                    try:
                        sent += raw.send(piece)
                    except BlockingIOError:
                        break
        assert sent < total // 4  # TCP stopped the client: nobody read what it sent
        assert recorder.pieces == [recorder.pieces[0]]
        assert recorder.pieces[0] <= BODY_RECEIVE_BYTES

        recorder.go_on.set()
        with trio.fail_after(HANG_GUARD):
            raw.setblocking(True)
            await trio.to_thread.run_sync(lambda: raw.sendall(b"x" * (total - sent)))
            answer = await trio.to_thread.run_sync(raw.recv, 4096)
    assert answer.endswith(f"\r\n\r\n{total}".encode())
    assert max(recorder.pieces) <= BODY_RECEIVE_BYTES


@pytest.mark.parametrize("path", ["/count", "/whole"])
async def test_bodies_over_the_limit_get_413_and_the_connection_closes(
    client: httpx.AsyncClient, path: str
) -> None:
    body = b"x" * (3 * LIMIT)
    announced = await client.post(path, content=body)
    chunked = await client.post(path, content=pieces_of(body, 100_000))
    for response in (announced, chunked):
        assert response.status_code == 413
        assert response.text == "Request body too large.\n"
        assert response.headers["connection"] == "close"


async def test_an_answer_before_the_body_is_read_closes_the_connection_after_it(
    client: httpx.AsyncClient,
) -> None:
    # httpx sends the whole 16 MiB before it reads the answer: the server must drain, not reset.
    response = await client.post("/refuse", content=b"x" * (4 * LIMIT))
    assert response.status_code == 403
    assert response.text == "no thanks\n"
    assert response.headers["connection"] == "close"
    # A bodiless request to a streaming route leaves the connection open.
    response = await client.post("/refuse")
    assert "connection" not in response.headers


async def test_the_client_waiting_for_100_continue_is_told_to_go_on_only_when_the_body_is_wanted(
    server: HttpServer,
) -> None:
    client = h11.Connection(h11.CLIENT)
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        for path, body in [("/count", b"12345"), ("/refuse", b"")]:
            headers = [("Host", "x"), ("Content-Length", "5"), ("Expect", "100-continue")]
            await stream.send_all(
                client.send(h11.Request(method="POST", target=path, headers=headers)) or b""
            )
            first = await next_event(client, stream)
            if path == "/refuse":
                # Refused before the body was asked for: no 100, the final answer at once.
                assert isinstance(first, h11.Response)
                assert first.status_code == 403
                assert (b"connection", b"close") in first.headers
                break
            assert isinstance(first, h11.InformationalResponse)
            assert first.status_code == 100
            await stream.send_all(
                (client.send(h11.Data(data=body)) or b"") + (client.send(h11.EndOfMessage()) or b"")
            )
            response = await next_event(client, stream)
            assert isinstance(response, h11.Response)
            assert response.status_code == 200
            data = await next_event(client, stream)
            assert isinstance(data, h11.Data)
            assert data.data == b"5"
            assert isinstance(await next_event(client, stream), h11.EndOfMessage)
            client.start_next_cycle()


async def test_a_client_gone_mid_body_ends_the_handler_and_the_server_serves_on(
    server: HttpServer, client: httpx.AsyncClient, recorder: Recorder
) -> None:
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(
            b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000
        )
        with trio.fail_after(HANG_GUARD):
            while not recorder.pieces:  # noqa: ASYNC110 (the handler has no event to wait on)
                await trio.sleep(0.01)
    with trio.fail_after(HANG_GUARD):
        while not recorder.handler_saw:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert recorder.handler_saw == ["client gone"]
    recorder.pieces.clear()
    assert (await client.post("/count", content=b"abc")).text == "3"


async def test_malformed_chunked_framing_gets_400(server: HttpServer) -> None:
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        head = b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        await stream.send_all(head + b"not-hex\r\nabc\r\n0\r\n\r\n")
        client = h11.Connection(h11.CLIENT)
        client.send(
            h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Transfer-Encoding", "chunked")])
        )
        response = await next_event(client, stream)
    assert isinstance(response, h11.Response)
    assert response.status_code == 400


async def test_a_client_silent_mid_body_is_dropped_after_the_request_timeout(
    mock_clock: trio.testing.MockClock, server: HttpServer, recorder: Recorder
) -> None:
    mock_clock.autojump_threshold = 0.05  # real sockets: jump only once loopback has gone quiet
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        head = b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        await stream.send_all(head + b"x" * 1000)
        sent_at = trio.current_time()
        assert await stream.receive_some(4096) == b""  # closed, without an answer
    assert trio.current_time() - sent_at >= REQUEST_TIMEOUT
    assert recorder.handler_saw == ["client gone"]
