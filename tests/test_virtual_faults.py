"""The virtual printer's SD card, fault injection, debug commands, record and pacing
(marlin-serial.md §3, §7, §9, §11.5, §11.6, §12)."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
import trio_serial
from trio_serial.abstract import AbstractSerialStream

from octotrio.cli import _build_parser
from octotrio.virtual import (
    Fault,
    FaultOptions,
    FirmwareOptions,
    VirtualMarlin,
    add_arguments,
    parse_faults,
    run_virtual_printer,
)
from octotrio.virtual._cli import options_from_args

from .test_virtual_firmware import Bench, numbered

HANG_GUARD = 10.0
"""Seconds before a stuck test fails; a hang guard only."""


def faulty(**at_lines: Fault) -> Bench:
    """A bench whose firmware injects ``at_lines`` (keys ``l<n>``) after a line-number reset."""
    lines = {int(key[1:]): fault for key, fault in at_lines.items()}
    bench = Bench(FirmwareOptions(faults=FaultOptions(at_lines=lines)))
    assert bench.send(numbered(0, "M110 N0")) == ["ok"]
    return bench


def test_sd_card_write_list_print_and_delete() -> None:
    bench = Bench(FirmwareOptions(record=True))
    assert bench.send(b"M28 cube.gco\n") == ["Writing to file: cube.gco", "ok"]
    # §7: lines between M28 and M29 are stored, not executed.
    assert bench.send(b"G1 X10\nG1 X20 ; move\nM29\n") == ["ok", "ok", "Done saving file.", "ok"]
    assert bench.send(b"M20\n") == ["Begin file list", "cube.gco 14", "End file list", "ok"]
    assert bench.send(b"M23 missing.gco\n") == ["open failed, File: missing.gco.", "ok"]
    assert bench.send(b"M23 cube.gco\n") == ["File opened: cube.gco Size: 14", "File selected", "ok"]
    bench.firmware.take_executed()
    replies = bench.send(b"M24\n") + [line for _, line in bench.run_until(5.0)]
    assert replies[0] == "ok"
    assert "Done printing file" in replies
    # SD lines run without an ok of their own, and the record has them.
    assert bench.firmware.take_executed() == ["M24", "G1 X10", "G1 X20"]
    assert bench.send(b"M114\n") == ["ok X:20.00 Y:0.00 Z:0.00 E:0.00 Count: A:2000 B:0 C:0"]
    assert bench.send(b"M30 cube.gco\n") == ["File deleted:cube.gco", "ok"]
    assert bench.send(b"M20\n") == ["Begin file list", "End file list", "ok"]


def test_sd_status_reports_and_autoreports() -> None:
    bench = Bench()
    bench.send(b"M28 a.gco\nG4 P1000\nG4 P1000\nM29\nM23 a.gco\n")
    assert bench.send(b"M27\n") == ["Not SD printing", "ok"]
    assert bench.send(b"M27 S1\nM24\n") == ["ok", "ok"]
    lines = [line for _, line in bench.run_until(2.5)]
    # The first G4 runs at once, the second one a second later; reports come every second.
    assert lines[0] == "SD printing byte 9/18"
    assert "Done printing file" in lines


def test_each_fault_on_a_good_numbered_line() -> None:
    # §3 traces: what the host sees for each injected fault on line 1.
    assert faulty(l1=Fault.CHECKSUM).send(numbered(1, "G28")) == [
        "Error: Checksum mismatch",
        "Resend:1",
        "ok",
    ]
    assert faulty(l1=Fault.RESEND).send(numbered(1, "G28")) == ["Error: Missing checksum", "Resend:1", "ok"]
    assert faulty(l1=Fault.DUPLICATE_RESEND).send(numbered(1, "G28")) == [
        "Error: Missing checksum",
        "Resend:1",
        "Error: Missing checksum",
        "Resend:1",
        "ok",
    ]
    bench = faulty(l1=Fault.RESEND_WITHOUT_OK)
    assert bench.send(numbered(1, "G28")) == ["Error: Missing checksum", "Resend:1"]
    assert bench.send(numbered(1, "M117 again")) == ["echo:again", "ok"]
    bench = faulty(l1=Fault.MISSING_LINENO)
    assert bench.send(numbered(1, "M105")) == ["Error: No Line Number with checksum, Last Line: 0"]
    assert bench.send(numbered(2, "M105")) == ["Error: expected line 1 got 2", "Resend:1", "ok"]
    bench = faulty(l1=Fault.LOST_OK)
    assert bench.send(numbered(1, "M117 hi")) == ["echo:hi"]
    assert bench.send(numbered(2, "M117 ho")) == ["echo:ho", "ok"]
    bench = faulty(l1=Fault.UNANSWERED)
    assert bench.send(numbered(1, "M117 hi")) == []
    assert bench.send(numbered(2, "M117 ho")) == ["Error: expected line 1 got 2", "Resend:1", "ok"]
    bench = faulty(l1=Fault.FATAL)
    assert bench.send(numbered(1, "G28")) == [
        "Error:Thermal Runaway, system stopped! Heater_ID: bed",
        "Error:Printer halted. kill() called!",
    ]
    assert bench.firmware.killed
    bench = faulty(l1=Fault.DISCONNECT)
    bench.send(numbered(1, "G28"))
    assert bench.firmware.hangup_requested


def test_faults_at_a_line_fire_once_per_print() -> None:
    bench = faulty(l1=Fault.CHECKSUM)
    assert bench.send(numbered(1, "M105"))[0] == "Error: Checksum mismatch"
    assert bench.send(numbered(1, "M105"))[0].startswith("ok")
    # A new print (M110 N0) meets the fault again (§11.5).
    bench.send(numbered(0, "M110 N0"))
    assert bench.send(numbered(1, "M105"))[0] == "Error: Checksum mismatch"


def test_random_faults_are_reproducible_and_bounded_per_line() -> None:
    def replies(seed: int) -> list[str]:
        bench = Bench(FirmwareOptions(faults=FaultOptions({Fault.CHECKSUM: 0.5}, seed=seed)))
        bench.send(numbered(0, "M110 N0"))
        lines: list[str] = []
        for _ in range(20):
            lines += bench.send(numbered(1, "M117 x"))
        return lines

    assert replies(7) == replies(7)
    assert replies(7) != replies(8)
    # At most MAX_FAULTS_PER_LINE rejections for one line, so a host never sees a resend loop.
    assert replies(7).count("Error: Checksum mismatch") <= 3


def test_debug_commands() -> None:
    bench = Bench()
    assert bench.send(b"!!DEBUG:action_pause\n!!DEBUG:action_custom blink fast\n") == [
        "//action:pause",
        "//action:blink fast",
    ]
    assert bench.send(b"!!DEBUG:send //action:notification Hello\n") == ["//action:notification Hello"]
    assert bench.send(b"!!DEBUG:mintemp_error\n") == ["Error: MINTEMP triggered!"]
    assert bench.send(b"!!DEBUG:faults checksum@1\n") == []
    bench.send(numbered(0, "M110 N0"))
    assert bench.send(numbered(1, "G90"))[0] == "Error: Checksum mismatch"
    assert bench.send(b"!!DEBUG:faults nonsense=1\n")[0].startswith("echo:bad fault specification")
    assert bench.send(b"!!DEBUG:trigger_missing_lineno\n") == []
    assert bench.send(numbered(1, "G90"))[0].startswith("Error: No Line Number with checksum")
    assert bench.send(b"!!DEBUG:dont_answer\nM105\n") == []
    assert bench.run_until(bench.now + 5) == []


def test_repetier_fatal_error_kills_the_firmware() -> None:
    bench = Bench()
    assert bench.send(b"!!DEBUG:trigger_fatal_error_repetier\n") == [
        "fatal: Heater/sensor failure - system stopped"
    ]
    assert bench.firmware.killed


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", FaultOptions()),
        ("checksum=0.02,lost_ok=0.01", FaultOptions({Fault.CHECKSUM: 0.02, Fault.LOST_OK: 0.01})),
        (
            "fatal@500, disconnect@7,seed=3",
            FaultOptions(at_lines={500: Fault.FATAL, 7: Fault.DISCONNECT}, seed=3),
        ),
    ],
)
def test_fault_specifications(spec: str, expected: FaultOptions) -> None:
    assert parse_faults(spec) == expected


@pytest.mark.parametrize(
    "spec", ["checksum", "gremlins=0.1", "checksum=0.7,lost_ok=0.7", "fatal@x", "checksum=-1"]
)
def test_bad_fault_specifications_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        parse_faults(spec)


def test_a_bad_fault_specification_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--faults", "gremlins=0.1"])
    assert "bad fault specification 'gremlins=0.1'" in capsys.readouterr().err


def test_serve_takes_the_virtual_printer_options(tmp_path: Path) -> None:
    (tmp_path / "cube.gco").write_bytes(b"G28\n")
    args = _build_parser().parse_args(
        [
            "serve",
            "--virtual-printer-sd-file",
            str(tmp_path / "cube.gco"),
            "--virtual-printer-faults",
            "fatal@9",
            "--virtual-printer-record",
            "r.txt",
            "--virtual-printer-baud",
            "250000",
        ]
    )
    assert args.virtual_printer_faults == FaultOptions(at_lines={9: Fault.FATAL})
    assert (args.virtual_printer_record, args.virtual_printer_baud) == ("r.txt", 250000)
    assert args.virtual_printer_sd_file == [("cube.gco", b"G28\n")]


def test_command_line_faults_record_and_baud() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--faults", "checksum=0.1,seed=2", "--record", "/tmp/r.txt", "--baud", "115200"]
    )
    assert options_from_args(args).faults == FaultOptions({Fault.CHECKSUM: 0.1}, seed=2)
    assert (args.record, args.baud) == ("/tmp/r.txt", 115200)
    assert options_from_args(args).autoreport_sd_status


def test_command_line_sd_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    (tmp_path / "Cube.gcode").write_bytes(b"G28\nG1 X10\n")
    args = parser.parse_args(["--sd-file", str(tmp_path / "Cube.gcode"), "--no-sd-autoreport"])
    options = options_from_args(args)
    assert options.sd_files == {"Cube.gcode": b"G28\nG1 X10\n"}
    assert not options.autoreport_sd_status
    firmware = VirtualMarlin(options, now=0.0)
    firmware.receive_data(b"M20\n", 0.0)
    assert b"cube.gcode 11\n" in firmware.data_to_send()
    with pytest.raises(SystemExit):
        parser.parse_args(["--sd-file", str(tmp_path / "missing.gcode")])
    assert "cannot read" in capsys.readouterr().err


async def read_line(port: AbstractSerialStream, buffer: bytearray, wanted: bytes) -> None:
    while wanted + b"\n" not in buffer:
        data = await port.receive_some()
        assert data, "the printer went away"
        buffer += data


async def test_record_on_a_pty_and_a_reset_when_a_killed_printer_is_reopened(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(partial(run_virtual_printer, record_path=str(record)))
            async with trio_serial.SerialStream(path, baudrate=115200) as port:
                buffer = bytearray()
                await port.send_all(numbered(0, "M110 N0") + numbered(1, "M117 one"))
                await read_line(port, buffer, b"echo:one")
                await port.send_all(b"M112\n")
                await read_line(port, buffer, b"echo:EMERGENCY SHUTDOWN DETECTED. KILLED.")
            # Opening the port again resets the killed board, as DTR does (§9 "until reconnected"):
            # the host's first line already meets the fresh firmware.
            async with trio_serial.SerialStream(path, baudrate=115200) as port:
                buffer = bytearray()
                await port.send_all(b"M110 N0\n")
                await read_line(port, buffer, b"start")
                await read_line(port, buffer, b"ok")
                await port.send_all(b"M117 two\n")
                await read_line(port, buffer, b"echo:two")
            nursery.cancel_scope.cancel()
    assert record.read_text().splitlines() == ["N0 M110 N0", "N1 M117 one", "M110 N0", "M117 two"]


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Pacing sleeps run on the mock clock, so the time they add is exact; the pty I/O is real,
    # hence the small positive autojump threshold (style.md rule 11).
    return trio.testing.MockClock(autojump_threshold=0.01)


async def test_baud_rate_pacing(clock: trio.testing.MockClock) -> None:
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(partial(run_virtual_printer, baudrate=2400))
            start = clock.current_time()
            async with trio_serial.SerialStream(path, baudrate=2400) as port:
                buffer = bytearray()
                await read_line(port, buffer, b"SD card ok")
            elapsed = clock.current_time() - start
            nursery.cancel_scope.cancel()
    banner = bytes(buffer[: buffer.index(b"SD card ok\n") + len(b"SD card ok\n")])
    # §12, 8N1: 2400 baud is 240 bytes per second; the banner cannot arrive faster.
    assert elapsed >= len(banner) / 240
