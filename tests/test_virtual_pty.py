"""The virtual printer on a real pty, opened by a host the way a serial port is opened."""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import trio_serial
from trio_serial.abstract import AbstractSerialStream

from octotrio.virtual import (
    FirmwareOptions,
    add_arguments,
    run_virtual_printer,
    serve_virtual_printer_forever,
)
from octotrio.virtual._cli import options_from_args

HANG_GUARD = 10.0
"""Seconds before a stuck test fails; a hang guard only, nothing is timed."""


@asynccontextmanager
async def open_host(path: str) -> AsyncIterator[AbstractSerialStream]:
    port = trio_serial.SerialStream(path, baudrate=115200)
    await port.aopen()
    try:
        yield port
    finally:
        await port.aclose()


async def read_until(port: AbstractSerialStream, last: bytes) -> list[bytes]:
    """Lines from the printer up to and including ``last``."""
    buffer = b""
    while (last + b"\n") not in buffer:
        data = await port.receive_some()
        assert data, "the printer went away"
        buffer += data
    lines = buffer.split(b"\n")
    return lines[: lines.index(last) + 1]


async def test_a_host_handshakes_and_polls_temperatures_over_the_pty() -> None:
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(run_virtual_printer)
            assert path.startswith("/dev/")
            async with open_host(path) as port:
                await port.send_all(b"N0 M110 N0*125\nM105\n")
                lines = await read_until(port, b"ok T:21.30/ 0.00 B:21.30/ 0.00 @:64")
            nursery.cancel_scope.cancel()
    assert [line for line in lines if line != b"wait"] == [
        b"start",
        b"Marlin: Virtual Marlin!",
        b"\x80",
        b"SD card ok",
        b"ok",
        b"ok T:21.30/ 0.00 B:21.30/ 0.00 @:64",
    ]


async def test_cancelling_the_printer_unplugs_the_device() -> None:
    with trio.fail_after(HANG_GUARD):
        async with AsyncExitStack() as host:
            async with trio.open_nursery() as nursery:
                path = await nursery.start(run_virtual_printer)
                port = await host.enter_async_context(open_host(path))
                await read_until(port, b"SD card ok")
                nursery.cancel_scope.cancel()
            # The host still holds the device open; trio-serial reports the vanished port as
            # end of file.
            assert await port.receive_some() == b""


async def test_the_link_points_at_the_device_while_the_printer_runs(tmp_path: Path) -> None:
    link = tmp_path / "printer"
    options = FirmwareOptions(autoreport_temp=False)
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(partial(run_virtual_printer, options, link_path=str(link)))
            assert path == str(link)
            assert os.readlink(link).startswith("/dev/")
            async with open_host(path) as port:
                await port.send_all(b"M115\n")
                lines = await read_until(port, b"Cap:LFN_WRITE:0")
            assert b"Cap:AUTOREPORT_TEMP:0" in lines
            nursery.cancel_scope.cancel()
    assert not link.exists()
    assert not link.is_symlink()


async def test_serve_forever_prints_the_device_path() -> None:
    out = io.StringIO()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(partial(serve_virtual_printer_forever, out=out))
            nursery.cancel_scope.cancel()
    assert out.getvalue() == f"{path}\n"


def test_command_line_options_reach_the_firmware() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--link", "/tmp/printer", "--no-autoreport", "--time-scale", "10"])
    assert args.link == "/tmp/printer"
    assert options_from_args(args) == FirmwareOptions(autoreport_temp=False, time_scale=10.0)
    assert options_from_args(parser.parse_args([])) == FirmwareOptions()


def test_a_time_scale_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--time-scale", "0"])
    assert "must be positive" in capsys.readouterr().err
