"""The printer controller with the virtual printer on a real pty: connect and disconnect at any
time, fatal firmware errors, emergency stop, a vanished device, action commands mid-print
(marlin-serial.md §9, §10; octoprint-push.md §9.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from octotrio.printer import (
    ActionCommand,
    CommState,
    Connecting,
    Disconnected,
    Disconnecting,
    GcodeSent,
    JobFailed,
    JobPaused,
    LinkError,
    PrinterEvent,
    PrinterNotOperational,
    StateChanged,
    ZChanged,
)

from .test_printer_job import numbered_commands, operational, rig, write_gcode

THERMAL_RUNAWAY = "Thermal Runaway, system stopped! Heater_ID: bed - Printer halted. kill() called!"


def closed(event: PrinterEvent) -> bool:
    return isinstance(event, StateChanged) and event.state in (CommState.OFFLINE, CommState.CLOSED_WITH_ERROR)


async def test_disconnect_and_reconnect_without_a_restart(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.connect()
        # disconnect() waits until the port is closed; the events on the way must be taken.
        r.nursery.start_soon(r.service.disconnect)
        await r.log.wait_for(closed)
        assert r.service.state is CommState.OFFLINE
        with pytest.raises(PrinterNotOperational):
            r.service.send_command("M105")
        start = len(r.log.events)
        await r.connect()
        r.service.send_command("M117 back again")
        await r.log.wait_for(lambda e: "Recv: echo:back again" in str(e))
    # octoprint-push.md §9.7 "disconnect": Disconnecting, Disconnected, PSC OFFLINE.
    ends = [e for e in r.log.events[:start] if isinstance(e, Disconnecting | Disconnected | StateChanged)]
    assert ends[-3:] == [Disconnecting(), Disconnected(), StateChanged(CommState.OFFLINE)]
    assert Connecting(r.port, 115200) in r.log.events[start:]
    assert "M117 back again" in r.executed()


async def test_a_fatal_firmware_error_stops_the_printer_and_a_reconnect_resets_it(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.connect()
        r.service.send_command("!!DEBUG:trigger_fatal_error_marlin")
        await r.log.wait_for(closed)
        error_at = next(
            i for i, e in enumerate(r.log.events) if e == StateChanged(CommState.ERROR, THERMAL_RUNAWAY)
        )
        # A killed board resets when the port is opened again (DTR).
        await r.connect()
        r.service.send_command("M117 alive")
        await r.log.wait_for(lambda e: "alive" in str(e) and "Send" in str(e))
    # §9: the kill message's two lines joined with " - "; octoprint-push.md §9.7 order.
    sequence = [
        e
        for e in r.log.events[error_at:]
        if isinstance(e, StateChanged | LinkError | GcodeSent | Disconnected)
    ]
    assert sequence[:5] == [
        StateChanged(CommState.ERROR, THERMAL_RUNAWAY),
        LinkError(THERMAL_RUNAWAY, "firmware", "emergency"),
        GcodeSent("M112"),
        Disconnected(),
        StateChanged(CommState.CLOSED_WITH_ERROR, THERMAL_RUNAWAY),
    ]


async def test_a_fatal_error_mid_print_fails_the_job(tmp_path: Path) -> None:
    job, _commands = write_gcode(tmp_path / "part.gcode", 300)
    async with rig(tmp_path) as r:
        await r.connect()
        r.service.start_print(job, tmp_path / "part.gcode")
        await r.log.wait_for(lambda e: e == ZChanged(0.4, 0.2))
        r.service.send_command("!!DEBUG:mintemp_error")
        await r.log.wait_for(closed)
    failed = r.log.of(JobFailed)
    assert len(failed) == 1
    assert isinstance(failed[0], JobFailed)
    assert failed[0].error == "MINTEMP triggered!"
    assert 0 < failed[0].filepos < (job.size or 0)
    assert r.log.states()[-2:] == [CommState.ERROR, CommState.CLOSED_WITH_ERROR]


async def test_emergency_stop_sends_m112_and_closes(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.connect()
        r.service.emergency_stop()
        await r.log.wait_for(closed)
        assert r.service.state is CommState.CLOSED_WITH_ERROR
        await r.connect()
    terminal_end = r.log.events.index(GcodeSent("M112"))
    assert r.log.events[terminal_end + 1 : terminal_end + 4] == [
        StateChanged(CommState.ERROR, "Emergency stop"),
        Disconnected(),
        StateChanged(CommState.CLOSED_WITH_ERROR, "Emergency stop"),
    ]


async def test_a_vanished_device_is_an_error_and_the_port_can_be_reopened(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.connect()
        r.service.send_command("!!DEBUG:drop_connection")
        error = await r.log.wait_for(lambda e: isinstance(e, LinkError))
        await r.log.wait_for(closed)
        await r.connect()
    assert isinstance(error, LinkError)
    assert error.reason == "connection"


async def test_action_pause_from_the_firmware_pauses_the_print(tmp_path: Path) -> None:
    job, commands = write_gcode(tmp_path / "part.gcode", 300)
    async with rig(tmp_path) as r:
        await r.connect()
        r.service.start_print(job, tmp_path / "part.gcode")
        await r.log.wait_for(lambda e: e == ZChanged(0.4, 0.2))
        r.service.send_command("!!DEBUG:action_pause")
        await r.log.wait_for(lambda e: isinstance(e, JobPaused))
        await r.log.wait_for(lambda e: e == StateChanged(CommState.PAUSED))
        r.service.send_command("!!DEBUG:action_custom blink fast")
        action = await r.log.wait_for(lambda e: isinstance(e, ActionCommand) and e.name == "blink")
        r.service.cancel()
        await r.log.wait_for(operational)
    assert action == ActionCommand("blink", "fast")
    assert ActionCommand("pause", "") in r.log.events
    assert numbered_commands(r.executed_job())[-5:] == ["M108", "M84", "M104 T0 S0", "M140 S0", "M106 S0"]
    assert len(commands) > 0
