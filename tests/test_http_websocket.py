"""The SockJS websocket transports end to end over loopback, with trio-websocket as the client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from functools import partial

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed as ClientSawClose
from trio_websocket import WebSocketConnection

from octotrio.http import HttpServer, serve_http
from octotrio.sockjs import ConnectionClosed, SockJSConnection

from .websocket_client import connect_websocket

FLOOD_MESSAGE = json.dumps("x" * 60_000)


class EchoApp:
    """Echoes every message as a JSON string; a few messages are commands:

    * ``close <code> <reason>``: close the session;
    * ``object``: send an OctoPrint-style object element;
    * ``batch``: send two values in one batch;
    * ``flood``: send big messages until the session is over;
    * ``return`` / ``fail``: return / raise.
    """

    def __init__(self) -> None:
        self.sessions_ended: list[str] = []
        self.a_session_ended = trio.Event()
        self.flood_ended = trio.Event()

    async def __call__(self, connection: SockJSConnection) -> None:
        try:
            await self._serve(connection)
        finally:
            self.sessions_ended.append(connection.remote_address)
            self.a_session_ended.set()

    async def _serve(self, connection: SockJSConnection) -> None:
        while True:
            message = await connection.receive()
            command, _, argument = message.partition(" ")
            if command == "close":
                code, _, reason = argument.partition(" ")
                await connection.close(int(code), reason)
            elif command == "object":
                await connection.send(['{"connected":{"version":"1.11.8"}}'])
            elif command == "batch":
                await connection.send(['"one"', '"two"'])
            elif command == "flood":
                try:
                    while True:
                        await connection.send([FLOOD_MESSAGE])
                except ConnectionClosed:
                    self.flood_ended.set()
                    raise
            elif command == "return":
                return
            elif command == "fail":
                raise RuntimeError("the application failed, as asked")
            else:
                await connection.send([json.dumps(message)])


@pytest.fixture
def app() -> EchoApp:
    return EchoApp()


@pytest.fixture
async def server(nursery: trio.Nursery, app: EchoApp) -> HttpServer:
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=app, heartbeat_interval=3600)
    )
    return server


def framed_path(session: str = "abcdefgh") -> str:
    return f"/sockjs/000/{session}/websocket"


RAW_PATH = "/sockjs/websocket"


def connect(
    server: HttpServer, path: str, *, message_queue_size: int = 1
) -> AbstractAsyncContextManager[WebSocketConnection]:
    return connect_websocket(server.port, path, message_queue_size=message_queue_size)


@pytest.fixture
async def framed(server: HttpServer) -> AsyncIterator[WebSocketConnection]:
    async with connect(server, framed_path()) as websocket:
        assert await websocket.get_message() == "o"  # F1
        yield websocket


@pytest.fixture
async def raw(server: HttpServer) -> AsyncIterator[WebSocketConnection]:
    async with connect(server, RAW_PATH) as websocket:
        yield websocket


async def expect_close(websocket: WebSocketConnection, code: int, reason: str) -> None:
    with pytest.raises(ClientSawClose) as closed:
        await websocket.get_message()
    seen = closed.value.reason
    assert seen is not None
    assert (seen.code, seen.reason) == (code, reason)


async def test_framed_echo(framed: WebSocketConnection) -> None:
    await framed.send_message('["x"]')
    assert await framed.get_message() == 'a["x"]'
    await framed.send_message('["a","b"]')  # F7: one frame, two messages
    assert await framed.get_message() == 'a["a"]'
    assert await framed.get_message() == 'a["b"]'


async def test_framed_escapes_what_it_sends(framed: WebSocketConnection) -> None:
    # J1/J2: the client's lone surrogate and U+2028 come back escaped, as ASCII.
    await framed.send_message('["\\ud800\\u2028é"]')
    assert await framed.get_message() == 'a["\\ud800\\u2028\\u00e9"]'


async def test_framed_ignores_empty_messages_and_empty_arrays(framed: WebSocketConnection) -> None:
    await framed.send_message("")
    await framed.send_message("[]")
    await framed.send_message('["after"]')
    assert await framed.get_message() == 'a["after"]'


async def test_framed_accepts_object_elements(framed: WebSocketConnection) -> None:
    # OctoPrint clients that send objects (Q14): delivered as compact JSON text.
    await framed.send_message('[{"auth": "admin:token"}]')
    assert await framed.get_message() == 'a["{\\"auth\\":\\"admin:token\\"}"]'


async def test_framed_sends_object_elements_and_batches(framed: WebSocketConnection) -> None:
    # Q15: OctoPrint's elements are objects; one send() is one a[...] frame.
    await framed.send_message('["object"]')
    assert await framed.get_message() == 'a[{"connected":{"version":"1.11.8"}}]'
    await framed.send_message('["batch"]')
    assert await framed.get_message() == 'a["one","two"]'


async def test_broken_framing_closes_with_3000(framed: WebSocketConnection, app: EchoApp) -> None:
    # W4
    await framed.send_message('["a')
    assert await framed.get_message() == 'c[3000,"Broken framing."]'
    await expect_close(framed, 3000, "Broken framing.")


async def test_framed_server_close(framed: WebSocketConnection) -> None:
    # F3: the close frame, then a websocket close with the same code and reason.
    await framed.send_message('["close 3001 Go away!"]')
    assert await framed.get_message() == 'c[3001,"Go away!"]'
    await expect_close(framed, 3001, "Go away!")


async def test_application_returning_closes_the_session(framed: WebSocketConnection, app: EchoApp) -> None:
    await framed.send_message('["return"]')
    assert await framed.get_message() == 'c[3000,"Go away!"]'
    await expect_close(framed, 3000, "Go away!")
    assert app.sessions_ended == ["127.0.0.1"]


async def test_application_failure_is_contained(
    server: HttpServer, framed: WebSocketConnection, caplog: pytest.LogCaptureFixture
) -> None:
    await framed.send_message('["fail"]')
    assert await framed.get_message() == 'c[1011,"Internal error"]'
    await expect_close(framed, 1011, "Internal error")
    assert "SockJS application failed" in caplog.text
    async with connect(server, framed_path()) as other:  # the server lives on
        assert await other.get_message() == "o"


async def test_client_close_ends_the_session(server: HttpServer, app: EchoApp) -> None:
    async with connect(server, framed_path()) as websocket:
        assert await websocket.get_message() == "o"
        await websocket.aclose(1000, "bye")
    await app.a_session_ended.wait()
    assert app.sessions_ended == ["127.0.0.1"]


async def test_same_session_id_twice_at_once(server: HttpServer) -> None:
    # S11: websocket sessions need no registry by id.
    async with (
        connect(server, framed_path("same")) as first,
        connect(server, framed_path("same")) as second,
    ):
        assert await first.get_message() == "o"
        assert await second.get_message() == "o"
        await second.send_message('["2"]')
        await first.send_message('["1"]')
        assert await first.get_message() == 'a["1"]'
        assert await second.get_message() == 'a["2"]'


async def test_heartbeat(nursery: trio.Nursery, app: EchoApp) -> None:
    # S9, with a tiny interval instead of 25 s.
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=app, heartbeat_interval=0.01)
    )
    async with connect(server, framed_path()) as websocket:
        assert await websocket.get_message() == "o"
        assert await websocket.get_message() == "h"
        assert await websocket.get_message() == "h"


async def test_raw_echo(raw: WebSocketConnection) -> None:
    # R1: as-is both ways, no "o", no framing.
    await raw.send_message("Hello world!\uffff")
    assert await raw.get_message() == json.dumps("Hello world!\uffff")
    await raw.send_message('["x"]')
    assert await raw.get_message() == json.dumps('["x"]')


async def test_raw_sends_each_value_as_its_own_message(raw: WebSocketConnection) -> None:
    await raw.send_message("batch")
    assert await raw.get_message() == '"one"'
    assert await raw.get_message() == '"two"'


async def test_raw_server_close(raw: WebSocketConnection) -> None:
    # R2: the close frame carries code and reason.
    await raw.send_message("close 3000 Go away!")
    await expect_close(raw, 3000, "Go away!")


@pytest.mark.parametrize("path", [framed_path(), RAW_PATH])
async def test_oversized_message_closes_with_1009(server: HttpServer, path: str) -> None:
    async with connect(server, path) as websocket:
        if path != RAW_PATH:
            assert await websocket.get_message() == "o"
        await websocket.send_message(json.dumps(["x" * 64 * 1024]))
        await expect_close(websocket, 1009, "Message too big")


async def test_binary_message_closes_with_1003(raw: WebSocketConnection) -> None:
    await raw.send_message(b"\x00\x01")
    await expect_close(raw, 1003, "Binary messages are not supported")


async def test_shutdown_closes_every_session_cleanly(app: EchoApp) -> None:
    async with trio.open_nursery() as nursery:
        server: HttpServer = await nursery.start(
            partial(serve_http, host="127.0.0.1", port=0, sockjs_app=app)
        )
        async with (
            connect(server, framed_path()) as framed,
            connect(server, RAW_PATH) as raw,
            httpx.AsyncClient(base_url=server.url) as idle_http,
        ):
            assert await framed.get_message() == "o"
            await raw.send_message("ready?")  # the raw session is open once it answers
            assert await raw.get_message() == '"ready?"'
            assert (await idle_http.get("/sockjs")).status_code == 200  # leaves a keep-alive connection
            await server.shutdown()
            # Not 1006: each client got a close frame and answered it.
            assert await framed.get_message() == 'c[1001,"Server shutting down"]'
            await expect_close(framed, 1001, "Server shutting down")
            await expect_close(raw, 1001, "Server shutting down")
    # serve_http returned: the nursery could exit.
    assert sorted(app.sessions_ended) == ["127.0.0.1", "127.0.0.1"]


async def test_cancelling_the_server_still_says_goodbye(app: EchoApp) -> None:
    async with trio.open_nursery() as nursery:
        server: HttpServer = await nursery.start(
            partial(serve_http, host="127.0.0.1", port=0, sockjs_app=app)
        )
        async with connect(server, RAW_PATH) as raw:
            await raw.send_message("ready?")
            assert await raw.get_message() == '"ready?"'
            nursery.cancel_scope.cancel()
            await expect_close(raw, 1001, "Server shutting down")


async def test_a_client_that_stops_reading_is_dropped(nursery: trio.Nursery, app: EchoApp) -> None:
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=app, write_timeout=0.2)
    )
    # trio-websocket stops reading its socket once its one-message queue is full.
    async with (
        connect(server, framed_path("slow"), message_queue_size=0) as slow,
        connect(server, framed_path("fast")) as fast,
    ):
        assert await slow.get_message() == "o"
        assert await fast.get_message() == "o"
        await slow.send_message('["flood"]')
        # While the slow client's socket fills up, the other session is served.
        await fast.send_message('["still here"]')
        assert await fast.get_message() == 'a["still here"]'
        await app.flood_ended.wait()  # the flooding send raised ConnectionClosed
        await fast.send_message('["after"]')
        assert await fast.get_message() == 'a["after"]'
    assert len(app.sessions_ended) == 2
