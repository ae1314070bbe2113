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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ._protocol import (
    Capability,
    ErrorKind,
    ErrorLine,
    FirmwareData,
    Ok,
    ReceivedLine,
    ResendRequest,
    Wait,
    classify_error,
    encode_numbered,
    encode_plain,
    parse_line,
)

# §1: "The host keeps the last 50 numbered lines for resends."
HISTORY_SIZE = 50
# §3 rule 3: maxConsecutiveResends.
MAX_CONSECUTIVE_RESENDS = 10
# §3 rule 4, §10.3 resendOk: how long the ok that follows a resend request may take before the
# host takes it for missing (supportResendsWithoutOk = detect).
RESEND_OK_TIMEOUT = 0.5
# §2: serial.ackMax, OctoPrint's default window ("ping-pong").
DEFAULT_WINDOW = 1
# §8: these never time out; OctoPrint waits for their ok however long it takes.
LONG_RUNNING_COMMANDS = frozenset(
    {"G4", "G28", "G29", "G30", "G32", "M400", "M226", "M600", "M109", "M190", "M191", "M116"}
)
# §10.3: consecutive communication timeouts allowed before the printer is considered dead.
MAX_TIMEOUTS_IDLE = 2
MAX_TIMEOUTS_PRINTING = 5
# §9: Marlin's kill message ends with this line; the lines before it belong to the same error.
_KILL_MARKER = "kill() called"
_TOOL_CHANGE = re.compile(r"T(\d+)\b")
_LINE_NUMBER_RESET = re.compile(r"M110\s+N(\d+)\b")
_GCODE = re.compile(r"[GMT]\d+", re.IGNORECASE)
# §11.4: the error naming the line the firmware got when it expected another.
_OUT_OF_ORDER = re.compile(r"expected line (\d+) got (\d+)", re.IGNORECASE)


def command_code(command: str) -> str:
    """The command word of a G-code command, upper-cased: ``g28 X`` → ``G28``; ``""`` for none."""
    match = _GCODE.match(command)
    return match.group(0).upper() if match is not None else ""


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


@dataclass(frozen=True)
class FatalError:
    """The firmware reported an error the host cannot recover from (§9): multi-line kill messages
    joined with `` - ``. Emitted by ``receive_line`` or ``flush_error``."""

    error: str


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
    until it returns None; call it again after ``enqueue``, ``send_now``, ``hello``,
    ``receive_line``, ``handle_timeout`` and ``handle_resend_ok_deadline``. While
    ``resend_ok_deadline`` is set, call ``handle_resend_ok_deadline`` once that time has come.

    ``printing`` is set by whoever streams a job: while it is true every command is numbered and
    ``wait`` counts as an ok (§1, §2). ``job`` is where job lines come from: called whenever the
    window has room and no other command is waiting, it returns the next command or None.
    ``queue_size`` bounds the commands waiting to be sent; ``window`` is how many commands may wait
    for their ``ok`` at once (§2, ``serial.ackMax``, default 1).
    """

    def __init__(self, *, queue_size: int = 32, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        self.printing = False
        self.current_tool = 0
        self.resends = ResendStats()
        self.job: Callable[[], str | None] | None = None
        self.sent_command: str | None = None
        """The command of the line ``next_line_to_send`` returned last; None for a replayed line."""
        self._queue_size = queue_size
        self._window = window
        self._queue: deque[str] = deque()
        self._history: dict[int, bytes] = {}
        self._next_number = 1
        # The lines that still owe an ok, oldest first (§2): command word, and how many "wait"
        # lines had arrived when it was sent.
        self._in_flight: deque[tuple[str, int]] = deque()
        self._waits = 0
        self._priority: deque[tuple[bytes, str]] = deque()
        self._replay: _Replay | None = None
        self._last_requested: int | None = None
        self._consecutive_requests = 0
        self._stale_number: int | None = None
        self._stale_requests = 0
        # A request for this line was taken for stale and no plain ok came since to show that the
        # firmware went on: it is acted on when the host would otherwise fall silent.
        self._unconfirmed: int | None = None
        # The line a replay was about to send again when the last resend-kind Error: line arrived:
        # the request that follows that error cannot be about the replayed copy (§3 rule 1).
        self._error_before_replay: int | None = None
        # The line of an extra copy the firmware got after it had accepted that line already
        # ("expected line n got m", m < n), when the last resend-kind Error: line said so.
        self._old_copy: int | None = None
        self._after_resend = False
        self._resend_ok_deadline: float | None = None
        # The text of the last resend-kind Error: line, and of the one the request that still owes
        # its ok followed. The same error again before that ok is the firmware repeating itself
        # (§3 rule 1), and so is the Resend: after it while ``_repeated_error``.
        self._last_resend_error: str | None = None
        self._resend_error: str | None = None
        self._repeated_error = False
        self._consecutive_timeouts = 0
        self._firmware_seen = False
        self._report: _PendingReport | None = None
        self._pending_error: list[str] = []

    @property
    def queued(self) -> int:
        """Commands waiting to be sent (not counting resends)."""
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing waits to be sent (job lines aside) and no line owes an ok."""
        return not (
            self._queue or self._in_flight or self._priority or self._replay or self._unconfirmed is not None
        )

    @property
    def long_running(self) -> bool:
        """A command that never times out (§8: ``G28``, ``M400``, heat-ups, ...) waits for its ok."""
        return any(code in LONG_RUNNING_COMMANDS for code, _ in self._in_flight)

    @property
    def resend_ok_deadline(self) -> float | None:
        """When the ok of the last resend request counts as missing (§3 rule 4); None if none is owed."""
        return self._resend_ok_deadline

    @property
    def has_pending_error(self) -> bool:
        """A fatal error line arrived and more lines of it may follow; see ``flush_error``."""
        return bool(self._pending_error)

    def hello(self) -> None:
        """Reset line numbers with ``N0 M110 N0`` and send it ahead of everything else (§1, §4).

        The line goes out next even if a command is in flight: on connect the firmware may have
        dropped an earlier hello while booting, so the adapter repeats this until an ``ok`` arrives.
        Whatever was in flight before is forgotten: only the hello's ok is awaited.
        """
        self._in_flight.clear()
        self._resend_ok_deadline = None
        self._resend_error = None
        self._repeated_error = False
        self._priority.clear()
        self._priority.append((self._reset_line_numbers(0, "M110 N0"), "M110"))

    def send_now(self, command: str, *, numbered: bool = True) -> None:
        """Send ``command`` next, ahead of the queue and whether or not the window has room.

        For what must jump the queue: ``M108`` to leave a heat-up wait, ``M112`` and the heaters-off
        commands of an emergency stop (§10.4). ``numbered=False`` sends it plain (the first of the
        two M112 OctoPrint sends).
        """
        command = _checked(command)
        line = self._encode(command) if numbered else encode_plain(command)
        self._priority.append((line, command))

    def enqueue(self, command: str, *, bounded: bool = True) -> None:
        """Queue one G-code command (no line number, no checksum, no newline).

        Raises ``LocalProtocolError`` for a command that cannot be sent (empty, not ASCII, with a
        line break or a ``*``, which would end the checksummed part early) and ``CommandQueueFull``
        when ``queue_size`` commands are already waiting. ``bounded=False`` is for the few
        commands of the link's own scripts (pause, cancel, finish), which must not be refused.
        """
        command = _checked(command)
        if bounded and len(self._queue) >= self._queue_size:
            raise CommandQueueFull(f"{len(self._queue)} commands already waiting")
        self._queue.append(command)

    def next_line_to_send(self) -> bytes | None:
        """The next line to write, or None while the window is full or nothing is waiting (§2)."""
        self.sent_command = None
        if self._priority:
            line, command = self._priority.popleft()
            self.sent_command = command
        elif len(self._in_flight) >= self._window:
            return None
        elif self._replay is not None:
            line, command = self._replay_next(self._replay), ""
        elif self._queue:
            command = self._queue.popleft()
            line = self._encode(command)
            self.sent_command = command
        elif self.job is not None and (job_command := self.job()) is not None:
            command = _checked(job_command)
            line = self._encode(command)
            self.sent_command = command
        elif not self._in_flight and self._unconfirmed in self._history:
            line, command = self._replay_next(self._start_replay(self._unconfirmed)), ""
        else:
            return None
        self.resends.transmitted += 1
        if not command.startswith("!!"):
            # §2: each G-code consumes a clear-to-send; "!!DEBUG:" lines need no ok.
            self._in_flight.append((command_code(command) if command else "", self._waits))
        return line

    def receive_line(self, line: str, now: float) -> list[ReceivedLine | FirmwareReport | FatalError]:
        """Take one received line (stripped), received at time ``now`` (seconds, any monotonic
        clock: only differences count); return what it means, in order.

        The result ends with the parsed line. It is preceded by a ``FirmwareReport`` when this line
        ends an M115 capability report, and by a ``FatalError`` when it ends a fatal error message
        (the error's last line, or the first line after it). Raises ``RemoteProtocolError`` when
        the firmware asks for a line that cannot be resent.
        """
        parsed = parse_line(line, current_tool=self.current_tool)
        results: list[ReceivedLine | FirmwareReport | FatalError] = []
        self._consecutive_timeouts = 0
        if self._report is not None and not isinstance(parsed, Capability):
            # §6: "The host ends the capability report at the first line that is not Cap:".
            report, self._report = self._report, None
            results.append(FirmwareReport(report.name, report.data, report.capabilities))
        fatal = isinstance(parsed, ErrorLine) and classify_error(parsed.text) is ErrorKind.FATAL
        if self._pending_error and not fatal:
            results.append(FatalError(" - ".join(self._pending_error)))
            self._pending_error.clear()
        repeated = self._resend_ok_deadline is not None and (
            (isinstance(parsed, ErrorLine) and parsed.text == self._resend_error)
            or (isinstance(parsed, ResendRequest) and self._repeated_error)
        )
        if self._resend_ok_deadline is not None and not isinstance(parsed, Ok) and not repeated:
            # §3 rule 4 (detect): anything but an ok after a resend request means its ok is missing.
            # Not so a repetition of the request (§3 rule 1): its ok is still to come, once.
            self._simulate_resend_ok()
        match parsed:
            case Ok():
                self._resend_ok_deadline = None
                self._resend_error = None
                self._repeated_error = False
                if not self._after_resend:
                    # A plain ok: the firmware accepted a line, so it is past any stale request.
                    self._unconfirmed = None
                self._after_resend = False
                self._acknowledge()
            case Wait():
                # §2: wait counts as an ok only while printing (supportWait). A wait may have left
                # the firmware while the line was still on its way, so it only stands for the ok of
                # a line that was sent before the previous wait; a lost ok then takes two.
                if self.printing and self._in_flight and self._in_flight[0][1] < self._waits:
                    self._acknowledge()
                self._waits += 1
            case ErrorLine(text) if fatal:
                # §9: Marlin's kill messages span several lines, joined with " - ".
                self._pending_error.append(text)
                if _KILL_MARKER in text:
                    results.append(FatalError(" - ".join(self._pending_error)))
                    self._pending_error.clear()
            case ErrorLine(text) if classify_error(text) is ErrorKind.RECOVERABLE:
                # §9: recoverable communication error: no resend request follows, simulate an ok.
                self._acknowledge()
            case ErrorLine(text) if classify_error(text) is ErrorKind.RESEND and repeated:
                self._repeated_error = True
            case ErrorLine(text) if classify_error(text) is ErrorKind.RESEND:
                self._last_resend_error = text
                replay = self._replay
                pending = replay is not None and not replay.requested_line_sent
                self._error_before_replay = replay.requested if replay is not None and pending else None
                out_of_order = _OUT_OF_ORDER.search(text)
                self._old_copy = int(out_of_order.group(2)) if out_of_order is not None else None
            case ResendRequest(number) if repeated:
                self._repeated_error = False
                # The same error and request before the ok of the first: a repetition (§3 rule 1),
                # or a new request from a line sent since whose first ok was lost. Only the second
                # leaves the firmware waiting for <n>, so it is acted on should the host fall
                # silent; not so a request for a line never sent, or one drawn by an extra copy of
                # an accepted line (see _request_resend).
                out_of_order = _OUT_OF_ORDER.search(self._resend_error or "")
                extra_copy = out_of_order is not None and int(out_of_order.group(2)) < number
                if number in self._history and not extra_copy:
                    self._unconfirmed = number
            case ResendRequest(number):
                self._resend_error, self._last_resend_error = self._last_resend_error, None
                self._after_resend = True
                error_before_replay, self._error_before_replay = self._error_before_replay, None
                old_copy, self._old_copy = self._old_copy, None
                self._resend_ok_deadline = now + RESEND_OK_TIMEOUT
                self._request_resend(number, error_before_replay=error_before_replay, old_copy=old_copy)
            case FirmwareData(name, data):
                self._firmware_seen = True
                self._report = _PendingReport(name, data)
            case Capability(name, enabled) if self._report is not None:
                self._report.capabilities[name] = enabled
        results.append(parsed)
        return results

    def handle_resend_ok_deadline(self, now: float) -> bool:
        """§3 rule 4 (``supportResendsWithoutOk`` = detect): once ``resend_ok_deadline`` has passed
        without an ok, act as if it had come. Returns True if it did; False before the deadline or
        when no ok is owed."""
        if self._resend_ok_deadline is None or now < self._resend_ok_deadline:
            return False
        self._simulate_resend_ok()
        return True

    def flush_error(self) -> FatalError | None:
        """End a fatal error message whose further lines did not come (the firmware went silent)."""
        if not self._pending_error:
            return None
        error = FatalError(" - ".join(self._pending_error))
        self._pending_error.clear()
        return error

    def handle_timeout(self) -> str:
        """The firmware said nothing for a whole communication timeout (§10.3); returns what was done.

        A long-running command (§8) never times out. Otherwise the timeout counts, and the host acts
        as if the lost ``ok`` had come; while printing it also sends ``M105`` to provoke an answer.
        Raises ``RemoteProtocolError`` (reason ``timeout``) after too many timeouts in a row.
        """
        if self.long_running:
            return "Timeout while a long-running command is active, waiting for it to finish."
        self._consecutive_timeouts += 1
        limit = MAX_TIMEOUTS_PRINTING if self.printing else MAX_TIMEOUTS_IDLE
        if self._consecutive_timeouts > limit:
            raise RemoteProtocolError(
                "Too many consecutive timeouts, printer still connected and alive?", "timeout"
            )
        self._acknowledge()
        if self.printing:
            self._queue.appendleft("M105")
            return "Communication timeout while printing, trying to trigger response from printer."
        return "Communication timeout while idle, trying to trigger response from printer."

    def emergency_lines(self) -> list[bytes]:
        """What OctoPrint writes on an emergency stop (§9, §10.4): ``M112`` plain and numbered, then
        every heater off. For writing straight to the port, bypassing queue and window."""
        lines = [encode_plain("M112"), self._encode("M112")]
        lines += [self._encode(f"M104 T{tool} S0") for tool in range(self.current_tool + 1)]
        lines.append(self._encode("M140 S0"))
        return lines

    def _simulate_resend_ok(self) -> None:
        # As the ok after a resend request would: it says nothing about stale requests.
        self._resend_ok_deadline = None
        self._resend_error = None
        self._repeated_error = False
        self._after_resend = False
        self._acknowledge()

    def _acknowledge(self) -> None:
        if self._in_flight:
            self._in_flight.popleft()

    def _request_resend(self, number: int, *, error_before_replay: int | None, old_copy: int | None) -> None:
        # §3 rule 1: a request for a line not sent yet is ignored ...
        if number >= self._next_number:
            return
        # ... and so is one drawn by a superfluous copy of a line the firmware had accepted already
        # (a replay acted on a stale request): it says nothing went wrong, and the lines after that
        # copy, <n> among them, were sent after it (every replay runs to the newest line) unless a
        # request for a later line superseded them, which shows <n> arrived.
        if old_copy is not None and old_copy < number:
            return
        # ... and so is a duplicate caused by the same error: the replay it asks for is already
        # under way and has not yet sent the requested line again.
        replay = self._replay
        if replay is not None and replay.requested == number and not replay.requested_line_sent:
            return
        # Every line sent after <n> that the firmware has yet to read arrives out of order and draws
        # its own request for <n>: stale as well. Lines can be in flight beyond the window (an ok
        # simulated for a "wait", a resend answered with two oks), so count every line sent
        # after <n>. Should one of the requests ignored be a new one, the replay that follows
        # draws more, and once the count is spent they are acted on (OctoPrint likewise swallows
        # repeated requests for one line).
        if number == self._stale_number and self._stale_requests > 0:
            self._stale_requests -= 1
            self._unconfirmed = number
            return
        # A duplicate whose error line came before the replay sent line <n> again, answered after it
        # went out: that error was about an earlier copy, and the replay already answers it.
        if number == error_before_replay:
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
        self._start_replay(number)

    def _start_replay(self, number: int) -> _Replay:
        self._stale_number = number
        self._stale_requests = self._next_number - 1 - number
        self._unconfirmed = None
        self._replay = _Replay(requested=number, next_number=number)
        return self._replay

    def _replay_next(self, replay: _Replay) -> bytes:
        # §3 rule 2: all lines from <n> on are re-sent from the history with their original numbers.
        line = self._history[replay.next_number]
        replay.requested_line_sent = True
        replay.next_number += 1
        if replay.next_number == self._next_number:
            self._replay = None
        return line

    def _encode(self, command: str) -> bytes:
        if command.startswith("!!"):
            # §2, §11.6: "!!DEBUG:" lines are not G-code; they go plain and need no ok.
            return encode_plain(command)
        if tool := _TOOL_CHANGE.match(command):
            # §5: a bare T: temperature belongs to the tool selected last.
            self.current_tool = int(tool.group(1))
        if reset := _LINE_NUMBER_RESET.match(command):
            return self._reset_line_numbers(int(reset.group(1)), command)
        # §1: M110 always numbered; everything while printing or before the M115 reply was seen.
        if not (self.printing or not self._firmware_seen or command_code(command) == "M110"):
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
        self._stale_number = None
        self._stale_requests = 0
        self._unconfirmed = None
        self._error_before_replay = None
        self._old_copy = None
        self._last_resend_error = None
        self._next_number = number + 1
        return self._number(number, command)

    def _number(self, number: int, command: str) -> bytes:
        line = encode_numbered(number, command)
        self._history[number] = line
        self._history.pop(number - HISTORY_SIZE, None)
        return line


def _checked(command: str) -> str:
    command = command.strip()
    if not command or not command.isascii() or any(c in command for c in "\r\n*"):
        raise LocalProtocolError(f"cannot send {command!r}: want one ASCII line without '*'")
    return command
