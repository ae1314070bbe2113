"""Authentication, backlog, permissions and bad input on the push API over the SockJS polling
transports (xhr polling and xhr_streaming): the real server, and the conformance suite's httpx
client for those transports (``conformance._wire``, which imports no server code)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from conformance._wire import Connection, Transport, open_connection
from octotrio.app import RunningServer, ServerConfig, run
from octotrio.auth import AccessConfig

from .test_push_auth import MALFORMED, USERS, passive_login

HANG_GUARD = 30  # seconds; only to turn a hang into a failure
QUIET = 1.5  # seconds of listening to show that something is *not* sent
POLLING: list[Transport] = ["xhr", "xhr_streaming"]


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, access=AccessConfig(users=tuple(USERS.values())))
    running: RunningServer = await nursery.start(run, config)
    yield running
    running.request_shutdown()


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=40) as client:
        yield client


async def auth(connection: Connection, port: int, user: str) -> None:
    record = await passive_login(port, user)
    await connection.send({"auth": f"{record['name']}:{record['session']}"})


async def expect(connection: Connection, message_type: str, *, start: int = 0) -> object:
    received = await connection.wait_type(message_type, HANG_GUARD, start=start)
    assert received is not None, f"no {message_type!r}; ended: {connection.ended}"
    return received.payload


def types(connection: Connection, start: int = 0) -> list[str]:
    return [item.type for item in connection.received[start:]]


@pytest.mark.parametrize("transport", POLLING)
async def test_backlog_then_history_after_auth(
    server: RunningServer, http: httpx.AsyncClient, transport: Transport
) -> None:
    with trio.fail_after(HANG_GUARD * 2):
        async with trio.open_nursery() as nursery:
            connection = await open_connection(nursery, server.url, transport, "polling", http)
            await expect(connection, "connected")
            server.hub.publish_event("Home", None)
            server.hub.publish_plugin("action_command_notification", {"message": "hello"})
            await trio.sleep(QUIET)
            assert types(connection) == ["connected"]  # unauthenticated: nothing but connected
            await auth(connection, server.http.port, "terminal")
            await expect(connection, "history")
            seen = [item.message for item in connection.received]
            history_at = types(connection).index("history")
            home = seen.index({"event": {"type": "Home", "payload": None}})
            assert home < history_at
            assert seen[home + 1] == {
                "plugin": {"plugin": "action_command_notification", "data": {"message": "hello"}}
            }
            assert connection.violations == []
            connection.close()


@pytest.mark.parametrize("transport", POLLING)
async def test_permissions_over_polling(
    server: RunningServer, http: httpx.AsyncClient, transport: Transport
) -> None:
    with trio.fail_after(HANG_GUARD * 2):
        async with trio.open_nursery() as nursery:
            viewer = await open_connection(nursery, server.url, transport, "viewer", http)
            terminal = await open_connection(nursery, server.url, transport, "terminal", http)
            nobody = await open_connection(nursery, server.url, transport, "nobody", http)
            await auth(viewer, server.http.port, "viewer")
            await auth(terminal, server.http.port, "terminal")
            await auth(nobody, server.http.port, "nobody")
            viewer_history = await expect(viewer, "history")
            terminal_history = await expect(terminal, "history")
            assert isinstance(viewer_history, dict)
            assert isinstance(terminal_history, dict)
            assert "logs" not in viewer_history
            assert "messages" not in viewer_history
            assert "logs" in terminal_history
            assert "messages" in terminal_history
            server.hub.publish_event("Home", None)
            await expect(viewer, "event")
            await trio.sleep(QUIET)
            assert types(nobody) == ["connected"]  # no STATUS: nothing after auth
            for connection in (viewer, terminal, nobody):
                connection.close()


@pytest.mark.parametrize("transport", POLLING)
async def test_stale_session_and_malformed_input_over_polling(
    server: RunningServer, http: httpx.AsyncClient, transport: Transport
) -> None:
    with trio.fail_after(HANG_GUARD * 2):
        async with trio.open_nursery() as nursery:
            connection = await open_connection(nursery, server.url, transport, "bad", http)
            other = await open_connection(nursery, server.url, "raw", "other", http)
            await auth(other, server.http.port, "viewer")
            await expect(other, "history")
            await expect(connection, "connected")
            for text in MALFORMED:
                await connection.send_text(text)
            await connection.send({"auth": "admin:" + "0" * 64})
            assert await expect(connection, "reauthRequired") == {"reason": "stale"}
            assert types(connection) == ["connected", "reauthRequired"]  # the rest was ignored
            await auth(connection, server.http.port, "viewer")
            await expect(connection, "history")
            start = len(other.received)
            server.hub.publish_event("Home", None)
            await expect(other, "event", start=start)
            assert connection.open
            assert other.open
            assert connection.violations == []
            connection.close()
            other.close()


@pytest.mark.parametrize("transport", POLLING)
async def test_logout_then_reauth_over_polling(
    server: RunningServer, http: httpx.AsyncClient, transport: Transport
) -> None:
    port = server.http.port
    with trio.fail_after(HANG_GUARD * 2):
        async with trio.open_nursery() as nursery, httpx.AsyncClient(base_url=server.url) as browser:
            connection = await open_connection(nursery, server.url, transport, "logout", http)
            csrf = {"X-CSRF-Token": (await browser.get("/login")).cookies[f"csrf_token_P{port}"]}
            login = await browser.post(
                "/api/login", json={"user": "terminal", "pass": "correct horse"}, headers=csrf
            )
            assert login.status_code == 200, login.text
            await connection.send({"auth": f"terminal:{login.json()['session']}"})
            await expect(connection, "history")
            assert (await browser.post("/api/logout", headers=csrf)).status_code == 200
            assert await expect(connection, "reauthRequired") == {"reason": "logout"}
            start = len(connection.received)
            await auth(connection, port, "terminal")  # Q4: OctoPrint aborts here; octotrio serves on
            await expect(connection, "history", start=start)
            assert connection.open
            connection.close()
