"""Marlin line encoding, splitting and parsing (sans-IO), against marlin-serial.md §1–§10."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octotrio.printer import Position, Reading
from octotrio.printer._protocol import (
    Action,
    Busy,
    Capability,
    ErrorKind,
    ErrorLine,
    FirmwareData,
    LineSplitter,
    Ok,
    Other,
    PositionLine,
    ResendRequest,
    Start,
    TargetTemperature,
    TemperatureLine,
    Wait,
    checksum,
    classify_error,
    encode_numbered,
    encode_plain,
    parse_firmware_data,
    parse_line,
    parse_position,
    parse_temperatures,
)


@pytest.mark.parametrize(
    ("number", "command", "expected"),
    [
        # §1 "Verified lines from real traces".
        (0, "M110 N0", b"N0 M110 N0*125\n"),
        (1, "M115", b"N1 M115*39\n"),
        (1, "G21", b"N1 G21*27\n"),
        (5, "G28", b"N5 G28*22\n"),
        (3, "M190 S60", b"N3 M190 S60*93\n"),
        (4, "M109 S200", b"N4 M109 S200*110\n"),
        (61, "G1 X70 Y56 E37.6000 F300", b"N61 G1 X70 Y56 E37.6000 F300*6\n"),
        (147, "M400", b"N147 M400*37\n"),
        (148, "M114", b"N148 M114*42\n"),
        (398, "M108", b"N398 M108*40\n"),
        (100, "G1 X50 Y51 E65.6000 F300", b"N100 G1 X50 Y51 E65.6000 F300*50\n"),
        (115, "G1 X50 Y55 E76.8000 F300", b"N115 G1 X50 Y55 E76.8000 F300*62\n"),
    ],
)
def test_encode_numbered_matches_real_traces(number: int, command: str, expected: bytes) -> None:
    assert encode_numbered(number, command) == expected


def test_checksum_worked_example() -> None:
    # §1 worked example: running XOR of "N1 M115" ends at 39.
    assert checksum(b"N1 M115") == 39
    assert checksum(b"") == 0


def test_encode_plain() -> None:
    assert encode_plain("M155 S2") == b"M155 S2\n"


@given(st.integers(min_value=0, max_value=10**7), st.text(alphabet="GMXYZEFST0123456789. -", min_size=1))
def test_numbered_line_checksum_covers_everything_before_the_star(number: int, command: str) -> None:
    line = encode_numbered(number, command)
    body, _, tail = line.rpartition(b"*")
    assert tail.endswith(b"\n")
    assert int(tail) == checksum(body)
    assert 0 <= int(tail) <= 255


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ok", Ok()),
        ("ok N10 P15 B3", Ok("N10 P15 B3")),
        ("Resend: 100", ResendRequest(100)),
        ("Resend:105", ResendRequest(105)),
        ("rs 7", ResendRequest(7)),
        ("rs N:8", ResendRequest(8)),
        ("rs N9", ResendRequest(9)),
        ("RESEND: N:11", ResendRequest(11)),
        ("start", Start()),
        ("wait", Wait()),
        ("echo:busy: processing", Busy("processing")),
        ("busy: paused for user", Busy("paused for user")),
        ("Error: Checksum mismatch", ErrorLine("Checksum mismatch")),
        ("Error:Printer halted. kill() called!", ErrorLine("Printer halted. kill() called!")),
        ("!!DEBUG:oops", ErrorLine("DEBUG:oops")),
        ("Cap:AUTOREPORT_TEMP:1", Capability("AUTOREPORT_TEMP", True)),
        ("Cap:AUTOREPORT_POS:0", Capability("AUTOREPORT_POS", False)),
        ("//action:pause", Action("pause", "")),
        ("//action:notification Hello there", Action("notification", "Hello there")),
        ("Not SD printing", Other("Not SD printing")),
        ("SD card ok", Other("SD card ok")),
        ("Marlin: Virtual Marlin!", Other("Marlin: Virtual Marlin!")),
        ("echo:T3 Invalid extruder", Other("echo:T3 Invalid extruder")),
        ("fatal: Heater decoupled", ErrorLine("fatal: Heater decoupled")),
        # §5: Repetier-style targets on lines of their own.
        ("TargetExtr0:200", TargetTemperature("tool0", 200.0)),
        ("TargetExtr1:215.5", TargetTemperature("tool1", 215.5)),
        ("TargetBed:60", TargetTemperature("bed", 60.0)),
        # §7: a position report without the ok.
        (
            "X:70.00 Y:52.00 Z:2.60 E:98.40 Count: A:7000 B:5200 C:260",
            PositionLine(Position(70, 52, 2.6, 98.4)),
        ),
    ],
)
def test_parse_line_classifies(line: str, expected: object) -> None:
    assert parse_line(line) == expected


def test_ok_with_m114_data_has_no_readings() -> None:
    # §5: "A:" keeps the M114 reply out of the temperatures.
    line = "ok X:70.0 Y:52.0 Z:2.6 E:98.4 Count: A:7000 B:5200 C:260"
    assert parse_line(line) == Ok("X:70.0 Y:52.0 Z:2.6 E:98.4 Count: A:7000 B:5200 C:260")


def test_ok_with_temperatures() -> None:
    assert parse_line("ok T:21.30/ 0.00 B:21.30/ 0.00 @:64") == Ok(
        "T:21.30/ 0.00 B:21.30/ 0.00 @:64",
        {"tool0": Reading(21.3, 0.0), "bed": Reading(21.3, 0.0)},
    )


def test_firmware_name_values_keep_their_spaces() -> None:
    line = (
        "FIRMWARE_NAME:Marlin 2.1.2 (Github) SOURCE_CODE_URL:https://github.com/MarlinFirmware/Marlin "
        "PROTOCOL_VERSION:1.0 MACHINE_TYPE:Ender 3 EXTRUDER_COUNT:1"
    )
    assert parse_firmware_data(line) == {
        "FIRMWARE_NAME": "Marlin 2.1.2 (Github)",
        "SOURCE_CODE_URL": "https://github.com/MarlinFirmware/Marlin",
        "PROTOCOL_VERSION": "1.0",
        "MACHINE_TYPE": "Ender 3",
        "EXTRUDER_COUNT": "1",
    }
    assert parse_line("FIRMWARE_NAME:Virtual Marlin 1.0 PROTOCOL_VERSION:1.0") == FirmwareData(
        "Virtual Marlin 1.0", {"FIRMWARE_NAME": "Virtual Marlin 1.0", "PROTOCOL_VERSION": "1.0"}
    )


@pytest.mark.parametrize(
    ("line", "current_tool", "expected"),
    [
        # §5 table, one row each.
        ("T:200.00/ 200.00 B:60.00/ 60.00 @:64", 0, {"tool0": (200.0, 200.0), "bed": (60.0, 60.0)}),
        ("B:51.42", 0, {"bed": (51.42, None)}),
        ("T:71.38", 0, {"tool0": (71.38, None)}),
        ("T:21.3 /0.0 B:21.3 /0.0 @:0 B@:0", 0, {"tool0": (21.3, 0.0), "bed": (21.3, 0.0)}),
        (
            "T:210.0 /210.0 T0:210.0 /210.0 T1:25.0 /0.0 B:60.0 /60.0",
            1,
            {"tool0": (210.0, 210.0), "tool1": (25.0, 0.0), "bed": (60.0, 60.0)},
        ),
        ("T:30.0 /0.0 B:21.0 /0.0", 1, {"tool1": (30.0, 0.0), "bed": (21.0, 0.0)}),
        ("T:21.3/ 0.0 C:35.5/ 40.0", 0, {"tool0": (21.3, 0.0), "chamber": (35.5, 40.0)}),
        ("T:21.3/ 0.0 B:20.1/ 0.0 PINDA:24.5 AMBIENT:22.0", 0, {
            "tool0": (21.3, 0.0), "bed": (20.1, 0.0), "PINDA": (24.5, None), "AMBIENT": (22.0, None),
        }),
        ("T:-15.5 /0", 0, {"tool0": (-15.5, 0.0)}),
        # Smoothie/Klipper style: numbered tools even with one extruder, no bare T.
        ("T0:24.9 /0.0 B:23.4 /0.0", 0, {"tool0": (24.9, 0.0), "bed": (23.4, 0.0)}),
        # Repetier style: no targets in the report (they come on Target... lines).
        ("T:20.93 B:20.87 @:0 B@:0", 0, {"tool0": (20.93, None), "bed": (20.87, None)}),
        # Heat-up wait lines of the virtual printer, one sensor each (§5, §11.2).
        ("C:31.41", 0, {"chamber": (31.41, None)}),
    ],
)  # fmt: skip
def test_temperature_formats(
    line: str, current_tool: int, expected: dict[str, tuple[float, float | None]]
) -> None:
    readings = {name: Reading(actual, target) for name, (actual, target) in expected.items()}
    assert parse_temperatures(line, current_tool=current_tool) == readings
    assert parse_line(line, current_tool=current_tool) == TemperatureLine(readings)


def test_m114_count_line_is_a_position_not_a_temperature_line() -> None:
    assert parse_line("X:0.0 Y:0.0 Z:0.0 E:0.0 Count: A:0 B:0 C:0") == PositionLine(
        Position(0.0, 0.0, 0.0, 0.0)
    )


def test_line_splitter_handles_partial_lines_and_crlf() -> None:
    splitter = LineSplitter(max_length=64)
    assert splitter.feed(b"sta") == []
    assert splitter.feed(b"rt\r\nok\nT:2") == ["start", "ok"]
    assert splitter.feed(b"1.3\n\x80\n") == ["T:21.3", "\ufffd"]


def test_line_splitter_bounds_long_lines() -> None:
    splitter = LineSplitter(max_length=4)
    assert splitter.feed(b"abcdefgh") == ["abcd"]
    assert splitter.feed(b"ijk\nok\n") == ["ok"]
    assert splitter.feed(b"abcd\nxy\n") == ["abcd", "xy"]


@given(st.lists(st.binary(max_size=20), max_size=20), st.integers(min_value=1, max_value=30))
def test_line_splitter_is_independent_of_chunking(chunks: list[bytes], max_length: int) -> None:
    data = b"".join(chunks)
    whole = LineSplitter(max_length).feed(data)
    piecewise = LineSplitter(max_length)
    assert [line for chunk in chunks for line in piecewise.feed(chunk)] == whole


def test_ok_with_marlin_spacing_temperatures() -> None:
    # §5 "Marlin spacing variant" as an M105 reply.
    assert parse_line("ok T:21.3 /0.0 B:21.3 /0.0 @:0 B@:0") == Ok(
        "T:21.3 /0.0 B:21.3 /0.0 @:0 B@:0", {"tool0": Reading(21.3, 0.0), "bed": Reading(21.3, 0.0)}
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("X:0.00 Y:0.00 Z:0.00 E:0.00 Count: A:0 B:0 C:0", Position(0.0, 0.0, 0.0, 0.0)),
        ("X:70.0 Y:52.0 Z:2.6 E:98.4 Count: A:7000 B:5200 C:260", Position(70.0, 52.0, 2.6, 98.4)),
        # Marlin 2: counts named X, Y, Z too; only the part before "Count" is the position.
        ("X:10.00 Y:20.00 Z:0.30 E:1.50 Count X:800 Y:1600 Z:120", Position(10.0, 20.0, 0.3, 1.5)),
        ("T:21.3 /0.0", None),
        ("echo:busy: processing", None),
    ],
)
def test_position_reports(text: str, expected: Position | None) -> None:
    assert parse_position(text) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # §9 table, one row each.
        ("No Line Number with checksum, Last Line: 109", ErrorKind.RECOVERABLE),
        ("missing linenumber", ErrorKind.RECOVERABLE),
        ("Checksum mismatch", ErrorKind.RESEND),
        ("Missing checksum", ErrorKind.RESEND),
        ("expected line 110 got 111", ErrorKind.RESEND),
        ("Line Number is not Last Line Number+1, Last Line: 5", ErrorKind.RESEND),
        ("format error", ErrorKind.RESEND),
        ("open failed, File: foo.gco", ErrorKind.IGNORED),
        ("Unknown command: G999", ErrorKind.IGNORED),
        ("MINTEMP triggered!", ErrorKind.FATAL),
        ("MAXTEMP triggered!", ErrorKind.FATAL),
        ("Thermal Runaway, system stopped! Heater_ID: bed", ErrorKind.FATAL),
        ("Printer halted. kill() called!", ErrorKind.FATAL),
        ("fatal: Heater decoupled", ErrorKind.FATAL),
    ],
)
def test_error_classes(text: str, kind: ErrorKind) -> None:
    assert classify_error(text) is kind
