"""The host state machine (sans-IO): numbering, ok window, resends (marlin-serial.md §1–§3, §6)."""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field
from functools import reduce
from operator import xor

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from octotrio.printer import Reading
from octotrio.printer._host import (
    HISTORY_SIZE,
    RESEND_OK_TIMEOUT,
    CommandQueueFull,
    FirmwareReport,
    LocalProtocolError,
    MarlinHost,
    RemoteProtocolError,
)
from octotrio.printer._protocol import Capability, Ok, TemperatureLine, encode_numbered
from octotrio.virtual import RECOVERABLE_FAULTS, FirmwareOptions, VirtualMarlin, parse_faults

T0 = 0.0
"""When lines arrive in tests where the resend-ok deadline (§3 rule 4) plays no part."""


def numbered(number: int, command: str) -> bytes:
    """The numbered form; its checksums are checked against real traces in test_printer_protocol."""
    return encode_numbered(number, command)


def connected_host(*, queue_size: int = 32) -> MarlinHost:
    """A host whose hello went out and was acknowledged."""
    host = MarlinHost(queue_size=queue_size)
    host.hello()
    assert host.next_line_to_send() == b"N0 M110 N0*125\n"
    host.receive_line("ok", T0)
    return host


def send_all(host: MarlinHost, *commands: str) -> list[bytes]:
    """Enqueue ``commands`` and acknowledge each line sent; return the lines in order."""
    for command in commands:
        host.enqueue(command)
    sent = []
    while (line := host.next_line_to_send()) is not None:
        sent.append(line)
        host.receive_line("ok", T0)
    return sent


def test_hello_and_m115_are_numbered() -> None:
    host = connected_host()
    host.enqueue("M115")
    assert host.next_line_to_send() == b"N1 M115*39\n"


def test_one_command_in_flight() -> None:
    host = connected_host()
    host.enqueue("G28")
    host.enqueue("G21")
    assert host.next_line_to_send() == numbered(1, "G28")
    assert host.next_line_to_send() is None
    host.receive_line("echo:busy: processing", T0)
    assert host.next_line_to_send() is None
    host.receive_line("ok", T0)
    assert host.next_line_to_send() == numbered(2, "G21")


def test_hello_goes_out_even_with_a_command_in_flight() -> None:
    host = MarlinHost()
    host.hello()
    assert host.next_line_to_send() == b"N0 M110 N0*125\n"
    assert host.next_line_to_send() is None
    host.hello()
    assert host.next_line_to_send() == b"N0 M110 N0*125\n"


def test_commands_go_plain_after_the_firmware_report() -> None:
    host = connected_host()
    assert send_all(host, "M115") == [b"N1 M115*39\n"]
    assert host.receive_line("FIRMWARE_NAME:Virtual Marlin 1.0 PROTOCOL_VERSION:1.0", T0)
    assert send_all(host, "M155 S2", "M110 N0") == [b"M155 S2\n", b"N0 M110 N0*125\n"]
    host.printing = True
    assert send_all(host, "G28") == [numbered(1, "G28")]


def test_firmware_report_ends_at_the_first_line_that_is_not_a_capability() -> None:
    host = connected_host()
    host.receive_line("FIRMWARE_NAME:Marlin PROTOCOL_VERSION:1.0", T0)
    assert host.receive_line("Cap:AUTOREPORT_TEMP:1", T0) == [Capability("AUTOREPORT_TEMP", True)]
    host.receive_line("Cap:EMERGENCY_PARSER:0", T0)
    assert host.receive_line("ok", T0) == [
        FirmwareReport(
            "Marlin",
            {"FIRMWARE_NAME": "Marlin", "PROTOCOL_VERSION": "1.0"},
            {"AUTOREPORT_TEMP": True, "EMERGENCY_PARSER": False},
        ),
        Ok(),
    ]
    assert host.receive_line("ok", T0) == [Ok()]


def test_wait_counts_as_ok_only_while_printing() -> None:
    host = connected_host()
    host.enqueue("G4 S1")
    host.enqueue("M105")
    assert host.next_line_to_send() is not None
    host.receive_line("wait", T0)
    assert host.next_line_to_send() is None
    host.printing = True
    host.receive_line("wait", T0)
    assert host.next_line_to_send() == numbered(2, "M105")


def test_recoverable_error_simulates_an_ok() -> None:
    host = connected_host()
    host.enqueue("G28")
    host.enqueue("G21")
    host.next_line_to_send()
    host.receive_line("Error: No Line Number with checksum, Last Line: 0", T0)
    assert host.next_line_to_send() == numbered(2, "G21")


def test_resend_replays_with_original_numbers() -> None:
    # §3 trace "missing_lineno": N110 lost, N111 rejected, both replayed in order.
    host = connected_host()
    send_all(host, *(f"G1 X{i}" for i in range(1, 4)))
    host.enqueue("G1 X4")
    host.enqueue("G1 X5")
    assert host.next_line_to_send() == numbered(4, "G1 X4")
    host.receive_line("Error: expected line 2 got 4", T0)
    host.receive_line("Resend:2", T0)
    assert host.next_line_to_send() is None
    host.receive_line("ok", T0)
    replayed = []
    while (line := host.next_line_to_send()) is not None:
        replayed.append(line)
        host.receive_line("ok", T0)
    assert replayed == [
        numbered(2, "G1 X2"),
        numbered(3, "G1 X3"),
        numbered(4, "G1 X4"),
        numbered(5, "G1 X5"),
    ]
    assert host.resends.count == 1
    assert host.resends.transmitted == 1 + 3 + 1 + 4


def test_request_for_a_line_not_sent_yet_is_ignored() -> None:
    host = connected_host()
    send_all(host, "G28")
    host.enqueue("G21")
    host.receive_line("Resend: 2", T0)
    assert host.next_line_to_send() == numbered(2, "G21")
    assert host.resends.count == 0


def test_duplicate_request_from_the_same_error_is_ignored() -> None:
    host = connected_host()
    host.enqueue("G28")
    host.enqueue("G21")
    host.next_line_to_send()
    for line in ["Error: Checksum mismatch", "Resend: 1", "ok"] * 2:
        host.receive_line(line, T0)
    assert host.resends.count == 1
    assert host.next_line_to_send() == numbered(1, "G28")
    host.receive_line("ok", T0)
    assert host.next_line_to_send() == numbered(2, "G21")


def test_a_resend_request_without_ok_is_acted_on_after_the_resend_ok_timeout() -> None:
    # §3 rule 4 (detect): no ok within resendOk 0.5 s, so the host acts as if it had come.
    host = connected_host()
    host.enqueue("G28")
    host.enqueue("G21")
    host.next_line_to_send()
    host.receive_line("Error: Missing checksum", 10.0)
    host.receive_line("Resend: 1", 10.0)
    assert host.resend_ok_deadline == 10.0 + RESEND_OK_TIMEOUT
    assert host.next_line_to_send() is None
    assert not host.handle_resend_ok_deadline(10.0 + RESEND_OK_TIMEOUT / 2)
    assert host.next_line_to_send() is None
    assert host.handle_resend_ok_deadline(10.0 + RESEND_OK_TIMEOUT)
    assert host.resend_ok_deadline is None
    assert host.next_line_to_send() == numbered(1, "G28")
    host.receive_line("ok", 11.0)
    assert host.next_line_to_send() == numbered(2, "G21")


def test_a_resend_request_followed_by_another_line_is_acted_on_at_once() -> None:
    # §3 rule 4: "another line first" also means the ok is missing.
    host = connected_host()
    host.enqueue("G28")
    host.next_line_to_send()
    host.receive_line("Resend: 1", 10.0)
    host.receive_line("echo:busy: processing", 10.1)
    assert host.resend_ok_deadline is None
    assert host.next_line_to_send() == numbered(1, "G28")


def test_the_ok_after_a_resend_request_ends_the_deadline() -> None:
    host = connected_host()
    host.enqueue("G28")
    host.enqueue("G21")
    host.next_line_to_send()
    host.receive_line("Resend: 1", 10.0)
    host.receive_line("ok", 10.1)
    assert host.resend_ok_deadline is None
    assert not host.handle_resend_ok_deadline(20.0)
    assert host.next_line_to_send() == numbered(1, "G28")
    # The replayed line's ok is still owed: no second line goes out before it.
    assert host.next_line_to_send() is None


def test_ten_consecutive_requests_for_one_line_is_a_resend_loop() -> None:
    host = connected_host()
    host.enqueue("G28")
    host.next_line_to_send()
    for _ in range(9):
        host.receive_line("Resend: 1", T0)
        host.receive_line("ok", T0)
        assert host.next_line_to_send() == numbered(1, "G28")
    with pytest.raises(RemoteProtocolError) as raised:
        host.receive_line("Resend: 1", T0)
    assert raised.value.reason == "resend_loop"


def test_request_beyond_the_history() -> None:
    host = connected_host(queue_size=HISTORY_SIZE + 1)
    send_all(host, *(f"G1 X{i}" for i in range(HISTORY_SIZE + 1)))
    host.receive_line("Resend: 1", T0)
    assert host.next_line_to_send() is None
    host.printing = True
    with pytest.raises(RemoteProtocolError) as raised:
        host.receive_line("Resend: 1", T0)
    assert raised.value.reason == "resend"
    host.receive_line(f"Resend: {HISTORY_SIZE + 1}", T0)
    assert host.next_line_to_send() == encode_numbered(HISTORY_SIZE + 1, f"G1 X{HISTORY_SIZE}")


def test_line_number_reset_by_m110() -> None:
    host = connected_host()
    assert send_all(host, "M110 N5", "G28") == [numbered(5, "M110 N5"), numbered(6, "G28")]


def test_enqueue_rejects_what_cannot_go_on_the_wire() -> None:
    host = MarlinHost(queue_size=1)
    for bad in ["", "  ", "G1\nG28", "M117 a*b", "M117 café"]:
        with pytest.raises(LocalProtocolError):
            host.enqueue(bad)
    host.enqueue(" G28 ")
    with pytest.raises(CommandQueueFull):
        host.enqueue("G28")
    assert host.queued == 1


def test_tool_change_selects_the_tool_of_bare_t() -> None:
    host = connected_host()
    send_all(host, "T1")
    assert host.receive_line("T:30.0 /0.0", T0) == [TemperatureLine({"tool1": Reading(30.0, 0.0)})]


# ---------------------------------------------------------------------------------------------
# Property: random corruption, nothing lost, nothing duplicated.

_NUMBERED = re.compile(rb"N(\d+) (.*)\*(\d+)")
# At most this many faults for one expected line: a line rejected every time is a resend loop.
_MAX_FAULTS_PER_LINE = 3


@dataclass
class FakeFirmware:
    """Marlin's line checking (§11.4), written here independently of the host's encoder."""

    expected: int = 0
    executed: list[str] = field(default_factory=list)
    faults: dict[int, int] = field(default_factory=dict)

    def receive(self, line: bytes, fault: str) -> list[str]:
        if self.faults.get(self.expected, 0) >= _MAX_FAULTS_PER_LINE:
            fault = "none"
        if fault != "none":
            self.faults[self.expected] = self.faults.get(self.expected, 0) + 1
        match = _NUMBERED.fullmatch(line.rstrip(b"\n"))
        if match is None or reduce(xor, line[: line.rindex(b"*")], 0) != int(match.group(3)):
            return self._reject("Checksum mismatch")
        number, command = int(match.group(1)), match.group(2).decode()
        if command.startswith("M110"):
            self.expected = number + 1
            return ["ok"]
        if number != self.expected:
            return self._reject(f"expected line {self.expected} got {number}")
        if fault == "reject":
            return self._reject("Checksum mismatch")
        if fault == "duplicate":
            return self._reject("Checksum mismatch") * 2
        self.executed.append(command)
        self.expected += 1
        return ["ok"]

    def _reject(self, error: str) -> list[str]:
        return [f"Error: {error}", f"Resend:{self.expected}", "ok"]


def corrupt(line: bytes, index: int, value: int) -> bytes:
    """Replace one byte of the line (never the newline) with a different one."""
    index %= len(line) - 1
    replacement = value if value not in (line[index], ord("\n")) else (line[index] ^ 0x01)
    return line[:index] + bytes([replacement]) + line[index + 1 :]


@settings(deadline=None, max_examples=300)
@given(
    commands=st.lists(st.sampled_from(["G28", "G1 X10 Y20 F300", "M105", "G1 X70 Y56 E37.6", "M400"])),
    printing=st.booleans(),
    data=st.data(),
)
def test_random_corruption_loses_nothing_and_duplicates_nothing(
    commands: list[str], printing: bool, data: st.DataObject
) -> None:
    host = MarlinHost(queue_size=max(1, len(commands)))
    host.printing = printing
    firmware = FakeFirmware()
    host.hello()
    for command in commands:
        host.enqueue(command)
    # Replies wait in to_host; hypothesis decides whether the host reads one before its next send,
    # so replies to one line may still be arriving after the host has sent the next.
    to_host: deque[str] = deque()
    for _ in range(20 * len(commands) + 20):
        deliver_first: bool = data.draw(st.booleans(), label="deliver a reply first")
        if to_host and deliver_first:
            host.receive_line(to_host.popleft(), T0)
            continue
        line = host.next_line_to_send()
        if line is None:
            if not to_host:
                break
            host.receive_line(to_host.popleft(), T0)
            continue
        fault = data.draw(st.sampled_from(["none", "none", "corrupt", "reject", "duplicate"]), label="fault")
        if fault == "corrupt" and firmware.faults.get(firmware.expected, 0) < _MAX_FAULTS_PER_LINE:
            line = corrupt(line, data.draw(st.integers(0, 100)), data.draw(st.integers(0x20, 0x7E)))
        to_host.extend(firmware.receive(line, fault))
    else:
        pytest.fail("the host never became idle")
    assert firmware.executed == commands
    assert host.queued == 0


def test_a_repeated_resend_request_is_answered_once_and_waits_for_its_one_ok() -> None:
    # §3 rules 1 and 4: the firmware reports one error twice, then sends one ok. The repetition is
    # neither a second request nor the "other line" standing for a missing ok: taken for that, the
    # host would count the ok of the replay for the next line and drop a line at the end of a job.
    host = connected_host()
    host.printing = True
    host.enqueue("G1 X1")
    host.enqueue("G1 X2")
    assert host.next_line_to_send() == numbered(1, "G1 X1")
    for line in ["Error: Missing checksum", "Resend:1", "Error: Missing checksum", "Resend:1"]:
        host.receive_line(line, T0)
    assert host.next_line_to_send() is None
    host.receive_line("ok", T0)
    assert host.next_line_to_send() == numbered(1, "G1 X1")
    assert host.next_line_to_send() is None
    host.receive_line("ok", T0)
    assert host.next_line_to_send() == numbered(2, "G1 X2")
    assert host.resends.count == 1


# ---------------------------------------------------------------------------------------------
# Property: the host against the virtual firmware, both sans-IO, with injected faults
# and a random schedule of deliveries. The firmware is separate code (it never imports the
# host), so agreement here is not a bug cancelling out.


def print_against_the_virtual_firmware(
    commands: list[str], faults: str, window: int, schedule: random.Random
) -> list[str]:
    """Stream ``commands`` as a job, then ``M400``; return the job lines the firmware executed."""
    firmware = VirtualMarlin(
        FirmwareOptions(time_scale=20, record=True, faults=parse_faults(faults)), now=0.0
    )
    firmware.data_to_send()
    host = MarlinHost(window=window)
    job = deque(commands)
    host.hello()
    host.printing = True
    host.job = lambda: job.popleft() if job else None
    to_firmware: deque[bytes] = deque()
    to_host: deque[str] = deque()
    received = b""
    now = 0.0
    finishing = False
    for _ in range(100 * len(commands) + 1000):
        while (line := host.next_line_to_send()) is not None:
            to_firmware.append(line)
        draw = schedule.random()
        if to_firmware and draw < 0.4:
            firmware.receive_data(to_firmware.popleft(), now)
        elif to_host and draw < 0.8:
            host.receive_line(to_host.popleft(), now)
        elif not to_firmware:
            # Time passes (the firmware's "wait" lines come every 50 ms) only once what the host
            # sent has arrived: on a real link a line takes far less than a wait interval.
            now += schedule.choice([0.001, 0.01, 0.06])
            firmware.advance(now)
            host.handle_resend_ok_deadline(now)
        *lines, received = (received + firmware.data_to_send()).split(b"\n")
        to_host.extend(text for raw in lines if (text := raw.decode(errors="replace").strip()))
        if not job and host.idle and not to_firmware and not to_host:
            if finishing:
                break
            finishing = True
            host.enqueue("M400", bounded=False)
    else:
        pytest.fail("the host and the firmware never finished")
    return [
        line.split(" ", 1)[1]
        for line in firmware.take_executed()
        if line.startswith("N") and not line.endswith(("M110 N0", "M400"))
    ]


@settings(deadline=None, max_examples=300)
@given(
    commands=st.lists(
        st.sampled_from(["G1 X10 Y20 F6000", "G1 X70 Y56 E37.6 F6000", "M105", "G90"]), min_size=1
    ),
    faults=st.dictionaries(
        st.sampled_from(sorted(fault.value for fault in RECOVERABLE_FAULTS)),
        st.sampled_from([0.02, 0.05, 0.1]),
    ),
    seed=st.integers(0, 2**32),
    window=st.sampled_from([1, 2, 3, 4, 8]),
)
# Window 4: a line dropped unanswered, then "expected line 4 got 5" and Resend:4 twice, the first
# ok lost: the second pair is a new request, not a repetition of the first, and line 4 was lost.
@example(
    commands=["G1 X10 Y20 F6000", "G1 X10 Y20 F6000", "M105", "G1 X10 Y20 F6000"],
    faults={
        "resend": 0.05,
        "missing_lineno": 0.1,
        "lost_ok": 0.1,
        "checksum": 0.02,
        "duplicate_resend": 0.05,
        "resend_without_ok": 0.1,
        "unanswered": 0.1,
    },
    seed=49230,
    window=4,
)
# Extra copies of an accepted line 3 each drew "expected line 4 got 3" and a request for line 4,
# not sent yet: taken for a line to resend, it kept the host from ever becoming idle.
@example(
    commands=["G1 X10 Y20 F6000", "G1 X10 Y20 F6000", "M105"],
    faults={
        "checksum": 0.05,
        "missing_lineno": 0.12,
        "resend": 0.12,
        "unanswered": 0.12,
        "lost_ok": 0.12,
        "duplicate_resend": 0.1,
        "resend_without_ok": 0.12,
    },
    seed=1356098,
    window=5,
)
# Replays acted on stale requests put extra copies of accepted lines on the wire; the requests those
# copies drew ("expected line 12 got 11") ended in resend_loop.
@example(
    commands=["G1 X10 Y20 F6000"] * 12,
    faults={
        "checksum": 0.05,
        "resend": 0.1,
        "lost_ok": 0.02,
        "resend_without_ok": 0.1,
        "duplicate_resend": 0.1,
    },
    seed=35440800,
    window=2,
)
def test_against_the_virtual_firmware_with_faults_every_line_runs_once_in_order(
    commands: list[str], faults: dict[str, float], seed: int, window: int
) -> None:
    spec = ",".join([*(f"{kind}={p}" for kind, p in faults.items()), f"seed={seed}"])
    executed = print_against_the_virtual_firmware(commands, spec, window, random.Random(seed))
    assert executed == commands


# ---------------------------------------------------------------------------------------------
# Resend rules with several lines in flight (window 4).


def printing_host(window: int) -> MarlinHost:
    host = MarlinHost(window=window)
    host.hello()
    assert host.next_line_to_send() == b"N0 M110 N0*125\n"
    host.receive_line("ok", T0)
    host.printing = True
    return host


def drain(host: MarlinHost) -> list[bytes]:
    lines = []
    while (line := host.next_line_to_send()) is not None:
        lines.append(line)
    return lines


def test_a_rejected_line_among_several_in_flight_is_replayed_with_the_lines_after_it() -> None:
    # §3 rules 1 and 2: N2 is rejected while N3 and N4 are in flight. Each of them arrives out of
    # order and draws its own request for 2: stale, not acted on again.
    host = printing_host(window=4)
    for i in range(1, 5):
        host.enqueue(f"G1 X{i}")
    assert drain(host) == [numbered(i, f"G1 X{i}") for i in range(1, 5)]
    host.receive_line("ok", T0)
    for line in ["Error: Checksum mismatch", "Resend:2", "ok"]:
        host.receive_line(line, T0)
    replayed = drain(host)
    for got in (3, 4):
        for line in [f"Error: expected line 2 got {got}", "Resend:2", "ok"]:
            host.receive_line(line, T0)
        replayed += drain(host)
    assert replayed == [numbered(i, f"G1 X{i}") for i in range(2, 5)]
    for _ in range(3):
        host.receive_line("ok", T0)
    assert host.idle
    assert host.resends.count == 1


def test_a_request_repeated_after_a_lost_ok_is_acted_on_when_the_host_falls_silent() -> None:
    # N2 vanishes; N3 draws "expected line 2 got 3" and Resend:2 whose ok is lost. The replayed
    # N2 vanishes too, and the replayed N3 draws the same error and request, now with its ok.
    # That looks like a repetition of the first (§3 rule 1), but the firmware still waits for
    # line 2: once everything in flight is accounted for ("wait" counts as an ok while printing,
    # §2), the host sends it again instead of falling silent.
    host = printing_host(window=4)
    host.enqueue("G1 X1")
    host.enqueue("G1 X2")
    host.enqueue("G1 X3")
    assert drain(host) == [numbered(1, "G1 X1"), numbered(2, "G1 X2"), numbered(3, "G1 X3")]
    host.receive_line("ok", T0)
    host.receive_line("Error: expected line 2 got 3", T0)
    host.receive_line("Resend:2", T0)
    assert drain(host) == [numbered(2, "G1 X2"), numbered(3, "G1 X3")]
    for line in ["Error: expected line 2 got 3", "Resend:2", "ok"]:
        host.receive_line(line, T0)
    resent = drain(host)
    for _ in range(4):
        host.receive_line("wait", T0)
        resent += drain(host)
    assert resent[:1] == [numbered(2, "G1 X2")]
