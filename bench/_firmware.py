"""A tiny Marlin stand-in on a pty for the benchmarks: ``python -m bench._firmware``.

It answers every line with ``ok`` at once, or, with ``--baud``, as a wire at that rate would let
it (marlin-serial.md §12): a line crosses the host-to-printer direction at 10 bits a byte, one after
the other, starting when the host wrote it and the wire is free; its ``ok`` then crosses the other
direction the same way, and the line counts as received when its ``ok`` goes out. So a host that
writes ahead (an ok window above 1) keeps the wire busy, but nothing gets through faster than the
wire. Execution is instant, so the firmware itself never holds more than the line on the wire: a
real Marlin's 128-byte receive buffer and BUFSIZE 4 command slots never overflow here. What a
host could do that a real Marlin would not take is write more than BUFSIZE lines ahead; the
``in_flight_max`` statistic (the most lines the host had written that were not answered yet)
shows whether it did. So what a benchmark measures is the host's own overhead, or its share of
the wire, not a simulator's. It knows
just enough Marlin for OctoPrint's and octotrio's handshakes (marlin-serial.md §4–§6): ``M115``
reports ``Cap:AUTOREPORT_TEMP:1``, ``M105`` answers ``ok T:... B:...``. With
``--report-interval`` it prints a temperature line that often while connected, a steady source of
``current`` updates for the push benchmarks; each report's values differ, so every log line is unique.

Protocol with the runner: the first stdout line is the pty path. Each ``stats`` line on stdin is
answered with one JSON line ``{"lines", "bytes", "moves", "in_flight_max", "time"}`` (received
totals, see above, and ``time.monotonic()``). It exits at end of stdin.

It is synchronous on purpose: ``select`` waits with microsecond resolution, where an event loop's
timers round to milliseconds, which matters for 1.6 ms wire times.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
import tty
from collections import deque

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
        """When the host-to-printer direction has carried every line received so far."""
        self.reply_free_at = 0.0
        """When the printer-to-host direction has carried every reply so far."""
        self.replies: deque[tuple[float, bytes, int]] = deque()
        """Replies on the simulated wire, in order: when they reach the host, the reply, and the
        size of the line they answer."""
        self.pending = b""
        self.lines = 0
        self.bytes = 0
        self.moves = 0
        self.in_flight_max = 0
        self.report_count = 0
        self.next_report = float("inf")
        """No reports until a host spoke: nobody would read them, and they would fill the pty."""
        self.dropped_reports = 0

    @property
    def next_reply(self) -> float:
        """When the oldest reply on the wire is due (infinity without one)."""
        return self.replies[0][0] if self.replies else float("inf")

    def receive(self, data: bytes, now: float) -> None:
        self.pending += data
        *complete, self.pending = self.pending.split(b"\n")
        lines = [(raw, line) for raw in complete if (line := raw.strip())]
        if not lines:
            return
        if self.report_interval and self.next_report == float("inf"):
            self.next_report = now + self.report_interval
        self.in_flight_max = max(self.in_flight_max, len(self.replies) + len(lines))
        if not self.wire_seconds_per_byte:
            self.lines += len(lines)
            self.bytes += sum(len(raw) + 1 for raw, _ in lines)
            self.write(b"".join(self.answer(line) for _, line in lines))
            return
        for raw, line in lines:
            size = len(raw) + 1
            # The line starts on the wire when the host wrote it (now) or when the line before it
            # has crossed, whichever is later; the ok leaves when the line has arrived.
            per_byte = self.wire_seconds_per_byte
            self.wire_free_at = max(self.wire_free_at, now) + size * per_byte
            reply = self.answer(line)
            self.reply_free_at = max(self.reply_free_at, self.wire_free_at) + len(reply) * per_byte
            self.replies.append((self.reply_free_at, reply, size))

    def send_due_replies(self, now: float) -> None:
        """Write the replies that have crossed the wire by ``now``; their lines count as received."""
        due: list[bytes] = []
        while self.replies and self.replies[0][0] <= now:
            _, reply, size = self.replies.popleft()
            due.append(reply)
            self.lines += 1
            self.bytes += size
        if due:
            self.write(b"".join(due))

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
            {
                "lines": self.lines,
                "bytes": self.bytes,
                "moves": self.moves,
                "in_flight_max": self.in_flight_max,
                "time": time.monotonic(),
            }
        )


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
        timeout = max(0.0, min(firmware.next_report, firmware.next_reply) - time.monotonic())
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
        firmware.send_due_replies(time.monotonic())
        firmware.report_if_due(now)


if __name__ == "__main__":
    main()
