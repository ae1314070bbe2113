"""Marlin line protocol, sans-IO: encoding sent lines, splitting and classifying received ones.

Nothing here does I/O or reads a clock. The host state machine (``_host.py``) builds on these
functions; the trio adapter (``_link.py``) feeds them bytes. Section numbers (§n) refer to
``shared/reference/marlin-serial.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import reduce
from operator import xor

from ._events import Position, Reading

# ---------------------------------------------------------------------------------------------
# Encoding (§1)


def checksum(line: bytes) -> int:
    """XOR of every byte of ``line`` (§1: the bytes of ``N<n> <command>`` before the ``*``)."""
    return reduce(xor, line, 0)


def encode_numbered(number: int, command: str) -> bytes:
    """``N<number> <command>*<checksum>\\n``, the checksum in decimal without padding (§1).

    ``command`` must be ASCII without line breaks; ``MarlinHost.enqueue`` checks that.
    """
    body = f"N{number} {command}".encode("ascii")
    return b"%s*%d\n" % (body, checksum(body))


def encode_plain(command: str) -> bytes:
    """``<command>\\n``: what the host sends when no checksum is required (§1)."""
    return command.encode("ascii") + b"\n"


# ---------------------------------------------------------------------------------------------
# Splitting received bytes into lines


class LineSplitter:
    """Cuts a byte stream into lines, never buffering more than ``max_length`` bytes.

    A line longer than ``max_length`` is delivered truncated and the rest of it, up to the next
    newline, is dropped: a runaway device must not make the host buffer without bound. Lines
    are decoded as UTF-8 with replacement (the virtual printer's banner contains a lone 0x80
    byte, §4) and stripped of surrounding whitespace, including the ``\\r`` of CRLF firmware.
    """

    def __init__(self, max_length: int) -> None:
        self._max_length = max_length
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes | bytearray) -> list[str]:
        """Add received bytes; return the lines they completed, in order."""
        lines: list[str] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._append(data[start:], lines)
                return lines
            self._append(data[start:end], lines)
            if self._discarding:
                self._discarding = False
            else:
                lines.append(_decode(self._buffer))
            self._buffer.clear()
            start = end + 1

    def _append(self, chunk: bytes | bytearray, lines: list[str]) -> None:
        if self._discarding:
            return
        room = self._max_length - len(self._buffer)
        if len(chunk) <= room:
            self._buffer += chunk
            return
        self._buffer += chunk[:room]
        lines.append(_decode(self._buffer))
        self._buffer.clear()
        self._discarding = True


def _decode(raw: bytes | bytearray) -> str:
    return raw.decode("utf-8", errors="replace").strip()


# ---------------------------------------------------------------------------------------------
# Received lines


@dataclass(frozen=True)
class Ok:
    """``ok``, possibly with data after it (``ok T:21.30/ 0.00 B:...``, ``ok X:0.0 ... Count: A:0``).

    ``readings`` holds the temperatures when the data is an M105 report (§2, §5).
    """

    data: str = ""
    readings: Mapping[str, Reading] = field(default_factory=dict)


@dataclass(frozen=True)
class ResendRequest:
    """``Resend: <n>``, ``Resend:<n>``, ``rs <n>``, ``rs N:<n>``: send again from line ``n`` (§3)."""

    line_number: int


@dataclass(frozen=True)
class Start:
    """``start``: the firmware (re)booted (§4, §10.2)."""


@dataclass(frozen=True)
class Wait:
    """``wait``: the firmware's receive buffer is idle (§2)."""


@dataclass(frozen=True)
class Busy:
    """``echo:busy: <text>`` or ``busy: <text>``: still working, not an ok (§8)."""

    text: str


@dataclass(frozen=True)
class ErrorLine:
    """``Error:<text>`` or ``!!<text>`` (§9); ``text`` is what follows the prefix, stripped."""

    text: str


@dataclass(frozen=True)
class FirmwareData:
    """The first line of the M115 reply: ``FIRMWARE_NAME:<name> PROTOCOL_VERSION:<v> ...`` (§6)."""

    name: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class Capability:
    """``Cap:<NAME>:<0|1>`` from the M115 reply (§6)."""

    name: str
    enabled: bool


@dataclass(frozen=True)
class Action:
    """``//action:<name> [args]`` (§10.1)."""

    name: str
    args: str


@dataclass(frozen=True)
class TemperatureLine:
    """A temperature report that is not an ``ok`` (autoreport, heat-up wait lines, §5)."""

    readings: Mapping[str, Reading]


@dataclass(frozen=True)
class TargetTemperature:
    """Repetier's separate target line: ``TargetExtr0:200`` → ``tool0``, ``TargetBed:60`` → ``bed`` (§5)."""

    sensor: str
    target: float


@dataclass(frozen=True)
class PositionLine:
    """A position report without a leading ``ok``: ``X:0.00 Y:0.00 Z:0.00 E:0.00 Count: ...`` (§7)."""

    position: Position


@dataclass(frozen=True)
class Other:
    """Anything else (``echo:...``, ``Not SD printing``, file lists, banners)."""

    text: str


ReceivedLine = (
    Ok
    | ResendRequest
    | Start
    | Wait
    | Busy
    | ErrorLine
    | FirmwareData
    | Capability
    | Action
    | TemperatureLine
    | TargetTemperature
    | PositionLine
    | Other
)

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
# §3: the host matches lines starting with "resend" or "rs" (any case) and takes the number after
# an optional "N" or "N:".
_RESEND = re.compile(r"(?:resend|rs)[:\s]\s*(?:N:?)?\s*(\d+)", re.IGNORECASE)
# §6: keys of the FIRMWARE_NAME line are upper-case words; values may contain spaces, so a value
# runs up to the next " KEY:" token (a URL's "https:" is lower case and does not split).
_FIRMWARE_KEY = re.compile(r"(?:^|\s)([A-Z_]+):")
_CAPABILITY = re.compile(r"Cap:([A-Za-z0-9_]+):([01])")
_ACTION = re.compile(r"//action:(\S+)\s*(.*)")
# §5: Repetier reports targets on lines of their own.
_REPETIER_TARGET = re.compile(rf"Target(Extr(?P<tool>\d+)|Bed|Chamber):\s*(?P<target>{_NUMBER})")
# §7: the M114 reply, "X:0.00 Y:0.00 Z:0.00 E:0.00 Count: A:0 B:0 C:0", with or without a leading "ok".
_POSITION = re.compile(
    rf"X:\s*(?P<x>{_NUMBER})\s+Y:\s*(?P<y>{_NUMBER})\s+Z:\s*(?P<z>{_NUMBER})(?:\s+E\d*:\s*(?P<e>{_NUMBER}))?"
)


def parse_line(line: str, *, current_tool: int = 0) -> ReceivedLine:
    """Classify one received line (already stripped, see ``LineSplitter``).

    ``current_tool`` is the extruder a bare ``T:`` temperature belongs to (§5).
    """
    if line == "ok" or line.startswith("ok "):
        rest = line[3:].strip()
        readings = parse_temperatures(rest, current_tool=current_tool) if is_temperature_line(rest) else {}
        return Ok(rest, readings)
    if resend := _RESEND.match(line):
        return ResendRequest(int(resend.group(1)))
    if line == "start":
        return Start()
    if line == "wait":
        return Wait()
    if line.startswith(("echo:busy:", "busy:")):
        return Busy(line.partition("busy:")[2].strip())
    if line.startswith("Error:"):
        return ErrorLine(line[len("Error:") :].strip())
    if line.startswith("!!"):
        return ErrorLine(line[2:].strip())
    if line.startswith("fatal:"):
        # §9: Repetier's fatal errors.
        return ErrorLine(line.strip())
    if line.startswith("FIRMWARE_NAME:"):
        firmware = parse_firmware_data(line)
        return FirmwareData(firmware["FIRMWARE_NAME"], firmware)
    if capability := _CAPABILITY.fullmatch(line):
        return Capability(capability.group(1), capability.group(2) == "1")
    if action := _ACTION.fullmatch(line):
        return Action(action.group(1), action.group(2).strip())
    if is_temperature_line(line):
        return TemperatureLine(parse_temperatures(line, current_tool=current_tool))
    if target := _REPETIER_TARGET.match(line):
        tool = target.group("tool")
        sensor = f"tool{int(tool)}" if tool is not None else target.group(1).lower()
        return TargetTemperature(sensor, float(target.group("target")))
    if (position := parse_position(line)) is not None:
        return PositionLine(position)
    return Other(line)


def parse_position(text: str) -> Position | None:
    """The position in an M114 reply (``X:.. Y:.. Z:.. E:.. Count: ...``, §7), or None if there is none.

    Only the part before ``Count:`` is the logical position; the counts are stepper steps.
    """
    match = _POSITION.match(text.partition("Count")[0].strip())
    if match is None:
        return None
    e = match.group("e")
    return Position(
        x=float(match.group("x")),
        y=float(match.group("y")),
        z=float(match.group("z")),
        e=float(e) if e is not None else None,
    )


class ErrorKind(Enum):
    """How the host treats an ``Error:`` line (§9)."""

    RECOVERABLE = "recoverable"
    """A communication error with no resend request coming: simulate an ok."""
    RESEND = "resend"
    """A communication error a ``Resend:`` request follows: wait for it."""
    IGNORED = "ignored"
    """SD card errors and unknown commands: logged, nothing else."""
    FATAL = "fatal"
    """Anything else (MINTEMP, MAXTEMP, thermal runaway, ``kill() called``): error state, M112, disconnect."""


# §9 error classes, matched in the lower-cased text.
_RECOVERABLE_ERRORS = ("no line number with checksum", "missing linenumber")
_RESEND_ERRORS = ("checksum", "line number", "expected line", "format error", "missing checksum")
_IGNORED_ERRORS = (
    "open failed",
    "volume.init",
    "openroot",
    "workdir",
    "error writing to file",
    "cannot open",
    "cannot enter",
    "unknown command",
)


def classify_error(text: str) -> ErrorKind:
    """What an ``Error:`` line's ``text`` (without the prefix) means for the host (§9)."""
    lower = text.lower()
    if lower.startswith(_RECOVERABLE_ERRORS):
        return ErrorKind.RECOVERABLE
    if any(marker in lower for marker in _RESEND_ERRORS):
        return ErrorKind.RESEND
    if any(marker in lower for marker in _IGNORED_ERRORS):
        return ErrorKind.IGNORED
    return ErrorKind.FATAL


def parse_firmware_data(line: str) -> dict[str, str]:
    """``FIRMWARE_NAME:Marlin 2.1 (Github) PROTOCOL_VERSION:1.0`` → ``{"FIRMWARE_NAME": "Marlin 2.1
    (Github)", "PROTOCOL_VERSION": "1.0"}`` (§6)."""
    keys = list(_FIRMWARE_KEY.finditer(line))
    data: dict[str, str] = {}
    for key, following in zip(keys, [*keys[1:], None], strict=True):
        end = following.start() if following is not None else len(line)
        data[key.group(1)] = line[key.end() : end].strip()
    return data


# ---------------------------------------------------------------------------------------------
# Temperatures (§5)

# §5 "Token grammar": at the line start or after whitespace, a sensor name, ":", optional spaces,
# the actual value, then optionally spaces, an optional "/", spaces and the target. "@:64" and
# "B@:0" (heater power) do not match a word followed by ":" and are skipped.
_TEMPERATURE_TOKEN = re.compile(
    rf"(?<!\S)(?P<name>\w+):\s*(?P<actual>{_NUMBER})(?:\s*/?\s*(?P<target>{_NUMBER}))?(?!\S)"
)
_TOOL = re.compile(r"T(\d+)")
# §5 excludes lines containing "A:" to keep the M114 "Count: A:7000 B:5200" reply out. Taken as a
# token (line start or after whitespace) so that sensor names ending in A, like Prusa's "PINDA:",
# still count.
_AXIS_COUNT = re.compile(r"(?<!\S)A:")


def is_temperature_line(line: str) -> bool:
    """§5 "Recognising a line": ``T:`` or ``C:`` at the start, ``T:`` after a space, `` T0:`` or
    ``B:``, and no ``A:`` token (which keeps the M114 ``Count: A:... B:...`` reply out)."""
    if _AXIS_COUNT.search(line):
        return False
    # "C:" alone is the M191 wait line (§11.2), which OctoPrint's rule would miss.
    return line.startswith(("T:", "C:")) or " T:" in line or " T0:" in line or "B:" in line


def parse_temperatures(line: str, *, current_tool: int = 0) -> dict[str, Reading]:
    """Every sensor token of a temperature line, by OctoPrint's names (§5).

    ``T<n>`` → ``tool<n>``; a bare ``T`` → ``tool<current_tool>`` unless that tool is also reported
    by number; ``B`` → ``bed``; ``C`` → ``chamber``; any other name is kept as it is.
    """
    readings: dict[str, Reading] = {}
    bare_tool: Reading | None = None
    for token in _TEMPERATURE_TOKEN.finditer(line):
        target = token.group("target")
        reading = Reading(float(token.group("actual")), float(target) if target is not None else None)
        name = token.group("name")
        if name == "T":
            bare_tool = reading
        elif tool := _TOOL.fullmatch(name):
            readings[f"tool{int(tool.group(1))}"] = reading
        else:
            readings[{"B": "bed", "C": "chamber"}.get(name, name)] = reading
    if bare_tool is not None:
        readings.setdefault(f"tool{current_tool}", bare_tool)
    return readings
