"""The printer link over a real pty, with a scripted firmware on the master side."""

from __future__ import annotations

import itertools
import os
import tty
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import pytest
import trio
import trio.testing

from octotrio.printer import (
    ActionCommand,
    CommandQueueFull,
    CommState,
    Connected,
    Connecting,
    Disconnected,
    Disconnecting,
    FirmwareInfo,
    FirmwareMessage,
    GcodeSent,
    LinkError,
    PrinterEvent,
    PrinterLink,
    PrinterNotOperational,
    PrinterReset,
    Reading,
    StateChanged,
    TemperatureReport,
    TerminalLine,
    run_printer_link,
)
from octotrio.printer._host import RESEND_OK_TIMEOUT
from octotrio.printer._link import COMMAND_QUEUE_SIZE, COMMUNICATION_TIMEOUT, COMMUNICATION_TIMEOUT_BUSY

# Hang guard only: a healthy run takes milliseconds.
HANG_GUARD = 10.0

BANNER = ["start", "Marlin: Virtual Marlin!"]
"""A banner without "SD card ok": the scripted firmware has no SD card unless a test says so."""
FIRMWARE_NAME = "FIRMWARE_NAME:Virtual Marlin 1.0 PROTOCOL_VERSION:1.0"


class ScriptedFirmware:
    """The master side of the pty: reads the host's lines, writes replies."""

    def __init__(self, master: trio.lowlevel.FdStream) -> None:
        self.master = master
        self._buffer = b""

    async def receive(self) -> str:
        while b"\n" not in self._buffer:
            data = await self.master.receive_some(4096)
            assert data, "host closed the port"
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("ascii")

    async def say(self, *lines: str) -> None:
        await self.master.send_all("".join(f"{line}\n" for line in lines).encode())

    async def handshake(self, *, capabilities: tuple[str, ...] = ("Cap:AUTOREPORT_TEMP:1",)) -> None:
        """Banner, ok to the hello, the M115 report: what the virtual printer does (§4)."""
        await self.say(*BANNER)
        assert await self.receive() == "N0 M110 N0*125"
        await self.say("ok")
        assert await self.receive() == "N1 M115*39"
        await self.say(FIRMWARE_NAME, *capabilities, "ok")

    async def ready(self) -> None:
        """The handshake, then the ok for the host's M155: idle and operational."""
        await self.handshake()
        assert await self.receive() == "M155 S2"
        await self.say("ok")


class EventLog:
    """Everything the link emitted, in order."""

    def __init__(self, receive: trio.MemoryReceiveChannel[PrinterEvent]) -> None:
        self.receive = receive
        self.events: list[PrinterEvent] = []

    async def wait_for(self, kind: type[PrinterEvent]) -> PrinterEvent:
        async for event in self.receive:
            self.events.append(event)
            if isinstance(event, kind):
                return event
        raise AssertionError(f"channel closed before a {kind.__name__}")

    def drain(self) -> None:
        while True:
            try:
                self.events.append(self.receive.receive_nowait())
            except trio.WouldBlock:
                return

    def states(self) -> list[PrinterEvent]:
        """The events that are not per-line chatter."""
        return [e for e in self.events if not isinstance(e, TerminalLine | FirmwareMessage)]

    def terminal(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, TerminalLine)]


@contextmanager
def pty() -> Iterator[tuple[trio.lowlevel.FdStream, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield trio.lowlevel.FdStream(master), os.ttyname(slave)
    finally:
        os.close(slave)


@asynccontextmanager
async def running_link(
    hang_guard: float = HANG_GUARD,
) -> AsyncIterator[tuple[PrinterLink, ScriptedFirmware, EventLog, trio.Nursery]]:
    send, receive = trio.open_memory_channel[PrinterEvent](100)
    with pty() as (master, path), trio.fail_after(hang_guard):
        async with master, trio.open_nursery() as nursery:
            link = await nursery.start(run_printer_link, path, 115200, send)
            yield link, ScriptedFirmware(master), EventLog(receive), nursery


async def test_handshake_with_autoreporting_firmware() -> None:
    async with running_link() as (link, firmware, log, nursery):
        with pytest.raises(PrinterNotOperational):
            link.send_command("M105")
        await firmware.handshake(capabilities=("Cap:AUTOREPORT_TEMP:1", "Cap:EMERGENCY_PARSER:1"))
        # §5: autoreport is switched on instead of polling; idle commands go plain after M115.
        assert await firmware.receive() == "M155 S2"
        await firmware.say("ok", "T:21.30/ 0.00 B:21.30/ 0.00 @:64")
        await log.wait_for(TemperatureReport)
        assert link.operational
        link.send_command("G28")
        assert await firmware.receive() == "G28"
        nursery.cancel_scope.cancel()
    log.drain()
    assert log.states() == [
        Connecting(link.port, 115200),
        StateChanged(CommState.OPEN_SERIAL),
        StateChanged(CommState.CONNECTING),
        StateChanged(CommState.OPERATIONAL),
        Connected(link.port, 115200),
        FirmwareInfo(
            "Virtual Marlin 1.0",
            {"FIRMWARE_NAME": "Virtual Marlin 1.0", "PROTOCOL_VERSION": "1.0"},
            {"AUTOREPORT_TEMP": True, "EMERGENCY_PARSER": True},
        ),
        TemperatureReport({"tool0": Reading(21.3, 0.0), "bed": Reading(21.3, 0.0)}),
        # octoprint-push.md §9.3: sending G28 fires Home.
        GcodeSent("G28"),
        Disconnected(),
        StateChanged(CommState.OFFLINE),
    ]
    terminal = log.terminal()
    assert "Send: N0 M110 N0*125" in terminal
    assert "Send: N1 M115*39" in terminal
    assert "Send: M155 S2" in terminal
    assert "Recv: Cap:EMERGENCY_PARSER:1" in terminal
    messages = [e.text for e in log.events if isinstance(e, FirmwareMessage)]
    assert "ok" not in messages
    assert FIRMWARE_NAME in messages
    assert "T:21.30/ 0.00 B:21.30/ 0.00 @:64" in messages
    assert not link.operational


async def test_resend_request_is_replayed_with_the_original_number() -> None:
    async with running_link() as (link, firmware, _log, nursery):
        await firmware.say(*BANNER)
        assert await firmware.receive() == "N0 M110 N0*125"
        await firmware.say("ok")
        assert await firmware.receive() == "N1 M115*39"
        # §3 trace: error, resend request, ok; the host sends the same line with the same number.
        await firmware.say("Error: Checksum mismatch", "Resend:1", "ok")
        assert await firmware.receive() == "N1 M115*39"
        assert link.resends.count == 1
        nursery.cancel_scope.cancel()


async def test_device_gone_is_reported_and_the_task_returns() -> None:
    send, receive = trio.open_memory_channel[PrinterEvent](100)
    log = EventLog(receive)
    with pty() as (master, path), trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            link = await nursery.start(run_printer_link, path, 115200, send)
            firmware = ScriptedFirmware(master)
            await firmware.handshake()
            assert await firmware.receive() == "M155 S2"
            await master.aclose()
        # The nursery exited on its own: the link returned instead of raising.
    log.drain()
    error = next(e for e in log.events if isinstance(e, LinkError))
    assert error.reason == "connection"
    assert error.consequence is None
    assert log.states()[-4:] == [
        StateChanged(CommState.ERROR, error.error),
        error,
        Disconnected(),
        StateChanged(CommState.CLOSED_WITH_ERROR, error.error),
    ]
    with pytest.raises(PrinterNotOperational):
        link.send_command("M105")


async def test_port_that_cannot_be_opened_is_reported() -> None:
    send, receive = trio.open_memory_channel[PrinterEvent](100)
    log = EventLog(receive)
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_printer_link, "/dev/octotrio-no-such-port", 115200, send)
    log.drain()
    error = next(e for e in log.events if isinstance(e, LinkError))
    assert log.states() == [
        Connecting("/dev/octotrio-no-such-port", 115200),
        StateChanged(CommState.OPEN_SERIAL),
        StateChanged(CommState.ERROR, error.error),
        LinkError(error.error, "connection"),
        Disconnected(),
        StateChanged(CommState.CLOSED_WITH_ERROR, error.error),
    ]


async def test_command_queue_is_bounded() -> None:
    async with running_link() as (link, firmware, _log, nursery):
        await firmware.handshake()
        # The firmware never acknowledges M155, so nothing else leaves the queue.
        assert await firmware.receive() == "M155 S2"
        for _ in range(COMMAND_QUEUE_SIZE):
            link.send_command("G4 P0")
        with pytest.raises(CommandQueueFull):
            link.send_command("G4 P0")
        nursery.cancel_scope.cancel()


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Real pty I/O: jump only after 10 ms without any task runnable (see style.md rule 11).
    return trio.testing.MockClock(autojump_threshold=0.01)


async def test_firmware_without_autoreport_is_polled(clock: trio.testing.MockClock) -> None:
    # The hang guard runs on the mock clock, which jumps through the poll intervals.
    async with running_link(hang_guard=60.0) as (_link, firmware, _log, nursery):
        await firmware.handshake(capabilities=("Cap:AUTOREPORT_TEMP:0",))
        polls: list[float] = []
        target = 0.0
        while len(polls) < 6:
            line = await firmware.receive()
            if line == "N0 M110 N0*125":
                # A hello repeated because the clock jumped before our first ok arrived.
                await firmware.say("ok")
                continue
            assert line == "M105"
            polls.append(trio.current_time())
            if len(polls) == 3:
                target = 200.0
            await firmware.say(f"ok T:21.30/ {target:.2f} B:21.30/ 0.00 @:64")
        nursery.cancel_scope.cancel()
    intervals = [round(b - a, 1) for a, b in itertools.pairwise(polls)]
    # §5: every 5 s, every 2 s once a target above 25 °C has been reported (the reply to the third
    # poll; the interval after a poll is chosen when it is sent).
    assert intervals == [5.0, 5.0, 5.0, 2.0, 2.0]


async def test_resend_loop_ends_the_link_with_an_error() -> None:
    async with running_link() as (_link, firmware, log, _nursery):
        await firmware.say(*BANNER)
        assert await firmware.receive() == "N0 M110 N0*125"
        await firmware.say("ok")
        # §3 rule 3: the tenth consecutive request for one line is a resend loop.
        for _ in range(9):
            assert await firmware.receive() == "N1 M115*39"
            await firmware.say("Error: Checksum mismatch", "Resend:1", "ok")
        assert await firmware.receive() == "N1 M115*39"
        await firmware.say("Resend:1")
        error = await log.wait_for(LinkError)
        # The link returns by itself, so the nursery exits without being cancelled.
    log.drain()
    assert isinstance(error, LinkError)
    assert (error.reason, error.consequence) == ("resend_loop", "disconnect")
    closed = StateChanged(CommState.CLOSED_WITH_ERROR, error.error)
    assert log.states()[-4:] == [StateChanged(CommState.ERROR, error.error), error, Disconnected(), closed]


async def test_cancellation_does_not_wait_for_a_full_event_channel() -> None:
    send, receive = trio.open_memory_channel[PrinterEvent](2)
    with pty() as (master, path), trio.fail_after(HANG_GUARD):
        async with master, trio.open_nursery() as nursery:
            await nursery.start(run_printer_link, path, 115200, send)
            # Nobody reads: with the port open, the link blocks on its third event (CONNECTING).
            # Cancelling must still close the port and finish without waiting for room.
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert [receive.receive_nowait(), receive.receive_nowait()] == [
        Connecting(path, 115200),
        StateChanged(CommState.OPEN_SERIAL),
    ]
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()


# ---------------------------------------------------------------------------------------------
# Timeouts, busy protocol, external reset, action commands, Repetier targets, the ok window.


@pytest.mark.parametrize(
    ("reply", "waited", "message"),
    [
        # No ok at all: after §10.3's 30 s the host acts as if it had come.
        (
            (),
            COMMUNICATION_TIMEOUT,
            "Communication timeout while idle, trying to trigger response from printer.",
        ),
        # A request for a line not sent yet (ignored, §3 rule 1) and no ok after it: after resendOk
        # the host goes on as if the ok had come (§3 rule 4), long before the 30 s.
        (("Resend: 2",), RESEND_OK_TIMEOUT, "No ok after a resend request, simulating one to continue."),
    ],
)
async def test_a_missing_ok_while_idle_is_simulated(
    clock: trio.testing.MockClock, reply: tuple[str, ...], waited: float, message: str
) -> None:
    async with running_link(hang_guard=600.0) as (link, firmware, log, nursery):
        await firmware.ready()
        link.send_command("M117 one")
        link.send_command("M117 two")
        assert await firmware.receive() == "M117 one"
        before = trio.current_time()
        await firmware.say(*reply)
        assert await firmware.receive() == "M117 two"
        assert trio.current_time() - before == pytest.approx(waited, abs=0.1)
        nursery.cancel_scope.cancel()
    log.drain()
    assert message in log.terminal()


async def test_too_many_timeouts_end_the_link(clock: trio.testing.MockClock) -> None:
    async with running_link(hang_guard=600.0) as (link, firmware, log, _nursery):
        await firmware.ready()
        # "wait" lines are no answer: the host waits for an ok that never comes.
        link.send_command("M117 hello")
        error = await log.wait_for(LinkError)
    assert isinstance(error, LinkError)
    assert (error.reason, error.error) == (
        "timeout",
        "Too many consecutive timeouts, printer still connected and alive?",
    )


async def test_long_running_commands_never_time_out(clock: trio.testing.MockClock) -> None:
    async with running_link(hang_guard=600.0) as (link, firmware, log, nursery):
        await firmware.ready()
        link.send_command("M190 S60")
        link.send_command("M105")
        assert await firmware.receive() == "M190 S60"
        # §8: heat-ups wait as long as they take; a timeout must not release the next command.
        await trio.sleep(5 * COMMUNICATION_TIMEOUT)
        await firmware.say("ok")
        assert await firmware.receive() == "M105"
        nursery.cancel_scope.cancel()
    log.drain()
    assert not any(isinstance(e, LinkError) for e in log.events)


async def test_busy_protocol_shortens_the_timeout_and_busy_lines_extend_it(
    clock: trio.testing.MockClock,
) -> None:
    async with running_link(hang_guard=600.0) as (link, firmware, _log, nursery):
        await firmware.handshake(capabilities=("Cap:AUTOREPORT_TEMP:1", "Cap:BUSY_PROTOCOL:1"))
        # §8: M113 S2 with the busy protocol, then the 3 s communicationBusy timeout.
        assert await firmware.receive() == "M113 S2"
        await firmware.say("ok")
        assert await firmware.receive() == "M155 S2"
        await firmware.say("ok")
        link.send_command("M117 a")
        link.send_command("M117 b")
        assert await firmware.receive() == "M117 a"
        start = trio.current_time()
        for _ in range(3):
            await trio.sleep(2.0)
            await firmware.say("echo:busy: processing")
        assert await firmware.receive() == "M117 b"
        # Each busy line restarted the 3 s timeout.
        assert trio.current_time() - start == pytest.approx(6.0 + COMMUNICATION_TIMEOUT_BUSY, abs=0.1)
        nursery.cancel_scope.cancel()


async def test_start_while_operational_is_an_external_reset() -> None:
    async with running_link() as (_link, firmware, log, nursery):
        await firmware.ready()
        # §10.2: line numbers reset and autoreport enabled again.
        await firmware.say("start")
        assert await firmware.receive() == "N0 M110 N0*125"
        await firmware.say("ok")
        assert await firmware.receive() == "M155 S2"
        reset = await log.wait_for(PrinterReset)
        nursery.cancel_scope.cancel()
    assert reset == PrinterReset(idle=True)


async def test_action_commands_are_reported_and_disconnect_acts() -> None:
    async with running_link() as (link, firmware, log, _nursery):
        await firmware.handshake()
        assert await firmware.receive() == "M155 S2"
        await firmware.say("ok", "//action:notification Hello there", "//action:pause")
        notification = await log.wait_for(ActionCommand)
        # No job runs: pause has nothing to act on, and is reported all the same.
        assert await log.wait_for(ActionCommand) == ActionCommand("pause", "")
        await firmware.say("//action:disconnect")
        await log.wait_for(Disconnected)
    log.drain()
    assert notification == ActionCommand("notification", "Hello there")
    assert ActionCommand("disconnect", "") in log.events
    assert log.states()[-3:] == [Disconnecting(), Disconnected(), StateChanged(CommState.OFFLINE)]
    assert not link.operational


async def test_repetier_targets_fill_in_the_reports() -> None:
    async with running_link() as (_link, firmware, log, nursery):
        await firmware.handshake()
        assert await firmware.receive() == "M155 S2"
        await firmware.say("ok", "TargetExtr0:200", "TargetBed:60", "T:25.00 B:20.00 @:0 B@:0")
        report = await log.wait_for(TemperatureReport)
        nursery.cancel_scope.cancel()
    assert report == TemperatureReport({"tool0": Reading(25.0, 200.0), "bed": Reading(20.0, 60.0)})


async def test_a_wider_window_keeps_more_commands_in_flight() -> None:
    send, receive = trio.open_memory_channel[PrinterEvent](100)
    with pty() as (master, path), trio.fail_after(HANG_GUARD):
        async with master, trio.open_nursery() as nursery:
            link = await nursery.start(partial(run_printer_link, path, 115200, send, window=2))
            firmware = ScriptedFirmware(master)
            await firmware.handshake()
            assert await firmware.receive() == "M155 S2"
            for command in ("G4 P1", "G4 P2", "G4 P3"):
                link.send_command(command)
            # M155 and G4 P1 are in flight; G4 P2 waits for an ok (§2, ackMax = 2).
            assert await firmware.receive() == "G4 P1"
            with trio.move_on_after(0.2):
                await firmware.receive()
                pytest.fail("a third command went out with two in flight")
            await firmware.say("ok")
            assert await firmware.receive() == "G4 P2"
            nursery.cancel_scope.cancel()
    del receive
