"""The printer link: a trio service speaking Marlin on a serial port.

``PrinterService`` is the controller the rest of the server drives: it connects and disconnects
ports at any time, each connection a ``PrinterLink`` task in the service's own nursery. Within a
connection, a reader task turns bytes into lines and feeds them to the sans-IO ``MarlinHost``; a
writer task sends whatever the host releases; a conversation task runs the handshake, M115 and
temperature reporting; watchdogs handle communication timeouts and resend requests whose ok does
not come; and while a job runs, a job task
drives it through its states while a file reader feeds the ``JobStreamer``. A print from the
firmware's SD card (``_sdcard.py``) has a job task of its own, which follows the firmware's reports
(and polls them every second when the firmware does not autoreport). Reader, writer and job
meet only in the host and the streamer, plus events that wake them. What happens is reported as
``PrinterEvent``\\ s on a bounded memory channel. Section numbers (§n) refer to
``shared/reference/marlin-serial.md``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio
from trio_serial.posix import PosixSerialStream

from ._events import (
    JOB_STATES,
    ActionCommand,
    CommState,
    Connected,
    Connecting,
    Disconnected,
    Disconnecting,
    FirmwareInfo,
    FirmwareMessage,
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
    PrinterReset,
    Reading,
    SdFileSelected,
    SdFilesListed,
    SdStateChanged,
    StateChanged,
    TemperatureReport,
    TerminalLine,
)
from ._host import (
    CommandQueueFull,
    FatalError,
    FirmwareReport,
    MarlinHost,
    RemoteProtocolError,
    ResendStats,
)
from ._job import READ_CHUNK_SIZE, JobStreamer, ZTracker, event_gcode
from ._protocol import (
    Action,
    Busy,
    LineSplitter,
    Ok,
    PositionLine,
    Start,
    TargetTemperature,
    TemperatureLine,
    parse_position,
)
from ._sdcard import (
    SD_STATUS_INTERVAL,
    SD_STATUS_POLL,
    SdCard,
    SdDone,
    SdListed,
    SdOpened,
    SdOpenFailed,
    SdProgress,
    SdReady,
    SdStatusReporting,
)

# §4: the firmware prints its banner on open and may drop what arrives meanwhile; OctoPrint
# repeats the hello until an ok comes back.
HELLO_INTERVAL = 2.0
# §5: without AUTOREPORT_TEMP, poll M105 every 5 s, every 2 s while any target is above 25 °C.
# 5 s is also how long the link waits for the M115 report before it decides to poll.
POLL_INTERVAL = 5.0
POLL_INTERVAL_HEATING = 2.0
HEATING_ABOVE = 25.0
# §5: "with Cap:AUTOREPORT_TEMP:1 the host sends M155 S<2>". SD status reports are asked for
# only while an SD print runs (``SdStatusReporting``).
AUTOREPORT_COMMAND = "M155 S2"
# §8: with BUSY_PROTOCOL the host sends M113 S<communicationBusy - 1> and waits communicationBusy.
BUSY_PROTOCOL_COMMAND = "M113 S2"
# §10.3: communication timeout without an ok, and the shorter one with the busy protocol.
COMMUNICATION_TIMEOUT = 30.0
COMMUNICATION_TIMEOUT_BUSY = 3.0
# §9: a kill message's lines arrive together; a fatal error line with nothing after it within this
# time is the whole message.
ERROR_JOIN_WINDOW = 0.2
# JobProgress at most this often: progress is for people, who need no more than a few per second.
PROGRESS_INTERVAL = 0.25
# §10.4: what the host sends after a cancel.
AFTER_CANCEL_SCRIPT = ("M84", "M104 T0 S0", "M140 S0", "M106 S0")
# Commands ``send_command`` accepts before the firmware catches up. The host queue has room for
# more: the link's own M155 and scripts must fit even when a user filled the queue.
COMMAND_QUEUE_SIZE = 32
# Marlin lines are short (the longest are M115 and M20 lines, a few hundred bytes); anything
# longer is a device talking garbage and is cut (see LineSplitter).
MAX_LINE_LENGTH = 1024
RECEIVE_SIZE = 4096
# Lines the writer takes from the host before it writes them and checkpoints: more than a window's
# worth (Marlin's BUFSIZE is 4), few enough that a queue of lines needing no ok cannot hog the loop.
MAX_WRITE_BATCH = 16
# Closing a serial port does not wait for the device; the bound only guards against a stuck driver.
# Writing the emergency-stop lines before closing is bounded the same way.
CLOSE_TIMEOUT = 1.0
# §6 / OctoPrint's heater names → the command that sets their target.
_HEATER = {"bed": "M140 S{target:g}", "chamber": "M141 S{target:g}"}


class PrinterDisconnected(Exception):
    """The serial device failed or went away: opening, reading or writing raised ``OSError``, or
    the port reported end of file. Raised inside the link and reported as events, never to the caller."""


class PrinterNotOperational(Exception):
    """A command or job control came while the printer cannot take it: not connected, not yet
    operational, or (for job controls) not in a state that allows it. The message says which;
    the REST layer answers it with 409 Conflict."""


class _FirmwareFatal(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class _Failure:
    """Why a connection ended with an error."""

    error: str
    link_error: LinkError | None
    emergency: bool = False
    """Send M112 and heaters off before closing (§9)."""


@dataclass
class _Job:
    path: Path
    file: JobFile
    streamer: JobStreamer
    started_at: float = 0.0
    request: str | None = None
    reader_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    reader_wakeup: trio.Event = field(default_factory=trio.Event)
    read_error: str | None = None

    @property
    def filepos(self) -> int:
        return self.streamer.filepos


@dataclass
class _SdJob:
    """A print the firmware runs from its SD card; the host only starts, pauses and follows it."""

    file: JobFile
    reporting: SdStatusReporting
    started_at: float = 0.0
    request: str | None = None
    filepos: int = 0
    reported: int = 0
    """The ``filepos`` of the last ``JobProgress``."""
    done: bool = False


@dataclass(frozen=True)
class _SdSelection:
    """An ``M23`` on its way: who asked, and whether to print once the file is open."""

    user: str | None
    print_after: bool


class PrinterLink:
    """One connection to a printer; ``nursery.start(run_printer_link, ...)`` returns it.

    Use ``send_command`` to queue G-code and the job methods to print. The link's life is the
    ``run_printer_link`` task: ``disconnect()`` ends it politely, cancelling the task ends it at once.
    ``ended`` is set when the task is done. Most callers use ``PrinterService`` instead.
    """

    def __init__(
        self, port: str, baudrate: int, events: trio.MemorySendChannel[PrinterEvent], *, window: int = 1
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.ended = trio.Event()
        self._events = events
        self._host = MarlinHost(queue_size=COMMAND_QUEUE_SIZE + 8, window=window)
        self._state = CommState.OFFLINE
        self._operational = False
        self._writer_wakeup = trio.Event()
        self._job_wakeup = trio.Event()
        self._handshake_answered = trio.Event()
        self._firmware_reported = trio.Event()
        self._capabilities: Mapping[str, bool] = {}
        self._readings: Mapping[str, Reading] = {}
        self._repetier_targets: dict[str, float] = {}
        self._timeout = COMMUNICATION_TIMEOUT
        self._timeout_changed = trio.Event()
        self._last_received = -math.inf
        self._error_wakeup = trio.Event()
        self._resend_ok_armed = trio.Event()
        self._z = ZTracker()
        self._position = Position()
        self._position_for_job = False
        self._job: _Job | _SdJob | None = None
        self._sd = SdCard()
        self._sd_selection: _SdSelection | None = None
        self._sd_file: JobFile | None = None
        self._serve_scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._stop: _Failure | None = None
        self._disconnect_requested = False

    # -- what the outside sees ----------------------------------------------------------------------

    @property
    def state(self) -> CommState:
        """The state last reported with ``StateChanged``."""
        return self._state

    @property
    def operational(self) -> bool:
        """True from the firmware's answer to the hello until the link ends."""
        return self._operational

    @property
    def resends(self) -> ResendStats:
        """A snapshot of OctoPrint's ``resends`` counters (§3 rule 5)."""
        return ResendStats(self._host.resends.count, self._host.resends.transmitted)

    def send_command(self, command: str) -> None:
        """Queue one G-code command (no line number, checksum or newline); returns at once.

        Raises ``PrinterNotOperational`` unless the link is operational, ``CommandQueueFull`` when
        ``COMMAND_QUEUE_SIZE`` commands are already waiting (retry later; the firmware acknowledges
        one command at a time), and ``LocalProtocolError`` for a command that cannot be sent.
        ``M112`` is an emergency stop (see ``emergency_stop``).
        """
        self._require_operational()
        if command.strip().upper() == "M112":
            self.emergency_stop()
            return
        if self._host.queued >= COMMAND_QUEUE_SIZE:
            raise CommandQueueFull(f"{COMMAND_QUEUE_SIZE} commands already waiting for {self.port}")
        self._host.enqueue(command)
        self._writer_wakeup.set()

    def send_commands(self, commands: Iterable[str]) -> None:
        """Queue several commands in order; all or none (same errors as ``send_command``)."""
        commands = [command.strip() for command in commands]
        self._require_operational()
        if self._host.queued + len(commands) > COMMAND_QUEUE_SIZE:
            raise CommandQueueFull(f"no room for {len(commands)} more commands for {self.port}")
        for command in commands:
            self.send_command(command)

    def set_temperature(self, heater: str, target: float) -> None:
        """Set the target of ``heater`` (``tool<n>``, ``bed`` or ``chamber``) in °C; 0 turns it off.

        Raises ``ValueError`` for an unknown heater name, else as ``send_command``.
        """
        if heater.startswith("tool") and heater[4:].isdigit():
            command = f"M104 T{int(heater[4:])} S{target:g}"
        elif heater in _HEATER:
            command = _HEATER[heater].format(target=target)
        else:
            raise ValueError(f"unknown heater {heater!r}")
        self.send_command(command)

    def emergency_stop(self) -> None:
        """Send ``M112`` and turn the heaters off at once, then close the port (§9, §10.4).

        Events: ``GcodeSent("M112")`` (OctoPrint's ``EStop``), ``JobFailed`` if a job ran,
        ``StateChanged(ERROR)``, ``Disconnected``, ``StateChanged(CLOSED_WITH_ERROR)``. The firmware
        halts on M112; connect again to go on (a real board resets when the port is opened).
        """
        self._require_operational()
        self._end(_Failure("Emergency stop", None, emergency=True))

    def disconnect(self) -> None:
        """Close the port politely: ``Disconnecting``, ``JobFailed`` if a job ran, ``Disconnected``,
        ``StateChanged(OFFLINE)``. Returns at once; ``ended`` is set when it is done."""
        if self._disconnect_requested or self.ended.is_set():
            return
        self._disconnect_requested = True
        self._serve_scope.cancel()

    def start_print(self, file: JobFile, local_path: Path) -> None:
        """Stream the G-code file at ``local_path`` (described by ``file``) to the printer; returns at once.

        Events: ``StateChanged(STARTING)``, ``JobStarted``, ``StateChanged(PRINTING)``, then
        ``JobProgress`` a few times per second, ``ZChanged`` and ``GcodeSent`` as moves and special
        commands go out, and at the end ``StateChanged(FINISHING)``, ``JobFinished``,
        ``StateChanged(OPERATIONAL)``. A file that cannot be read gives ``LinkError`` with reason
        ``start_print`` (before any line was sent) or ``JobFailed``. Raises ``PrinterNotOperational``
        unless the printer is operational and idle.
        """
        if self._state is not CommState.OPERATIONAL or self._job is not None or self._nursery is None:
            raise PrinterNotOperational("Printer is not operational or already printing")
        job = _Job(local_path, file, JobStreamer(0))
        self._job = job
        self._nursery.start_soon(self._run_job, job)

    def pause(self) -> None:
        """Pause the job: ``StateChanged(PAUSING)``, ``M400`` then ``M114``, ``JobPaused`` with the
        reported position, ``PositionReported(reason="pause")``, ``StateChanged(PAUSED)``."""
        self._request_job("pause", CommState.STARTING, CommState.PRINTING, CommState.RESUMING)

    def resume(self) -> None:
        """Resume a paused job: ``StateChanged(RESUMING)``, ``JobResumed``, ``StateChanged(PRINTING)``."""
        self._request_job("resume", CommState.PAUSED, CommState.PAUSING)

    def cancel(self) -> None:
        """Cancel the job: ``JobCancelling``, ``StateChanged(CANCELLING)``, ``M108`` and the after-cancel
        script (§10.4), ``JobCancelled``, ``StateChanged(OPERATIONAL)``."""
        self._request_job("cancel", *JOB_STATES - {CommState.CANCELLING})

    def restart(self) -> None:
        """Start a paused job again from the beginning of its file: ``StateChanged(STARTING)``,
        ``JobStarted``, ``StateChanged(PRINTING)``."""
        self._request_job("restart", CommState.PAUSED)

    # -- the SD card ---------------------------------------------------------------------------------

    def select_sd_file(self, name: str, *, print_after: bool = False, user: str | None = None) -> None:
        """Open ``name`` on the SD card for printing (``M23``); returns at once.

        Once the firmware opened it: ``SdFileSelected`` (with ``user``), then with ``print_after``
        the print starts as ``start_sd_print`` describes. A file the firmware cannot open gives
        no event. Raises ``PrinterNotOperational`` unless operational, idle and with a card, else
        as ``send_command``.
        """
        self._require_sd_idle()
        self.send_command(f"M23 {name}")
        self._sd_selection = _SdSelection(user, print_after)

    def start_sd_print(self) -> None:
        """Print the file selected on the SD card from its beginning (``M26 S0``, ``M24``).

        Events: ``StateChanged(STARTING)``, ``JobStarted`` (origin ``sdcard``),
        ``StateChanged(PRINTING)``, ``JobProgress`` as the firmware reports its position (``M27``,
        autoreported or polled every second), and when the firmware says ``Done printing file``:
        ``JobProgress`` at the end of the file, ``StateChanged(FINISHING)``, ``JobFinished``,
        ``StateChanged(OPERATIONAL)``. ``pause``, ``resume``, ``cancel`` and ``restart`` work as
        for a streamed job. Raises ``PrinterNotOperational`` without a selected SD file or
        unless operational and idle.
        """
        self._require_sd_idle()
        if self._sd_file is None or self._nursery is None:
            raise PrinterNotOperational("No file selected on the SD card")
        job = _SdJob(self._sd_file, SdStatusReporting(self._capabilities))
        self._job = job
        self._nursery.start_soon(self._run_sd_job, job)

    def init_sd(self) -> None:
        """Ask the firmware to mount its card (``M21``); ``SdStateChanged`` and ``SdFilesListed``
        follow when it reports a card it had not reported before. Errors as ``send_command``."""
        self.send_command("M21")

    def refresh_sd(self) -> None:
        """List the card's files again (``M20``): ``SdFilesListed``. Errors as ``send_command``."""
        self.send_command(self._sd_list_command())

    async def release_sd(self) -> None:
        """Release the card (``M22``): ``SdStateChanged(False)`` at once, as OctoPrint does, since
        firmware sends nothing a host could wait for. Errors as ``send_command``."""
        self.send_command("M22")
        if (report := self._sd.release()) is not None:
            await self._emit(SdStateChanged(report.ready))

    def delete_sd_file(self, name: str) -> None:
        """Delete ``name`` from the SD card (``M30``), then list the card again (``SdFilesListed``).

        Raises ``PrinterNotOperational`` unless operational, idle and with a card, else as
        ``send_command``.
        """
        self._require_sd_idle()
        self.send_command(f"M30 {name}")
        if self._sd_file is not None and self._sd_file.path == name:
            self._sd_file = None
        self._list_sd_files()

    def _require_sd_idle(self) -> None:
        self._require_operational()
        if self._state is not CommState.OPERATIONAL or self._job is not None:
            raise PrinterNotOperational("Printer is already printing")
        if not self._sd.ready:
            raise PrinterNotOperational("The SD card is not ready")

    def _sd_list_command(self) -> str:
        # §6: EXTENDED_M20 firmware adds long names to the list with M20 L.
        return "M20 L" if self._capabilities.get("EXTENDED_M20", False) else "M20"

    def _list_sd_files(self) -> None:
        # The link's own listings (on connect, when a card comes, after a delete) are never refused.
        self._host.enqueue(self._sd_list_command(), bounded=False)
        self._writer_wakeup.set()

    def _request_job(self, request: str, *allowed: CommState) -> None:
        job = self._job
        if job is None or self._state not in allowed:
            raise PrinterNotOperational(f"cannot {request}: the printer is {self._state.value.lower()}")
        if job.request != "cancel":
            job.request = request
        self._job_wakeup.set()

    def _require_operational(self) -> None:
        if not self._operational:
            raise PrinterNotOperational(f"printer on {self.port} is not operational")

    def _end(self, failure: _Failure) -> None:
        if self._stop is None:
            self._stop = failure
        self._serve_scope.cancel()

    # -- the connection ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        await self._emit(Connecting(self.port, self.baudrate))
        await self._set_state(CommState.OPEN_SERIAL)
        stream: PosixSerialStream | None = None
        finished = False
        try:
            with self._serve_scope:
                try:
                    stream = await _open_serial(self.port, self.baudrate)
                except PrinterDisconnected as exc:
                    self._end(_Failure(str(exc), LinkError(str(exc), "connection")))
                else:
                    await self._set_state(CommState.CONNECTING)
                    await self._serve(stream)
            self._operational = False
            await self._after_connection(stream)
            finished = True
        finally:
            self._operational = False
            if stream is not None:
                await _close(stream)
            if not finished:
                # Cancelled (shutdown): say so if the channel has room, but never wait for it.
                self._emit_nowait(Disconnected())
                self._emit_nowait(StateChanged(CommState.OFFLINE))
            self.ended.set()

    async def _after_connection(self, stream: PosixSerialStream | None) -> None:
        """Report how the connection ended; on an emergency, first stop the printer (§9)."""
        failure = self._stop
        job, self._job = self._job, None
        if failure is None:
            await self._emit(Disconnecting())
            if job is not None:
                await self._emit(self._job_failed(job, "Printer disconnected"))
            await self._emit(Disconnected())
            await self._set_state(CommState.OFFLINE)
            return
        if failure.link_error is not None:
            await self._set_state(CommState.ERROR, failure.error)
            await self._emit(failure.link_error)
        if failure.emergency:
            if stream is not None:
                await _write_emergency_lines(stream, self._host.emergency_lines())
            await self._emit(GcodeSent("M112"))
        if job is not None:
            await self._emit(self._job_failed(job, failure.error))
        if failure.link_error is None:
            await self._set_state(CommState.ERROR, failure.error)
        await self._emit(Disconnected())
        await self._set_state(CommState.CLOSED_WITH_ERROR, failure.error)

    async def _serve(self, stream: PosixSerialStream) -> None:
        """Run reader, writer, conversation and watchdogs until one fails or the scope is cancelled."""

        async def until_failure(task: Callable[[], Awaitable[None]]) -> None:
            try:
                await task()
            except PrinterDisconnected as exc:
                self._end(_Failure(str(exc), LinkError(str(exc), "connection")))
            except RemoteProtocolError as exc:
                self._end(_Failure(exc.error, LinkError(exc.error, exc.reason, "disconnect")))
            except _FirmwareFatal as exc:
                error = LinkError(exc.error, "firmware", "emergency")
                self._end(_Failure(exc.error, error, emergency=True))

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(until_failure, partial(self._read, stream))
            nursery.start_soon(until_failure, partial(self._write, stream))
            nursery.start_soon(until_failure, self._converse)
            nursery.start_soon(until_failure, self._watch_timeouts)
            nursery.start_soon(until_failure, self._watch_errors)
            nursery.start_soon(until_failure, self._watch_resend_oks)

    async def _read(self, stream: PosixSerialStream) -> None:
        splitter = LineSplitter(MAX_LINE_LENGTH)
        while True:
            for line in splitter.feed(await _receive(stream)):
                if line:
                    await self._handle_line(line)

    async def _handle_line(self, line: str) -> None:
        if line != "wait":
            # §2: "wait" means the firmware idles, waiting for the host: an ok may have been lost,
            # which is what the timeout is for, so it does not count as an answer.
            self._last_received = trio.current_time()
        await self._emit(TerminalLine(f"Recv: {line}"))
        results = self._host.receive_line(line, trio.current_time())
        self._writer_wakeup.set()
        if self._host.resend_ok_deadline is not None:
            self._resend_ok_armed.set()
        if self._host.has_pending_error:
            self._error_wakeup.set()
        for result in results:
            match result:
                case FatalError(error):
                    raise _FirmwareFatal(error)
                case FirmwareReport(name, data, capabilities):
                    self._capabilities = capabilities
                    self._firmware_reported.set()
                    await self._emit(FirmwareInfo(name, data, capabilities))
                case Ok(data, readings):
                    self._handshake_answered.set()
                    if data:
                        await self._emit(FirmwareMessage(line))
                    if readings:
                        await self._report_temperatures(readings)
                    elif (position := parse_position(data)) is not None:
                        await self._report_position(position)
                case PositionLine(position):
                    await self._emit(FirmwareMessage(line))
                    await self._report_position(position)
                case TemperatureLine(readings):
                    await self._emit(FirmwareMessage(line))
                    await self._report_temperatures(readings)
                case TargetTemperature(sensor, target):
                    # §5 Repetier style: the target comes alone and applies to later reports.
                    self._repetier_targets[sensor] = target
                    await self._emit(FirmwareMessage(line))
                case Busy():
                    # §8: busy resets the timeout (done above for every line), it is no ok.
                    await self._emit(FirmwareMessage(line))
                case Start() if self._operational:
                    await self._emit(FirmwareMessage(line))
                    await self._external_reset()
                case Action(name, args):
                    await self._emit(FirmwareMessage(line))
                    # Reported first: acting on "disconnect" ends this task.
                    await self._emit(ActionCommand(name, args))
                    self._act(name)
                case _:
                    await self._emit(FirmwareMessage(line))
                    await self._handle_sd_line(line)
        # Only now: the job task must see what this line reported (the M114 position of a pause).
        # While a file streams from here, its task only waits for the end of the file (progress
        # has its own clock): waking it for every ok would cost a task switch per line.
        job = self._job
        streaming = self._state is CommState.PRINTING and isinstance(job, _Job) and not job.streamer.exhausted
        if not streaming:
            self._job_wakeup.set()

    def _act(self, name: str) -> None:
        """§10.1: the action commands the host acts on; a job control that does not apply is ignored."""
        controls: dict[str, Callable[[], None]] = {
            "pause": self.pause,
            "resume": self.resume,
            "cancel": self.cancel,
            "disconnect": self.disconnect,
        }
        if name in controls:
            with contextlib.suppress(PrinterNotOperational):
                controls[name]()

    async def _external_reset(self) -> None:
        """§10.2: the firmware rebooted: new line numbers, autoreports again, any print cancelled."""
        job = self._job
        self._host.hello()
        self._enable_autoreports()
        if job is not None and self._state is not CommState.CANCELLING:
            job.request = "cancel"
            self._job_wakeup.set()
        await self._emit(PrinterReset(idle=job is None))

    async def _report_temperatures(self, readings: Mapping[str, Reading]) -> None:
        if self._repetier_targets:
            readings = {
                name: Reading(r.actual, self._repetier_targets[name])
                if r.target is None and name in self._repetier_targets
                else r
                for name, r in readings.items()
            }
        self._readings = readings
        await self._emit(TemperatureReport(readings))

    async def _report_position(self, position: Position) -> None:
        self._position = Position(position.x, position.y, position.z, position.e, self._host.current_tool)
        if self._position_for_job:
            return
        await self._emit(PositionReported(self._position, None))

    async def _write(self, stream: PosixSerialStream) -> None:
        # Everything the host releases at one wake-up goes out in one write: with a window of n,
        # the n lines an ok burst frees cost one syscall. The events of a batch precede its write.
        while True:
            await self._writer_wakeup.wait()
            self._writer_wakeup = trio.Event()
            batch: list[bytes] = []
            while len(batch) < MAX_WRITE_BATCH and (line := self._host.next_line_to_send()) is not None:
                batch.append(line)
                command = self._host.sent_command
                await self._emit(TerminalLine(f"Send: {line.decode('ascii').rstrip()}"))
                if command:
                    if (code := event_gcode(command)) is not None:
                        await self._emit(GcodeSent(code))
                    if (z := self._z.observe(command)) is not None:
                        await self._emit(z)
            if len(batch) == MAX_WRITE_BATCH:
                # Lines that need no ok ("!!DEBUG:") are not held back by the window: come back
                # after a checkpoint rather than write them all at once.
                self._writer_wakeup.set()
            if batch:
                await _send(stream, b"".join(batch))

    async def _converse(self) -> None:
        # §4: hello until the firmware answers, then Operational and M115.
        while not self._handshake_answered.is_set():
            self._host.hello()
            self._writer_wakeup.set()
            with trio.move_on_after(HELLO_INTERVAL):
                await self._handshake_answered.wait()
        self._host.enqueue("M115")
        self._writer_wakeup.set()
        self._operational = True
        await self._set_state(CommState.OPERATIONAL)
        await self._emit(Connected(self.port, self.baudrate))
        with trio.move_on_after(POLL_INTERVAL):
            await self._firmware_reported.wait()
        if self._capabilities.get("BUSY_PROTOCOL", False):
            self._host.enqueue(BUSY_PROTOCOL_COMMAND, bounded=False)
            self._timeout = COMMUNICATION_TIMEOUT_BUSY
            self._timeout_changed.set()
        self._enable_autoreports()
        if self._sd.ready:
            # §4: the file list follows the autoreports.
            self._list_sd_files()
        if self._capabilities.get("AUTOREPORT_TEMP", False):
            return
        while True:
            # A full queue means the firmware is busy; skip this poll rather than pile up M105s.
            with contextlib.suppress(CommandQueueFull):
                self._host.enqueue("M105")
                self._writer_wakeup.set()
            heating = any(r.target is not None and r.target > HEATING_ABOVE for r in self._readings.values())
            await trio.sleep(POLL_INTERVAL_HEATING if heating else POLL_INTERVAL)

    def _enable_autoreports(self) -> None:
        # §5: autoreport what the firmware offers; SD status reports only while an SD print runs.
        if self._capabilities.get("AUTOREPORT_TEMP", False):
            self._host.enqueue(AUTOREPORT_COMMAND, bounded=False)
        self._writer_wakeup.set()

    async def _watch_timeouts(self) -> None:
        """§10.3: act when the firmware said nothing for a whole communication timeout."""
        self._last_received = trio.current_time()
        while True:
            with trio.move_on_at(self._last_received + self._timeout):
                await self._timeout_changed.wait()
                self._timeout_changed = trio.Event()
            now = trio.current_time()
            if now < self._last_received + self._timeout:
                continue
            self._last_received = now
            message = self._host.handle_timeout()
            self._writer_wakeup.set()
            await self._emit(TerminalLine(message))

    async def _watch_resend_oks(self) -> None:
        """§3 rule 4: the ok of a resend request that does not come within RESEND_OK_TIMEOUT is
        taken for missing (the host's ``resend_ok_deadline``; a later request moves it)."""
        while True:
            deadline = self._host.resend_ok_deadline
            if deadline is None:
                await self._resend_ok_armed.wait()
                self._resend_ok_armed = trio.Event()
                continue
            await trio.sleep_until(deadline)
            if self._host.handle_resend_ok_deadline(trio.current_time()):
                self._writer_wakeup.set()
                self._job_wakeup.set()
                await self._emit(TerminalLine("No ok after a resend request, simulating one to continue."))

    async def _watch_errors(self) -> None:
        """§9: a fatal error whose further lines do not come within ERROR_JOIN_WINDOW is complete."""
        while True:
            await self._error_wakeup.wait()
            self._error_wakeup = trio.Event()
            await trio.sleep(ERROR_JOIN_WINDOW)
            if (error := self._host.flush_error()) is not None:
                raise _FirmwareFatal(error.error)

    # -- jobs -----------------------------------------------------------------------------------------------

    async def _run_job(self, job: _Job) -> None:
        """The job task: runs in the connection's nursery, so it ends with the connection.

        Cancellation (the connection ended) leaves ``self._job`` set, so that the connection's end
        can report the job as failed.
        """
        host = self._host
        unreadable: str | None = None
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._read_job_file, job)
                await self._start_job(job)
                await self._drive_job(job, nursery)
                nursery.cancel_scope.cancel()
        except* OSError as group:
            unreadable = f"Cannot read {job.path}: {group.exceptions[0]}"
        finally:
            host.job = None
            host.printing = False
            self._position_for_job = False
        if unreadable is not None:
            self._job = None
            await self._emit(LinkError(unreadable, "start_print"))
            await self._set_state(CommState.OPERATIONAL)

    async def _read_job_file(
        self, job: _Job, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Feed the file to the streamer in chunks as it drains; the reads run in a thread.

        Reports started once the file is open (``OSError`` if it cannot be). A read error later
        is recorded in ``job.read_error`` for the job task. A restart cancels ``job.reader_scope``
        and gives the job a new streamer, so a chunk this reader still holds goes nowhere.
        """
        streamer = job.streamer
        with job.reader_scope:
            async with await trio.open_file(job.path, "rb") as file:
                # Progress is measured against the file as it is on disk (fstat does not block).
                streamer.size = os.fstat(file.fileno()).st_size
                task_status.started()
                try:
                    while True:
                        while not streamer.wants_data:
                            await job.reader_wakeup.wait()
                            job.reader_wakeup = trio.Event()
                        chunk = await file.read(READ_CHUNK_SIZE)
                        if chunk:
                            streamer.feed(chunk)
                        else:
                            streamer.feed_eof()
                        self._writer_wakeup.set()
                        self._job_wakeup.set()
                except OSError as exc:
                    job.read_error = f"Reading {job.path} failed: {exc}"
                    self._job_wakeup.set()

    def _next_job_command(self, job: _Job) -> str | None:
        command = job.streamer.next_command()
        if job.streamer.wants_data:
            job.reader_wakeup.set()
        return command

    async def _start_job(self, job: _Job) -> None:
        host = self._host
        await self._set_state(CommState.STARTING)
        await self._emit(JobStarted(job.file))
        # §10.4: a print starts with M110 N0, then file lines from N1, all numbered.
        host.printing = True
        host.enqueue("M110 N0", bounded=False)
        self._z = ZTracker()
        job.started_at = trio.current_time()
        job.streamer.paused = False
        host.job = partial(self._next_job_command, job)
        self._writer_wakeup.set()
        await self._set_state(CommState.PRINTING)

    async def _drive_job(self, job: _Job, nursery: trio.Nursery) -> None:
        """Follow requests and the streamer until the job is finished or cancelled."""
        reported = -1
        last_report = -math.inf
        while True:
            # Woken by requests, the reader (see _handle_line) and the file reader; the timeout
            # reports progress while lines stream without waking this task.
            with trio.move_on_after(PROGRESS_INTERVAL):
                await self._job_wakeup.wait()
            self._job_wakeup = trio.Event()
            now = trio.current_time()
            if job.read_error is not None:
                self._job = None
                await self._emit(self._job_failed(job, job.read_error))
                await self._set_state(CommState.OPERATIONAL)
                return
            request, job.request = job.request, None
            if request == "cancel":
                await self._cancel_job(job)
                return
            if request == "pause" and self._state is CommState.PRINTING:
                await self._pause_job(job)
            elif request == "resume" and self._state is CommState.PAUSED:
                await self._set_state(CommState.RESUMING)
                await self._emit(JobResumed())
                job.streamer.paused = False
                self._writer_wakeup.set()
                await self._set_state(CommState.PRINTING)
            elif request == "restart" and self._state is CommState.PAUSED:
                job.reader_scope.cancel()
                job.streamer = JobStreamer(0)
                job.reader_scope = trio.CancelScope()
                await nursery.start(self._read_job_file, job)
                await self._start_job(job)
            streamer = job.streamer
            if streamer.filepos != reported and now - last_report >= PROGRESS_INTERVAL:
                reported, last_report = streamer.filepos, now
                await self._emit(JobProgress(streamer.filepos, now - job.started_at))
            if self._state is CommState.PRINTING and streamer.exhausted and self._host.idle:
                await self._finish_job(job)
                return

    async def _until_idle(self) -> None:
        self._writer_wakeup.set()
        while not self._host.idle:
            await self._job_wakeup.wait()
            self._job_wakeup = trio.Event()

    async def _pause_job(self, job: _Job) -> None:
        # §10.4: M400 (wait for the buffered moves), then M114; Paused after the M114 reply.
        await self._set_state(CommState.PAUSING)
        job.streamer.paused = True
        self._position_for_job = True
        self._host.enqueue("M400", bounded=False)
        self._host.enqueue("M114", bounded=False)
        await self._until_idle()
        self._position_for_job = False
        # A cancel that came meanwhile is handled by the next round of the job loop.
        self._job_wakeup.set()
        await self._emit(JobPaused(self._position, job.streamer.filepos))
        await self._emit(PositionReported(self._position, "pause"))
        await self._set_state(CommState.PAUSED)

    async def _cancel_job(self, job: _Job) -> None:
        host = self._host
        await self._emit(JobCancelling())
        await self._set_state(CommState.CANCELLING)
        job.streamer.paused = True
        host.job = None
        # §10.4: M108 jumps the queue to end a heat-up wait, then the after-cancel script.
        host.send_now("M108")
        for command in AFTER_CANCEL_SCRIPT:
            host.enqueue(command, bounded=False)
        await self._until_idle()
        host.printing = False
        # octoprint-push.md §9.4: position logging on cancel is off by default, so all null.
        self._job = None
        await self._emit(JobCancelled(Position(), job.streamer.filepos, trio.current_time() - job.started_at))
        await self._set_state(CommState.OPERATIONAL)

    async def _finish_job(self, job: _Job) -> None:
        print_time = trio.current_time() - job.started_at
        await self._emit(JobProgress(job.streamer.size, print_time))
        # §10.4: M400 on entering Finishing.
        await self._set_state(CommState.FINISHING)
        self._host.job = None
        self._host.enqueue("M400", bounded=False)
        await self._until_idle()
        self._host.printing = False
        self._job = None
        await self._emit(JobFinished(trio.current_time() - job.started_at))
        await self._set_state(CommState.OPERATIONAL)

    def _job_failed(self, job: _Job | _SdJob, error: str) -> JobFailed:
        return JobFailed(error, job.filepos, trio.current_time() - job.started_at)

    # -- SD card prints -------------------------------------------------------------------------------------

    async def _handle_sd_line(self, line: str) -> None:
        job = self._job if isinstance(self._job, _SdJob) else None
        match self._sd.receive_line(line):
            case SdReady(ready):
                await self._emit(SdStateChanged(ready))
                if ready and self._operational:
                    self._list_sd_files()
            case SdListed(files):
                await self._emit(SdFilesListed(files))
            case SdOpened(name, size):
                selection, self._sd_selection = self._sd_selection, None
                self._sd_file = JobFile(name, name, "sdcard", size)
                await self._emit(SdFileSelected(self._sd_file, selection.user if selection else None))
                if selection is not None and selection.print_after:
                    with contextlib.suppress(PrinterNotOperational):
                        self.start_sd_print()
            case SdOpenFailed():
                self._sd_selection = None
            case SdProgress(pos) if job is not None:
                job.filepos = pos
            case SdDone() if job is not None:
                job.done = True

    async def _run_sd_job(self, job: _SdJob) -> None:
        """The SD job task: runs in the connection's nursery, so it ends with the connection.

        Cancellation (the connection ended) leaves ``self._job`` set, so that the connection's end
        can report the job as failed.
        """
        async with trio.open_nursery() as nursery:
            if not job.reporting.autoreport:
                nursery.start_soon(self._poll_sd_status)
            await self._start_sd_job(job)
            await self._drive_sd_job(job)
            nursery.cancel_scope.cancel()

    async def _poll_sd_status(self) -> None:
        """§5: without SD status autoreport, ``M27`` every ``SD_STATUS_INTERVAL`` while printing."""
        while True:
            await trio.sleep(SD_STATUS_INTERVAL)
            # Commands still waiting mean the firmware is busy (a heat-up the file started): skip
            # this poll rather than pile up M27s behind them.
            if self._state is CommState.PRINTING and self._host.queued == 0:
                self._host.enqueue(SD_STATUS_POLL)
                self._writer_wakeup.set()

    def _send_sd_commands(self, *commands: str) -> None:
        for command in commands:
            self._host.enqueue(command, bounded=False)
        self._writer_wakeup.set()

    async def _start_sd_job(self, job: _SdJob) -> None:
        await self._set_state(CommState.STARTING)
        await self._emit(JobStarted(job.file))
        job.started_at = trio.current_time()
        job.filepos = job.reported = 0
        job.done = False
        # The file may have been printed or paused before: start at its first byte.
        self._send_sd_commands("M26 S0", "M24", *job.reporting.start())
        await self._set_state(CommState.PRINTING)

    async def _drive_sd_job(self, job: _SdJob) -> None:
        """Follow requests and the firmware's reports until the job is finished or cancelled."""
        while True:
            await self._job_wakeup.wait()
            self._job_wakeup = trio.Event()
            request, job.request = job.request, None
            if request == "cancel":
                await self._cancel_sd_job(job)
                return
            if request == "pause" and self._state is CommState.PRINTING:
                await self._pause_sd_job(job)
            elif request == "resume" and self._state is CommState.PAUSED:
                await self._set_state(CommState.RESUMING)
                await self._emit(JobResumed())
                self._send_sd_commands("M24", *job.reporting.start())
                await self._set_state(CommState.PRINTING)
            elif request == "restart" and self._state is CommState.PAUSED:
                await self._start_sd_job(job)
            if self._state is CommState.PRINTING and job.done:
                await self._finish_sd_job(job)
                return
            if job.filepos != job.reported:
                await self._report_sd_progress(job, job.filepos)

    async def _report_sd_progress(self, job: _SdJob, filepos: int) -> None:
        job.reported = filepos
        await self._emit(JobProgress(filepos, trio.current_time() - job.started_at))

    async def _pause_sd_job(self, job: _SdJob) -> None:
        # M25 stops the firmware reading the file; then, as for a streamed job (§10.4), M400 and
        # M114 for the position to report.
        await self._set_state(CommState.PAUSING)
        self._position_for_job = True
        self._send_sd_commands("M25", *job.reporting.stop(), "M400", "M114")
        await self._until_idle()
        self._position_for_job = False
        # A cancel that came meanwhile is handled by the next round of the job loop.
        self._job_wakeup.set()
        await self._emit(JobPaused(self._position, job.filepos))
        await self._emit(PositionReported(self._position, "pause"))
        await self._set_state(CommState.PAUSED)

    async def _cancel_sd_job(self, job: _SdJob) -> None:
        await self._emit(JobCancelling())
        await self._set_state(CommState.CANCELLING)
        # M108 ends a heat-up the file started; then OctoPrint's SD cancel, M25 and M26 S0 (the
        # firmware forgets where it was), and the after-cancel script (§10.4).
        self._host.send_now("M108")
        self._send_sd_commands("M25", "M26 S0", *job.reporting.stop(), *AFTER_CANCEL_SCRIPT)
        await self._until_idle()
        self._job = None
        await self._emit(JobCancelled(Position(), job.filepos, trio.current_time() - job.started_at))
        await self._set_state(CommState.OPERATIONAL)

    async def _finish_sd_job(self, job: _SdJob) -> None:
        end = job.file.size or job.filepos
        if job.reported != end:
            # The last report may have come before the end of the file: the progress ends at 100 %.
            await self._report_sd_progress(job, end)
        # §10.4: M400 on entering Finishing.
        await self._set_state(CommState.FINISHING)
        self._send_sd_commands(*job.reporting.stop(), "M400")
        await self._until_idle()
        self._job = None
        await self._emit(JobFinished(trio.current_time() - job.started_at))
        await self._set_state(CommState.OPERATIONAL)

    # -- events ---------------------------------------------------------------------------------------------

    async def _set_state(self, state: CommState, error: str = "") -> None:
        self._state = state
        await self._emit(StateChanged(state, error))

    async def _emit(self, event: PrinterEvent) -> None:
        # Waiting here is the intended backpressure: a slow consumer slows the reader, and the
        # serial port's own buffer absorbs the rest. Only a full channel waits: ``send`` is a
        # checkpoint even when there is room, a trip through the scheduler for every line sent and
        # received, which cost more than the rest of a line's work. The reader and writer loops
        # checkpoint in their own waits.
        try:
            self._events.send_nowait(event)
        except trio.WouldBlock:
            await self._events.send(event)

    def _emit_nowait(self, event: PrinterEvent) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self._events.send_nowait(event)


async def run_printer_link(
    port: str,
    baudrate: int,
    events: trio.MemorySendChannel[PrinterEvent],
    *,
    window: int = 1,
    task_status: trio.TaskStatus[PrinterLink] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Connect to the Marlin printer on serial ``port`` and talk to it until it goes away.

    Start it with ``link = await nursery.start(run_printer_link, port, baudrate, events)``. The
    handle is handed over at once, before the port is opened, so that a port that cannot be
    opened is reported like any other failure. ``send_command`` works once the link reported
    ``StateChanged(OPERATIONAL)``. ``window`` is how many commands may await their ok (§2).

    Events go to ``events`` (bounded; the link waits when it is full): ``Connecting``,
    ``StateChanged`` OPEN_SERIAL, CONNECTING, OPERATIONAL, ``Connected``, ``FirmwareInfo``, and for
    every line ``TerminalLine`` (``Send: ...``/``Recv: ...``), ``FirmwareMessage`` (anything but a
    plain ``ok``), ``TemperatureReport``, ``PositionReported``, ``ActionCommand``, ``PrinterReset``;
    ``SdStateChanged`` and ``SdFilesListed`` as the firmware reports its SD card; the job events as
    ``PrinterLink.start_print`` and ``start_sd_print`` describe. Keep the receive end open while the
    link runs: a closed receiver makes sends fail with ``trio.BrokenResourceError``. The caller owns
    ``events``.

    When the device disappears, the firmware's resend requests cannot be served, it stops answering
    or reports a fatal error, the link sends ``StateChanged(ERROR)``, ``LinkError``, (``GcodeSent
    ("M112")`` after a fatal firmware error, whose M112 and heaters-off lines are written first),
    ``JobFailed`` if a job ran, ``Disconnected``, ``StateChanged(CLOSED_WITH_ERROR)`` and returns
    normally: the failure is never raised.

    On cancellation (server shutdown) the port is closed, shielded and within ``CLOSE_TIMEOUT``, and
    ``Disconnected`` and ``StateChanged(OFFLINE)`` are sent only if the channel has room right away,
    so shutdown never waits for a slow consumer.
    """
    link = PrinterLink(port, baudrate, events, window=window)
    task_status.started(link)
    await link._run()


class PrinterService:
    """The printer controller: connect and disconnect at any time, drive jobs, send commands.

    Start it with ``service = await nursery.start(run_printer_service, events)``; it runs until
    cancelled, and each connection runs as a task in its own nursery. Every method other than
    ``connect`` and ``disconnect`` returns at once and reports what happens as events; they raise
    ``PrinterNotOperational`` (REST: 409) when the printer cannot take them now.
    """

    def __init__(
        self,
        events: trio.MemorySendChannel[PrinterEvent],
        nursery: trio.Nursery,
        *,
        default_port: str | None,
        default_baudrate: int,
        window: int,
    ) -> None:
        self.default_port = default_port
        """The port ``connect`` uses when given none (the built-in printer's pty, or ``--serial``)."""
        self.default_baudrate = default_baudrate
        self._events = events
        self._nursery = nursery
        self._window = window
        self._link: PrinterLink | None = None
        self._lock = trio.Lock()

    @property
    def link(self) -> PrinterLink | None:
        """The current connection, if there is one (it may be ending)."""
        return self._link

    @property
    def state(self) -> CommState:
        """The connection's state (``OFFLINE`` without a connection; after an error, until the
        next ``connect``, ``CLOSED_WITH_ERROR``)."""
        return self._link.state if self._link is not None else CommState.OFFLINE

    @property
    def port(self) -> str | None:
        """The port of the current (or last) connection."""
        return self._link.port if self._link is not None else None

    @property
    def baudrate(self) -> int | None:
        """The baud rate of the current (or last) connection."""
        return self._link.baudrate if self._link is not None else None

    @property
    def operational(self) -> bool:
        """True while connected and the firmware answers (printing included)."""
        return self._link is not None and self._link.operational

    @property
    def resends(self) -> ResendStats:
        """OctoPrint's ``resends`` counters of the current connection (zeros without one)."""
        return self._link.resends if self._link is not None else ResendStats()

    async def connect(self, port: str | None = None, baudrate: int | None = None) -> None:
        """Open ``port`` at ``baudrate`` and start talking; a running connection is closed first.

        None picks ``default_port`` / ``default_baudrate``; raises ``PrinterNotOperational`` when
        there is no port to pick.
        Returns once the connection task started (before the firmware answered): follow the
        ``StateChanged`` events. A port that cannot be opened is reported as events
        (``LinkError`` reason ``connection``). Cancellation while the old connection closes leaves
        the service without a connection.
        """
        port = port if port is not None else self.default_port
        if port is None:
            raise PrinterNotOperational("No serial port to connect to")
        baudrate = baudrate if baudrate is not None else self.default_baudrate
        async with self._lock:
            await self._disconnect()
            self._link = await self._nursery.start(
                partial(run_printer_link, port, baudrate, self._events, window=self._window)
            )

    async def disconnect(self) -> None:
        """Close the connection politely (``Disconnecting`` … ``StateChanged(OFFLINE)``) and wait
        until it is closed; nothing happens without a connection."""
        async with self._lock:
            await self._disconnect()

    async def _disconnect(self) -> None:
        link = self._link
        if link is not None:
            link.disconnect()
            await link.ended.wait()

    def send_command(self, command: str) -> None:
        """See ``PrinterLink.send_command``."""
        self._current().send_command(command)

    def send_commands(self, commands: Iterable[str]) -> None:
        """See ``PrinterLink.send_commands``."""
        self._current().send_commands(commands)

    def set_temperature(self, heater: str, target: float) -> None:
        """See ``PrinterLink.set_temperature``."""
        self._current().set_temperature(heater, target)

    def emergency_stop(self) -> None:
        """See ``PrinterLink.emergency_stop``."""
        self._current().emergency_stop()

    def start_print(self, file: JobFile, local_path: Path) -> None:
        """See ``PrinterLink.start_print``."""
        self._current().start_print(file, local_path)

    def pause(self) -> None:
        """See ``PrinterLink.pause``."""
        self._current().pause()

    def resume(self) -> None:
        """See ``PrinterLink.resume``."""
        self._current().resume()

    def cancel(self) -> None:
        """See ``PrinterLink.cancel``."""
        self._current().cancel()

    def restart(self) -> None:
        """See ``PrinterLink.restart``."""
        self._current().restart()

    def select_sd_file(self, name: str, *, print_after: bool = False, user: str | None = None) -> None:
        """See ``PrinterLink.select_sd_file``."""
        self._current().select_sd_file(name, print_after=print_after, user=user)

    def start_sd_print(self) -> None:
        """See ``PrinterLink.start_sd_print``."""
        self._current().start_sd_print()

    def init_sd(self) -> None:
        """See ``PrinterLink.init_sd``."""
        self._current().init_sd()

    def refresh_sd(self) -> None:
        """See ``PrinterLink.refresh_sd``."""
        self._current().refresh_sd()

    def delete_sd_file(self, name: str) -> None:
        """See ``PrinterLink.delete_sd_file``."""
        self._current().delete_sd_file(name)

    async def release_sd(self) -> None:
        """See ``PrinterLink.release_sd``."""
        await self._current().release_sd()

    def _current(self) -> PrinterLink:
        if self._link is None or self._link.ended.is_set():
            raise PrinterNotOperational("Printer is not connected")
        return self._link


async def run_printer_service(
    events: trio.MemorySendChannel[PrinterEvent],
    *,
    default_port: str | None = None,
    default_baudrate: int = 115200,
    window: int = 1,
    task_status: trio.TaskStatus[PrinterService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the printer controller until cancelled; ``nursery.start`` returns the ``PrinterService``.

    Starts without a connection: call ``connect``. ``window`` is how many commands may await their
    ok (§2, default 1). On cancellation the current connection is cancelled too, which closes its
    port as ``run_printer_link`` describes.
    """
    async with trio.open_nursery() as nursery:
        service = PrinterService(
            events, nursery, default_port=default_port, default_baudrate=default_baudrate, window=window
        )
        task_status.started(service)
        await trio.sleep_forever()


async def _open_serial(port: str, baudrate: int) -> PosixSerialStream:
    stream = PosixSerialStream(port, baudrate=baudrate)
    try:
        await stream.aopen()
    except OSError as exc:
        raise PrinterDisconnected(f"Cannot open serial port {port}: {exc}") from exc
    return stream


async def _receive(stream: PosixSerialStream) -> bytes | bytearray:
    try:
        data = await stream.receive_some(RECEIVE_SIZE)
    except (OSError, trio.BrokenResourceError) as exc:
        raise PrinterDisconnected(f"Reading from the serial port failed: {exc}") from exc
    if not data:
        raise PrinterDisconnected("The serial port was closed by the device")
    return data


async def _send(stream: PosixSerialStream, data: bytes) -> None:
    """Write all of ``data``; the caller checkpoints (this waits only when the port is full).

    The port is non-blocking: writing first and waiting only when it does not take everything
    saves the epoll registration and scheduler round trip ``send_all`` makes before every write.
    Only the writer task writes, so bypassing ``send_all``'s conflict check loses nothing. (So the
    link takes POSIX ports only: ptys and /dev/tty*.)
    """
    try:
        try:
            written = os.write(stream.fd, data)
        except BlockingIOError:
            written = 0
        if written < len(data):
            await stream.send_all(data[written:])
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise PrinterDisconnected(f"Writing to the serial port failed: {exc}") from exc


async def _write_emergency_lines(stream: PosixSerialStream, lines: list[bytes]) -> None:
    # §9: M112 and heaters off go out before the port closes, whatever the window says; the
    # device may be gone already, which leaves nothing to do.
    with trio.move_on_after(CLOSE_TIMEOUT, shield=True), contextlib.suppress(PrinterDisconnected):
        await _send(stream, b"".join(lines))


async def _close(stream: PosixSerialStream) -> None:
    with trio.move_on_after(CLOSE_TIMEOUT, shield=True), contextlib.suppress(OSError):
        # The device may already be gone; closing is all that is left to do either way.
        await stream.aclose()
