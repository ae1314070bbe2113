"""Run the virtual firmware on a pty: the thin I/O adapter around ``VirtualMarlin``."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import math
import os
import termios
import tty
from collections.abc import Awaitable, Callable

import trio

from ._firmware import FirmwareOptions, VirtualMarlin

_IDLE_SPEED = termios.B50
"""The line speed the printer sets on its side of the pty after each open it noticed: a host
opening the device sets its own baud rate, which is how the printer notices the next open (a pty
has no DTR). No host asks for 50 baud."""
_TIOCVHANGUP = 0x5437
"""Linux's ioctl that hangs up every open handle of a tty (Python's termios does not name it)."""


async def run_virtual_printer(
    options: FirmwareOptions | None = None,
    *,
    link_path: str | None = None,
    record_path: str | None = None,
    baudrate: int | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Simulate a Marlin printer on a new pty until cancelled.

    Start it with ``path = await nursery.start(run_virtual_printer, ...)``: ``path`` is the device
    a host should open like a serial port (any baud rate works). With ``link_path`` a symlink to
    the device is created there (atomically replacing whatever was at that path) and that path is
    reported instead; the link is removed on exit if it still points at this printer.

    The printer keeps its own handle on the device open, so a host may open, close and reopen it
    at any time; the firmware is not reset by that (its banner is sent once, at start), except
    after it was killed (``M112``, a fatal fault): then a host opening the device resets it, as
    the DTR pulse of opening a real port resets a real board. The open is noticed by the line
    speed the host sets, when its first bytes arrive. What it writes while no host has
    the device open (the banner, ``wait`` lines) waits in the pty's buffer for the next host to
    read; once that buffer is full the printer stops reading too. A ``disconnect`` fault hangs up
    every host handle (they read end of file) and resets the firmware.

    ``record_path``: every executed line is appended to this file (``N<n> <command>`` or the plain
    command), flushed as it goes. ``baudrate``: pace the transfers to ``baudrate / 10`` bytes per
    second (8N1 framing, marlin-serial.md §12) instead of pty speed.

    Cancellation closes both ends of the pty: a host still holding the device open then reads
    end of file or gets an error, as if the printer had been unplugged.
    """
    options = options if options is not None else FirmwareOptions()
    if record_path is not None:
        options = dataclasses.replace(options, record=True)
    master, slave = os.openpty()
    stream = trio.lowlevel.FdStream(master)  # owns (and closes) the master fd from here on
    port = _Port(slave, os.ttyname(slave))
    try:
        tty.setraw(slave)
        if link_path is not None:
            _link_atomically(port.device, link_path)
        try:
            async with contextlib.AsyncExitStack() as stack:
                record = None
                if record_path is not None:
                    file = await stack.enter_async_context(await trio.open_file(record_path, "a"))

                    async def record(lines: list[str]) -> None:
                        await file.write("".join(f"{line}\n" for line in lines))
                        await file.flush()

                # 8N1: 10 bits on the wire per byte (marlin-serial.md §12).
                bytes_per_second = baudrate / 10 if baudrate else math.inf
                firmware = VirtualMarlin(options, now=trio.current_time())
                task_status.started(port.device if link_path is None else link_path)
                await _pump(stream, port, options, firmware, bytes_per_second, record)
        finally:
            if link_path is not None:
                _unlink_if_pointing_at(link_path, port.device)
    finally:
        await trio.aclose_forcefully(stream)
        os.close(port.slave)


class _Port:
    """The printer's own handle on the pty's device side."""

    def __init__(self, slave: int, device: str) -> None:
        self.slave = slave
        self.device = device

    def hang_up(self) -> None:
        """Hang up every handle of the device (hosts read end of file) and take a fresh one."""
        fcntl.ioctl(self.slave, _TIOCVHANGUP)
        os.close(self.slave)
        self.slave = os.open(self.device, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.slave)
        self.set_idle_speed()

    def set_idle_speed(self) -> None:
        attributes = termios.tcgetattr(self.slave)
        attributes[4] = attributes[5] = _IDLE_SPEED
        termios.tcsetattr(self.slave, termios.TCSANOW, attributes)

    def reopened(self) -> bool:
        """A host set its line speed since ``set_idle_speed``: the device was opened."""
        return bool(termios.tcgetattr(self.slave)[4] != _IDLE_SPEED)


async def _pump(
    stream: trio.lowlevel.FdStream,
    port: _Port,
    options: FirmwareOptions,
    firmware: VirtualMarlin,
    bytes_per_second: float,
    record: Callable[[list[str]], Awaitable[None]] | None,
) -> None:
    """Move bytes between the pty and the firmware, waking for its deadlines; never returns.

    With pacing, each transfer takes the time its bytes need at ``bytes_per_second`` before the
    next one starts; the two directions share that time (simpler than a full-duplex wire, and
    never faster than one).
    """
    port.set_idle_speed()
    while True:
        if record is not None and (executed := firmware.take_executed()):
            await record(executed)
        outgoing = firmware.data_to_send()
        if outgoing:
            # The bytes arrive once the wire has carried them.
            await trio.sleep(len(outgoing) / bytes_per_second)
            await stream.send_all(outgoing)
        if firmware.hangup_requested:
            port.hang_up()
            firmware = VirtualMarlin(options, now=trio.current_time())
            continue
        if firmware.reset_requested:
            firmware = VirtualMarlin(options, now=trio.current_time())
            continue
        deadline = firmware.next_deadline()
        capacity = firmware.receive_capacity
        received = b""
        with trio.move_on_at(math.inf if deadline is None else deadline):
            if capacity == 0:
                # The firmware's buffer is full: leave the bytes in the kernel's until a
                # waiting command finishes, which holds the host back.
                await trio.sleep_forever()
            received = await stream.receive_some(capacity)
            if not received:
                # We hold the slave open, so the master cannot see end of file.
                raise RuntimeError("the pty master reported end of file")
        reopened = port.reopened()
        if reopened:
            port.set_idle_speed()
            if firmware.killed:
                # Opening the port resets a killed board (DTR); checked before the host's first
                # bytes reach the firmware, so its hello meets the fresh one.
                firmware = VirtualMarlin(options, now=trio.current_time())
        if received:
            await trio.sleep(len(received) / bytes_per_second)
            firmware.receive_data(received, trio.current_time())
        else:
            firmware.advance(trio.current_time())
        if reopened and firmware.killed:
            # The last host's M112 came in the same read as the reopen (it closed the port right
            # after writing it): the open still resets the board. The next host's first bytes
            # went to the killed one; it repeats its hello until an answer comes (§4).
            firmware = VirtualMarlin(options, now=trio.current_time())


def _link_atomically(target: str, link_path: str) -> None:
    temporary = f"{link_path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    os.symlink(target, temporary)
    os.replace(temporary, link_path)


def _unlink_if_pointing_at(link_path: str, target: str) -> None:
    # Another printer may have taken the link over meanwhile; leave its link alone.
    with contextlib.suppress(OSError):
        if os.readlink(link_path) == target:
            os.unlink(link_path)
