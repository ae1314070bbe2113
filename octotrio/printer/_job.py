"""Print jobs, sans-IO: the G-code file as a stream of commands, and what sending them means.

``JobStreamer`` turns the bytes of a G-code file, fed in chunks as they are read, into the
commands to send (comments and blank lines stripped) and knows how far into the file the host
got (``filepos``, in bytes, for the progress). It holds at most ``BUFFER_HIGH_WATER`` bytes of
commands not yet sent, whatever the file's size. ``ZTracker`` follows Z through the G0/G1
moves the host sends (``ZChange``), and ``event_gcode`` names the commands that have an event of
their own (octoprint-push.md §9.3). The trio side is ``_link.py``; section numbers (§n) refer to
``shared/reference/marlin-serial.md``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from ._events import ZChanged
from ._host import command_code

READ_CHUNK_SIZE = 64 * 1024
"""Bytes read from the file at a time: large enough that reading costs little per line, small
enough that a thread read returns quickly."""
BUFFER_HIGH_WATER = 2 * READ_CHUNK_SIZE
"""Commands waiting in memory, in bytes; reading stops above it (memory stays bounded)."""
MAX_LINE_LENGTH = 1024
"""A G-code line longer than this is no G-code (Marlin's own limit is 96 bytes): it is skipped."""

# octoprint-push.md §9.3: G-codes whose sending fires an event (Home, EStop, Dwelling, ...).
EVENT_GCODES = frozenset(
    {
        "G28",
        "M112",
        "G4",
        "M80",
        "M81",
        "M0",
        "M1",
        "M226",
        "M245",
        "M300",
        "M240",
        "M40",
        "M600",
        "M701",
        "M702",
    }
)
_Z_PARAMETER = re.compile(r"\bZ\s*([-+]?(?:\d+\.?\d*|\.\d+))", re.IGNORECASE)


def event_gcode(command: str) -> str | None:
    """The command word when sending ``command`` fires an event of its own (§9.3), else None."""
    code = command_code(command)
    return code if code in EVENT_GCODES else None


def strip_gcode(raw: bytes) -> str | None:
    """The command on one file line, without comment and surrounding blanks; None if there is none
    or it cannot be sent (not ASCII, or a ``*`` that would end the checksummed part early)."""
    text = raw.split(b";", 1)[0].strip()
    if not text or not text.isascii() or b"*" in text:
        return None
    return text.decode("ascii")


@dataclass(frozen=True, slots=True)
class _Line:
    command: str
    end: int
    """File position just after this line's newline."""


class JobStreamer:
    """The commands of one G-code file, in order, with the file position each one ends at.

    Feed it with ``feed(chunk)`` while ``wants_data`` and ``feed_eof()`` at the end of the file;
    take commands with ``next_command()`` (the host's job source). ``paused`` stops the flow
    without losing anything; to start again from the beginning, use a new streamer.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        """The file's size in bytes: ``filepos`` once every command was handed out."""
        self.paused = False
        self.skipped = 0
        """Lines skipped because they were too long or not sendable G-code."""
        self._lines: deque[_Line] = deque()
        self._buffered = 0
        self._partial = bytearray()
        self._discarding = False
        self._read = 0
        self._eof = False
        self._filepos = 0

    @property
    def filepos(self) -> int:
        """Bytes of the file up to and including the last line handed out (``size`` when done)."""
        return self._filepos

    @property
    def wants_data(self) -> bool:
        """More of the file should be read: not at its end and little buffered."""
        return not self._eof and self._buffered < BUFFER_HIGH_WATER

    @property
    def exhausted(self) -> bool:
        """Every command of the file was handed out."""
        return self._eof and not self._lines

    def feed(self, chunk: bytes) -> None:
        """Add the next bytes of the file."""
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._append(chunk[start:end])
            self._end_line(self._read + end + 1)
            start = end + 1
        self._append(chunk[start:])
        self._read += len(chunk)

    def feed_eof(self) -> None:
        """The file ended; a last line without a newline counts too."""
        if self._partial or self._discarding:
            self._end_line(self._read)
        self._eof = True
        if not self._lines:
            self._filepos = self.size

    def next_command(self) -> str | None:
        """The next command to send, or None while paused or until more of the file is read."""
        if self.paused or not self._lines:
            return None
        line = self._lines.popleft()
        self._buffered -= len(line.command)
        # §9.4 progress: after the last command, whatever follows it (comments) counts as sent too.
        self._filepos = self.size if self._eof and not self._lines else line.end
        return line.command

    def _append(self, piece: bytes) -> None:
        if self._discarding:
            return
        if len(self._partial) + len(piece) > MAX_LINE_LENGTH:
            self._partial.clear()
            self._discarding = True
            return
        self._partial += piece

    def _end_line(self, end: int) -> None:
        if self._discarding:
            self._discarding = False
            self.skipped += 1
            return
        raw = bytes(self._partial)
        self._partial.clear()
        command = strip_gcode(raw)
        if command is None:
            if raw.split(b";", 1)[0].strip():
                self.skipped += 1
            return
        self._lines.append(_Line(command, end))
        self._buffered += len(command)


class ZTracker:
    """Z as the host's G0/G1 moves set it (``ZChange``, octoprint-push.md §9.3), with G90/G91."""

    def __init__(self) -> None:
        self.z: float | None = None
        self._relative = False

    def observe(self, command: str) -> ZChanged | None:
        """Follow one sent command; a ``ZChanged`` when it moved Z to a new height."""
        code = command_code(command)
        if code in ("G90", "G91"):
            self._relative = code == "G91"
            return None
        if code not in ("G0", "G1"):
            return None
        match = _Z_PARAMETER.search(command)
        if match is None:
            return None
        value = float(match.group(1))
        if self._relative:
            if self.z is None:
                return None
            value += self.z
        if value == self.z:
            return None
        old, self.z = self.z, value
        return ZChanged(value, old)
