"""The printer link: a trio service speaking Marlin on a serial port.

A reader task turns bytes into lines and feeds them to the sans-IO ``MarlinHost``; a writer task
sends whatever the host releases; a third task runs the conversation (handshake, M115, temperature
reporting). Reader and writer meet only in the host, plus an event that wakes the writer. What
happens is reported as ``PrinterEvent``\\ s on a bounded memory channel. Section numbers (§n) refer
to ``shared/reference/marlin-serial.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

import trio
import trio_serial

from ._events import (
    CommState,
    Connected,
    Connecting,
    Disconnected,
    FirmwareInfo,
    FirmwareMessage,
    LinkError,
    PrinterEvent,
    Reading,
    StateChanged,
    TemperatureReport,
    TerminalLine,
)
from ._host import CommandQueueFull, FirmwareReport, MarlinHost, RemoteProtocolError, ResendStats
from ._protocol import LineSplitter, Ok, TemperatureLine

# §4: the firmware prints its banner on open and may drop what arrives meanwhile; OctoPrint
# repeats the hello until an ok comes back.
HELLO_INTERVAL = 2.0
# §5: without AUTOREPORT_TEMP, poll M105 every 5 s, every 2 s while any target is above 25 °C.
# 5 s is also how long the link waits for the M115 report before it decides to poll.
POLL_INTERVAL = 5.0
POLL_INTERVAL_HEATING = 2.0
HEATING_ABOVE = 25.0
# §5: "with Cap:AUTOREPORT_TEMP:1 the host sends M155 S<2>".
AUTOREPORT_COMMAND = "M155 S2"
# Commands ``send_command`` accepts before the firmware catches up. The host queue has room for
# one more: the link's own M155 must fit even when a user filled the queue.
COMMAND_QUEUE_SIZE = 32
# Marlin lines are short (the longest are M115 and M20 lines, a few hundred bytes); anything
# longer is a device talking garbage and is cut (see LineSplitter).
MAX_LINE_LENGTH = 1024
RECEIVE_SIZE = 4096
# Closing a serial port does not wait for the device; the bound only guards against a stuck driver.
CLOSE_TIMEOUT = 1.0


class PrinterDisconnected(Exception):
    """The serial device failed or went away: opening, reading or writing raised ``OSError``, or
    the port reported end of file. Raised inside the link and reported as events, never to the caller."""


class PrinterNotOperational(Exception):
    """``send_command`` was called before the handshake completed or after the link ended."""


class PrinterLink:
    """Handle on a running printer link; ``nursery.start(run_printer_link, ...)`` returns it.

    Use ``send_command`` to queue G-code. The link's life is the ``run_printer_link`` task: cancel
    that to disconnect.
    """

    def __init__(self, port: str, baudrate: int, events: trio.MemorySendChannel[PrinterEvent]) -> None:
        self.port = port
        self.baudrate = baudrate
        self._events = events
        self._host = MarlinHost(queue_size=COMMAND_QUEUE_SIZE + 1)
        self._operational = False
        self._writer_wakeup = trio.Event()
        self._handshake_answered = trio.Event()
        self._firmware_reported = trio.Event()
        self._autoreport = False
        self._readings: Mapping[str, Reading] = {}

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
        """
        if not self._operational:
            raise PrinterNotOperational(f"printer on {self.port} is not operational")
        if self._host.queued >= COMMAND_QUEUE_SIZE:
            raise CommandQueueFull(f"{COMMAND_QUEUE_SIZE} commands already waiting for {self.port}")
        self._host.enqueue(command)
        self._writer_wakeup.set()

    async def _run(self) -> None:
        await self._emit(Connecting(self.port, self.baudrate))
        await self._emit(StateChanged(CommState.OPEN_SERIAL))
        stream: trio.abc.Stream | None = None
        reported = False
        try:
            try:
                stream = await _open_serial(self.port, self.baudrate)
            except PrinterDisconnected as exc:
                failure = LinkError(str(exc), "connection")
            else:
                await self._emit(StateChanged(CommState.CONNECTING))
                failure = await self._serve(stream)
            self._operational = False
            await self._emit(StateChanged(CommState.ERROR, failure.error))
            await self._emit(failure)
            reported = True
        finally:
            self._operational = False
            if stream is not None:
                await _close(stream)
            if not reported:
                # Cancelled (shutdown): say so if the channel has room, but never wait for it.
                self._emit_nowait(Disconnected())
                self._emit_nowait(StateChanged(CommState.OFFLINE))
        await self._emit(Disconnected())
        await self._emit(StateChanged(CommState.CLOSED_WITH_ERROR, failure.error))

    async def _serve(self, stream: trio.abc.Stream) -> LinkError:
        """Run reader, writer and conversation until one of them fails; return the failure."""
        failures: list[LinkError] = []

        async def until_failure(task: Callable[[], Awaitable[None]]) -> None:
            try:
                await task()
            except PrinterDisconnected as exc:
                failures.append(LinkError(str(exc), "connection"))
                nursery.cancel_scope.cancel()
            except RemoteProtocolError as exc:
                failures.append(LinkError(exc.error, exc.reason, "disconnect"))
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(until_failure, partial(self._read, stream))
            nursery.start_soon(until_failure, partial(self._write, stream))
            nursery.start_soon(until_failure, self._converse)
        return failures[0]

    async def _read(self, stream: trio.abc.Stream) -> None:
        splitter = LineSplitter(MAX_LINE_LENGTH)
        while True:
            for line in splitter.feed(await _receive(stream)):
                if line:
                    await self._handle_line(line)

    async def _handle_line(self, line: str) -> None:
        await self._emit(TerminalLine(f"Recv: {line}"))
        results = self._host.receive_line(line)
        self._writer_wakeup.set()
        for result in results:
            match result:
                case FirmwareReport(name, data, capabilities):
                    self._autoreport = capabilities.get("AUTOREPORT_TEMP", False)
                    self._firmware_reported.set()
                    await self._emit(FirmwareInfo(name, data, capabilities))
                case Ok(data, readings):
                    self._handshake_answered.set()
                    if data:
                        await self._emit(FirmwareMessage(line))
                    if readings:
                        await self._report_temperatures(readings)
                case TemperatureLine(readings):
                    await self._emit(FirmwareMessage(line))
                    await self._report_temperatures(readings)
                case _:
                    await self._emit(FirmwareMessage(line))

    async def _report_temperatures(self, readings: Mapping[str, Reading]) -> None:
        self._readings = readings
        await self._emit(TemperatureReport(readings))

    async def _write(self, stream: trio.abc.Stream) -> None:
        while True:
            line = self._host.next_line_to_send()
            if line is None:
                await self._writer_wakeup.wait()
                self._writer_wakeup = trio.Event()
                continue
            await self._emit(TerminalLine(f"Send: {line.decode('ascii').rstrip()}"))
            await _send(stream, line)

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
        await self._emit(StateChanged(CommState.OPERATIONAL))
        await self._emit(Connected(self.port, self.baudrate))
        with trio.move_on_after(POLL_INTERVAL):
            await self._firmware_reported.wait()
        if self._autoreport:
            self._host.enqueue(AUTOREPORT_COMMAND)
            self._writer_wakeup.set()
            return
        while True:
            # A full queue means the firmware is busy; skip this poll rather than pile up M105s.
            with contextlib.suppress(CommandQueueFull):
                self._host.enqueue("M105")
                self._writer_wakeup.set()
            heating = any(r.target is not None and r.target > HEATING_ABOVE for r in self._readings.values())
            await trio.sleep(POLL_INTERVAL_HEATING if heating else POLL_INTERVAL)

    async def _emit(self, event: PrinterEvent) -> None:
        # Waiting here is the intended backpressure: a slow consumer slows the reader, and the
        # serial port's own buffer absorbs the rest.
        await self._events.send(event)

    def _emit_nowait(self, event: PrinterEvent) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self._events.send_nowait(event)


async def run_printer_link(
    port: str,
    baudrate: int,
    events: trio.MemorySendChannel[PrinterEvent],
    *,
    task_status: trio.TaskStatus[PrinterLink] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Connect to the Marlin printer on serial ``port`` and talk to it until it goes away.

    Start it with ``link = await nursery.start(run_printer_link, port, baudrate, events)``. The
    handle is handed over at once, before the port is opened, so that a port that cannot be
    opened is reported like any other failure. ``send_command`` works once the link reported
    ``StateChanged(OPERATIONAL)``.

    Events go to ``events`` (bounded; the link waits when it is full): ``Connecting``,
    ``StateChanged`` OPEN_SERIAL, CONNECTING, OPERATIONAL, ``Connected``, ``FirmwareInfo``, and for
    every line ``TerminalLine`` (``Send: ...``/``Recv: ...``), ``FirmwareMessage`` (anything but a
    plain ``ok``) and ``TemperatureReport``. Keep the receive end open while the link runs: a
    closed receiver makes sends fail with ``trio.BrokenResourceError``. The caller owns ``events``.

    When the device disappears or the firmware's resend requests cannot be served, the link
    sends ``StateChanged(ERROR)``, ``LinkError``, ``Disconnected``,
    ``StateChanged(CLOSED_WITH_ERROR)`` and returns normally: the failure is never raised.

    On cancellation (disconnect or server shutdown) the port is closed, shielded and within
    ``CLOSE_TIMEOUT``, and ``Disconnected`` and ``StateChanged(OFFLINE)`` are sent only if the
    channel has room right away, so shutdown never waits for a slow consumer.
    """
    link = PrinterLink(port, baudrate, events)
    task_status.started(link)
    await link._run()


async def _open_serial(port: str, baudrate: int) -> trio.abc.Stream:
    stream = trio_serial.SerialStream(port, baudrate=baudrate)
    try:
        await stream.aopen()
    except OSError as exc:
        raise PrinterDisconnected(f"Cannot open serial port {port}: {exc}") from exc
    return stream


async def _receive(stream: trio.abc.Stream) -> bytes | bytearray:
    try:
        data = await stream.receive_some(RECEIVE_SIZE)
    except (OSError, trio.BrokenResourceError) as exc:
        raise PrinterDisconnected(f"Reading from the serial port failed: {exc}") from exc
    if not data:
        raise PrinterDisconnected("The serial port was closed by the device")
    return data


async def _send(stream: trio.abc.Stream, line: bytes) -> None:
    try:
        await stream.send_all(line)
    except (OSError, trio.BrokenResourceError) as exc:
        raise PrinterDisconnected(f"Writing to the serial port failed: {exc}") from exc


async def _close(stream: trio.abc.Stream) -> None:
    with trio.move_on_after(CLOSE_TIMEOUT, shield=True), contextlib.suppress(OSError):
        # The device may already be gone; closing is all that is left to do either way.
        await stream.aclose()
