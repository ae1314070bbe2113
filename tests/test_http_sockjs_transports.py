"""The SockJS HTTP transports over loopback, with httpx and a raw h11 client: each header, status
code and error body of sockjs-protocol.md, sessions across requests, and the test services."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import h11
import httpx
import pytest
import trio
import trio.testing

from octotrio.http import HttpServer, serve_http
from octotrio.sockjs import SockJSConnection, encode_string

from .test_http_routes import exchange_raw, next_event
from .websocket_client import connect_websocket

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
HANG_GUARD = 10  # seconds; only to turn a hang into a failure


async def echo_or_flood(connection: SockJSConnection) -> None:
    """Echoes; ``flood`` sends 100 KiB messages until the session is over."""
    while True:
        message = await connection.receive()
        if message == "flood":
            while True:
                await connection.send([encode_string("x" * 100_000)])
        await connection.send([encode_string(message)])


@pytest.fixture
async def server(nursery: trio.Nursery) -> HttpServer:
    server: HttpServer = await nursery.start(
        partial(
            serve_http,
            host="127.0.0.1",
            port=0,
            sockjs_app=echo_or_flood,
            test_services=True,
            heartbeat_interval=3600,
            write_timeout=0.5,
        )
    )
    return server


@pytest.fixture
async def client(server: HttpServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        yield client


async def poll(client: httpx.AsyncClient, url: str) -> str:
    with trio.fail_after(HANG_GUARD):
        response = await client.post(f"{url}/xhr")
    assert response.status_code == 200
    return response.text


async def open_session(client: httpx.AsyncClient, url: str) -> None:
    assert await poll(client, url) == "o\n"


class Stream:
    """A raw h11 client reading a streaming response chunk by chunk (P2)."""

    def __init__(self, stream: trio.SocketStream, connection: h11.Connection, response: h11.Response) -> None:
        self.stream = stream
        self.connection = connection
        self.response = response
        self.headers = {name.decode(): value.decode() for name, value in response.headers}

    async def chunk(self) -> bytes:
        """The next whole HTTP chunk (asserting the server sent it as one), or b"" at the end."""
        data = b""
        with trio.fail_after(HANG_GUARD):
            while True:
                event = await next_event(self.connection, self.stream)
                if isinstance(event, h11.EndOfMessage):
                    assert data == b""
                    return b""
                assert isinstance(event, h11.Data)
                if not data:
                    assert event.chunk_start
                data += event.data
                if event.chunk_end:
                    return data


@asynccontextmanager
async def stream(
    server: HttpServer, method: str, target: str, *headers: tuple[str, str]
) -> AsyncIterator[Stream]:
    """Send one request on a new connection and read its response head."""
    connection = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method=method, target=target, headers=[("Host", "t"), ("Content-Length", "0"), *headers]
    )
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(
            (connection.send(request) or b"") + (connection.send(h11.EndOfMessage()) or b"")
        )
        response = await next_event(connection, stream)
        assert isinstance(response, h11.Response)
        yield Stream(stream, connection, response)


# xhr polling and xhr_send


async def test_xhr_polling_session(client: httpx.AsyncClient) -> None:
    # S1, S8, F2, §8: o first, one frame per response, messages batched, exact headers.
    first = await client.post("/sockjs/000/aaaaaaaa/xhr")
    assert first.text == "o\n"
    headers = first.headers
    assert headers["content-type"] == "application/javascript; charset=UTF-8"
    assert headers["cache-control"] == NO_CACHE
    assert headers["access-control-allow-origin"] == "*"
    assert headers["content-length"] == "2"
    for absent in ("set-cookie", "expires", "last-modified"):
        assert absent not in headers
    sent = await client.post("/sockjs/000/aaaaaaaa/xhr_send", content=b'["a","b"]')
    assert sent.status_code == 204
    assert sent.content == b""
    assert sent.headers["content-type"] == "text/plain; charset=UTF-8"
    assert sent.headers["cache-control"] == NO_CACHE
    # U7: <server> is ignored.
    assert await poll(client, "/sockjs/999/aaaaaaaa") == 'a["a","b"]\n'


@pytest.mark.parametrize("origin", ["http://example.com", "null"])
async def test_xhr_echoes_the_origin(client: httpx.AsyncClient, origin: str) -> None:
    # C1
    for path in ("xhr", "xhr_send"):
        response = await client.post(f"/sockjs/000/origin/{path}", headers={"Origin": origin}, content=b"[]")
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["vary"] == "Origin"


@pytest.mark.parametrize("transport", ["xhr", "xhr_send", "xhr_streaming"])
async def test_xhr_preflight(client: httpx.AsyncClient, transport: str) -> None:
    # C3, H2, I5
    response = await client.options(
        f"/sockjs/000/preflight/{transport}",
        headers={"Origin": "http://example.com", "Access-Control-Request-Headers": "a, b, c"},
    )
    assert response.status_code == 204
    headers = response.headers
    assert headers["access-control-allow-methods"] == "OPTIONS, POST"
    assert headers["access-control-allow-headers"] == "a, b, c"
    assert headers["access-control-allow-origin"] == "http://example.com"
    assert headers["cache-control"] == "public, max-age=31536000"
    assert headers["access-control-max-age"] == "31536000"
    assert headers["expires"].endswith(" GMT")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", b"Payload expected."),
        (b'["a', b"Broken JSON encoding."),
        (b"\xff", b"Broken JSON encoding."),
        (b'{"a":1}', b"Payload expected."),
    ],
)
async def test_bad_xhr_send_gets_500_and_the_session_lives_on(
    client: httpx.AsyncClient, body: bytes, message: bytes
) -> None:
    # T2
    await open_session(client, "/sockjs/000/badsend")
    response = await client.post("/sockjs/000/badsend/xhr_send", content=body)
    assert response.status_code == 500
    assert response.content == message
    assert (await client.post("/sockjs/000/badsend/xhr_send", content=b'["ok"]')).status_code == 204
    assert await poll(client, "/sockjs/000/badsend") == 'a["ok"]\n'


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "text/xml; charset=utf-8", "T", None]
)
async def test_xhr_send_ignores_the_content_type(client: httpx.AsyncClient, content_type: str | None) -> None:
    # T3
    await open_session(client, "/sockjs/000/ctype")
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/sockjs/000/ctype/xhr_send", content=b'["x"]', headers=headers)
    assert response.status_code == 204
    assert await poll(client, "/sockjs/000/ctype") == 'a["x"]\n'


async def test_xhr_send_to_an_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    # S2
    assert (await client.post("/sockjs/000/nobody/xhr_send", content=b'["x"]')).status_code == 404
    response = await client.post("/sockjs/000/nobody/jsonp_send", data={"d": '["x"]'})
    assert response.status_code == 404


async def test_xhr_without_content_length(server: HttpServer) -> None:
    # T4: a bare POST, no Content-Length, no body.
    request = h11.Request(method="POST", target="/sockjs/000/bare/xhr", headers=[("Host", "t")])
    ((response, body),) = await exchange_raw(server, request)
    assert response.status_code == 200
    assert body == b"o\n"


async def test_oversized_xhr_send_gets_413(client: httpx.AsyncClient) -> None:
    await open_session(client, "/sockjs/000/big")
    response = await client.post("/sockjs/000/big/xhr_send", content=b'["' + b"x" * 64 * 1024 + b'"]')
    assert response.status_code == 413


async def test_wrong_methods_get_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.get("/sockjs/000/s/xhr")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    response = await client.post("/sockjs/000/s/eventsource")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert (await client.get("/sockjs/000/s/jsonp_send")).headers["allow"] == "POST"


@pytest.mark.parametrize(
    "path",
    [
        "/sockjs///xhr",
        "/sockjs/a./a/xhr",
        "/sockjs/a/a./xhr",
        "/sockjs/././xhr",
        "/sockjs//xhr",
        "/sockjs////xhr",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_invalid_session_paths_are_not_found(client: httpx.AsyncClient, path: str, method: str) -> None:
    # U6
    assert (await client.request(method, path)).status_code == 404


# Streaming transports


async def test_xhr_streaming(server: HttpServer, client: httpx.AsyncClient) -> None:
    # §8, P2, P4: prelude chunk, then one chunk per frame, chunked.
    async with stream(server, "POST", "/sockjs/000/stream/xhr_streaming") as response:
        assert response.headers["content-type"] == "application/javascript; charset=UTF-8"
        assert response.headers["cache-control"] == NO_CACHE
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        assert await response.chunk() == b"h" * 2048 + b"\n"
        assert await response.chunk() == b"o\n"
        await client.post("/sockjs/000/stream/xhr_send", content=b'["one"]')
        assert await response.chunk() == b'a["one"]\n'
        await client.post("/sockjs/000/stream/xhr_send", content=b'["two"]')
        assert await response.chunk() == b'a["two"]\n'


async def test_streaming_ends_at_the_response_limit_and_the_session_goes_on(
    server: HttpServer, client: httpx.AsyncClient
) -> None:
    # S7: /echo has a 4096-byte limit; frames count with their framing, the prelude does not.
    message = "x" * 1000
    frame = f'a["{message}"]\n'.encode()
    async with stream(server, "POST", "/echo/000/limit/xhr_streaming") as response:
        assert await response.chunk() == b"h" * 2048 + b"\n"
        assert await response.chunk() == b"o\n"
        sent = 2
        while sent < 4096:
            await client.post("/echo/000/limit/xhr_send", content=json.dumps([message]).encode())
            assert await response.chunk() == frame
            sent += len(frame)
        assert await response.chunk() == b""  # the terminating zero-length chunk
    await client.post("/echo/000/limit/xhr_send", content=b'["again"]')
    assert await poll(client, "/echo/000/limit") == 'a["again"]\n'


async def test_eventsource(server: HttpServer, client: httpx.AsyncClient) -> None:
    # §8, J5: exactly text/event-stream; % escaped so decodeURI gives it back.
    async with stream(server, "GET", "/sockjs/000/events/eventsource") as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == NO_CACHE
        assert await response.chunk() == b"\r\n"
        assert await response.chunk() == b"data: o\r\n\r\n"
        await client.post("/sockjs/000/events/xhr_send", content=json.dumps(["100%\n\u2028"]).encode())
        assert await response.chunk() == b'data: a["100%25\\n\\u2028"]\r\n\r\n'


async def test_htmlfile(server: HttpServer, client: httpx.AsyncClient) -> None:
    async with stream(server, "GET", "/sockjs/000/html/htmlfile?c=_jp.abc") as response:
        assert response.headers["content-type"] == "text/html; charset=UTF-8"
        assert response.headers["cache-control"] == NO_CACHE
        prelude = await response.chunk()
        assert len(prelude) > 1024
        assert b"var c = parent._jp.abc;" in prelude
        assert await response.chunk() == b'<script>\np("o");\n</script>\r\n'
        await client.post("/sockjs/000/html/xhr_send", content=b'["</script>"]')
        assert await response.chunk() == b'<script>\np("a[\\"\\u003c/script>\\"]");\n</script>\r\n'


@pytest.mark.parametrize("transport", ["htmlfile", "jsonp"])
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", b'"callback" parameter required'),
        ("?c=", b'"callback" parameter required'),
        ("?c=%20", b'invalid "callback" parameter'),
        ("?c=*", b'invalid "callback" parameter'),
        ("?c=abc(", b'invalid "callback" parameter'),
        ("?callback=" + "x" * 33, b'invalid "callback" parameter'),
    ],
)
async def test_bad_callbacks_get_500(
    client: httpx.AsyncClient, transport: str, query: str, message: bytes
) -> None:
    # T1
    response = await client.get(f"/sockjs/000/callback/{transport}{query}")
    assert response.status_code == 500
    assert response.content == message


async def test_jsonp_polling_and_jsonp_send(client: httpx.AsyncClient) -> None:
    # §8, J4: /**/callback("frame"); jsonp_send takes a form or raw text and answers "ok".
    response = await client.get("/sockjs/000/jsonp/jsonp?c=_jp.a1")
    assert response.content == b'/**/_jp.a1("o");\r\n'
    assert response.headers["content-type"] == "application/javascript; charset=UTF-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == NO_CACHE
    sent = await client.post("/sockjs/000/jsonp/jsonp_send", data={"d": '["a b+c%"]'})
    assert (sent.status_code, sent.content) == (200, b"ok")
    assert sent.headers["content-type"] == "text/plain; charset=UTF-8"
    assert sent.headers["cache-control"] == NO_CACHE
    raw = await client.post(
        "/sockjs/000/jsonp/jsonp_send", content=b'["d=%41"]', headers={"Content-Type": "text/plain"}
    )
    assert raw.content == b"ok"
    response = await client.get("/sockjs/000/jsonp/jsonp?callback=cb")
    assert response.content == b'/**/cb("a[\\"a b+c%\\",\\"d=%41\\"]");\r\n'


@pytest.mark.parametrize("body", [{"d": ""}, {"e": '["x"]'}])
async def test_jsonp_send_without_payload_gets_500(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    await client.get("/sockjs/000/jsonpbad/jsonp?c=cb")
    response = await client.post("/sockjs/000/jsonpbad/jsonp_send", data=body)
    assert (response.status_code, response.content) == (500, b"Payload expected.")


# Session lifecycle across requests


async def test_second_receiver_gets_2010_and_the_first_stays(
    server: HttpServer, client: httpx.AsyncClient
) -> None:
    # S3, S10
    async with stream(server, "POST", "/sockjs/000/twice/xhr_streaming") as first:
        await first.chunk()
        assert await first.chunk() == b"o\n"
        assert await poll(client, "/sockjs/000/twice") == 'c[2010,"Another connection still open"]\n'
        await client.post("/sockjs/000/twice/xhr_send", content=b'["still"]')
        assert await first.chunk() == b'a["still"]\n'


async def test_close_frame_is_served_to_every_later_request(
    server: HttpServer, client: httpx.AsyncClient
) -> None:
    # S5 with the /close test service (F3).
    assert await poll(client, "/close/000/c") == "o\n"
    for _ in range(3):
        assert await poll(client, "/close/000/c") == 'c[3000,"Go away!"]\n'
    async with stream(server, "POST", "/close/000/c/xhr_streaming") as response:
        assert await response.chunk() == b"h" * 2048 + b"\n"
        assert await response.chunk() == b'c[3000,"Go away!"]\n'
        assert await response.chunk() == b""


async def test_aborted_receiver_interrupts_the_session(server: HttpServer, client: httpx.AsyncClient) -> None:
    # S6: the client closes its streaming request; the session answers 1002 from then on.
    async with stream(server, "POST", "/sockjs/000/abort/xhr_streaming") as response:
        await response.chunk()
        assert await response.chunk() == b"o\n"
    with trio.fail_after(HANG_GUARD):
        # Until the server has seen the connection close, the old receiver counts as attached.
        while (answer := await poll(client, "/sockjs/000/abort")).startswith("c[2010"):  # noqa: ASYNC110 (polls the server)
            await trio.sleep(0.01)
    assert answer == 'c[1002,"Connection interrupted"]\n'


async def test_a_forgotten_session_starts_anew(nursery: trio.Nursery) -> None:
    # S4: closed, then forgotten once nobody polled it for the disconnect delay.
    server: HttpServer = await nursery.start(
        partial(
            serve_http,
            host="127.0.0.1",
            port=0,
            sockjs_app=echo_or_flood,
            test_services=True,
            disconnect_delay=0.1,
        )
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert await poll(client, "/close/000/again") == "o\n"
        assert await poll(client, "/close/000/again") == 'c[3000,"Go away!"]\n'
        with trio.fail_after(HANG_GUARD):
            while (answer := await poll(client, "/close/000/again")) != "o\n":
                assert answer == 'c[3000,"Go away!"]\n'
                await trio.sleep(0.05)


async def test_heartbeat_ends_a_long_poll(nursery: trio.Nursery) -> None:
    # S8, S9 with a tiny interval instead of 25 s.
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=echo_or_flood, heartbeat_interval=0.01)
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        await open_session(client, "/sockjs/000/hb")
        assert await poll(client, "/sockjs/000/hb") == "h\n"


async def test_a_session_whose_client_does_not_poll_is_closed_when_its_queue_is_full(
    client: httpx.AsyncClient,
) -> None:
    # The queue bound: nobody takes the full queue for the write timeout (0.5 s here), so the
    # session closes; what was queued is still delivered, then the close frame.
    await open_session(client, "/sockjs/000/flood")
    await client.post("/sockjs/000/flood/xhr_send", content=b'["flood"]')
    with trio.fail_after(HANG_GUARD):
        while True:
            await trio.sleep(1)  # longer than the write timeout: the client does not poll
            answer = await poll(client, "/sockjs/000/flood")
            if not answer.startswith("a["):
                break
    assert answer == 'c[3001,"Client too slow, send queue full"]\n'


async def test_shutdown_closes_polled_and_streamed_sessions(nursery: trio.Nursery) -> None:
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=echo_or_flood)
    )
    async with (
        httpx.AsyncClient(base_url=server.url) as client,
        stream(server, "GET", "/sockjs/0/s/eventsource") as events,
    ):
        await events.chunk()
        assert await events.chunk() == b"data: o\r\n\r\n"
        await open_session(client, "/sockjs/0/p")
        async with trio.open_nursery() as polls:
            answers: list[str] = []

            async def held_poll() -> None:
                answers.append(await poll(client, "/sockjs/0/p"))

            polls.start_soon(held_poll)
            await trio.testing.wait_all_tasks_blocked()
            await server.shutdown()
        assert answers == ['c[1001,"Server shutting down"]\n']
        assert await events.chunk() == b'data: c[1001,"Server shutting down"]\r\n\r\n'
        assert await events.chunk() == b""


# Helper pages, cookies and the test services


@pytest.mark.parametrize(
    "path", ["/sockjs/iframe.html", "/sockjs/iframe-1.6.1.html", "/sockjs/iframe-a_b.html?t=1"]
)
async def test_iframe_page(client: httpx.AsyncClient, path: str) -> None:
    # H2, H3, H4
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    assert response.headers["cache-control"] == "public, max-age=31536000"
    assert "last-modified" not in response.headers
    assert '<script src="/static/sockjs.min.js"></script>' in response.text
    assert response.text.index("sockjs.min.js") < response.text.index("SockJS.bootstrap_iframe();")
    etag = response.headers["etag"]
    cached = await client.get(path, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert "content-type" not in cached.headers
    assert (await client.get("/sockjs/iframe.html")).headers["etag"] == etag  # stable


@pytest.mark.parametrize(
    "path",
    [
        "/sockjs/iframe.htm",
        "/sockjs/iframe",
        "/sockjs/IFRAME.HTML",
        "/sockjs/iframe.HTML",
        "/sockjs/iframe.xml",
        "/sockjs/iframe-/.html",
    ],
)
async def test_not_iframe_pages(client: httpx.AsyncClient, path: str) -> None:
    # U2
    assert (await client.get(path)).status_code == 404


async def test_iframe_page_loads_the_configured_script(nursery: trio.Nursery) -> None:
    server: HttpServer = await nursery.start(
        partial(
            serve_http,
            host="127.0.0.1",
            port=0,
            sockjs_app=echo_or_flood,
            sockjs_url="http://cdn.example/s.js",
        )
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (
            '<script src="http://cdn.example/s.js"></script>'
            in (await client.get("/sockjs/iframe.html")).text
        )


async def test_cookie_needed_service(client: httpx.AsyncClient) -> None:
    # I1, I2: /info says so without setting a cookie; the transports set JSESSIONID.
    info = await client.get("/cookie_needed_echo/info")
    assert info.json()["cookie_needed"] is True
    assert "set-cookie" not in info.headers
    response = await client.post("/cookie_needed_echo/000/c/xhr")
    assert response.headers["set-cookie"] == "JSESSIONID=dummy; path=/"
    response = await client.post(
        "/cookie_needed_echo/000/c/xhr_send", content=b'["x"]', headers={"Cookie": "a=b; JSESSIONID=abcdef"}
    )
    assert response.headers["set-cookie"] == "JSESSIONID=abcdef; path=/"
    assert "set-cookie" not in (await client.post("/echo/000/c/xhr")).headers


async def test_disabled_websocket_service(client: httpx.AsyncClient) -> None:
    assert (await client.get("/disabled_websocket_echo/info")).json()["websocket"] is False
    assert (await client.get("/disabled_websocket_echo/000/w/websocket")).status_code == 404
    assert (await client.get("/echo/info")).json()["websocket"] is True
    await open_session(client, "/disabled_websocket_echo/000/w")


async def test_echo_service_round_trips_awkward_text(client: httpx.AsyncClient) -> None:
    message = "\ud800 \u2028 \u2029 % %41 \x00 \x1f \uffff </script>"
    await open_session(client, "/echo/000/awkward")
    await client.post("/echo/000/awkward/xhr_send", content=json.dumps([message]).encode())
    answer = await poll(client, "/echo/000/awkward")
    assert answer.isascii()
    assert json.loads(answer[1:]) == [message]


async def test_test_services_are_off_by_default(nursery: trio.Nursery) -> None:
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=echo_or_flood)
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/echo")).status_code == 404


# HTTP/1.0 and isolation


async def exchange_until_closed(server: HttpServer, request: bytes) -> tuple[bytes, bytes]:
    """Send raw ``request``; return the lowercased response head and the body the server sent
    before it closed the connection."""
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as tcp:
        await tcp.send_all(request)
        answer = b""
        with trio.fail_after(HANG_GUARD):
            while chunk := await tcp.receive_some(4096):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.lower(), body


async def test_http10_greeting_closes_the_connection(server: HttpServer) -> None:
    # P3: Content-Length 19 and Connection: close, then the server closes.
    head, body = await exchange_until_closed(
        server, b"GET /sockjs HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
    )
    assert b"content-length: 19" in head
    assert b"connection: close" in head
    assert body == b"Welcome to SockJS!\n"


async def test_http10_streaming_is_raw_and_closed(server: HttpServer) -> None:
    # P3: no Transfer-Encoding, no Content-Length, raw frames, then the socket closes.
    request = b"POST /close/0/http10/xhr_streaming HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
    head, body = await exchange_until_closed(server, request)
    assert b"transfer-encoding" not in head
    assert b"content-length" not in head
    assert body == b"h" * 2048 + b'\no\nc[3000,"Go away!"]\n'


async def test_bad_input_on_one_session_does_not_disturb_another(
    server: HttpServer, client: httpx.AsyncClient
) -> None:
    # A malformed websocket frame closes only its own session; broken xhr_send leaves others be.
    await open_session(client, "/sockjs/000/bystander")
    async with connect_websocket(server.port, "/sockjs/000/victim/websocket") as websocket:
        assert await websocket.get_message() == "o"
        await websocket.send_message('["a')
        assert await websocket.get_message() == 'c[3000,"Broken framing."]'
    assert (await client.post("/sockjs/000/other/xhr_send", content=b"[")).status_code == 500
    assert (await client.get("/sockjs/000/bystander/jsonp?c=%20")).status_code == 500
    await client.post("/sockjs/000/bystander/xhr_send", content=b'["fine"]')
    assert await poll(client, "/sockjs/000/bystander") == 'a["fine"]\n'
