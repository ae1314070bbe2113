"""Start and stop the servers under test: octotrio and a real OctoPrint 1.11.8, 127.0.0.1 only.

Both are subprocesses; the runner measures them from outside (``/proc``) and talks to them over
HTTP and websockets only. A :class:`Firmware` is the bench's own pty printer (``bench._firmware``),
so both servers can drive the very same simulator.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import trio
import trio_websocket

from bench._machine import cpu_seconds
from conformance import octoprint
from conformance.octoprint import free_port as free_port

BENCH_DIR = Path(__file__).resolve().parent

START_TIMEOUT = 60.0
"""Seconds a server gets to listen and report its printer operational (OctoPrint: 5–15 s cold)."""
STOP_TIMEOUT = 10.0
"""Seconds a server gets to shut down after SIGTERM before it is killed."""

_OPERATIONAL = re.compile(r'"operational":\s*true')


RUN_API_KEY = secrets.token_hex(16)
"""The API key of every server this run starts: a restarted server keeps its key, as a real one
keeps its configuration, so clients can log in again (the connect storm's restart)."""


@dataclass
class Server:
    """A running server under test."""

    name: str
    port: int
    api_key: str
    process: trio.Process | None
    """None for a server the runner did not start (``--target``): no CPU or RSS figures then."""
    listening_at: float = 0.0
    """``trio.current_time()`` when the server was seen listening."""
    listening_cpu: float | None = None
    """The process's CPU seconds at ``listening_at``: start of a CPU trace of what follows."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class Firmware:
    """The bench firmware in its own process; ``stats()`` asks it for its counters."""

    def __init__(self, process: trio.Process, path: str) -> None:
        self.process = process
        self.path = path
        self._buffer = bytearray()

    async def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        await self.process.stdin.send_all(b"stats\n")
        line = await _read_line(self.process.stdout, self._buffer)
        value: dict[str, Any] = json.loads(line)
        return value


@asynccontextmanager
async def run_firmware(*, baud: int = 0, report_interval: float = 0.0) -> AsyncIterator[Firmware]:
    """The bench firmware on a fresh pty; stopped (end of stdin, then killed) on exit."""
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "bench._firmware",
            *("--baud", str(baud)),
            *("--report-interval", str(report_interval)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=BENCH_DIR.parent,
    )
    try:
        assert process.stdout is not None
        buffer = bytearray()
        path = (await _read_line(process.stdout, buffer)).decode().strip()
        firmware = Firmware(process, path)
        firmware._buffer = buffer
        yield firmware
    finally:
        await _stop(process, close_stdin=True)


@asynccontextmanager
async def run_octotrio(
    *,
    source: Path,
    port: int = 0,
    serial: str | None = None,
    log_path: Path | None = None,
    ok_window: int = 1,
) -> AsyncIterator[Server]:
    """``octotrio serve`` as a subprocess, run from the tree at ``source`` (see :func:`export_revision`),
    with the built-in virtual printer unless ``serial``; ``ok_window`` above 1 is passed as
    ``--ok-window`` (a revision from before that option has only the default, 1).

    Yields once the printer is operational. On exit: SIGTERM, the ordered shutdown, then a kill if
    it takes longer than ``STOP_TIMEOUT``.
    """
    api_key = RUN_API_KEY
    command = [sys.executable, "-m", "octotrio", "serve", "--port", str(port), "--api-key", api_key]
    if serial is not None:
        command += ["--serial", serial]
    if ok_window != 1:
        command += ["--ok-window", str(ok_window)]
    log = _open_log(log_path)
    process = await trio.lowlevel.open_process(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=source,
        env={**os.environ, "PYTHONPATH": str(source)},
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        buffer, output = bytearray(), b""
        with trio.fail_after(START_TIMEOUT):
            while (match := re.search(rb"serving on http://127\.0\.0\.1:(\d+)", output)) is None:
                output += await _read_line(process.stdout, buffer)
        server = Server("octotrio", int(match.group(1)), api_key, process, trio.current_time())
        server.listening_cpu = cpu_seconds(process.pid)
        await wait_operational(server)
        yield server
    finally:
        await _stop(process)
        log.close()


def export_revision(revision: str, into: Path) -> str:
    """Export the repository at ``revision`` (a commit, tag or branch) into ``into``; return its hash.

    Benchmarking a commit rather than the working tree keeps a run stable while files are being
    edited, and says exactly what was measured.
    """
    repo = BENCH_DIR.parent
    rev_parse = ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"]
    commit = subprocess.run(rev_parse, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit], cwd=repo, check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


install_octoprint = octoprint.install
octoprint_installed = octoprint.installed


def _octoprint_config(api_key: str, ok_window: int) -> dict[str, Any]:
    """The offline configuration plus the bench's own settings."""
    config = octoprint.offline_config(api_key)
    config["plugins"]["virtual_printer"]["simulated_errors"] = []  # clean traces
    # No G-code analysis of uploads: it would run during the serial benchmark's print.
    config["gcodeAnalysis"] = {"runAt": "never"}
    # The bench firmware's pty is offered as a port (a glob of paths, octoprint-offline.md).
    # serial.ackMax: how many commands may await their ok (marlin-serial.md §2).
    config["serial"] = {"additionalPorts": ["/dev/pts/*"], "autoconnect": False, "ackMax": ok_window}
    return config


@asynccontextmanager
async def run_octoprint(
    *, serial: str, port: int = 0, log_path: Path | None = None, ok_window: int = 1
) -> AsyncIterator[Server]:
    """A real OctoPrint 1.11.8 on 127.0.0.1 with a fresh, offline basedir, connected to ``serial``
    with ``serial.ackMax`` = ``ok_window``.

    Yields once its printer is operational; SIGTERM (then kill) and the basedir removed on exit.
    """
    api_key = RUN_API_KEY
    basedir = Path(tempfile.mkdtemp(prefix="bench-octoprint-"))
    config = _octoprint_config(api_key, ok_window)
    await trio.to_thread.run_sync(octoprint.prepare_basedir, basedir, config, api_key)
    port = port or free_port()
    command = octoprint.serve_command(basedir, port)
    log = _open_log(log_path)
    process = await trio.lowlevel.open_process(command, stdout=log, stderr=log, start_new_session=True)
    server = Server("OctoPrint", port, api_key, process)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers={"X-Api-Key": api_key}) as http:
            with trio.fail_after(START_TIMEOUT):
                while True:
                    try:
                        if (await http.get("/api/version")).status_code == 200:
                            server.listening_at = trio.current_time()
                            server.listening_cpu = cpu_seconds(process.pid)
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.2)
                response = await http.post(
                    "/api/connection", json={"command": "connect", "port": serial, "baudrate": 115200}
                )
                response.raise_for_status()
        await wait_operational(server)
        yield server
    finally:
        await _stop(process)
        log.close()
        shutil.rmtree(basedir, ignore_errors=True)


async def wait_operational(server: Server) -> None:
    """Wait (up to ``START_TIMEOUT``) for a ``current`` saying the printer is operational."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        login = await http.post("/api/login", json={"passive": True}, headers={"X-Api-Key": server.api_key})
    credentials = None
    if login.status_code == 200:
        credentials = f"{login.json()['name']}:{login.json()['session']}"
    url = f"ws://127.0.0.1:{server.port}/sockjs/websocket"
    with trio.fail_after(START_TIMEOUT):
        async with trio_websocket.open_websocket_url(url) as websocket:
            while True:
                message = str(await websocket.get_message())
                if message.lstrip("{ ").startswith('"connected"') and credentials is not None:
                    await websocket.send_message(json.dumps({"auth": credentials}))
                if message.lstrip("{ ").startswith('"current"') and _OPERATIONAL.search(message):
                    return


def _open_log(path: Path | None) -> BinaryIO:
    """The server's stdout/stderr file; the caller closes it after the server exited."""
    return open(path or os.devnull, "ab")


async def _read_line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        data = await stream.receive_some()
        if not data:
            raise EOFError("the process closed its output")
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line + b"\n"


async def _stop(process: trio.Process, *, close_stdin: bool = False) -> None:
    """Ask politely (end of stdin or SIGTERM), then kill after ``STOP_TIMEOUT``; shielded."""
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            if close_stdin and process.stdin is not None:
                await process.stdin.aclose()
            else:
                process.send_signal(signal.SIGTERM)
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                await stream.aclose()
