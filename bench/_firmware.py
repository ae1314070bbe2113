"""A tiny Marlin stand-in on a pty for the benchmarks: ``python -m bench._firmware``.

It answers every line with ``ok`` at once (or after the line's time on a simulated wire with
``--baud``), so what a benchmark measures is the host's own overhead, not a simulator's. It knows
just enough Marlin for OctoPrint's and octotrio's handshakes (marlin-serial.md §4–§6): ``M115``
reports ``Cap:AUTOREPORT_TEMP:1``, ``M105`` answers ``ok T:... B:...``. With
``--report-interval`` it prints a temperature line that often while connected, a steady source of
``current`` updates for the push benchmarks; each report's values differ, so every log line is unique.

Protocol with the runner: the first stdout line is the pty path. Each ``stats`` line on stdin is
answered with one JSON line ``{"lines", "bytes", "moves", "time"}`` (received totals and
``time.monotonic()``). It exits at end of stdin.

It is synchronous on purpose: ``time.sleep`` and ``select`` wait with microsecond resolution,
where an event loop's timers round to milliseconds, which matters for 1.6 ms wire times.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
import tty

BITS_PER_BYTE = 10
"""8N1 framing: start bit, 8 data bits, stop bit (marlin-serial.md §12)."""
OK = b"ok\n"
FIRMWARE_INFO = (
    b"FIRMWARE_NAME:Marlin bench (octotrio bench firmware) SOURCE_CODE_URL:none PROTOCOL_VERSION:1.0 "
    b"MACHINE_TYPE:bench EXTRUDER_COUNT:1\nCap:AUTOREPORT_TEMP:1\nCap:EMERGENCY_PARSER:0\n"
)
READ_SIZE = 65536


class BenchFirmware:
    """The firmware's state: counters, the simulated wire, the periodic report."""

    def __init__(self, master_fd: int, baud: int, report_interval: float) -> None:
        self.fd = master_fd
        self.wire_seconds_per_byte = BITS_PER_BYTE / baud if baud else 0.0
        self.report_interval = report_interval
        self.wire_free_at = 0.0
        self.pending = b""
        self.lines = 0
        self.bytes = 0
        self.moves = 0
        self.report_count = 0
        self.next_report = float("inf")
        """No reports until a host spoke: nobody would read them, and they would fill the pty."""
        self.dropped_reports = 0

    def receive(self, data: bytes, now: float) -> None:
        self.pending += data
        *complete, self.pending = self.pending.split(b"\n")
        replies: list[bytes] = []
        for raw in complete:
            line = raw.strip()
            if not line:
                continue
            self.lines += 1
            if self.report_interval and self.next_report == float("inf"):
                self.next_report = now + self.report_interval
            self.bytes += len(raw) + 1
            if self.wire_seconds_per_byte:
                # One line at a time on the wire: it starts when the wire is free and the host wrote it.
                self.wire_free_at = max(self.wire_free_at, now) + (len(raw) + 1) * self.wire_seconds_per_byte
                # Reply timing: the ok's own bytes travel on the other (idle) direction of the wire.
                self._sleep_until(self.wire_free_at + len(OK) * self.wire_seconds_per_byte)
                self.write(self.answer(line))
            else:
                replies.append(self.answer(line))
        if replies:
            self.write(b"".join(replies))

    def write(self, data: bytes) -> None:
        """Write all of ``data``, waiting while the pty is full (the host is not reading)."""
        while data:
            try:
                data = data[os.write(self.fd, data) :]
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)

    def answer(self, line: bytes) -> bytes:
        command = _strip_line_number(line)
        if command.startswith((b"G0", b"G1")):
            self.moves += 1
            return OK
        if command.startswith(b"M115"):
            return FIRMWARE_INFO + OK
        if command.startswith(b"M105"):
            return b"ok " + self.temperatures() + b"\n"
        return OK

    def temperatures(self) -> bytes:
        self.report_count += 1
        wobble = (self.report_count % 100) / 100
        return f"T:{21.0 + wobble:.2f} /0.00 B:{20.0 + wobble:.2f} /0.00 @:0 B@:0".encode("ascii")

    def report_if_due(self, now: float) -> None:
        if now >= self.next_report:
            self.next_report = now + self.report_interval
            try:
                os.write(self.fd, self.temperatures() + b"\n")
            except BlockingIOError:
                # The host stopped reading (it disconnected): a lost report harms nobody.
                self.dropped_reports += 1

    def stats(self) -> str:
        return json.dumps(
            {"lines": self.lines, "bytes": self.bytes, "moves": self.moves, "time": time.monotonic()}
        )

    @staticmethod
    def _sleep_until(deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _strip_line_number(line: bytes) -> bytes:
    """``N12 G1 X1*97`` → ``G1 X1``: the firmware does not check checksums, it only needs the command."""
    if line.startswith(b"N"):
        line = line.split(b" ", 1)[1] if b" " in line else b""
    return line.split(b"*", 1)[0].strip()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._firmware", description=__doc__)
    parser.add_argument("--baud", type=int, default=0, help="simulate this baud's wire time (0: instant)")
    parser.add_argument(
        "--report-interval", type=float, default=0.0, help="seconds between temperature reports (0: none)"
    )
    args = parser.parse_args()
    # The slave end stays open here too, so the master never sees EIO between two hosts.
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    firmware = BenchFirmware(master, args.baud, args.report_interval)
    print(os.ttyname(slave), flush=True)
    stdin = sys.stdin.fileno()
    watching = [master, stdin]
    while True:
        timeout = max(0.0, firmware.next_report - time.monotonic())
        readable, _, _ = select.select(watching, [], [], min(timeout, 1.0))
        now = time.monotonic()
        if master in readable:
            try:
                data = os.read(master, READ_SIZE)
            except BlockingIOError:
                data = b""
            if data:
                firmware.receive(data, now)
        if stdin in readable:
            command = sys.stdin.readline()
            if not command:
                return
            if command.strip() == "stats":
                print(firmware.stats(), flush=True)
        firmware.report_if_due(now)


if __name__ == "__main__":
    main()
