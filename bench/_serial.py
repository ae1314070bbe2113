"""Serial throughput: G-code lines per second into the bench firmware over a pty.

With ``baud`` 0 the firmware answers ``ok`` at once, so the figure is the host's own overhead per
line; with 115200 or 250000 it answers after the line's wire time (marlin-serial.md §12), and the
figure is the share of the wire's capacity the host uses. Each case runs at an ok window (commands
awaiting their ok at once): 1, the default of both hosts, where the host waits for every ok's
round trip, and 4 (Marlin's BUFSIZE), where it streams ahead. Both hosts print an uploaded file
over REST (``POST /api/files/local`` with ``print``); an octotrio without the job API (an old
``--octotrio-rev``) is driven through its printer link by ``bench._link_driver`` instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from bench._firmware import BITS_PER_BYTE
from bench._gcode import moves
from bench._machine import sample_process
from bench._servers import BENCH_DIR, START_TIMEOUT, Firmware, Server, run_firmware

StreamFactory = Callable[[Firmware, int], AbstractAsyncContextManager[int]]
"""Starts a host streaming G-code to the firmware with an ok window; yields the pid of the process
doing the work."""

WARMUP = 2.0
"""Seconds of streaming before the window: the print's start sequence and the first lines."""
FILE_LINES = 200_000
"""Lines in the uploaded file: more than the fastest host streams during warm-up and window."""


async def measure_serial(
    name: str,
    baud: int,
    ok_window: int,
    window: float,
    stream: StreamFactory,
) -> dict[str, Any]:
    """Stream with ``stream`` (yields the pid doing the host's work) for ``window`` seconds and
    count at the firmware."""
    async with run_firmware(baud=baud) as firmware, stream(firmware, ok_window) as pid:
        await trio.sleep(WARMUP)
        before, cpu_before = await firmware.stats(), sample_process(pid).cpu_seconds
        await trio.sleep(window)
        after, cpu_after = await firmware.stats(), sample_process(pid).cpu_seconds
    seconds = after["time"] - before["time"]
    lines = (after["lines"] - before["lines"]) / seconds
    byte_rate = (after["bytes"] - before["bytes"]) / seconds
    return {
        "server": name,
        "baud": baud or "instant",
        "ok_window": ok_window,
        "lines_per_s": lines,
        "bytes_per_line": byte_rate / lines if lines else float("nan"),
        "wire_share": byte_rate * BITS_PER_BYTE / baud if baud else None,
        "in_flight_max": after["in_flight_max"],
        "cpu": (cpu_after - cpu_before) / seconds,
        # The host's own work per line, whatever kept it waiting (the firmware, the wire, the load).
        "cpu_us_per_line": (cpu_after - cpu_before) / seconds / lines * 1e6 if lines else None,
    }


def link_driver(source: Path) -> StreamFactory:
    """octotrio's printer link from the tree ``source``, driven by ``bench._link_driver``.

    The driver runs in a directory holding only a ``bench`` symlink, with ``PYTHONPATH`` at
    ``source``: ``bench`` comes from this checkout, ``octotrio`` from the tree under test.
    """

    @asynccontextmanager
    async def drive(firmware: Firmware, ok_window: int) -> AsyncIterator[int]:
        with tempfile.TemporaryDirectory(prefix="bench-driver-") as home:
            (Path(home) / "bench").symlink_to(BENCH_DIR)
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "bench._link_driver", firmware.path, "115200", str(ok_window)],
                stdout=subprocess.PIPE,
                cwd=home,
                env={**os.environ, "PYTHONPATH": str(source)},
            )
            output = process.stdout
            assert output is not None
            try:
                with trio.fail_after(START_TIMEOUT):
                    await output.receive_some()
                yield process.pid
            finally:
                with trio.CancelScope(shield=True):
                    process.kill()
                    await process.wait()
                    await output.aclose()

    return drive


def print_over_rest(
    start_server: Callable[[str, int], AbstractAsyncContextManager[Server]],
) -> StreamFactory:
    """A server connected to the firmware with an ok window (``start_server(pty, ok_window)``),
    printing an uploaded file (``POST /api/files/local``)."""

    @asynccontextmanager
    async def drive(firmware: Firmware, ok_window: int) -> AsyncIterator[int]:
        async with start_server(firmware.path, ok_window) as server:
            assert server.pid is not None
            gcode = "\n".join(line for line, _ in zip(moves(), range(FILE_LINES), strict=False)) + "\n"
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"X-Api-Key": server.api_key}, timeout=60
            ) as http:
                response = await http.post(
                    "/api/files/local",
                    files={"file": ("bench.gcode", gcode.encode(), "application/octet-stream")},
                    data={"select": "true", "print": "true"},
                )
                response.raise_for_status()
            yield server.pid

    return drive


async def has_job_api(server: Server) -> bool:
    """Whether ``server`` takes uploads (octotrio's job API may not have landed yet)."""
    async with httpx.AsyncClient(base_url=server.base_url, headers={"X-Api-Key": server.api_key}) as http:
        response = await http.get("/api/files/local")
    return response.status_code == 200
