"""The virtual printer's firmware core, driven synchronously with explicit times.

Replies are checked against marlin-serial.md (§4 handshake, §5 temperatures, §11 virtual printer).
Checksums here are computed by the test's own code, never the firmware's.
"""

from __future__ import annotations

import functools
import operator
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octotrio.virtual import FirmwareOptions, VirtualMarlin
from octotrio.virtual._firmware import RX_BUFFER_SIZE, TX_HIGH_WATER


def numbered(number: int, command: str, *, checksum_delta: int = 0) -> bytes:
    """``N<n> <command>*<cs>\\n`` with the XOR checksum, optionally off by ``checksum_delta``."""
    body = f"N{number} {command}".encode()
    checksum = (functools.reduce(operator.xor, body, 0) + checksum_delta) % 256
    return body + b"*" + str(checksum).encode() + b"\n"


def rounded(timeline: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Times to the nanosecond, so that float rounding does not obscure comparisons."""
    return [(round(time, 9), line) for time, line in timeline]


def is_ok(line: str) -> bool:
    return line == "ok" or line.startswith("ok ")


class Bench:
    """The firmware with a fake clock, seen from the host's side of the wire."""

    def __init__(self, options: FirmwareOptions | None = None) -> None:
        self.now = 0.0
        self.firmware = VirtualMarlin(options, now=self.now)
        self.banner = self.firmware.data_to_send()

    def lines(self) -> list[str]:
        return self.firmware.data_to_send().decode("ascii", errors="replace").splitlines()

    def send(self, data: bytes) -> list[str]:
        self.firmware.receive_data(data, self.now)
        return self.lines()

    def run_until(self, until: float) -> list[tuple[float, str]]:
        """Advance as an adapter would, waking at each deadline; the lines with their times."""
        timeline: list[tuple[float, str]] = []
        while (deadline := self.firmware.next_deadline()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            self.firmware.advance(self.now)
            timeline += [(self.now, line) for line in self.lines()]
        self.now = until
        self.firmware.advance(until)
        timeline += [(until, line) for line in self.lines()]
        return timeline

    def temperatures(self) -> str:
        (reply,) = self.send(b"M105\n")
        return reply


def test_reset_banner_is_sent_on_start() -> None:
    # §11.1: the third line is a single 0x80 byte.
    assert Bench().banner == b"start\nMarlin: Virtual Marlin!\n\x80\nSD card ok\n"


def test_reference_lines_are_accepted() -> None:
    bench = Bench()
    assert bench.send(b"N0 M110 N0*125\n") == ["ok"]
    assert bench.send(b"N1 M115*39\n") == [
        "FIRMWARE_NAME:Virtual Marlin 1.0 PROTOCOL_VERSION:1.0",
        "Cap:AUTOREPORT_TEMP:1",
        "Cap:AUTOREPORT_SD_STATUS:1",
        "Cap:AUTOREPORT_POS:0",
        "Cap:EMERGENCY_PARSER:1",
        "Cap:EXTENDED_M20:0",
        "Cap:LFN_WRITE:0",
        "ok",
    ]
    assert bench.send(b"M110 N0\nN1 G21*27\n") == ["ok", "ok"]
    assert bench.send(b"M110 N146\nN147 M400*37\nN148 M114*42\n") == [
        "ok",
        "ok",
        "ok X:0.00 Y:0.00 Z:0.00 E:0.00 Count: A:0 B:0 C:0",
    ]


def test_m105_reports_ambient_in_the_virtual_printer_format() -> None:
    assert Bench().temperatures() == "ok T:21.30/ 0.00 B:21.30/ 0.00 @:64"


def test_checksum_mismatch_asks_for_the_expected_line() -> None:
    bench = Bench()
    bench.send(b"N0 M110 N0*125\n")
    assert bench.send(numbered(1, "M105", checksum_delta=1)) == [
        "Error: Checksum mismatch",
        "Resend:1",
        "ok",
    ]
    assert bench.send(numbered(1, "G90")) == ["ok"]


def test_skipped_line_number_asks_for_the_expected_line() -> None:
    bench = Bench()
    bench.send(numbered(0, "M110 N0"))
    assert bench.send(numbered(2, "G90")) == ["Error: expected line 1 got 2", "Resend:1", "ok"]
    assert bench.send(numbered(1, "G90")) == ["ok"]
    assert bench.send(numbered(2, "G90")) == ["ok"]


@pytest.mark.parametrize("reset", [numbered(41, "M110"), b"M110 N41\n", numbered(3, "M110 N41")])
def test_m110_sets_the_line_counter(reset: bytes) -> None:
    bench = Bench()
    assert bench.send(reset) == ["ok"]
    assert bench.send(numbered(42, "G90")) == ["ok"]


def test_plain_commands_line_endings_and_blank_lines() -> None:
    bench = Bench()
    assert bench.send(b"\n\r\n   \n; a comment\n") == []
    assert bench.send(b"G90\r\nG91 ; relative\n") == ["ok", "ok"]
    assert bench.send(b"M1") == []
    assert bench.send(b"05\r") == ["ok T:21.30/ 0.00 B:21.30/ 0.00 @:64"]


def test_messages_unknown_commands_and_tools() -> None:
    bench = Bench()
    assert bench.send(b"M117 Printing layer 3\n") == ["echo:Printing layer 3", "ok"]
    assert bench.send(b"M999 S1\n") == ['echo:Unknown command: "M999 S1"', "ok"]
    assert bench.send(b"T0\n") == ["ok"]
    assert bench.send(b"T1\n") == ["echo:T1 Invalid extruder ", "ok"]


def test_sd_card_is_present_and_empty() -> None:
    bench = Bench()
    assert bench.send(b"M21\nM20\nM27\n") == [
        "SD card ok",
        "ok",
        "Begin file list",
        "End file list",
        "ok",
        "Not SD printing",
        "ok",
    ]


def test_moves_update_the_reported_position() -> None:
    bench = Bench()
    bench.send(b"G28\nG1 X10 Y20 Z0.3 E1.5 F6000\nG91\nG1 X-2.5 E2\nG92 E0\nG90\n")
    bench.run_until(10)
    assert bench.send(b"M114\n") == ["ok X:7.50 Y:20.00 Z:0.30 E:0.00 Count: A:750 B:2000 C:30"]
    bench.send(b"G28 X\n")
    bench.run_until(20)
    assert bench.send(b"M114\n") == ["ok X:0.00 Y:20.00 Z:0.30 E:0.00 Count: A:0 B:2000 C:30"]


def test_m400_answers_when_the_move_is_done() -> None:
    # §11.3: a 20 mm move at F300 takes 0.1 × 20 / 5 = 0.4 s.
    bench = Bench()
    assert bench.send(b"G1 X20 F300\nM400\n") == ["ok"]
    assert bench.run_until(0.399) == []
    assert rounded(bench.run_until(0.5)) == [(0.4, "ok")]


def test_a_full_move_queue_holds_back_the_ok() -> None:
    # §11.1: four move slots; the fifth move gets its ok when the first one finishes.
    bench = Bench()
    assert bench.send(b"G91\nG1 X20 F300\nG1 X20\nG1 X20\nG1 X20\nG1 X20\n") == ["ok"] * 5
    assert rounded(bench.run_until(0.5)) == [(0.4, "ok")]


def test_g4_dwells_after_the_moves() -> None:
    bench = Bench()
    bench.send(b"G1 X20 F300\nG4 P500\nG4 S1\n")
    assert rounded(bench.run_until(2.5)) == [(0.9, "ok"), (1.9, "ok")]


def test_m190_reports_every_second_until_within_one_degree() -> None:
    bench = Bench(FirmwareOptions(send_wait=False))
    bench.run_until(5.0)
    assert bench.send(b"M190 S60\n") == ["B:21.30"]
    # §11.2: 10 °C/s, a report each second, ok at the first check within 1 °C of 60.
    assert rounded(bench.run_until(30)) == [(6.0, "B:31.30"), (7.0, "B:41.30"), (8.0, "B:51.30"), (9.0, "ok")]
    actual = float(bench.temperatures().split("B:")[1].split("/")[0])
    assert 59.0 <= actual <= 60.0


def test_m109_heats_at_ten_degrees_per_second_and_cooling_runs_at_two() -> None:
    bench = Bench()
    bench.send(b"M109 S200\n")
    bench.run_until(25)
    assert bench.temperatures().startswith("ok T:200.00/ 200.00 ")
    bench.send(b"M104 S0\n")
    bench.run_until(30)
    assert bench.temperatures().startswith("ok T:190.00/ 0.00 ")


def test_m109_r_also_waits_for_cooling() -> None:
    bench = Bench()
    bench.send(b"M104 S200\n")
    bench.run_until(30)
    bench.send(b"M109 R150\n")
    oks = [time for time, line in rounded(bench.run_until(60)) if line == "ok"]
    # Down 50 °C at 10 °C/s: within 1 °C after 4.9 s, seen at the check at 35 s.
    assert oks == [35.0]


def test_m109_s_does_not_wait_for_cooling() -> None:
    bench = Bench()
    bench.send(b"M104 S200\n")
    bench.run_until(30)
    assert bench.send(b"M109 S150\n") == ["ok"]


def test_m108_ends_a_heatup_wait_at_once() -> None:
    bench = Bench()
    bench.send(b"M109 S200\n")
    bench.run_until(2.5)
    assert bench.send(b"M108\nM105\n") == ["ok", "ok", "ok T:46.30/ 200.00 B:21.30/ 0.00 @:64"]


def test_m155_autoreports_temperatures_until_turned_off() -> None:
    bench = Bench(FirmwareOptions(send_wait=False))
    assert bench.send(b"M155 S2\n") == ["ok"]
    timeline = bench.run_until(5)
    assert timeline == [
        (2.0, "T:21.30/ 0.00 B:21.30/ 0.00 @:64"),
        (4.0, "T:21.30/ 0.00 B:21.30/ 0.00 @:64"),
    ]
    assert bench.send(b"M155 S0\n") == ["ok"]
    assert bench.run_until(20) == []


def test_without_autoreport_the_host_must_poll() -> None:
    bench = Bench(FirmwareOptions(autoreport_temp=False))
    assert "Cap:AUTOREPORT_TEMP:0" in bench.send(b"M115\n")
    assert bench.send(b"M155 S2\n") == ['echo:Unknown command: "M155 S2"', "ok"]


def test_wait_lines_come_every_second_only_while_idle() -> None:
    bench = Bench()
    assert bench.run_until(2.5) == [(1.0, "wait"), (2.0, "wait")]
    bench.send(b"G4 S3\n")
    assert rounded(bench.run_until(7.5)) == [(5.5, "ok"), (6.5, "wait"), (7.5, "wait")]


def test_no_wait_lines_when_disabled() -> None:
    bench = Bench(FirmwareOptions(send_wait=False))
    assert bench.firmware.next_deadline() is None
    assert bench.run_until(10) == []


def test_m112_kills_the_firmware_even_during_a_heatup_wait() -> None:
    bench = Bench()
    bench.send(b"M190 S100\n")
    assert bench.send(b"N1 M112*29\n") == ["echo:EMERGENCY SHUTDOWN DETECTED. KILLED."]
    assert bench.firmware.killed
    assert bench.send(b"M105\n") == []
    assert bench.firmware.next_deadline() is None
    assert bench.run_until(60) == []


def test_time_scale_speeds_up_simulated_time() -> None:
    bench = Bench(FirmwareOptions(time_scale=10))
    bench.send(b"G1 X20 F300\nM400\n")
    assert rounded(bench.run_until(0.15)) == [(0.04, "ok"), (0.14, "wait")]


def test_two_extruders_report_each_hotend() -> None:
    bench = Bench(FirmwareOptions(num_extruders=2))
    assert bench.send(b"T1\nM104 S210\n") == ["ok", "ok"]
    assert bench.temperatures() == ("ok T:21.30/ 210.00 T0:21.30/ 0.00 T1:21.30/ 210.00 B:21.30/ 0.00 @:64")
    assert bench.send(b"M104 T2 S200\n") == ["echo:M104 Invalid extruder 2", "ok"]


def test_an_overlong_line_is_rejected_and_the_next_one_works() -> None:
    bench = Bench()
    assert bench.send(b"M117 " + b"x" * 600 + b"\nM105\n") == [
        "Error: Line too long (more than 512 bytes)",
        "ok",
        "ok T:21.30/ 0.00 B:21.30/ 0.00 @:64",
    ]


def test_a_flooding_host_cannot_grow_the_buffers() -> None:
    bench = Bench()
    bench.send(b"G4 S10\n")
    flood = b"M105\n" * (RX_BUFFER_SIZE // 2)
    bench.send(flood)
    assert bench.firmware.receive_capacity == 0
    bench.send(flood)  # lost, like bytes overrunning a UART
    bench.firmware.advance(11)
    # The host does not read: the output stops growing near the high-water mark.
    backlog = bench.firmware.data_to_send()
    assert TX_HIGH_WATER <= len(backlog) < TX_HIGH_WATER + 100
    replies = backlog.count(b"ok T:") + sum(line.startswith("ok T:") for _, line in bench.run_until(20))
    assert replies == RX_BUFFER_SIZE // len(b"M105\n")


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        FirmwareOptions(time_scale=0)
    with pytest.raises(ValueError, match="num_extruders"):
        FirmwareOptions(num_extruders=0)


# -- properties -----------------------------------------------------------------------------------

commands = st.one_of(
    st.sampled_from(["M105", "M114", "G90", "G91", "G28", "M400", "T0", "M999", "G92 E0", "M155 S1"]),
    st.builds("M117 {}".format, st.text(alphabet="abc XYZ019-_.", max_size=20)),
    st.builds("G1 X{} Y{} F{}".format, st.integers(0, 200), st.integers(0, 200), st.integers(60, 9000)),
    st.builds("G4 P{}".format, st.integers(0, 2000)),
    st.builds("M104 S{}".format, st.integers(0, 250)),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]


@settings(deadline=None)
@given(st.lists(commands, max_size=30), st.lists(st.integers(min_value=0), max_size=10))
def test_every_well_formed_line_gets_exactly_one_ok(script: list[str], cuts: list[int]) -> None:
    bench = Bench(FirmwareOptions(send_wait=False))
    data = numbered(0, "M110 N0") + b"".join(numbered(n, cmd) for n, cmd in enumerate(script, start=1))
    replies: list[str] = []
    for chunk in chunked(data, cuts):
        replies += bench.send(chunk)
    replies += [line for _, line in bench.run_until(1000)]
    assert sum(map(is_ok, replies)) == len(script) + 1
    assert not any(line.startswith(("Error", "Resend")) for line in replies)


@settings(deadline=None)
@given(
    st.lists(commands, min_size=1, max_size=10),
    st.data(),
    st.integers(min_value=1, max_value=255),
)
def test_a_corrupted_checksum_gets_a_resend_of_that_line(
    script: list[str], data: st.DataObject, delta: int
) -> None:
    bench = Bench(FirmwareOptions(send_wait=False))
    bench.send(numbered(0, "M110 N0"))
    bad = data.draw(st.integers(min_value=1, max_value=len(script)))
    for number, command in enumerate(script[: bad - 1], start=1):
        bench.send(numbered(number, command))
        bench.run_until(bench.now + 1000)
    assert bench.send(numbered(bad, script[bad - 1], checksum_delta=delta)) == [
        "Error: Checksum mismatch",
        f"Resend:{bad}",
        "ok",
    ]
    bench.send(numbered(bad, script[bad - 1]))
    replies = [line for _, line in bench.run_until(bench.now + 1000)]
    assert not any(line.startswith(("Error", "Resend")) for line in replies)


@settings(deadline=None)
@given(st.lists(commands, max_size=20), st.lists(st.integers(min_value=0), max_size=10))
def test_replies_do_not_depend_on_how_the_input_is_split(script: list[str], cuts: list[int]) -> None:
    data = b"".join(f"{command}\n".encode() for command in script)
    whole, pieces = Bench(), Bench()
    expected = whole.send(data)
    assert [line for chunk in chunked(data, cuts) for line in pieces.send(chunk)] == expected


def temperature_of(reply: str, sensor: str) -> float:
    return float(reply.split(f"{sensor}:")[1].split("/")[0])


@settings(deadline=None)
@given(
    st.integers(min_value=1, max_value=280),
    st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=30),
)
def test_heating_does_not_depend_on_how_often_time_is_advanced(target: int, steps_ms: list[int]) -> None:
    quiet = FirmwareOptions(send_wait=False)
    stepped, jumped = Bench(quiet), Bench(quiet)
    for bench in (stepped, jumped):
        bench.send(f"M104 S{target}\nM140 S0\n".encode())
    now = 0.0
    for step in steps_ms:
        now += step / 1000
        stepped.firmware.advance(now)
    jumped.firmware.advance(now)
    for sensor in ("T", "B"):
        assert temperature_of(stepped.temperatures(), sensor) == pytest.approx(
            temperature_of(jumped.temperatures(), sensor), abs=0.011
        )
    assert temperature_of(jumped.temperatures(), "T") <= max(target, 21.3)


def test_the_firmware_never_imports_the_host_side() -> None:
    # Architecture: the virtual printer is separate firmware, so shared bugs cannot cancel out.
    probe = "import sys, octotrio.virtual; print(sorted(m for m in sys.modules if m.startswith('octotrio.')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "octotrio.virtual" in loaded
    assert "octotrio.printer" not in loaded
