"""The whole path over real sockets: virtual printer on a pty → printer link → aggregator →
push sessions → trio-websocket clients on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.cli import _build_parser
from octotrio.push import BASE_INTERVAL

from .test_printer_link import ScriptedFirmware, pty
from .websocket_client import connect_websocket

FIXTURES = Path(__file__).parent / "fixtures" / "octoprint-1.11.8"
HANG_GUARD = 20  # seconds; only to turn a hang into a failure, never a performance claim
API_KEY = "E2E0123456789ABCDEF0123456789ABC"


def sample(name: str) -> dict[str, Any]:
    message: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return message


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    running: RunningServer = await nursery.start(run, ServerConfig(port=0, api_key=API_KEY))
    yield running
    running.request_shutdown()


FRAMED = "/sockjs/000/abcdefgh/websocket"
RAW = "/sockjs/websocket"


class PushClient:
    """Reads push messages from either endpoint, hiding the SockJS framing."""

    def __init__(self, ws: WebSocketConnection, framed: bool) -> None:
        self.ws = ws
        self.framed = framed
        self._pending: list[dict[str, Any]] = []
        self.frames: list[str] = []

    async def next_message(self) -> dict[str, Any]:
        while not self._pending:
            frame = await self.ws.get_message()
            assert isinstance(frame, str)
            self.frames.append(frame)
            if not self.framed:
                self._pending.append(json.loads(frame))
            elif frame.startswith("a"):
                self._pending.extend(json.loads(frame[1:]))
        return self._pending.pop(0)

    async def next_of_type(self, message_type: str) -> dict[str, Any]:
        while True:
            message = await self.next_message()
            if message_type in message:
                payload: dict[str, Any] = message[message_type]
                return payload

    async def wait_until_operational(self) -> None:
        while (await self.next_of_type("current"))["state"]["text"] != "Operational":
            pass

    async def drain(self) -> None:
        """Read until the connection closes (trio-websocket raises ConnectionClosed then)."""
        while True:
            await self.next_message()

    async def authenticate(self, port: int) -> None:
        """Passive login with the global API key, then ``{"auth": "_api:<session>"}`` (§2.2)."""
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await http.post("/api/login", json={"passive": True}, headers={"X-Api-Key": API_KEY})
        response.raise_for_status()
        user = response.json()
        await self.send({"auth": f"{user['name']}:{user['session']}"})

    async def send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        await self.ws.send_message(json.dumps([text]) if self.framed else text)


def assert_same_shape(actual: Any, expected: Any, path: str = "") -> None:
    """Every key OctoPrint sends is there, with a value of the same JSON type (or null)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        missing = set(expected) - set(actual)
        assert not missing, f"{path}: missing {missing}"
        for key in expected:
            if actual[key] is not None and expected[key] is not None:
                assert_same_shape(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), path
        for item in actual[:1]:
            if expected:
                assert_same_shape(item, expected[0], f"{path}[0]")
    elif isinstance(expected, bool | str):
        assert type(actual) is type(expected), path
    elif isinstance(expected, int | float):
        assert isinstance(actual, int | float), path
        assert not isinstance(actual, bool), path


@pytest.mark.parametrize("path", [FRAMED, RAW])
async def test_client_gets_connected_history_then_current(server: RunningServer, path: str) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, path) as ws:
            client = PushClient(ws, framed=path == FRAMED)
            connected = await client.next_message()
            assert list(connected) == ["connected"]
            await client.authenticate(server.http.port)
            history = {"history": await client.next_of_type("history")}
            if path == FRAMED:
                assert client.frames[0] == "o"
            assert_same_shape(connected["connected"], sample("connected.json")["connected"])
            assert_same_shape(history["history"], sample("history-operational-late-join.json")["history"])

            current = await client.next_of_type("current")
            while current["state"]["text"] != "Operational":
                current = await client.next_of_type("current")
            assert_same_shape(current, sample("current-idle-operational.json")["current"])
            assert list(current) == list(sample("current-idle-operational.json")["current"])
            assert current["state"]["flags"]["operational"] is True


async def test_temperatures_reach_a_client(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = PushClient(ws, framed=False)
            await client.authenticate(server.http.port)
            temps: list[dict[str, Any]] = list((await client.next_of_type("history"))["temps"])
            while not temps:
                temps.extend((await client.next_of_type("current"))["temps"])
            assert temps[0]["tool0"]["actual"] == pytest.approx(21.3, abs=5)
            assert set(temps[0]) >= {"time", "tool0", "bed", "chamber"}


async def _count_currents(client: PushClient, seconds: float) -> list[float]:
    """serverTime of every ``current`` received during the next ``seconds``."""
    times: list[float] = []
    with trio.move_on_after(seconds):
        while True:
            times.append((await client.next_of_type("current"))["serverTime"])
    return times


async def test_throttle_two_halves_the_push_rate(server: RunningServer) -> None:
    async def keep_printer_busy() -> None:
        # M105 replies every 100 ms mean news in every 0.5 s tick.
        while True:
            server.printer.send_command("M105")
            await trio.sleep(0.1)

    with trio.fail_after(HANG_GUARD):
        async with (
            trio.open_nursery() as nursery,
            connect_websocket(server.http.port, RAW) as ws1,
            connect_websocket(server.http.port, FRAMED) as ws2,
        ):
            fast, slow = PushClient(ws1, framed=False), PushClient(ws2, framed=True)
            await fast.authenticate(server.http.port)
            await slow.authenticate(server.http.port)
            await fast.wait_until_operational()
            await slow.next_of_type("history")
            await slow.send({"throttle": 2})
            nursery.start_soon(keep_printer_busy)
            await slow.next_of_type("current")  # the new throttle is effective from here on
            async with trio.open_nursery() as counting:
                counts: dict[str, list[float]] = {}

                async def count(name: str, client: PushClient) -> None:
                    counts[name] = await _count_currents(client, 5)

                counting.start_soon(count, "fast", fast)
                counting.start_soon(count, "slow", slow)
            nursery.cancel_scope.cancel()

    # Compare the two clients' typical intervals over the same window: a ratio, so a slow
    # machine stretches both alike. Each interval is a gap between serverTimes.
    fast_gaps, slow_gaps = gaps(counts["fast"]), gaps(counts["slow"])
    assert len(slow_gaps) >= 2, counts
    assert 1.6 <= statistics.median(slow_gaps) / statistics.median(fast_gaps) <= 2.4, counts
    assert min(slow_gaps) >= 2 * BASE_INTERVAL - 0.02  # held back, never early (tolerance: clock reads)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_printer_vanishing_is_reported_and_server_keeps_serving(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = PushClient(ws, framed=False)
            await client.authenticate(server.http.port)
            await client.wait_until_operational()
            server.stop_virtual_printer()
            events: list[str] = []
            while True:
                message = await client.next_message()
                if "event" in message:
                    events.append(message["event"]["type"])
                if "current" in message and message["current"]["state"]["text"] == "Offline after error":
                    state = message["current"]["state"]
                    break
            assert state["error"]
            assert state["flags"]["closedOrError"] is True
            assert "Error" in events
            assert "Disconnected" in events

        # A new client still connects and learns the state from history.
        async with connect_websocket(server.http.port, FRAMED) as ws:
            late = PushClient(ws, framed=True)
            await late.authenticate(server.http.port)
            history = await late.next_of_type("history")
            assert history["state"]["text"] == "Offline after error"


async def test_clean_shutdown_closes_every_client_properly(nursery: trio.Nursery) -> None:
    with trio.fail_after(HANG_GUARD):
        running_done = trio.Event()

        async def run_server(task_status: trio.TaskStatus[RunningServer]) -> None:
            await run(ServerConfig(port=0, api_key=API_KEY), task_status=task_status)
            running_done.set()

        server: RunningServer = await nursery.start(run_server)
        async with (
            connect_websocket(server.http.port, FRAMED) as framed_ws,
            connect_websocket(server.http.port, RAW) as raw_ws,
        ):
            framed, raw = PushClient(framed_ws, framed=True), PushClient(raw_ws, framed=False)
            await framed.authenticate(server.http.port)
            await raw.authenticate(server.http.port)
            await framed.next_of_type("history")
            await raw.next_of_type("history")
            server.request_shutdown()
            for client in (framed, raw):
                with pytest.raises(ConnectionClosed) as closed:
                    await client.drain()
                assert closed.value.reason is not None
                assert closed.value.reason.code == 1001
            assert framed.frames[-1].startswith("c[1001,")
        await running_done.wait()


def test_serve_command_prints_url_and_stops_cleanly_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "octotrio", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "serving on http://127.0.0.1:" in line
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=HANG_GUARD)
        assert process.returncode == 0, errors
        assert "shutting down" in errors


def test_serve_ok_window_is_one_unless_given_and_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _build_parser()
    assert parser.parse_args(["serve"]).ok_window == 1
    assert parser.parse_args(["serve", "--ok-window", "4"]).ok_window == 4
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--ok-window", "0"])
    assert "--ok-window" in capsys.readouterr().err


async def test_a_server_with_ok_window_two_keeps_two_commands_in_flight(nursery: trio.Nursery) -> None:
    with pty() as (master, path), trio.fail_after(HANG_GUARD):
        async with master:
            config = ServerConfig(port=0, api_key=API_KEY, serial_port=path, ok_window=2)
            server: RunningServer = await nursery.start(run, config)
            firmware = ScriptedFirmware(master)
            await firmware.handshake()
            assert await firmware.receive() == "M155 S2"
            async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": API_KEY}) as http:
                response = await http.post("/api/printer/command", json={"commands": ["G4 P1", "G4 P2"]})
            assert response.status_code == 204
            # M155 S2 and G4 P1 await their oks; G4 P2 waits for one of them (§2, ackMax = 2).
            assert await firmware.receive() == "G4 P1"
            with trio.move_on_after(0.2):
                await firmware.receive()
                pytest.fail("a third command went out with two in flight")
            await firmware.say("ok")
            assert await firmware.receive() == "G4 P2"
            server.request_shutdown()
