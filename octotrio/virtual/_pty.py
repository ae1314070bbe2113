"""Run the virtual firmware on a pty: the thin I/O adapter around ``VirtualMarlin``."""

from __future__ import annotations

import contextlib
import math
import os
import tty

import trio

from ._firmware import FirmwareOptions, VirtualMarlin


async def run_virtual_printer(
    options: FirmwareOptions | None = None,
    *,
    link_path: str | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Simulate a Marlin printer on a new pty until cancelled.

    Start it with ``path = await nursery.start(run_virtual_printer, ...)``: ``path`` is the device
    a host should open like a serial port (any baud rate works). With ``link_path`` a symlink to
    the device is created there (atomically replacing whatever was at that path) and that path is
    reported instead; the link is removed on exit if it still points at this printer.

    The printer keeps its own handle on the device open, so a host may open, close and reopen it
    at any time; the firmware is not reset by that (its banner is sent once, at start). What it
    writes while no host has the device open (the banner, ``wait`` lines) waits in the pty's
    buffer for the next host to read; once that buffer is full the printer stops reading too.

    Cancellation closes both ends of the pty: a host still holding the device open then reads
    end of file or gets an error, as if the printer had been unplugged.
    """
    master, slave = os.openpty()
    stream = trio.lowlevel.FdStream(master)  # owns (and closes) the master fd from here on
    try:
        tty.setraw(slave)
        device = os.ttyname(slave)
        if link_path is not None:
            _link_atomically(device, link_path)
        try:
            firmware = VirtualMarlin(options, now=trio.current_time())
            task_status.started(device if link_path is None else link_path)
            await _pump(stream, firmware)
        finally:
            if link_path is not None:
                _unlink_if_pointing_at(link_path, device)
    finally:
        await trio.aclose_forcefully(stream)
        os.close(slave)


async def _pump(stream: trio.lowlevel.FdStream, firmware: VirtualMarlin) -> None:
    """Move bytes between the pty and the firmware, waking for its deadlines; never returns."""
    while True:
        outgoing = firmware.data_to_send()
        if outgoing:
            await stream.send_all(outgoing)
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
        if received:
            firmware.receive_data(received, trio.current_time())
        else:
            firmware.advance(trio.current_time())


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
