"""The send side of the Marlin protocol as a state machine, sans-IO.

``MarlinHost`` decides what goes on the wire next and what received lines mean for it: line
numbers and the resend history (§1), ok-based flow control with one command in flight (§2),
resend requests (§3) and the M115 firmware report (§6). It never touches a port or a clock;
the trio adapter (``_link.py``) moves its bytes. Section numbers (§n) refer to
``shared/reference/marlin-serial.md``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ._protocol import (
    Capability,
    ErrorLine,
    FirmwareData,
    Ok,
    ReceivedLine,
    ResendRequest,
    Wait,
    encode_numbered,
    encode_plain,
    parse_line,
)

# §1: "The host keeps the last 50 numbered lines for resends."
HISTORY_SIZE = 50
# §3 rule 3: maxConsecutiveResends.
MAX_CONSECUTIVE_RESENDS = 10
# §9: errors after which OctoPrint simulates an ok instead of waiting for a resend request.
_RECOVERABLE_ERRORS = ("no line number with checksum", "missing linenumber")
_TOOL_CHANGE = re.compile(r"T(\d+)\b")
_LINE_NUMBER_RESET = re.compile(r"M110\s+N(\d+)\b")


class LocalProtocolError(Exception):
    """The local side misused the host: a command that cannot go on the wire, or a full queue."""


class CommandQueueFull(LocalProtocolError):
    """``enqueue`` found the command queue full; try again after the firmware caught up."""


class RemoteProtocolError(Exception):
    """The firmware's requests cannot be satisfied; the connection should be closed with an error.

    ``reason`` is OctoPrint's error reason (``resend`` or ``resend_loop``, §3 rule 3).
    """

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(error)
        self.error = error
        self.reason = reason


@dataclass(frozen=True)
class FirmwareReport:
    """The complete M115 reply: emitted by ``receive_line`` once the ``Cap:`` lines end (§6)."""

    name: str
    data: Mapping[str, str]
    capabilities: Mapping[str, bool]


@dataclass
class ResendStats:
    """OctoPrint's ``resends``: resend requests acted on, and lines transmitted in total (§3 rule 5)."""

    count: int = 0
    transmitted: int = 0

    @property
    def ratio(self) -> int:
        """Resend requests per 100 transmitted lines, as OctoPrint reports it."""
        return self.count * 100 // self.transmitted if self.transmitted else 0


@dataclass
class _Replay:
    """A resend in progress: lines ``next_number`` up to the newest numbered line go out again."""

    requested: int
    next_number: int
    requested_line_sent: bool = False


@dataclass
class _PendingReport:
    name: str
    data: Mapping[str, str]
    capabilities: dict[str, bool] = field(default_factory=dict)


class MarlinHost:
    """What to send next, and what the firmware's answers mean for it.

    Feed every received line to ``receive_line`` and write whatever ``next_line_to_send`` returns
    until it returns None; call it again after ``enqueue``, ``hello`` and ``receive_line``.

    ``printing`` is set by whoever streams a job: while it is true every command is numbered and
    ``wait`` counts as an ok (§1, §2). ``queue_size`` bounds the commands waiting to be sent.
    """

    def __init__(self, *, queue_size: int = 32) -> None:
        self.printing = False
        self.current_tool = 0
        self.resends = ResendStats()
        self._queue_size = queue_size
        self._queue: deque[str] = deque()
        self._history: dict[int, bytes] = {}
        self._next_number = 1
        self._clear_to_send = True
        self._priority: bytes | None = None
        self._replay: _Replay | None = None
        self._last_requested: int | None = None
        self._consecutive_requests = 0
        self._firmware_seen = False
        self._report: _PendingReport | None = None

    @property
    def queued(self) -> int:
        """Commands waiting to be sent (not counting resends)."""
        return len(self._queue)

    def hello(self) -> None:
        """Reset line numbers with ``N0 M110 N0`` and send it ahead of everything else (§1, §4).

        The line goes out next even if a command is in flight: on connect the firmware may have
        dropped an earlier hello while booting, so the adapter repeats this until an ``ok`` arrives.
        """
        self._priority = self._reset_line_numbers(0, "M110 N0")

    def enqueue(self, command: str) -> None:
        """Queue one G-code command (no line number, no checksum, no newline).

        Raises ``LocalProtocolError`` for a command that cannot be sent (empty, not ASCII, with a
        line break or a ``*``, which would end the checksummed part early) and ``CommandQueueFull``
        when ``queue_size`` commands are already waiting.
        """
        command = command.strip()
        if not command or not command.isascii() or any(c in command for c in "\r\n*"):
            raise LocalProtocolError(f"cannot send {command!r}: want one ASCII line without '*'")
        if len(self._queue) >= self._queue_size:
            raise CommandQueueFull(f"{len(self._queue)} commands already waiting")
        self._queue.append(command)

    def next_line_to_send(self) -> bytes | None:
        """The next line to write, or None while the firmware owes an ok or nothing is queued (§2)."""
        if self._priority is not None:
            line, self._priority = self._priority, None
        elif not self._clear_to_send:
            return None
        elif self._replay is not None:
            line = self._replay_next(self._replay)
        elif self._queue:
            line = self._encode(self._queue.popleft())
        else:
            return None
        # §2: serial.ackMax = 1, each line consumes the clear-to-send.
        self._clear_to_send = False
        self.resends.transmitted += 1
        return line

    def receive_line(self, line: str) -> list[ReceivedLine | FirmwareReport]:
        """Take one received line (stripped); return what it means, in order.

        The result ends with the parsed line. It is preceded by a ``FirmwareReport`` when this line
        ends an M115 capability report. Raises ``RemoteProtocolError`` when the firmware asks for a
        line that cannot be resent.
        """
        parsed = parse_line(line, current_tool=self.current_tool)
        results: list[ReceivedLine | FirmwareReport] = []
        if self._report is not None and not isinstance(parsed, Capability):
            # §6: "The host ends the capability report at the first line that is not Cap:".
            report, self._report = self._report, None
            results.append(FirmwareReport(report.name, report.data, report.capabilities))
        match parsed:
            case Ok():
                self._clear_to_send = True
            case Wait() if self.printing:
                # §2: wait counts as an ok only while printing (supportWait).
                self._clear_to_send = True
            case ErrorLine(text) if text.lower().startswith(_RECOVERABLE_ERRORS):
                # §9: recoverable communication error: no resend request follows, simulate an ok.
                self._clear_to_send = True
            case ResendRequest(number):
                self._request_resend(number)
            case FirmwareData(name, data):
                self._firmware_seen = True
                self._report = _PendingReport(name, data)
            case Capability(name, enabled) if self._report is not None:
                self._report.capabilities[name] = enabled
        results.append(parsed)
        return results

    def _request_resend(self, number: int) -> None:
        # §3 rule 1: a request for a line not sent yet is ignored ...
        if number >= self._next_number:
            return
        # ... and so is a duplicate caused by the same error: the replay it asks for is already
        # under way and has not yet sent the requested line again.
        replay = self._replay
        if replay is not None and replay.requested == number and not replay.requested_line_sent:
            return
        self.resends.count += 1
        if number == self._last_requested:
            self._consecutive_requests += 1
        else:
            self._last_requested = number
            self._consecutive_requests = 1
        if self._consecutive_requests >= MAX_CONSECUTIVE_RESENDS:
            raise RemoteProtocolError(
                f"Printer keeps requesting line {number} again and again, communication stuck",
                "resend_loop",
            )
        if number not in self._history:
            if self.printing:
                raise RemoteProtocolError(
                    f"Printer requested line {number} but no sufficient history is available, can't resend",
                    "resend",
                )
            # Idle, nothing of a job can be lost: there is no line to resend, so go on.
            return
        self._replay = _Replay(requested=number, next_number=number)

    def _replay_next(self, replay: _Replay) -> bytes:
        # §3 rule 2: all lines from <n> on are re-sent from the history with their original numbers.
        line = self._history[replay.next_number]
        replay.requested_line_sent = True
        replay.next_number += 1
        if replay.next_number == self._next_number:
            self._replay = None
        return line

    def _encode(self, command: str) -> bytes:
        if tool := _TOOL_CHANGE.match(command):
            # §5: a bare T: temperature belongs to the tool selected last.
            self.current_tool = int(tool.group(1))
        if reset := _LINE_NUMBER_RESET.match(command):
            return self._reset_line_numbers(int(reset.group(1)), command)
        # §1: M110 always numbered; everything while printing or before the M115 reply was seen.
        if not (self.printing or not self._firmware_seen or command.split()[0] == "M110"):
            return encode_plain(command)
        line = self._number(self._next_number, command)
        self._next_number += 1
        return line

    def _reset_line_numbers(self, number: int, command: str) -> bytes:
        # §1: "M110 N<n> sets the line counter: the next numbered line is N<n+1>." Older lines can
        # no longer be asked for, so the history and any resend bookkeeping start afresh.
        self._history.clear()
        self._replay = None
        self._last_requested = None
        self._consecutive_requests = 0
        self._next_number = number + 1
        return self._number(number, command)

    def _number(self, number: int, command: str) -> bytes:
        line = encode_numbered(number, command)
        self._history[number] = line
        self._history.pop(number - HISTORY_SIZE, None)
        return line
