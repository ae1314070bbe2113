"""The connection, printer, job and file endpoints over real HTTP: shapes, and every refusal with
OctoPrint's status code and ``{"error": ...}`` body (octoprint-push.md §12.3–12.5)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.virtual import FirmwareOptions

from .test_end_to_end import API_KEY
from .test_jobs_end_to_end import layered_gcode, open_session

HANG_GUARD = 30  # seconds; only to turn a hang into a failure
MAX_UPLOAD = 64 * 1024


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[RunningServer]:
    config = ServerConfig(
        port=0,
        api_key=API_KEY,
        data_dir=tmp_path,
        max_upload_bytes=MAX_UPLOAD,
        virtual_printer=FirmwareOptions(time_scale=20.0),
    )
    running: RunningServer = await nursery.start(run, config)
    yield running
    running.request_shutdown()


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": API_KEY}) as client:
        with trio.fail_after(HANG_GUARD):
            # Polling over HTTP, as a REST client would: there is no in-process event to wait on.
            while (await client.get("/api/connection")).json()["current"]["state"] != "Operational":  # noqa: ASYNC110
                await trio.sleep(0.05)
        yield client


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    error: str = response.json()["error"]
    return error


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/connection"),
        ("POST", "/api/connection"),
        ("GET", "/api/printer"),
        ("POST", "/api/printer/command"),
        ("POST", "/api/printer/tool"),
        ("POST", "/api/printer/bed"),
        ("GET", "/api/job"),
        ("POST", "/api/job"),
        ("GET", "/api/files"),
        ("POST", "/api/files/local"),
        ("DELETE", "/api/files/local/a.gcode"),
    ],
)
async def test_every_endpoint_refuses_calls_without_the_api_key(
    server: RunningServer, method: str, path: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.request(method, path, json={"command": "connect"})
    if method == "GET":
        assert response.status_code == 403
        assert error_of(response)
    else:  # without a key a state-changing call must pass the CSRF check first (§12.1)
        assert response.status_code == 400
        assert error_of(response) == "CSRF validation failed"


async def test_connection_reports_the_port_and_refuses_bad_values(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    connection = (await http.get("/api/connection")).json()
    assert connection["current"] == {
        "state": "Operational",
        "port": server.printer_port,
        "baudrate": 115200,
        "printerProfile": "_default",
    }
    assert connection["options"]["ports"] == [server.printer_port]
    assert 115200 in connection["options"]["baudrates"]
    for body, error in [
        ({"command": "connect", "port": "/dev/nonexistent"}, "port is invalid"),
        ({"command": "connect", "baudrate": 12345}, "baudrate is invalid"),
        ({"command": "explode"}, "command is invalid"),
        ({"port": "AUTO"}, "command is missing"),
    ]:
        response = await http.post("/api/connection", json=body)
        assert response.status_code == 400
        assert error_of(response) == error
    response = await http.post("/api/connection", content=b"command=connect")
    assert response.status_code == 400
    assert error_of(response) == "Expected content-type JSON"


async def test_printer_state_temperatures_history_and_offsets(http: httpx.AsyncClient) -> None:
    with trio.fail_after(HANG_GUARD):
        # Polling over HTTP until the first temperature report arrived.
        while "tool0" not in (printer := (await http.get("/api/printer?history=true")).json())["temperature"]:  # noqa: ASYNC110
            await trio.sleep(0.1)
    assert list(printer) == ["sd", "state", "temperature"]
    assert printer["state"]["flags"]["ready"] is True
    assert set(printer["temperature"]["tool0"]) == {"actual", "target", "offset"}
    assert "chamber" not in printer["temperature"]  # a printer without one (§8.5)
    assert printer["temperature"]["history"]

    assert (
        await http.post("/api/printer/tool", json={"command": "offset", "offsets": {"tool0": 5}})
    ).status_code == 204
    assert (await http.post("/api/printer/bed", json={"command": "target", "target": 40})).status_code == 204
    only_temperatures = (await http.get("/api/printer?exclude=state,sd&history=true&limit=1")).json()
    assert list(only_temperatures) == ["temperature"]
    assert only_temperatures["temperature"]["tool0"]["offset"] == 5
    assert len(only_temperatures["temperature"]["history"]) == 1

    for body in [
        {"command": "target", "targets": {"nozzle": 200}},
        {"command": "target", "targets": {"tool0": "hot"}},
        {"command": "offset", "offsets": {"tool0": 80}},
        {"command": "flowrate", "factor": 500},
        {"command": "target"},
    ]:
        response = await http.post("/api/printer/tool", json=body)
        assert response.status_code == 400, body
        assert error_of(response)
    response = await http.get("/api/printer?limit=many")
    assert response.status_code == 400


async def test_job_commands_are_refused_with_octoprint_texts_when_they_cannot_run(
    http: httpx.AsyncClient,
) -> None:
    for body, error in [
        (
            {"command": "cancel"},
            "Printer is neither printing nor paused, 'cancel' command cannot be performed",
        ),
        ({"command": "pause"}, "Printer is neither printing nor paused, 'pause' command cannot be performed"),
        ({"command": "restart"}, "Printer does not have an active print job or is not paused"),
        ({"command": "start"}, "No file selected, cannot start a print job"),
    ]:
        response = await http.post("/api/job", json=body)
        assert response.status_code == 409
        assert error_of(response) == error
    assert (await http.post("/api/job", json={"command": "fly"})).status_code == 400

    assert (await http.post("/api/connection", json={"command": "disconnect"})).status_code == 204
    assert (await http.get("/api/connection")).json()["current"]["state"] == "Closed"
    refused: list[tuple[str, str, dict[str, object] | None]] = [
        ("GET", "/api/printer", None),
        ("POST", "/api/job", {"command": "start"}),
        ("POST", "/api/printer/command", {"command": "M105"}),
        ("POST", "/api/printer/tool", {"command": "target", "targets": {"tool0": 200}}),
    ]
    for method, path, request_body in refused:
        response = await http.request(method, path, json=request_body)
        assert response.status_code == 409
        assert error_of(response) == "Printer is not operational"
    job = (await http.get("/api/job")).json()
    assert job["state"] == "Offline"


async def test_uploads_are_validated_and_bounded(
    server: RunningServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    cases = [
        ({"file": ("model.stl", b"solid")}, {}, 415),
        ({"file": ("part.gcode", b"G28\n")}, {"path": "../outside"}, 400),
        ({}, {"select": "true"}, 400),
        ({"file": ("big.gcode", b"G1 X1\n" * (MAX_UPLOAD // 6 + 1))}, {}, 413),
    ]
    for files, data, status in cases:
        response = await http.post("/api/files/local", files=files or None, data=data)
        assert response.status_code == status, (files, data)
        if status != 413:
            assert error_of(response)
    response = await http.post(
        "/api/files/local",
        content=b"--x\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 400
    # Nothing of the refused uploads reached the data directory.
    assert os.listdir(tmp_path) == []

    response = await http.post(
        "/api/files/local", files={"file": ("part.gcode", b"G28\n")}, data={"path": "sub", "select": "true"}
    )
    assert response.status_code == 201
    assert response.json()["effectiveSelect"] is True
    assert (tmp_path / "sub" / "part.gcode").read_bytes() == b"G28\n"
    response = await http.post(
        "/api/files/local",
        files={"file": ("part.gcode", b"G1\n")},
        data={"path": "sub", "noOverwrite": "true"},
    )
    assert response.status_code == 409
    listing = (await http.get("/api/files")).json()
    (folder,) = listing["files"]
    assert folder["type"] == "folder"
    (entry,) = folder["children"]
    assert entry["path"] == "sub/part.gcode"
    assert entry["typePath"] == ["machinecode", "gcode"]
    assert entry["refs"]["resource"] == f"{server.url}/api/files/local/sub/part.gcode"
    assert listing["free"] > 0
    assert (await http.get("/api/job")).json()["job"]["file"]["path"] == "sub/part.gcode"

    assert (await http.get("/api/files/local/sub/missing.gcode")).status_code == 404
    assert (await http.delete("/api/files/local/sub/missing.gcode")).status_code == 404
    assert (await http.delete("/api/files/local/..%2F..%2Fetc%2Fpasswd.gcode")).status_code == 404
    missing = await http.post("/api/files/local/nope.gcode", json={"command": "select"})
    assert missing.status_code == 404
    assert (await http.delete("/api/files/local/sub/part.gcode")).status_code == 204
    assert not (tmp_path / "sub" / "part.gcode").exists()
    assert (await http.get("/api/job")).json()["job"]["file"]["path"] is None  # deselected


async def test_a_file_being_printed_cannot_be_deleted_or_overwritten(server: RunningServer) -> None:
    with trio.fail_after(HANG_GUARD):
        async with open_session(server) as (http, events):
            gcode = layered_gcode(layers=20)
            response = await http.post(
                "/api/files/local", files={"file": ("long.gcode", gcode)}, data={"print": "1"}
            )
            assert response.json()["effectivePrint"] is True
            await events.until("PrinterStateChanged", "PRINTING")
            response = await http.delete("/api/files/local/long.gcode")
            assert response.status_code == 409
            assert "currently in use" in error_of(response)
            response = await http.post("/api/files/local", files={"file": ("long.gcode", b"G28\n")})
            assert response.status_code == 409
            response = await http.post("/api/files/local/long.gcode", json={"command": "select"})
            assert response.status_code == 409
            response = await http.post("/api/job", json={"command": "start"})
            assert error_of(response) == "Printer already has an active print job, did you mean 'restart'?"
            assert (await http.post("/api/job", json={"command": "cancel"})).status_code == 204
            await events.until("PrinterStateChanged", "OPERATIONAL")
            assert (await http.delete("/api/files/local/long.gcode")).status_code == 204


async def test_fatal_firmware_error_mid_print_gives_the_error_sequence_and_the_server_keeps_serving(
    server: RunningServer,
) -> None:
    with trio.fail_after(HANG_GUARD):
        async with open_session(server) as (http, events):
            response = await http.post(
                "/api/files/local",
                files={"file": ("layers.gcode", layered_gcode(layers=20))},
                data={"print": "1"},
            )
            assert response.status_code == 201
            await events.until("ZChange")
            fault = {"command": "!!DEBUG:trigger_fatal_error_marlin"}
            assert (await http.post("/api/printer/command", json=fault)).status_code == 204
            names = await events.until("PrinterStateChanged", "CLOSED_WITH_ERROR")
            assert names[names.index("PSC ERROR") :] == [
                "PSC ERROR",
                "Error",
                "EStop",
                "PrintFailed",
                "UpdatedFiles",
                "FileDeselected",
                "Disconnected",
                "PSC CLOSED_WITH_ERROR",
            ]
            error = events.payload("Error")
            assert error["reason"] == "firmware"
            assert error["consequence"] == "emergency"
            assert "kill() called" in error["error"]
            assert events.payload("PrintFailed")["reason"] == "error"

            assert (await http.get("/api/version")).status_code == 200
            connection = (await http.get("/api/connection")).json()
            assert connection["current"]["state"] == "Offline after error"
            job = (await http.get("/api/job")).json()
            assert job["state"] == "Offline after error"
            assert "kill() called" in job["error"]
            assert (await http.get("/api/printer")).status_code == 409
            assert (await http.get("/api/files")).json()["files"][0]["name"] == "layers.gcode"
