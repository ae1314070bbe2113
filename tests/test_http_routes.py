"""Plain HTTP over loopback: the SockJS greeting, /info, errors, keep-alive, handshake refusals."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import AsyncIterator
from functools import partial

import h11
import httpx
import pytest
import trio

from octotrio.http import HttpExchange, HttpServer, Router, serve_http
from octotrio.http._server import ACCEPT_BATCH
from octotrio.sockjs import SockJSConnection

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


async def idle_app(connection: SockJSConnection) -> None:
    await connection.receive()


@pytest.fixture
async def server(nursery: trio.Nursery) -> HttpServer:
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=idle_app)
    )
    return server


@pytest.fixture
async def client(server: HttpServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        yield client


async def exchange_raw(server: HttpServer, *requests: h11.Request) -> list[tuple[h11.Response, bytes]]:
    """Send ``requests`` pipelined on one connection; return each response with its body."""
    pipelined = b"".join(encode_request(request) for request in requests)
    client = h11.Connection(h11.CLIENT)
    responses: list[tuple[h11.Response, bytes]] = []
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(pipelined)
        for request in requests:
            encode_request(request, client)  # for the client's state; the bytes went out above
            response = await next_event(client, stream)
            assert isinstance(response, h11.Response)
            body = b""
            while not isinstance(event := await next_event(client, stream), h11.EndOfMessage):
                assert isinstance(event, h11.Data)
                body += event.data
            responses.append((response, body))
            client.start_next_cycle()
    return responses


def encode_request(request: h11.Request, client: h11.Connection | None = None) -> bytes:
    client = client or h11.Connection(h11.CLIENT)
    return (client.send(request) or b"") + (client.send(h11.EndOfMessage()) or b"")


async def next_event(client: h11.Connection, stream: trio.SocketStream) -> object:
    while (event := client.next_event()) is h11.NEED_DATA:
        client.receive_data(await stream.receive_some(4096))
    return event


def get(target: str, *headers: tuple[str, str]) -> h11.Request:
    return h11.Request(method="GET", target=target, headers=[("Host", "test"), *headers])


async def test_url_reports_the_real_port(server: HttpServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize("path", ["/sockjs", "/sockjs/", "/sockjs?t=1"])
async def test_greeting(client: httpx.AsyncClient, path: str) -> None:
    # U1, U9
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    assert response.content == b"Welcome to SockJS!\n"
    assert "set-cookie" not in response.headers


async def test_info(client: httpx.AsyncClient) -> None:
    # I1, I2, H1, C2, C4
    first = await client.get("/sockjs/info")
    second = await client.get("/sockjs/info")
    for response in first, second:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json; charset=UTF-8"
        assert response.headers["cache-control"] == NO_CACHE
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers
        assert response.headers["vary"] == "Origin"
        for absent in ("set-cookie", "expires", "last-modified"):
            assert absent not in response.headers
    body = first.json()
    assert list(body) == ["websocket", "cookie_needed", "origins", "entropy"]
    assert body["websocket"] is True
    assert body["cookie_needed"] is False
    assert body["origins"] == ["*:*"]
    assert 0 <= body["entropy"] < 2**32
    assert first.content.startswith(b'{"websocket":true,"cookie_needed":false,"origins":["*:*"],"entropy":')
    assert body["entropy"] != second.json()["entropy"]  # I2: fails once in 2**32 runs


@pytest.mark.parametrize("origin", ["http://example.com", "null"])
async def test_info_echoes_the_origin(client: httpx.AsyncClient, origin: str) -> None:
    # C1: echoed, the literal "null" included, with credentials.
    response = await client.get("/sockjs/info", headers={"Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["vary"] == "Origin"


async def test_info_preflight(client: httpx.AsyncClient) -> None:
    # I5, H2, C3
    response = await client.options(
        "/sockjs/info",
        headers={"Origin": "http://example.com", "Access-Control-Request-Headers": "a, b, c"},
    )
    assert response.status_code == 204
    assert response.content == b""
    headers = response.headers
    assert headers["cache-control"] == "public, max-age=31536000"
    assert headers["expires"].endswith(" GMT")
    assert headers["access-control-max-age"] == "31536000"
    assert {method.strip() for method in headers["access-control-allow-methods"].split(",")} >= {
        "OPTIONS",
        "GET",
    }
    assert headers["access-control-allow-origin"] == "http://example.com"
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-allow-headers"] == "a, b, c"
    assert "content-length" not in headers


async def test_info_preflight_without_requested_headers(client: httpx.AsyncClient) -> None:
    response = await client.options("/sockjs/info")
    assert response.status_code == 204
    assert "access-control-allow-headers" not in response.headers
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/version",
        "/sockjsx",
        "/sockjs/a",
        "/sockjs/a.html",
        "/sockjs//",
        "/sockjs///",
        "/sockjs/a/a",
        "/sockjs/a/a/",
        "/sockjs/a/",
        "/sockjs/info/",
        "/sockjs/a./a/websocket",
        "/sockjs/a/a./websocket",
        "/sockjs//a/websocket",
        "/sockjs/a//websocket",
        "/sockjs/a/a/a/websocket",
        "/sockjs/a/a/websocketx",
    ],
)
async def test_everything_else_is_not_found(server: HttpServer, path: str) -> None:
    # U6, P1: with a body and a Content-Length.
    ((response, body),) = await exchange_raw(server, get(path))
    assert response.status_code == 404
    assert body
    assert dict(response.headers)[b"content-length"] == str(len(body)).encode()


@pytest.mark.parametrize("path", ["/sockjs/000/abcdefgh/websocket", "/sockjs/websocket"])
async def test_websocket_endpoints_refuse_post(client: httpx.AsyncClient, path: str) -> None:
    # W2: 405, Allow: GET, no Content-Type, empty body.
    for headers in ({}, {"Upgrade": "websocket", "Connection": "Upgrade"}):
        response = await client.post(path, headers=headers)
        assert response.status_code == 405
        assert response.headers["allow"] == "GET"
        assert "content-type" not in response.headers
        assert response.content == b""


async def test_method_not_allowed_lists_the_route_methods(client: httpx.AsyncClient) -> None:
    response = await client.post("/sockjs/info")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, OPTIONS"


@pytest.mark.parametrize("path", ["/sockjs/_/abcdefgh_i-j%20/websocket", "/sockjs/websocket"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Upgrade": "WebSocket", "Connection": "close"},
        {"Upgrade": "h2c", "Connection": "Upgrade"},
        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "too short",
        },
    ],
)
async def test_not_a_websocket_request(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
    # W1
    response = await client.get(path, headers=headers)
    assert response.status_code == 400
    assert response.content == b"Not a valid websocket request"


async def test_unsupported_websocket_version(client: httpx.AsyncClient) -> None:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "8",
        "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw==",
    }
    response = await client.get("/sockjs/websocket", headers=headers)
    assert response.status_code == 426
    assert response.headers["sec-websocket-version"] == "13"


async def test_handshake_answer(server: HttpServer) -> None:
    # W3: 101, Upgrade, Connection, the accept token of the RFC's example key, no Content-Length.
    client = h11.Connection(h11.CLIENT)
    request = get(
        "/sockjs/000/abcdefgh/websocket",
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    )
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(client.send(request) + client.send(h11.EndOfMessage()))
        response = await next_event(client, stream)
    assert isinstance(response, h11.InformationalResponse)
    assert response.status_code == 101
    headers = dict(response.headers)
    assert headers[b"upgrade"].lower() == b"websocket"
    assert headers[b"connection"].lower() == b"upgrade"
    assert headers[b"sec-websocket-accept"] == b"HSmrc0sMlYUkAGmm5OPpG2HaGWk="
    assert b"content-length" not in headers


async def test_keep_alive_serves_several_requests_on_one_connection(server: HttpServer) -> None:
    # P4: pipelined, including a 404 and a 405 in between.
    post = h11.Request(
        method="POST", target="/sockjs/websocket", headers=[("Host", "t"), ("Content-Length", "0")]
    )
    responses = await exchange_raw(server, get("/sockjs"), get("/nope"), post, get("/sockjs/info"))
    assert [response.status_code for response, _ in responses] == [200, 404, 405, 200]
    assert responses[0][1] == b"Welcome to SockJS!\n"
    assert json.loads(responses[3][1])["websocket"] is True


async def test_malformed_request_gets_400_and_the_server_lives_on(
    server: HttpServer, client: httpx.AsyncClient
) -> None:
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := await stream.receive_some(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert (await client.get("/sockjs")).status_code == 200


async def test_oversized_body_gets_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/sockjs/info", content=b"x" * (64 * 1024 + 1))
    assert response.status_code == 413


async def test_routes_of_your_own(nursery: trio.Nursery) -> None:
    async def status_page(exchange: HttpExchange) -> None:
        await exchange.respond(200, [("Content-Type", "text/plain")], exchange.path_params["name"].encode())

    router = Router()
    router.add("/status/(?P<name>[a-z]+)", {"GET": status_page})
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=idle_app, router=router)
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/status/printer")).text == "printer"
        assert (await client.get("/sockjs")).status_code == 200
        assert (await client.get("/status/")).status_code == 404


async def test_every_connection_waiting_to_be_accepted_is_served(server: HttpServer) -> None:
    # More than one accept batch, all in the listen backlog before the server gets to run.
    streams = [await trio.open_tcp_stream("127.0.0.1", server.port) for _ in range(2 * ACCEPT_BATCH + 1)]
    request = encode_request(h11.Request(method="GET", target="/sockjs/info", headers=[("Host", "x")]))
    for stream in streams:
        await stream.send_all(request)
    for stream in streams:
        client = h11.Connection(h11.CLIENT)
        encode_request(h11.Request(method="GET", target="/sockjs/info", headers=[("Host", "x")]), client)
        response = await next_event(client, stream)
        assert isinstance(response, h11.Response)
        assert response.status_code == 200
        await stream.aclose()


async def test_connections_reset_before_they_are_served_harm_no_one(
    server: HttpServer, client: httpx.AsyncClient
) -> None:
    for _ in range(20):
        sock = trio.socket.socket()
        # Linger 0: close() sends a reset, before the server has accepted the connection.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await sock.connect(("127.0.0.1", server.port))
        sock.close()
    response = await client.get("/sockjs/info")
    assert response.status_code == 200
