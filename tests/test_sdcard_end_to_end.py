"""SD card prints end to end: REST calls (httpx) drive the server, whose virtual printer has a
file on its SD card and runs on a real pty; a push client checks OctoPrint's events and payloads
(octoprint-push.md §9.4, §9.7) for a print the firmware runs itself (marlin-serial.md §7), with
SD status autoreport (``M27 S1``) and without it (``M27`` polled)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.virtual import FirmwareOptions

from .test_end_to_end import API_KEY
from .test_jobs_end_to_end import (
    HANG_GUARD,
    TIME_SCALE,
    EventReader,
    layered_gcode,
    open_session,
    sample_payload,
)

SD_FILE = "layers.gco"
SD_DATA = layered_gcode(layers=10)
SD_TIME_SCALE = TIME_SCALE / 2
"""The firmware runs the file in about 4 s: long enough for a poll every second to see it midway."""


async def start_server(nursery: trio.Nursery, tmp_path: Path, *, autoreport: bool) -> RunningServer:
    config = ServerConfig(
        port=0,
        api_key=API_KEY,
        virtual_printer=FirmwareOptions(
            time_scale=SD_TIME_SCALE, autoreport_sd_status=autoreport, sd_files={SD_FILE: SD_DATA}
        ),
        virtual_printer_record=str(tmp_path / "record.txt"),
        data_dir=tmp_path / "data",
    )
    running: RunningServer = await nursery.start(run, config)
    return running


async def sd_listing(http: httpx.AsyncClient, count: int = 1) -> list[dict[str, object]]:
    """``GET /api/files/sdcard`` once it lists ``count`` files: the firmware's file list (§4: M20
    after M115, and after M21 or M30) comes in a little after the request that asked for it."""
    while True:
        files: list[dict[str, object]] = (await http.get("/api/files/sdcard")).json()["files"]
        if len(files) == count:
            return files
        await trio.sleep(0.05)


async def pause(http: httpx.AsyncClient, events: EventReader) -> None:
    response = await http.post("/api/job", json={"command": "pause", "action": "pause"})
    assert response.status_code == 204
    assert await events.until("PrinterStateChanged", "PAUSED") == [
        "PSC PAUSING",
        "PrintPaused",
        "ChartMarked pause",
        "PositionUpdate",
        "PSC PAUSED",
    ]


async def wait_for_progress(events: EventReader, http: httpx.AsyncClient) -> float:
    """The job's completion once the firmware reported some (``SD printing byte``)."""
    while True:
        completion = (await http.get("/api/job")).json()["progress"]["completion"]
        if completion:
            assert isinstance(completion, float)
            return completion
        await trio.sleep(0.05)


@pytest.mark.parametrize("autoreport", [True, False], ids=["autoreport", "polled"])
async def test_select_print_pause_resume_restart_cancel_and_finish_an_sd_file(
    nursery: trio.Nursery, tmp_path: Path, autoreport: bool
) -> None:
    server = await start_server(nursery, tmp_path, autoreport=autoreport)
    with trio.fail_after(HANG_GUARD):
        async with open_session(server) as (http, events):
            assert (await http.get("/api/printer/sd")).json() == {"ready": True}
            (entry,) = await sd_listing(http)
            assert entry["origin"] == "sdcard"
            assert entry["path"] == SD_FILE
            assert entry["size"] == len(SD_DATA)
            assert (await http.get(f"/api/files/sdcard/{SD_FILE}")).json() == entry
            assert (await http.get("/api/files/sdcard/missing.gco")).status_code == 404
            everything = (await http.get("/api/files")).json()["files"]
            assert [f["path"] for f in everything if f["origin"] == "sdcard"] == [SD_FILE]
            assert (await http.get("/api/printer")).json()["sd"] == {"ready": True}

            response = await http.post("/api/files/sdcard/missing.gco", json={"command": "select"})
            assert response.status_code == 404
            assert response.json() == {"error": "File not found on 'sdcard': missing.gco"}

            response = await http.post(
                f"/api/files/sdcard/{SD_FILE}", json={"command": "select", "print": True}
            )
            assert response.status_code == 204
            selecting = await events.until("PrinterStateChanged", "PRINTING")
            if selecting[0] == "UpdatedFiles":
                # The connect's SD listing (§9.7), if it reached this client only after it authed.
                selecting.pop(0)
            assert selecting == [
                "FileSelected",
                "PSC STARTING",
                "PrintStarted",
                "ChartMarked print",
                "PSC PRINTING",
            ]
            selected = events.payload("FileSelected")
            assert selected.keys() == sample_payload("FileSelected").keys()
            assert (selected["origin"], selected["path"], selected["size"]) == (
                "sdcard",
                SD_FILE,
                len(SD_DATA),
            )
            assert events.payload("PrintStarted").keys() == sample_payload("PrintStarted").keys()
            assert events.payload("PrintStarted")["origin"] == "sdcard"
            psc = [e["payload"]["state_string"] for e in events.seen if e["type"] == "PrinterStateChanged"]
            assert psc[-2:] == ["Starting print from SD", "Printing from SD"]
            job = (await http.get("/api/job")).json()
            assert job["state"] == "Printing from SD"
            assert job["job"]["file"]["origin"] == "sdcard"
            assert job["job"]["file"]["size"] == len(SD_DATA)
            assert 0 < await wait_for_progress(events, http) < 100
            # Only one print at a time, and no other file while this one runs.
            assert (await http.post("/api/job", json={"command": "start"})).status_code == 409
            response = await http.post(f"/api/files/sdcard/{SD_FILE}", json={"command": "select"})
            assert response.status_code == 409
            assert (await http.post("/api/printer/sd", json={"command": "refresh"})).status_code == 409

            await pause(http, events)
            paused = events.payload("PrintPaused")
            assert paused.keys() == sample_payload("PrintPaused").keys()
            assert paused["origin"] == "sdcard"
            assert 0 < paused["fileposition"] < len(SD_DATA)

            response = await http.post("/api/job", json={"command": "pause", "action": "resume"})
            assert response.status_code == 204
            assert await events.until("PrinterStateChanged", "PRINTING") == [
                "PSC RESUMING",
                "PrintResumed",
                "ChartMarked resume",
                "PSC PRINTING",
            ]

            # Restart from paused: the firmware is rewound to the file's first byte (M26 S0).
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
                "PrintFailed",
                "PSC OPERATIONAL",
            ]
            assert events.payload("PrintCancelled").keys() == sample_payload("PrintCancelled").keys()
            assert events.payload("PrintFailed")["reason"] == "cancelled"
            assert events.payload("PrintCancelled")["origin"] == "sdcard"

            # The file stays selected: start prints it again from its first byte, to the end.
            assert (await http.post("/api/job", json={"command": "start"})).status_code == 204
            assert await events.until("PrinterStateChanged", "OPERATIONAL") == [
                "PSC STARTING",
                "PrintStarted",
                "ChartMarked print",
                "PSC PRINTING",
                "PSC FINISHING",
                "ChartMarked done",
                "PrintDone",
                "PSC OPERATIONAL",
            ]
            done = events.payload("PrintDone")
            assert done.keys() == sample_payload("PrintDone").keys() | {"user"}
            assert (done["origin"], done["path"]) == ("sdcard", SD_FILE)
            job = (await http.get("/api/job")).json()
            assert job["state"] == "Operational"
            assert job["progress"]["completion"] == 100.0
            assert job["progress"]["filepos"] == len(SD_DATA)
            # The firmware runs the file: the host sends none of its moves, so no Home or ZChange.
            assert not [e for e in events.seen if e["type"] in ("Home", "ZChange")]

    sent = (tmp_path / "record.txt").read_text().splitlines()
    if autoreport:
        # Reports on while printing, off while paused and afterwards; never polled.
        assert sent.count("M27 S1") == 4  # start, resume, restart, start again
        assert sent.count("M27 S0") == 4  # pause, pause, cancel, finish
        assert "M27" not in sent
    else:
        assert "M27" in sent
        assert not [line for line in sent if line.startswith("M27 S")]
    # OctoPrint's SD cancel (marlin-serial.md §7): pause the file and rewind it.
    # (M108 jumps the queue, so the restart's M24 may still come between it and the M25.)
    cancel = sent.index("M25", sent.index("M108"))
    assert sent[cancel + 1] == "M26 S0"
    # The second print ran every line of the file: the record ends with its last lines.
    last_move = SD_DATA.decode().splitlines()[-1]
    assert last_move in sent
    server.request_shutdown()


async def test_sd_card_release_refresh_init_and_refusals(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await start_server(nursery, tmp_path, autoreport=True)
    with trio.fail_after(HANG_GUARD):
        async with open_session(server) as (http, events):
            await sd_listing(http)
            response = await http.post("/api/printer/sd", json={"command": "eject"})
            assert response.status_code == 400
            assert (await http.post("/api/printer/sd", json={"command": "refresh"})).status_code == 204
            assert await events.until("UpdatedFiles") == ["UpdatedFiles"]

            assert (await http.post("/api/printer/sd", json={"command": "release"})).status_code == 204
            assert (await http.get("/api/printer/sd")).json() == {"ready": False}
            assert (await http.get("/api/files/sdcard")).json() == {"files": []}
            assert not [f for f in (await http.get("/api/files")).json()["files"] if f["origin"] == "sdcard"]
            response = await http.post(f"/api/files/sdcard/{SD_FILE}", json={"command": "select"})
            assert response.status_code == 404
            response = await http.post("/api/files/sdcard", files={"file": ("x.gco", b"G28\n")})
            assert response.status_code == 409
            assert response.json() == {"error": "Can not upload to SD card, not yet initialized"}

            assert (await http.post("/api/printer/sd", json={"command": "init"})).status_code == 204
            assert [f["path"] for f in await sd_listing(http)] == [SD_FILE]
            assert (await http.get("/api/printer/sd")).json() == {"ready": True}
            # Uploading to the card (M28/M29) is not built: a clear 400 (spec/deviations.md).
            response = await http.post("/api/files/sdcard", files={"file": ("x.gco", b"G28\n")})
            assert response.status_code == 400

            assert (await http.delete("/api/files/sdcard/missing.gco")).status_code == 404
            assert (await http.delete(f"/api/files/sdcard/{SD_FILE}")).status_code == 204
            assert await sd_listing(http, count=0) == []

            await http.post("/api/connection", json={"command": "disconnect"})
            assert (await http.get("/api/printer/sd")).json() == {"ready": False}
            response = await http.post("/api/printer/sd", json={"command": "init"})
            assert response.status_code == 409
            assert response.json() == {"error": "Printer is not operational or currently busy"}
    server.request_shutdown()
