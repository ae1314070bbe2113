"""The push API, unchanged, over the SockJS xhr-polling and xhr-streaming transports: the real
server (virtual printer on a pty, printer link, aggregator) and httpx as the client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from octotrio.app import RunningServer, ServerConfig, run

from .test_end_to_end import API_KEY, assert_same_shape, sample

HANG_GUARD = 30  # seconds; only to turn a hang into a failure, never a performance claim
SESSION = "/sockjs/000/pushxhr0"

Received = str | dict[str, Any]
"""A frame letter that carries no message (``o``, ``c[...]``) or one push message."""


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    running: RunningServer = await nursery.start(run, ServerConfig(port=0, api_key=API_KEY))
    yield running
    running.request_shutdown()


async def read_session(
    http: httpx.AsyncClient, streaming: bool, received: trio.MemorySendChannel[Received]
) -> None:
    """Receive frames the way sockjs-client does: poll ``xhr`` again after each response, or read
    ``xhr_streaming`` line by line and reopen it when the response limit ends it."""

    async def handle(line: str) -> bool:
        if line == "o" or line.startswith("c["):
            await received.send(line)
        elif line.startswith("a["):
            for message in json.loads(line[1:]):  # OctoPrint puts objects in the array
                await received.send(message)
        return not line.startswith("c[")

    async with received:
        while True:
            if streaming:
                open_ = True
                async with http.stream("POST", f"{SESSION}/xhr_streaming") as response:
                    # Read to the end: the server ends the response after a close frame.
                    async for line in response.aiter_lines():
                        open_ = await handle(line) and open_
                if not open_:
                    return
            else:
                response = await http.post(f"{SESSION}/xhr")
                for line in response.text.splitlines():
                    if not await handle(line):
                        return


async def next_of_type(received: trio.MemoryReceiveChannel[Received], message_type: str) -> dict[str, Any]:
    async for item in received:
        if isinstance(item, dict) and message_type in item:
            payload: dict[str, Any] = item[message_type]
            return payload
    raise AssertionError(f"the session ended before a {message_type!r} message")


@pytest.mark.parametrize("streaming", [False, True], ids=["xhr-polling", "xhr-streaming"])
async def test_push_session_over_xhr(server: RunningServer, streaming: bool) -> None:
    send, received = trio.open_memory_channel[Received](100)
    with trio.fail_after(HANG_GUARD):
        async with httpx.AsyncClient(base_url=server.url) as http, trio.open_nursery() as nursery:
            nursery.start_soon(read_session, http, streaming, send)
            assert await received.receive() == "o"
            connected = await received.receive()
            assert isinstance(connected, dict)
            assert list(connected) == ["connected"]
            assert_same_shape(connected["connected"], sample("connected.json")["connected"])

            login = await http.post("/api/login", json={"passive": True}, headers={"X-Api-Key": API_KEY})
            login.raise_for_status()
            user = login.json()
            auth = json.dumps({"auth": f"{user['name']}:{user['session']}"})
            sent = await http.post(f"{SESSION}/xhr_send", content=json.dumps([auth]))
            assert sent.status_code == 204

            history = await next_of_type(received, "history")
            assert_same_shape(history, sample("history-operational-late-join.json")["history"])
            current = await next_of_type(received, "current")
            while current["state"]["text"] != "Operational":
                current = await next_of_type(received, "current")
            assert_same_shape(current, sample("current-idle-operational.json")["current"])
            nursery.cancel_scope.cancel()


async def test_shutdown_closes_an_xhr_push_session(nursery: trio.Nursery) -> None:
    running: RunningServer = await nursery.start(run, ServerConfig(port=0, api_key=API_KEY))
    send, received = trio.open_memory_channel[Received](100)
    with trio.fail_after(HANG_GUARD):
        async with httpx.AsyncClient(base_url=running.url) as http, trio.open_nursery() as readers:
            readers.start_soon(read_session, http, True, send)
            assert await received.receive() == "o"
            running.request_shutdown()
            seen = [item async for item in received]
    assert seen[-1] == 'c[1001,"Server shutting down"]'
