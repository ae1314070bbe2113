"""Authentication, permissions, backlog, subscriptions and bad input on the push socket, end to end:
a real server with three users, trio-websocket clients on the raw and SockJS endpoints, httpx for REST."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.auth import AccessConfig, UserRecord, hash_password

from .websocket_client import connect_websocket

HANG_GUARD = 20  # seconds; only to turn a hang into a failure
QUIET = 1.5  # seconds of listening to show that something is *not* sent
FRAMED = "/sockjs/000/authtest/websocket"
RAW = "/sockjs/websocket"
PASSWORD = "correct horse"
USERS = {
    "admin": UserRecord("admin", hash_password(PASSWORD), groups=("admins", "users"), api_key="A" * 32),
    "viewer": UserRecord(
        "viewer", hash_password(PASSWORD), groups=(), permissions=("STATUS",), api_key="V" * 32
    ),
    "terminal": UserRecord("terminal", hash_password(PASSWORD), groups=("readonly",), api_key="T" * 32),
    "nobody": UserRecord("nobody", hash_password(PASSWORD), groups=(), api_key="N" * 32),
}


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, access=AccessConfig(users=tuple(USERS.values())))
    running: RunningServer = await nursery.start(run, config)
    yield running
    running.request_shutdown()


class Client:
    def __init__(self, ws: WebSocketConnection, framed: bool) -> None:
        self.ws, self.framed = ws, framed
        self.pending: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any]:
        while not self.pending:
            frame = await self.ws.get_message()
            assert isinstance(frame, str)
            if not self.framed:
                self.pending.append(json.loads(frame))
            elif frame.startswith("a"):
                self.pending.extend(json.loads(frame[1:]))
        return self.pending.pop(0)

    async def next_of_type(self, kind: str) -> Any:
        while True:
            message = await self.next()
            if kind in message:
                return message[kind]

    async def received_during(self, seconds: float) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        with trio.move_on_after(seconds):
            while True:
                messages.append(await self.next())
        return messages

    async def send_text(self, text: str) -> None:
        await self.ws.send_message(json.dumps([text]) if self.framed else text)

    async def send(self, message: object) -> None:
        await self.send_text(json.dumps(message))


async def passive_login(port: int, user: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        response = await http.post(
            "/api/login", json={"passive": True}, headers={"X-Api-Key": USERS[user].api_key or ""}
        )
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def auth(client: Client, port: int, user: str) -> dict[str, Any]:
    record = await passive_login(port, user)
    await client.send({"auth": f"{record['name']}:{record['session']}"})
    return record


@pytest.mark.parametrize("path", [RAW, FRAMED])
async def test_unauthenticated_socket_gets_only_connected(server: RunningServer, path: str) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, path) as ws:
            client = Client(ws, framed=path == FRAMED)
            assert "connected" in await client.next()
            server.hub.publish_event("Home", None)
            assert await client.received_during(QUIET) == []


@pytest.mark.parametrize("path", [RAW, FRAMED])
async def test_backlog_is_delivered_in_order_before_history(server: RunningServer, path: str) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, path) as ws:
            client = Client(ws, framed=path == FRAMED)
            await client.next()
            server.hub.publish_event("Home", None)
            server.hub.publish_plugin("action_command_notification", {"message": "hello"})
            await trio.sleep(0.2)
            await auth(client, server.http.port, "terminal")
            before_history: list[dict[str, Any]] = []
            while "history" not in (message := await client.next()):
                before_history.append(message)
            assert {"event": {"type": "Home", "payload": None}} in before_history
            assert {"plugin": {"plugin": "action_command_notification", "data": {"message": "hello"}}} in (
                before_history
            )
            home = before_history.index({"event": {"type": "Home", "payload": None}})
            assert "plugin" in before_history[home + 1]


async def test_backlog_overflow_keeps_the_newest_100_in_order(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = Client(ws, framed=False)
            await client.next()
            for n in range(150):
                server.hub.publish_event("ZChange", {"new": float(n), "old": None})
            await trio.sleep(0.2)
            await auth(client, server.http.port, "terminal")
            before_history: list[dict[str, Any]] = []
            while "history" not in (message := await client.next()):
                before_history.append(message)
            events = [m["event"] for m in before_history if "event" in m]
            heights = [event["payload"]["new"] for event in events if event["type"] == "ZChange"]
            assert len(before_history) == 100  # the bound (§5.2)
            # The newest are kept (OctoPrint keeps the first 100: 0..99); printer events may share the 100.
            assert heights[-1] == 149.0
            assert heights == [float(n) for n in range(150 - len(heights), 150)]


async def test_status_only_user_gets_no_terminal_lines_even_in_history(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with (
            connect_websocket(server.http.port, RAW) as viewer_ws,
            connect_websocket(server.http.port, RAW) as terminal_ws,
        ):
            viewer, terminal = Client(viewer_ws, False), Client(terminal_ws, False)
            await auth(viewer, server.http.port, "viewer")
            await auth(terminal, server.http.port, "terminal")
            viewer_history = await viewer.next_of_type("history")
            terminal_history = await terminal.next_of_type("history")
            assert "logs" not in viewer_history  # Q1 fixed
            assert "messages" not in viewer_history
            assert "logs" in terminal_history
            assert "messages" in terminal_history
            server.printer.send_command("M105")
            viewer_current = await viewer.next_of_type("current")
            assert "logs" not in viewer_current
            assert "messages" not in viewer_current
            terminal_logs: list[str] = []
            while not terminal_logs:
                terminal_logs = (await terminal.next_of_type("current"))["logs"]


async def test_user_without_status_gets_nothing_after_auth(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = Client(ws, False)
            await client.next()
            await auth(client, server.http.port, "nobody")
            server.hub.publish_event("Home", None)
            assert await client.received_during(QUIET) == []


async def test_admin_events_and_payload_stripping(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with (
            connect_websocket(server.http.port, RAW) as admin_ws,
            connect_websocket(server.http.port, RAW) as viewer_ws,
        ):
            admin, viewer = Client(admin_ws, False), Client(viewer_ws, False)
            await auth(admin, server.http.port, "admin")
            await auth(viewer, server.http.port, "viewer")
            await admin.next_of_type("history")
            await viewer.next_of_type("history")
            async with connect_websocket(server.http.port, RAW) as third_ws:
                third = Client(third_ws, False)
                await auth(third, server.http.port, "viewer")
                await third.next_of_type("history")

            async def events_of(client: Client) -> dict[str, Any]:
                seen: dict[str, Any] = {}
                while "ClientClosed" not in seen:
                    event = await client.next_of_type("event")
                    seen.setdefault(event["type"], event["payload"])
                return seen

            admin_events, viewer_events = await events_of(admin), await events_of(viewer)
            assert admin_events["ClientOpened"] == {"remoteAddress": "127.0.0.1"}
            assert admin_events["ClientAuthed"] == {"username": "viewer", "remoteAddress": "127.0.0.1"}
            assert admin_events["UserLoggedIn"] == {"username": "viewer"}
            assert viewer_events["ClientOpened"] == {}
            assert viewer_events["ClientAuthed"] == {}
            assert "UserLoggedIn" not in viewer_events
            assert viewer_events["ClientClosed"] == {"remoteAddress": "127.0.0.1"}


async def test_reauth_after_logout_works(server: RunningServer) -> None:
    port = server.http.port
    with trio.fail_after(HANG_GUARD):
        async with (
            connect_websocket(port, FRAMED) as ws,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            client = Client(ws, True)
            await client.next()
            csrf = (await http.get("/login")).cookies[f"csrf_token_P{port}"]
            headers = {"X-CSRF-Token": csrf}
            login = await http.post(
                "/api/login", json={"user": "terminal", "pass": PASSWORD}, headers=headers
            )
            assert login.status_code == 200, login.text
            await client.send({"auth": f"terminal:{login.json()['session']}"})
            await client.next_of_type("history")
            assert (await http.post("/api/logout", headers=headers)).status_code == 200
            assert await client.next_of_type("reauthRequired") == {"reason": "logout"}
            server.printer.send_command("M105")
            assert all("current" not in m for m in await client.received_during(QUIET))
            await auth(client, port, "terminal")  # Q4: OctoPrint aborts here; octotrio serves on
            await client.next_of_type("history")
            await client.next_of_type("current")


@pytest.mark.parametrize("path", [RAW, FRAMED])
async def test_unknown_session_gets_reauth_required_stale(server: RunningServer, path: str) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, path) as ws:
            client = Client(ws, path == FRAMED)
            await client.next()
            await client.send({"auth": "admin:" + "0" * 64})
            assert await client.next() == {"reauthRequired": {"reason": "stale"}}


async def test_subscription_filters_events_and_logs(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = Client(ws, False)
            await auth(client, server.http.port, "terminal")
            await client.next_of_type("history")
            await client.send(
                {
                    "subscribe": {
                        "state": {"logs": "^Send: M105", "messages": False},
                        "events": ["Home"],
                        "plugins": False,
                    }
                }
            )
            history = await client.next_of_type("history")  # the state selection changed
            assert all(line.startswith("Send: M105") for line in history["logs"])
            assert history["messages"] == []
            server.hub.publish_event("ZChange", {"new": 1.0, "old": None})
            server.hub.publish_plugin("action_command_notification", {})
            server.hub.publish_event("Home", None)
            server.printer.send_command("M105")
            logs: list[str] = []
            while True:
                message = await client.next()
                assert "plugin" not in message
                if "event" in message:
                    assert message["event"]["type"] == "Home"
                if "current" in message:
                    assert message["current"]["messages"] == []
                    logs += message["current"]["logs"]
                    if logs:
                        break
            assert all(line.startswith("Send: M105") for line in logs)


async def test_invalid_subscribe_keeps_the_previous_selection(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = Client(ws, False)
            await client.send({"subscribe": {"events": 5}})  # Q13: OctoPrint switches everything off
            await auth(client, server.http.port, "viewer")
            await client.next_of_type("history")
            server.hub.publish_event("Home", None)
            while (await client.next_of_type("event"))["type"] != "Home":
                pass  # events flow (under Q13 nothing would arrive: the hang guard fails)


MALFORMED = [
    "hello",
    "",
    "{}",
    '{"foo": 1}',
    '"auth"',
    '["auth"]',
    "5",
    "null",
    "[]",
    '{"auth": 5}',
    '{"auth": null}',
    '{"auth": "a:b:c"}',
    '{"auth": "nocolon"}',
    '{"throttle": null}',
    '{"throttle": []}',
    '{"throttle": {}}',
    '{"throttle": 0}',
    '{"throttle": -1}',
    '{"throttle": "x"}',
    '{"throttle": "9" }',
    '{"throttle": 1e400}',
    '{"subscribe": 5}',
    '{"subscribe": null}',
    '{"subscribe": {"state": "x"}}',
    '{"subscribe": {"state": {"logs": "("}}}',
    '{"subscribe": {"state": {"logs": "(a+)+$"}}}',
    '{"subscribe": {"events": [1]}}',
    "[" * 5000 + "]" * 5000,
    '{"auth": "' + "x" * 30000 + '"}',
]


@pytest.mark.parametrize("path", [RAW, FRAMED])
async def test_malformed_input_is_ignored_and_the_session_stays_healthy(
    server: RunningServer, path: str
) -> None:
    with trio.fail_after(HANG_GUARD):
        async with (
            connect_websocket(server.http.port, path) as ws,
            connect_websocket(server.http.port, RAW) as other_ws,
        ):
            client, other = Client(ws, path == FRAMED), Client(other_ws, False)
            await auth(other, server.http.port, "viewer")
            await other.next_of_type("history")
            await client.next()
            for text in MALFORMED:
                await client.send_text(text)
            if path == FRAMED:
                await ws.send_message(json.dumps([{"auth": "admin:x"}]))  # an object element: ignored
            await client.send({"auth": "admin:" + "0" * 64})
            assert await client.next() == {"reauthRequired": {"reason": "stale"}}
            await auth(client, server.http.port, "viewer")
            await client.next_of_type("history")
            server.hub.publish_event("Home", None)
            assert await other.next_of_type("event") is not None


async def test_cross_origin_sockets_are_refused(server: RunningServer) -> None:
    port = server.http.port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for path in (RAW, FRAMED):
            refused = await http.get(path, headers={"Origin": "http://evil.example"})
            assert refused.status_code == 403
            same = await http.get(path, headers={"Origin": f"http://127.0.0.1:{port}"})
            assert same.status_code != 403  # not a websocket handshake, but past the origin check


async def test_action_notification_from_the_printer_is_a_plugin_message(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, FRAMED) as ws:
            client = Client(ws, True)
            await auth(client, server.http.port, "viewer")
            await client.next_of_type("history")
            server.printer.send_command("!!DEBUG:action_custom notification Hello from virtual printer")
            plugin = await client.next_of_type("plugin")
            assert plugin == {
                "plugin": "action_command_notification",
                "data": {"message": "Hello from virtual printer"},
            }


async def test_disconnect_clears_the_printer_notifications(server: RunningServer) -> None:
    port = server.http.port
    with trio.fail_after(HANG_GUARD):
        async with (
            connect_websocket(port, FRAMED) as ws,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):
            client = Client(ws, True)
            await auth(client, port, "viewer")
            await client.next_of_type("history")
            disconnect = await http.post(
                "/api/connection", json={"command": "disconnect"}, headers={"X-Api-Key": "A" * 32}
            )
            assert disconnect.status_code == 204
            while (await client.next_of_type("event"))["type"] != "Disconnected":
                pass
            after = await client.next()
            while "current" in after:
                after = await client.next()
            # §9.7: right after Disconnected; OctoPrint's firmware_check that follows is not sent.
            assert after == {"plugin": {"plugin": "action_command_notification", "data": {}}}
