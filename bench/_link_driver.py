"""Stream G-code through octotrio's printer link as fast as it takes it.

``python -m bench._link_driver PTY BAUD OK_WINDOW``.

The serial benchmark's stand-in for a print while octotrio has no job API: it runs
``octotrio.printer.run_printer_link`` (the public API of ``octotrio.printer``) and keeps its command
queue full. Run it so that ``octotrio`` is imported from the tree under test (see
``bench._serial.link_driver``); it prints
``operational`` once the handshake is done and runs until killed. Its printer events are drained
and dropped: no aggregator, no HTTP, only the link's own overhead.
"""

from __future__ import annotations

import sys
from functools import partial

import trio

from bench._gcode import moves
from octotrio.printer import CommandQueueFull, PrinterEvent, run_printer_link

EVENT_BUFFER = 256
"""As the server's printer-event channel (octotrio/app.py)."""


async def main(port: str, baudrate: int, ok_window: int) -> None:
    send, receive = trio.open_memory_channel[PrinterEvent](EVENT_BUFFER)
    commands = moves()
    announced = False
    async with trio.open_nursery() as nursery:
        link = await nursery.start(partial(run_printer_link, port, baudrate, send, window=ok_window))
        async for _event in receive:
            if not link.operational:
                continue
            if not announced:
                print("operational", flush=True)
                announced = True
            try:
                while True:
                    link.send_command(next(commands))
            except CommandQueueFull:
                pass


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
