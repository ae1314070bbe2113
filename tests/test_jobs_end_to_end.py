"""Print jobs end to end: REST calls (httpx) drive the server, whose virtual printer runs on a real
pty; a trio-websocket client on the push socket checks that OctoPrint's events arrive in its order
(octoprint-push.md §9.7) with its payload keys (the 1.11.8 samples)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.virtual import FirmwareOptions

from .test_end_to_end import API_KEY, PushClient
from .websocket_client import connect_websocket

FIXTURES = Path(__file__).parent / "fixtures" / "octoprint-1.11.8"
HANG_GUARD = 60  # seconds; only to turn a hang into a failure, never a performance claim
TIME_SCALE = 20.0  # the virtual printer's moves run 20× faster, so a five-layer print takes ~2 s


def layered_gcode(layers: int = 5, moves: int = 40) -> bytes:
    """A real multi-layer print: home, then ``layers`` layers of extruding zig-zag moves."""
    lines = ["; octotrio test print", "G28", "G90", "M82", "G1 F1200"]
    extruded = 0.0
    for layer in range(1, layers + 1):
        lines.append(f"G1 Z{0.2 * layer:.1f} F300")
        for move in range(moves):
            extruded += 0.5
            lines.append(f"G1 X{(move % 2) * 20} Y{move} E{extruded:.2f} F1200")
    return ("\n".join(lines) + "\n").encode()


def sample_payload(event_type: str) -> dict[str, Any]:
    message: dict[str, Any] = json.loads((FIXTURES / f"event-{event_type}.json").read_text())
    payload: dict[str, Any] = message["event"]["payload"]
    return payload


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[RunningServer]:
    config = ServerConfig(
        port=0,
        api_key=API_KEY,
        virtual_printer=FirmwareOptions(time_scale=TIME_SCALE),
        data_dir=tmp_path / "data",
    )
    running: RunningServer = await nursery.start(run, config)
    yield running
    running.request_shutdown()


class EventReader:
    """The push client's events, one action at a time."""

    NOISE = frozenset({"ZChange", "Home"})
    """Events a moving print fires at any time; checked in their own test."""

    def __init__(self, client: PushClient) -> None:
        self.client = client
        self.seen: list[dict[str, Any]] = []

    async def until(self, last: str, state: str | None = None) -> list[str]:
        """Read events until ``last`` (a ``PrinterStateChanged`` to ``state`` when given); return
        their names (PSC with its state, ChartMarked with its type), moving-print noise left out."""
        names = []
        while True:
            message = await self.client.next_message()
            if "event" not in message:
                continue
            event = message["event"]
            self.seen.append(event)
            kind, payload = event["type"], event["payload"]
            noise = kind in self.NOISE or (kind == "PositionUpdate" and payload["reason"] is None)
            if not noise:
                if kind == "PrinterStateChanged":
                    names.append(f"PSC {payload['state_id']}")
                elif kind == "ChartMarked":
                    names.append(f"ChartMarked {payload['type']}")
                else:
                    names.append(kind)
            if kind == last and (state is None or payload["state_id"] == state):
                return names

    def payload(self, event_type: str) -> dict[str, Any]:
        """The payload of the latest ``event_type`` seen."""
        payload: dict[str, Any] = next(e for e in reversed(self.seen) if e["type"] == event_type)["payload"]
        return payload


@asynccontextmanager
async def open_session(server: RunningServer) -> AsyncIterator[tuple[httpx.AsyncClient, EventReader]]:
    """An httpx client with the API key, and the events of an authenticated push client."""
    headers = {"X-Api-Key": API_KEY}
    async with (
        connect_websocket(server.http.port, "/sockjs/websocket", message_queue_size=1024) as ws,
        httpx.AsyncClient(base_url=server.url, headers=headers) as http,
    ):
        client = PushClient(ws, framed=False)
        await client.authenticate(server.http.port)
        await client.wait_until_operational()
        yield http, EventReader(client)


async def test_upload_print_pause_resume_restart_cancel_and_finish(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with open_session(server) as (http, events):
            response = await http.post("/api/files/local", files={"file": ("layers.gcode", layered_gcode())})
            assert response.status_code == 201
            assert response.headers["location"] == f"{server.url}/api/files/local/layers.gcode"
            assert response.json()["files"]["local"]["path"] == "layers.gcode"
            assert await events.until("MetadataAnalysisFinished") == [
                "FileAdded",
                "UpdatedFiles",
                "MetadataAnalysisStarted",
                "Upload",
                "MetadataAnalysisFinished",
            ]
            for kind in ("FileAdded", "Upload", "MetadataAnalysisStarted"):
                assert events.payload(kind) | {"name": "x", "path": "x"} == sample_payload(kind) | {
                    "name": "x",
                    "path": "x",
                }
            analysis = events.payload("MetadataAnalysisFinished")["result"]
            assert analysis["printingArea"]["maxZ"] == 1.0
            assert analysis["filament"]["tool0"]["length"] == 100.0  # 5 layers × 40 moves × 0.5 mm

            response = await http.post(
                "/api/files/local/layers.gcode", json={"command": "select", "print": True}
            )
            assert response.status_code == 204
            assert await events.until("PrinterStateChanged", "PRINTING") == [
                "FileSelected",
                "PSC STARTING",
                "PrintStarted",
                "ChartMarked print",
                "PSC PRINTING",
            ]
            assert events.payload("PrintStarted").keys() == sample_payload("PrintStarted").keys()
            job = (await http.get("/api/job")).json()
            assert job["job"]["file"]["path"] == "layers.gcode"
            assert job["job"]["user"] == "_api"

            await pause(http, events)
            assert (await http.get("/api/job")).json()["state"] == "Paused"
            response = await http.post("/api/job", json={"command": "pause", "action": "resume"})
            assert response.status_code == 204
            assert await events.until("PrinterStateChanged", "PRINTING") == [
                "PSC RESUMING",
                "PrintResumed",
                "ChartMarked resume",
                "PSC PRINTING",
            ]

            await pause(http, events)
            assert (await http.post("/api/job", json={"command": "restart"})).status_code == 204
            assert await events.until("PrinterStateChanged", "PRINTING") == [
                "PSC STARTING",
                "PrintStarted",
                "ChartMarked print",
                "PSC PRINTING",
            ]

            assert (await http.post("/api/job", json={"command": "cancel"})).status_code == 204
            assert await events.until("PrinterStateChanged", "OPERATIONAL") == [
                "PrintCancelling",
                "PSC CANCELLING",
                "PrintCancelled",
                "ChartMarked cancel",
                "MetadataStatisticsUpdated",
                "PrintFailed",
                "PSC OPERATIONAL",
            ]
            assert events.payload("PrintCancelled").keys() == sample_payload("PrintCancelled").keys()
            assert events.payload("PrintFailed").keys() == sample_payload("PrintFailed").keys()
            assert events.payload("PrintFailed")["reason"] == "cancelled"
            progress = (await http.get("/api/job")).json()["progress"]
            assert set(progress.values()) == {None}  # all null after a cancel (§8.3)

            assert (await http.post("/api/job", json={"command": "start"})).status_code == 204
            assert await events.until("PrinterStateChanged", "OPERATIONAL") == [
                "PSC STARTING",
                "PrintStarted",
                "ChartMarked print",
                "PSC PRINTING",
                "PSC FINISHING",
                "ChartMarked done",
                "PrintDone",
                "MetadataStatisticsUpdated",
                "PSC OPERATIONAL",
            ]
            assert events.payload("PrintDone").keys() == sample_payload("PrintDone").keys() | {"user"}
            job = (await http.get("/api/job")).json()
            assert job["progress"]["completion"] == 100.0
            assert job["progress"]["printTimeLeft"] == 0
            assert job["job"]["lastPrintTime"] is not None
            # One ZChange per layer of the finished print, each from the previous Z.
            started = max(i for i, e in enumerate(events.seen) if e["type"] == "PrintStarted")
            last_print = events.seen[started:]
            changes = [e["payload"] for e in last_print if e["type"] == "ZChange"]
            assert [c["new"] for c in changes] == [0.2, 0.4, 0.6, 0.8, 1.0]
            assert [c["old"] for c in changes] == [None, 0.2, 0.4, 0.6, 0.8]


async def pause(http: httpx.AsyncClient, events: EventReader) -> None:
    """Pause once the print moved to its second layer, and check §9.7's pause sequence."""
    await events.until("ZChange")
    while events.payload("ZChange")["new"] < 0.4:
        await events.until("ZChange")
    response = await http.post("/api/job", json={"command": "pause", "action": "pause"})
    assert response.status_code == 204
    assert await events.until("PrinterStateChanged", "PAUSED") == [
        "PSC PAUSING",
        "PrintPaused",
        "ChartMarked pause",
        "PositionUpdate",
        "PSC PAUSED",
    ]
    assert events.payload("PrintPaused").keys() == sample_payload("PrintPaused").keys()
    position = next(
        e for e in reversed(events.seen) if e["type"] == "PositionUpdate" and e["payload"]["reason"]
    )
    assert position["payload"].keys() == sample_payload("PositionUpdate").keys()
    assert position["payload"]["reason"] == "pause"
    # The head's real position, recorded by M400 + M114 while pausing (§10.4), on every pause.
    assert position["payload"]["z"] >= 0.4
    assert events.payload("PrintPaused")["position"]["z"] == position["payload"]["z"]
