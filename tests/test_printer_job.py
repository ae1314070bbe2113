"""Print jobs end to end: the printer link streaming files to the virtual printer on a real pty.

The virtual printer's ``--record`` file says what the firmware really executed, so these tests
check the host against the firmware, not against itself (marlin-serial.md §1–§3, §10.4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from octotrio.printer import (
    CommState,
    GcodeSent,
    JobCancelled,
    JobCancelling,
    JobFailed,
    JobFile,
    JobFinished,
    JobPaused,
    JobProgress,
    JobResumed,
    JobStarted,
    LinkError,
    Position,
    PositionReported,
    PrinterEvent,
    PrinterNotOperational,
    PrinterService,
    StateChanged,
    TerminalLine,
    ZChanged,
    run_printer_service,
)
from octotrio.virtual import RECOVERABLE_FAULTS, Fault, FirmwareOptions, run_virtual_printer

HANG_GUARD = 60.0
"""Seconds before a stuck test fails; a hang guard only, nothing is timed (a print takes well
under a second)."""
TIME_SCALE = 20.0
"""The virtual printer runs 20× faster: moves are quick, and its idle ``wait`` lines (which count
as an ok while printing, §2) come every 50 ms, long after any line in transit arrived. These
tests use the real clock: a mock clock would jump while the kernel still moves pty bytes."""


def operational(event: PrinterEvent) -> bool:
    return event == StateChanged(CommState.OPERATIONAL)


@dataclass
class EventLog:
    receive: trio.MemoryReceiveChannel[PrinterEvent]
    events: list[PrinterEvent] = field(default_factory=list)

    async def wait_for(self, predicate: Callable[[PrinterEvent], bool]) -> PrinterEvent:
        async for event in self.receive:
            self.events.append(event)
            if predicate(event):
                return event
        raise AssertionError("the event channel closed")

    def of(self, *kinds: type) -> list[PrinterEvent]:
        return [event for event in self.events if isinstance(event, kinds)]

    def states(self) -> list[CommState]:
        return [event.state for event in self.events if isinstance(event, StateChanged)]


@dataclass
class Rig:
    service: PrinterService
    log: EventLog
    port: str
    record: Path
    nursery: trio.Nursery

    async def connect(self) -> None:
        """Connect and wait until the handshake is over (§4: autoreport switched on after M115)."""
        await self.service.connect(self.port, 115200)
        await self.log.wait_for(operational)
        await self.log.wait_for(lambda e: e == TerminalLine("Send: M155 S2"))

    def executed(self) -> list[str]:
        return self.record.read_text().splitlines()

    def executed_job(self) -> list[str]:
        """What the firmware executed since the last print started (``N0 M110 N0``)."""
        lines = self.executed()
        start = len(lines) - 1 - lines[::-1].index("N0 M110 N0")
        return lines[start + 1 :]


@asynccontextmanager
async def rig(
    tmp_path: Path, options: FirmwareOptions | None = None, *, window: int = 1
) -> AsyncIterator[Rig]:
    options = options if options is not None else FirmwareOptions(time_scale=TIME_SCALE)
    record = tmp_path / "record.txt"
    record.unlink(missing_ok=True)
    # No buffer: the link waits for the test to take each event, so that a job control the test
    # sends after an event finds the link where that event left it.
    send, receive = trio.open_memory_channel[PrinterEvent](0)
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(run_virtual_printer, options, record_path=str(record)))
            service = await nursery.start(partial(run_printer_service, send, window=window))
            yield Rig(service, EventLog(receive), port, record, nursery)
            nursery.cancel_scope.cancel()


def write_gcode(path: Path, moves: int, *, layer_every: int = 5) -> tuple[JobFile, list[str]]:
    """A multi-layer file with comments and blank lines; returns its JobFile and its commands."""
    commands = ["G28", "G90", "M82"]
    text = ["; generated for a test", *commands[:1], "", *commands[1:]]
    for i in range(moves):
        if i % layer_every == 0:
            command = f"G1 Z{0.2 + 0.2 * (i // layer_every):.1f} F600"
            commands.append(command)
            text.append(f"{command} ; layer {i // layer_every}")
        command = f"G1 X{i % 7 + 1} Y{i % 5 + 1} E{i * 0.1:.1f} F6000"
        commands.append(command)
        text.append(command)
    text.append("; end")
    data = "\n".join(text) + "\n"
    path.write_text(data)
    return JobFile(path.name, path.name, "local", len(data.encode())), commands


def numbered_commands(lines: list[str]) -> list[str]:
    """The commands of numbered record lines, in order."""
    return [line.split(" ", 1)[1] for line in lines if line.startswith("N")]


async def test_a_print_runs_every_line_once_and_ends_at_100_percent(tmp_path: Path) -> None:
    job, commands = write_gcode(tmp_path / "cube.gcode", 30)
    async with rig(tmp_path) as r:
        await r.connect()
        r.service.start_print(job, tmp_path / "cube.gcode")
        await r.log.wait_for(lambda e: isinstance(e, JobFinished))
        await r.log.wait_for(operational)
    # §10.4: the print starts with M110 N0, the file's commands follow from N1, M400 ends it.
    executed = r.executed_job()
    assert executed == [f"N{i + 1} {command}" for i, command in enumerate([*commands, "M400"])]
    states = r.log.states()
    assert states[states.index(CommState.STARTING) :] == [
        CommState.STARTING,
        CommState.PRINTING,
        CommState.FINISHING,
        CommState.OPERATIONAL,
    ]
    assert r.log.of(JobStarted) == [JobStarted(job)]
    progress = r.log.of(JobProgress)
    assert isinstance(progress[-1], JobProgress)
    assert progress[-1].filepos == job.size
    positions = [e.filepos for e in progress if isinstance(e, JobProgress)]
    assert positions == sorted(positions)
    # octoprint-push.md §9.3: one ZChange per layer, the first with old null; Home for G28.
    zs = r.log.of(ZChanged)
    assert zs[0] == ZChanged(0.2, None)
    assert [e.new for e in zs if isinstance(e, ZChanged)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.2]
    assert GcodeSent("G28") in r.log.events


async def test_pause_records_the_position_resume_and_cancel(tmp_path: Path) -> None:
    job, commands = write_gcode(tmp_path / "part.gcode", 400)
    async with rig(tmp_path) as r:
        await r.connect()
        with pytest.raises(PrinterNotOperational):
            r.service.pause()
        r.service.start_print(job, tmp_path / "part.gcode")
        await r.log.wait_for(lambda e: e == ZChanged(0.4, 0.2))
        r.service.pause()
        paused = await r.log.wait_for(lambda e: isinstance(e, JobPaused))
        await r.log.wait_for(lambda e: e == StateChanged(CommState.PAUSED))
        sent_before_resume = len(numbered_commands(r.executed_job()))
        r.service.resume()
        await r.log.wait_for(lambda e: e == StateChanged(CommState.PRINTING))
        await r.log.wait_for(lambda e: isinstance(e, ZChanged))
        r.service.cancel()
        cancelled = await r.log.wait_for(lambda e: isinstance(e, JobCancelled))
        await r.log.wait_for(operational)
    assert isinstance(paused, JobPaused)
    # §10.4: pausing sends M400, then M114; the firmware's reply is the recorded position.
    executed = numbered_commands(r.executed_job())
    assert executed[sent_before_resume - 2 : sent_before_resume] == ["M400", "M114"]
    assert paused.position.z is not None
    assert paused.position.x is not None
    assert PositionReported(paused.position, "pause") in r.log.events
    states = r.log.states()
    assert states[states.index(CommState.PAUSING) :] == [
        CommState.PAUSING,
        CommState.PAUSED,
        CommState.RESUMING,
        CommState.PRINTING,
        CommState.CANCELLING,
        CommState.OPERATIONAL,
    ]
    # §10.4: cancel sends M108, then the after-cancel script; the file stops part-way.
    assert executed[-5:] == ["M108", "M84", "M104 T0 S0", "M140 S0", "M106 S0"]
    file_commands = [
        c for c in executed if c not in ("M400", "M114", "M108", "M84", "M104 T0 S0", "M140 S0", "M106 S0")
    ]
    assert file_commands == commands[: len(file_commands)]
    assert len(file_commands) < len(commands)
    assert isinstance(cancelled, JobCancelled)
    assert cancelled.position == Position()
    assert 0 < cancelled.filepos < (job.size or 0)
    assert r.log.events.index(JobCancelling()) < r.log.events.index(StateChanged(CommState.CANCELLING))
    assert JobResumed() in r.log.events


async def test_restart_prints_from_the_beginning(tmp_path: Path) -> None:
    job, commands = write_gcode(tmp_path / "part.gcode", 60)
    async with rig(tmp_path) as r:
        await r.connect()
        r.service.start_print(job, tmp_path / "part.gcode")
        await r.log.wait_for(lambda e: e == ZChanged(0.4, 0.2))
        r.service.pause()
        await r.log.wait_for(lambda e: e == StateChanged(CommState.PAUSED))
        r.service.restart()
        await r.log.wait_for(lambda e: isinstance(e, JobFinished))
        await r.log.wait_for(operational)
    assert numbered_commands(r.executed_job()) == [*commands, "M400"]
    assert r.log.of(JobStarted) == [JobStarted(job), JobStarted(job)]


async def test_an_unreadable_file_is_reported_and_the_printer_stays_operational(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.connect()
        r.service.start_print(JobFile("gone.gcode", "gone.gcode", "local", 10), tmp_path / "gone.gcode")
        error = await r.log.wait_for(lambda e: isinstance(e, LinkError))
        await r.log.wait_for(operational)
        assert r.service.state is CommState.OPERATIONAL
    assert isinstance(error, LinkError)
    assert error.reason == "start_print"
    assert not r.log.of(JobStarted)


# ---------------------------------------------------------------------------------------------
# Property: with recoverable faults, every line is executed exactly once and in order.


def fault_spec(probabilities: dict[Fault, float], at_lines: dict[int, Fault], seed: int) -> str:
    items = [f"{fault.value}={p}" for fault, p in probabilities.items()]
    items += [f"{fault.value}@{line}" for line, fault in at_lines.items()]
    return ",".join([*items, f"seed={seed}"])


def run_faulty_print(tmp_path: Path, moves: int, spec: str, window: int) -> None:
    async def main() -> None:
        job, commands = write_gcode(tmp_path / "faulty.gcode", moves)
        async with rig(tmp_path, window=window) as r:
            await r.connect()
            # Faults from here on: the handshake's own recovery (timeouts of 30 s) is not the point.
            r.service.send_command(f"!!DEBUG:faults {spec}")
            await r.log.wait_for(lambda e: isinstance(e, TerminalLine) and e.text.startswith("Send: !!DEBUG"))
            r.service.start_print(job, tmp_path / "faulty.gcode")
            end = await r.log.wait_for(lambda e: isinstance(e, JobFinished | JobFailed | LinkError))
            assert isinstance(end, JobFinished), end
            await r.log.wait_for(operational)
        # Every line of the file exactly once, in order. Besides them only the M400 of
        # FINISHING (which a fault may drop: no later line makes the firmware ask for it again)
        # and the M105 a timeout provokes while printing (§10.3).
        executed = [c for c in numbered_commands(r.executed_job()) if c not in ("M105", "M400")]
        assert executed == commands
        progress = r.log.of(JobProgress)[-1]
        assert isinstance(progress, JobProgress)
        assert progress.filepos == job.size

    trio.run(main)


@pytest.mark.parametrize("window", [1, 2, 4])
def test_resend_requests_without_ok_lose_and_repeat_nothing(tmp_path: Path, window: int) -> None:
    # §3 rule 4: firmware that sends no ok after its resend requests, at a fixed line and at random.
    run_faulty_print(tmp_path, 30, "resend_without_ok=0.1,resend_without_ok@3,seed=5", window)


# One run of a few seconds per window: several lines in flight (§2, ackMax) make the resend rules
# (§3) meet requests drawn by lines sent after the one asked for.
@pytest.mark.parametrize("window", [1, 2, 4, 8])
@settings(deadline=None, max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    moves=st.integers(min_value=1, max_value=60),
    probabilities=st.dictionaries(
        st.sampled_from(sorted(RECOVERABLE_FAULTS, key=lambda f: f.value)), st.sampled_from([0.02, 0.05, 0.1])
    ),
    # At most 8 lines, so that the "!!DEBUG:faults" line stays within the firmware's 512 bytes.
    at_lines=st.dictionaries(
        st.integers(min_value=1, max_value=70),
        st.sampled_from(sorted(RECOVERABLE_FAULTS, key=lambda f: f.value)),
        max_size=8,
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_with_recoverable_faults_every_line_runs_exactly_once_in_order(
    tmp_path: Path,
    window: int,
    moves: int,
    probabilities: dict[Fault, float],
    at_lines: dict[int, Fault],
    seed: int,
) -> None:
    run_faulty_print(tmp_path, moves, fault_spec(probabilities, at_lines, seed), window)
