"""The virtual printer's firmware: a sans-IO, Marlin-like state machine.

``VirtualMarlin`` never touches a file descriptor or a clock. Feed it the bytes a host wrote with
``receive_data(data, now)``, let time pass with ``advance(now)``, take its replies with
``data_to_send()`` and call ``advance`` again no later than ``next_deadline()``. ``now`` is any
monotonic clock in seconds; ``FirmwareOptions.time_scale`` stretches it into simulated time.

Behaviour follows OctoPrint 1.11.8's bundled virtual printer (marlin-serial.md §11), with Marlin's
own semantics where the virtual printer has none (the emergency parser, ``planner.synchronize()``
before ``G4``/``G28``/``M400``).
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from ._gcode import Command, parse_command, split_line
from ._thermal import Heater

WAIT_INTERVAL = 1.0
"""Simulated seconds between ``wait`` lines while the receive side is idle (``sendWait``, §11.1)."""
HEATUP_REPORT_INTERVAL = 1.0
"""``M109``/``M190`` print the temperature once per simulated second while waiting (§11.2)."""
HEATUP_WINDOW = 1.0
"""``M109``/``M190`` are done within this many °C of the target (§11.2)."""
MOVE_QUEUE_SLOTS = 4
"""Planned moves, the executing one included; a move finding them all taken waits for its ok (§11.1)."""
MOVE_TIME_FACTOR = 0.1
"""Moves take a tenth of their real duration: ``0.1 × distance / (F / 60)`` (§11.3)."""
DEFAULT_FEEDRATE = 3000.0
"""mm/min used for moves before any ``F`` was seen; the reference names no value, this is Marlin-like."""
RX_BUFFER_SIZE = 4096
"""Received bytes held while commands wait; beyond it input is lost like a UART overrun.

Adapters should read no more than ``receive_capacity`` so that nothing is lost: the kernel's
buffer then holds the host back. A real Marlin holds far less (128 bytes); a larger buffer only
lets hosts that stream ahead of their oks get further before the backpressure starts.
"""
MAX_LINE_LENGTH = 512
"""Longer lines are discarded and answered with an ``Error:`` line (Marlin's limit is 96)."""
TX_HIGH_WATER = 16384
"""With this many unsent bytes, commands stay queued and periodic lines are skipped."""
HEATER_POWER = "@:64"
"""The virtual printer always reports the same heater power (§5)."""
SD_CARD_CAPACITY = 8 * 1024 * 1024
"""Bytes the in-memory SD card holds, all files together; writes beyond it fail."""
MAX_FAULTS_PER_LINE = 3
"""Random faults for one line number at most: a host gives up after 10 requests for one line
(marlin-serial.md §3 rule 3), and a recoverable fault must stay recoverable."""

_LINE_END = re.compile(rb"[\r\n]")
_AXES = ("X", "Y", "Z", "E")
_NO_EFFECT = frozenset({"M17", "M18", "M84", "M106", "M107", "M221"})
"""Commands answered with a bare ``ok``: motors, fans and flow have nothing to simulate here."""


class Fault(Enum):
    """What can go wrong with a numbered line (marlin-serial.md §3, §9, §11.5, §11.6)."""

    CHECKSUM = "checksum"
    """``Error: Checksum mismatch``, ``Resend``, ``ok``: the line is not executed."""
    RESEND = "resend"
    """A spurious resend of a good line: ``Error: Missing checksum``, ``Resend``, ``ok``."""
    DUPLICATE_RESEND = "duplicate_resend"
    """As ``resend``, with the request sent twice before the ok (a host must ignore the second)."""
    RESEND_WITHOUT_OK = "resend_without_ok"
    """As ``resend`` without the ``ok`` after the request, like firmware a host must detect (§3 rule 4)."""
    MISSING_LINENO = "missing_lineno"
    """``Error: No Line Number with checksum`` and nothing else: the line is not executed."""
    LOST_OK = "lost_ok"
    """The line is executed but its ``ok`` is never sent."""
    UNANSWERED = "unanswered"
    """The line is dropped without a word, as if it never arrived."""
    FATAL = "fatal"
    """A thermal runaway: two ``Error:`` lines ending ``kill() called!``, then the firmware is dead."""
    DISCONNECT = "disconnect"
    """The device vanishes (the pty adapter hangs it up) and the board resets."""


RECOVERABLE_FAULTS = frozenset(Fault) - {Fault.FATAL, Fault.DISCONNECT}
"""Faults a correct host survives without losing or repeating a line."""


@dataclass(frozen=True, slots=True)
class FaultOptions:
    """Faults to inject: each numbered line draws one fault with the given probabilities (seeded,
    so a run can be reproduced), and ``at_lines`` fire once per line number and print (the
    counter is reset by ``M110``), like OctoPrint's ``simulated_errors`` (§11.5)."""

    probabilities: Mapping[Fault, float] = field(default_factory=dict)
    at_lines: Mapping[int, Fault] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        total = sum(self.probabilities.values())
        if any(p < 0 for p in self.probabilities.values()) or total > 1:
            raise ValueError(f"fault probabilities must be at least 0 and add up to at most 1, not {total}")


def parse_faults(spec: str) -> FaultOptions:
    """``checksum=0.02,lost_ok=0.01,fatal@500,seed=7`` → ``FaultOptions``; ``ValueError`` if malformed
    (argparse reports that as a usage error when this is an argument's ``type``)."""
    probabilities: dict[Fault, float] = {}
    at_lines: dict[int, Fault] = {}
    seed = 0
    try:
        for item in filter(None, (part.strip() for part in spec.split(","))):
            if "@" in item:
                kind, _, line = item.partition("@")
                at_lines[int(line)] = Fault(kind.strip())
            else:
                kind, _, value = item.partition("=")
                if kind.strip() == "seed":
                    seed = int(value)
                else:
                    probabilities[Fault(kind.strip())] = float(value)
    except ValueError as exc:
        raise ValueError(f"bad fault specification {spec!r}: {exc}") from exc
    return FaultOptions(probabilities, at_lines, seed)


@dataclass(frozen=True, slots=True)
class FirmwareOptions:
    """How the virtual printer behaves; the defaults match OctoPrint's virtual printer."""

    ambient: float = 21.3
    """°C the heaters start at and cool down to (§11.2)."""
    autoreport_temp: bool = True
    """Offer ``Cap:AUTOREPORT_TEMP:1`` and ``M155``; False makes hosts take the ``M105`` polling path."""
    autoreport_sd_status: bool = True
    """Offer ``Cap:AUTOREPORT_SD_STATUS:1`` and ``M27 S<n>``; False makes hosts poll ``M27``."""
    sd_files: Mapping[str, bytes] = field(default_factory=dict)
    """Files on the SD card at start, by name (names are lower-cased, as ``M23`` looks them up)."""
    send_wait: bool = True
    """Send ``wait`` every second while idle (§11.1)."""
    time_scale: float = 1.0
    """Simulated seconds per second of the caller's clock: 10 makes heat-ups and moves 10× faster."""
    num_extruders: int = 1
    """Hotends ``T0`` … ``T<n-1>``; more than one adds ``T0:``, ``T1:`` … to temperature reports."""
    faults: FaultOptions = field(default_factory=FaultOptions)
    """Faults to inject into numbered lines (none by default)."""
    record: bool = False
    """Keep every executed line for ``take_executed`` (the adapter's ``--record``)."""

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be positive, not {self.time_scale!r}")
        if self.num_extruders < 1:
            raise ValueError(f"num_extruders must be at least 1, not {self.num_extruders!r}")


@dataclass(slots=True)
class _AwaitMoveSlot:
    """A move that found the queue full; its ok goes out once it is planned (§11.1)."""

    duration: float


@dataclass(slots=True)
class _Synchronize:
    """``M400``, ``G28``, ``G4``: wait for planned moves to finish, then dwell (``G4`` only)."""

    dwell: float = 0.0
    dwell_until: float | None = None


@dataclass(slots=True)
class _AwaitTemperature:
    """``M109``/``M190``: report every second until within 1 °C of the target (§11.2)."""

    heater: Heater
    label: str
    wait_for_cooling: bool
    next_check: float


_Blocker = _AwaitMoveSlot | _Synchronize | _AwaitTemperature


class VirtualMarlin:
    """A Marlin-like printer firmware as a synchronous state machine.

    The reset banner (``start`` …) is ready in ``data_to_send()`` from the start. After ``M112``
    the firmware is killed: it ignores all input and sends nothing more; build a new instance to
    simulate a reset.
    """

    def __init__(self, options: FirmwareOptions | None = None, *, now: float) -> None:
        self.options = options if options is not None else FirmwareOptions()
        self.hangup_requested = False
        """The firmware wants the device to vanish (``disconnect`` fault, ``!!DEBUG:drop_connection``)."""
        self.reset_requested = False
        """The firmware wants to be replaced by a fresh instance (``!!DEBUG:reset``)."""
        self._faults = self.options.faults
        self._random = random.Random(self._faults.seed)
        self._fault_counts: dict[int, int] = {}
        self._faults_fired: set[int] = set()
        self._next_fault: Fault | None = None
        self._swallow_oks = 0
        self._awol = False
        self._executed: list[str] = []
        self._sd_files = {name.lower(): data for name, data in self.options.sd_files.items()}
        self._sd_mounted = True
        self._sd_selected: str | None = None
        self._sd_position = 0
        self._sd_printing = False
        self._sd_writing: tuple[str, bytearray] | None = None
        self._sd_report_interval = 0.0
        self._sd_report_due = math.inf
        self._executing_sd = False
        self._blocker_from_sd = False
        self._origin = now
        self._clock = 0.0
        self._out = bytearray()
        self._partial = bytearray()
        self._discarding = False
        # A received line waiting for the command processor; None stands for an overlong line.
        self._pending: deque[bytes | None] = deque()
        self._pending_bytes = 0
        self._killed = False
        self._last_line = 0
        self._blocker: _Blocker | None = None
        self._wait_due = WAIT_INTERVAL
        self._autoreport_interval = 0.0
        self._autoreport_due = math.inf
        ambient = self.options.ambient
        self._tools = [Heater(ambient) for _ in range(self.options.num_extruders)]
        self._active_tool = 0
        self._bed = Heater(ambient)
        self._position = dict.fromkeys(_AXES, 0.0)
        self._relative = False
        self._relative_e = False
        self._mm_per_unit = 1.0
        self._feedrate = DEFAULT_FEEDRATE
        self._feedrate_percent = 100.0
        self._moves: deque[float] = deque()
        self._move_ends = math.inf
        self._handlers: dict[str, Callable[[Command], None]] = {
            "G0": self._move,
            "G1": self._move,
            "G4": self._dwell,
            "G20": self._set_inches,
            "G21": self._set_millimetres,
            "G28": self._home,
            "G90": self._set_absolute,
            "G91": self._set_relative,
            "G92": self._set_position,
            "M20": self._list_sd,
            "M21": self._init_sd,
            "M22": self._release_sd,
            "M23": self._select_sd_file,
            "M24": self._start_sd_print,
            "M25": self._pause_sd_print,
            "M26": self._set_sd_position,
            "M27": self._report_sd,
            "M28": self._start_sd_write,
            "M30": self._delete_sd_file,
            "M82": self._set_absolute_e,
            "M83": self._set_relative_e,
            "M104": self._set_tool_temperature,
            "M105": self._report_temperatures,
            "M108": self._cancel_heatup,
            "M109": self._wait_tool_temperature,
            "M110": self._set_line_number,
            "M114": self._report_position,
            "M115": self._report_firmware,
            "M117": self._echo_message,
            "M140": self._set_bed_temperature,
            "M190": self._wait_bed_temperature,
            "M220": self._set_feedrate_percent,
            "M400": self._finish_moves,
            "M524": self._abort_sd_print,
        }
        if self.options.autoreport_temp:
            self._handlers["M155"] = self._set_autoreport
        # On open OctoPrint's virtual printer simulates a reset (simulateReset, §11.1).
        self._send("start")
        self._send("Marlin: Virtual Marlin!")
        self._out += b"\x80\n"
        self._send("SD card ok")

    # -- the sans-IO interface -------------------------------------------------------------------

    @property
    def killed(self) -> bool:
        """True after ``M112``: the firmware no longer reads or answers anything."""
        return self._killed

    @property
    def receive_capacity(self) -> int:
        """How many bytes ``receive_data`` can take now without losing any.

        0 while commands wait and the receive buffer is full; read nothing until
        ``next_deadline()``. A killed firmware takes (and drops) anything.
        """
        if self._killed:
            return RX_BUFFER_SIZE
        return max(0, RX_BUFFER_SIZE - self._pending_bytes - len(self._partial))

    def receive_data(self, data: bytes, now: float) -> None:
        """Take bytes the host wrote at ``now``; ``\\n``, ``\\r`` and ``\\r\\n`` all end a line.

        Bytes beyond ``receive_capacity`` are dropped, as a UART overrun would drop them; numbered
        lines that follow then fail the line checks and are asked for again. ``M112`` and ``M108``
        act on arrival, even while other commands wait (the emergency parser,
        ``Cap:EMERGENCY_PARSER:1``).
        """
        self.advance(now)
        if self._killed or not data:
            return
        data = data[: self.receive_capacity]
        self._wait_due = self._clock + WAIT_INTERVAL
        *complete, rest = _LINE_END.split(data)
        for piece in complete:
            self._extend_partial(piece)
            self._end_line()
        self._extend_partial(rest)
        self._run_commands()

    def advance(self, now: float) -> None:
        """Run the simulation up to ``now``: heaters, moves, waits and periodic lines.

        A ``now`` earlier than one seen before is treated as that earlier time (time never runs
        backwards).
        """
        end = max(self._clock, (now - self._origin) * self.options.time_scale)
        while not self._killed:
            self._run_commands()
            event = self._next_event()
            if event is None or event > end:
                break
            self._set_clock(event)
            self._fire_due_events()
        self._set_clock(end)

    def take_executed(self) -> list[str]:
        """The lines executed since the last call (``N<n> <command>`` or the plain command), when
        ``FirmwareOptions.record`` is set; lines that were rejected or dropped are not among them."""
        executed, self._executed = self._executed, []
        return executed

    def data_to_send(self) -> bytes:
        """Everything the firmware has written since the last call, ready for the wire."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        """The latest ``now`` at which ``advance`` must be called next, or None if nothing is due.

        It may lie in the past (runnable commands waited for ``data_to_send``): call ``advance``
        at once then.
        """
        if self._killed:
            return None
        if self._pending and self._blocker is None:
            return self._to_real(self._clock)
        event = self._next_event()
        return None if event is None else self._to_real(event)

    # -- time --------------------------------------------------------------------------------------

    def _to_real(self, simulated: float) -> float:
        real = self._origin + simulated / self.options.time_scale
        # Rounding must not make the deadline fall a hair short of the event it stands for,
        # or an adapter sleeping until it would spin without the event ever firing.
        while (real - self._origin) * self.options.time_scale < simulated:
            real = math.nextafter(real, math.inf)
        return real

    def _set_clock(self, simulated: float) -> None:
        dt = simulated - self._clock
        if dt <= 0:
            return
        for heater in (*self._tools, self._bed):
            heater.advance(dt, self.options.ambient)
        self._clock = simulated

    def _is_idle(self) -> bool:
        return not self._pending and self._blocker is None

    def _next_event(self) -> float | None:
        candidates = [self._move_ends, self._autoreport_due, self._sd_report_due]
        match self._blocker:
            case _Synchronize(dwell_until=float(until)):
                candidates.append(until)
            case _AwaitTemperature(next_check=check):
                candidates.append(check)
        if self.options.send_wait and self._is_idle():
            candidates.append(self._wait_due)
        event = min(candidates)
        return None if event == math.inf else event

    def _fire_due_events(self) -> None:
        while self._moves and self._move_ends <= self._clock:
            self._moves.popleft()
            self._move_ends = self._move_ends + self._moves[0] if self._moves else math.inf
        if self.options.send_wait and self._is_idle() and self._wait_due <= self._clock:
            self._send_periodic("wait")
            self._wait_due = self._clock + WAIT_INTERVAL
        if self._autoreport_due <= self._clock:
            self._send_periodic(self._temperature_report())
            self._autoreport_due = self._clock + self._autoreport_interval
        if self._sd_report_due <= self._clock:
            self._send_periodic(self._sd_status())
            self._sd_report_due = self._clock + self._sd_report_interval

    # -- receiving -----------------------------------------------------------------------------------

    def _extend_partial(self, piece: bytes) -> None:
        if self._discarding:
            return
        self._partial += piece
        if len(self._partial) > MAX_LINE_LENGTH:
            self._partial.clear()
            self._discarding = True

    def _end_line(self) -> None:
        if self._discarding:
            self._discarding = False
            self._enqueue_line(None)
            return
        line = bytes(self._partial)
        self._partial.clear()
        if line.strip():
            self._enqueue_line(line)

    def _enqueue_line(self, line: bytes | None) -> None:
        if line is not None and (b"M112" in line or b"M108" in line):
            command = split_line(line).command
            code = parse_command(command).code if command else ""
            if code == "M112":
                self._kill()
                return
            if code == "M108":
                self._end_heatup()
        self._pending.append(line)
        # The terminator counts too, so that even a stream of overlong lines fills the buffer.
        self._pending_bytes += (0 if line is None else len(line)) + 1

    def _kill(self) -> None:
        # §9: "EMERGENCY SHUTDOWN DETECTED. KILLED." and no processing until reconnected.
        self._send("echo:EMERGENCY SHUTDOWN DETECTED. KILLED.")
        self._halt()

    def _halt(self) -> None:
        self._killed = True
        self._sd_printing = False
        self._sd_report_due = math.inf
        self._autoreport_due = math.inf
        self._pending.clear()
        self._pending_bytes = 0
        self._partial.clear()
        self._blocker = None
        self._moves.clear()
        self._move_ends = math.inf
        for heater in (*self._tools, self._bed):
            heater.target = 0.0

    # -- the command processor -------------------------------------------------------------------------

    def _run_commands(self) -> None:
        while not self._killed:
            # A waiting command always gets to resolve (it adds at most one line), so time can
            # pass while the host is not reading; new lines wait until the backlog is drained.
            if self._blocker is not None and not self._resolve_blocker(self._blocker):
                return
            if len(self._out) >= TX_HIGH_WATER:
                return
            if not self._pending:
                if not self._run_sd_line():
                    return
                continue
            line = self._pending.popleft()
            self._pending_bytes -= (0 if line is None else len(line)) + 1
            self._blocker_from_sd = False
            self._process_line(line)

    def _resolve_blocker(self, blocker: _Blocker) -> bool:
        """Advance the waiting command; True once it has sent its ok."""
        match blocker:
            case _AwaitMoveSlot(duration=duration):
                if len(self._moves) >= MOVE_QUEUE_SLOTS:
                    return False
                self._plan_move(duration)
            case _Synchronize():
                if self._moves:
                    return False
                if blocker.dwell_until is None and blocker.dwell > 0:
                    blocker.dwell_until = self._clock + blocker.dwell
                if blocker.dwell_until is not None and self._clock < blocker.dwell_until:
                    return False
            case _AwaitTemperature():
                if self._clock < blocker.next_check:
                    return False
                if self._still_heating(blocker):
                    self._send_periodic(f"{blocker.label}:{blocker.heater.actual:.2f}")
                    blocker.next_check = self._clock + HEATUP_REPORT_INTERVAL
                    return False
        self._send_ok(quiet=self._blocker_from_sd)
        self._blocker = None
        self._wait_due = self._clock + WAIT_INTERVAL
        return True

    def _process_line(self, raw: bytes | None) -> None:
        if raw is None:
            self._send(f"Error: Line too long (more than {MAX_LINE_LENGTH} bytes)")
            self._send_ok()
            return
        if self._awol:
            return
        if raw.lstrip().startswith(b"!!DEBUG:"):
            # §11.6: debug commands are no G-code; they get no ok.
            self._debug(raw.lstrip()[len(b"!!DEBUG:") :].decode("ascii", errors="replace").strip())
            return
        line = split_line(raw)
        # §11.4: the checksum is checked first, then the line number.
        if line.checksum_ok is False:
            self._request_resend("Checksum mismatch")
            return
        command = parse_command(line.command) if line.command else None
        if line.number is not None:
            if command is not None and command.code == "M110":
                # "N<n> M110" sets the counter; an N parameter of the M110 itself wins.
                self._record(line.number, command.text)
                self._faults_fired.clear()
                self._fault_counts.clear()
                self._set_line_number(command, default=line.number)
                return
            expected = self._last_line + 1
            if line.number != expected:
                self._request_resend(f"expected line {expected} got {line.number}")
                return
            if self._inject_fault(line.number):
                return
            self._last_line = line.number
            if command is None:
                self._send_ok()
                return
        if command is None:
            return
        self._record(line.number, command.text)
        if self._sd_writing is not None and command.code != "M29":
            self._write_sd_line(command.text)
            return
        if command.code == "M29" and self._sd_writing is not None:
            self._finish_sd_write()
            return
        self._execute(command)

    def _record(self, number: int | None, text: str) -> None:
        if self.options.record:
            self._executed.append(text if number is None else f"N{number} {text}")

    # -- faults ------------------------------------------------------------------------------------------

    def _draw_fault(self, number: int) -> Fault | None:
        faults = self._faults
        if self._next_fault is not None:
            fault, self._next_fault = self._next_fault, None
            return fault
        if number in faults.at_lines and number not in self._faults_fired:
            self._faults_fired.add(number)
            return faults.at_lines[number]
        if not faults.probabilities or self._fault_counts.get(number, 0) >= MAX_FAULTS_PER_LINE:
            return None
        draw = self._random.random()
        for fault, probability in faults.probabilities.items():
            if draw < probability:
                self._fault_counts[number] = self._fault_counts.get(number, 0) + 1
                return fault
            draw -= probability
        return None

    def _inject_fault(self, number: int) -> bool:
        """Apply the fault drawn for the good numbered line ``number``; True if it is not executed."""
        match self._draw_fault(number):
            case None:
                return False
            case Fault.CHECKSUM:
                self._request_resend("Checksum mismatch")
            case Fault.RESEND:
                self._request_resend("Missing checksum")
            case Fault.DUPLICATE_RESEND:
                self._send("Error: Missing checksum")
                self._send(f"Resend:{self._last_line + 1}")
                self._request_resend("Missing checksum")
            case Fault.RESEND_WITHOUT_OK:
                self._send("Error: Missing checksum")
                self._send(f"Resend:{self._last_line + 1}")
            case Fault.MISSING_LINENO:
                # §3 trace "missing_lineno": the error and nothing else; the host simulates an ok.
                self._send(f"Error: No Line Number with checksum, Last Line: {self._last_line}")
            case Fault.UNANSWERED:
                pass
            case Fault.LOST_OK:
                self._swallow_oks += 1
                return False
            case Fault.FATAL:
                self._thermal_runaway()
            case Fault.DISCONNECT:
                self.hangup_requested = True
        return True

    def _thermal_runaway(self) -> None:
        # §9: Marlin's kill message, two lines; then the firmware halts.
        self._send("Error:Thermal Runaway, system stopped! Heater_ID: bed")
        self._send("Error:Printer halted. kill() called!")
        self._halt()

    def _debug(self, text: str) -> None:
        """§11.6 debug commands that map to the faults, actions and resets simulated here."""
        name, _, argument = text.partition(" ")
        triggers = {
            "trigger_resend_lineno": Fault.CHECKSUM,
            "trigger_resend_checksum": Fault.CHECKSUM,
            "trigger_missing_checksum": Fault.RESEND,
            "trigger_missing_lineno": Fault.MISSING_LINENO,
        }
        actions = {"action_pause": "pause", "action_resume": "resume", "action_disconnect": "disconnect"}
        if name in triggers:
            self._next_fault = triggers[name]
        elif name in actions:
            self._send(f"//action:{actions[name]}")
        elif name == "action_custom":
            self._send(f"//action:{argument}")
        elif name == "send":
            self._send(argument)
        elif name in ("dont_answer", "go_awol"):
            self._awol = True
        elif name == "trigger_fatal_error_marlin":
            self._thermal_runaway()
        elif name == "trigger_fatal_error_repetier":
            self._send("fatal: Heater/sensor failure - system stopped")
            self._halt()
        elif name in ("mintemp_error", "maxtemp_error"):
            self._send(f"Error: {name[:7].upper()} triggered!")
        elif name == "drop_connection":
            self.hangup_requested = True
        elif name == "reset":
            self.reset_requested = True
        elif name == "faults":
            # Not in OctoPrint's list: replace the injected faults (a FaultOptions spec), so that a
            # test can inject them only after a clean handshake.
            try:
                self._faults = parse_faults(argument)
            except ValueError as exc:
                self._send(f"echo:{exc}")
            else:
                self._random = random.Random(self._faults.seed)
                self._fault_counts.clear()
                self._faults_fired.clear()
        else:
            self._send(f"echo:Unknown debug command: {name}")

    def _request_resend(self, error: str) -> None:
        self._send(f"Error: {error}")
        self._send(f"Resend:{self._last_line + 1}")
        self._send_ok()

    def _send_ok(self, *, quiet: bool | None = None) -> None:
        """The ok of the command being executed; none for SD card lines or a ``lost_ok`` fault."""
        if self._executing_sd if quiet is None else quiet:
            return
        if self._swallow_oks:
            self._swallow_oks -= 1
            return
        self._send("ok")

    def _send(self, line: str) -> None:
        self._out += line.encode("ascii", errors="replace") + b"\n"

    def _send_periodic(self, line: str) -> None:
        """Send a line nobody asked for, unless the host is not reading anyway (or it must not answer)."""
        if len(self._out) < TX_HIGH_WATER and not self._awol:
            self._send(line)

    # -- commands --------------------------------------------------------------------------------------

    def _execute(self, command: Command) -> None:
        handler = self._handlers.get(command.code)
        if handler is not None:
            handler(command)
        elif command.code.startswith("T") and command.code[1:].isdigit():
            self._select_tool(int(command.code[1:]))
        else:
            self._send(f'echo:Unknown command: "{command.text}"')
            self._send_ok()

    def _select_tool(self, tool: int) -> None:
        if tool < len(self._tools):
            self._active_tool = tool
        else:
            self._send(f"echo:T{tool} Invalid extruder ")  # sic, trailing space (§7)
        self._send_ok()

    def _move(self, command: Command) -> None:
        feedrate = command.param("F")
        if feedrate is not None:
            self._feedrate = feedrate * self._mm_per_unit
        distance = 0.0
        for axis in _AXES:
            value = command.param(axis)
            if value is None:
                continue
            value *= self._mm_per_unit
            relative = self._relative_e if axis == "E" else self._relative
            target = self._position[axis] + value if relative else value
            # The longest axis travel sets the time, as in the virtual printer (which takes each
            # axis alone and the maximum); unlike it, moves towards 0 take time too.
            distance = max(distance, abs(target - self._position[axis]))
            self._position[axis] = target
        speed = self._feedrate * self._feedrate_percent / 100 / 60
        duration = MOVE_TIME_FACTOR * distance / speed if speed > 0 else 0.0
        if duration > 0 and len(self._moves) >= MOVE_QUEUE_SLOTS:
            self._blocker = _AwaitMoveSlot(duration)
            return
        self._plan_move(duration)
        self._send_ok()

    def _plan_move(self, duration: float) -> None:
        if duration <= 0:
            return
        if not self._moves:
            self._move_ends = self._clock + duration
        self._moves.append(duration)

    def _dwell(self, command: Command) -> None:
        seconds = command.param("S") or 0.0
        milliseconds = command.param("P") or 0.0
        self._blocker = _Synchronize(dwell=max(seconds, milliseconds / 1000))

    def _home(self, command: Command) -> None:
        axes = [axis for axis in "XYZ" if axis in command.params] or ["X", "Y", "Z"]
        for axis in axes:
            self._position[axis] = 0.0
        self._blocker = _Synchronize()

    def _finish_moves(self, command: Command) -> None:
        self._blocker = _Synchronize()

    def _set_inches(self, command: Command) -> None:
        self._mm_per_unit = 25.4
        self._send_ok()

    def _set_millimetres(self, command: Command) -> None:
        self._mm_per_unit = 1.0
        self._send_ok()

    def _set_absolute(self, command: Command) -> None:
        self._relative = self._relative_e = False
        self._send_ok()

    def _set_relative(self, command: Command) -> None:
        self._relative = self._relative_e = True
        self._send_ok()

    def _set_absolute_e(self, command: Command) -> None:
        self._relative_e = False
        self._send_ok()

    def _set_relative_e(self, command: Command) -> None:
        self._relative_e = True
        self._send_ok()

    def _set_position(self, command: Command) -> None:
        given = {axis: command.param(axis) for axis in _AXES if axis in command.params}
        if not given:
            # A bare G92 zeroes every axis, as in the virtual printer.
            given = dict.fromkeys(_AXES, 0.0)
        for axis, value in given.items():
            if value is not None:
                self._position[axis] = value * self._mm_per_unit
        self._send_ok()

    def _set_feedrate_percent(self, command: Command) -> None:
        percent = command.param("S")
        if percent is not None and percent > 0:
            self._feedrate_percent = percent
        self._send_ok()

    def _report_position(self, command: Command) -> None:
        x, y, z, e = (self._position[axis] for axis in _AXES)
        # Counts are the position × 100 (virtual printer, §7).
        counts = " ".join(
            f"{name}:{round(value * 100)}" for name, value in zip("ABC", (x, y, z), strict=True)
        )
        self._send(f"ok X:{x:.2f} Y:{y:.2f} Z:{z:.2f} E:{e:.2f} Count: {counts}")

    def _set_line_number(self, command: Command, default: int | None = None) -> None:
        number = command.param("N")
        if number is not None:
            self._last_line = int(number)
        elif default is not None:
            self._last_line = default
        self._send_ok()

    def _report_firmware(self, command: Command) -> None:
        self._send("FIRMWARE_NAME:Virtual Marlin 1.0 PROTOCOL_VERSION:1.0")
        capabilities = {
            "AUTOREPORT_TEMP": self.options.autoreport_temp,
            "AUTOREPORT_SD_STATUS": self.options.autoreport_sd_status,
            "AUTOREPORT_POS": False,
            "EMERGENCY_PARSER": True,
            "EXTENDED_M20": False,
            "LFN_WRITE": False,
        }
        for name, supported in capabilities.items():
            self._send(f"Cap:{name}:{int(supported)}")
        self._send_ok()

    def _echo_message(self, command: Command) -> None:
        self._send(f"echo:{command.argument_text}")
        self._send_ok()

    # -- SD card (§7) ----------------------------------------------------------------------------------

    def _without_card(self) -> bool:
        """True (and the error sent) when no card is mounted (after ``M22``)."""
        if self._sd_mounted:
            return False
        self._send("echo:No SD card")
        self._send_ok()
        return True

    def _list_sd(self, command: Command) -> None:
        if self._without_card():
            return
        self._send("Begin file list")
        for name, data in self._sd_files.items():
            self._send(f"{name} {len(data)}")
        self._send("End file list")
        self._send_ok()

    def _init_sd(self, command: Command) -> None:
        self._sd_mounted = True
        self._send("SD card ok")
        self._send_ok()

    def _release_sd(self, command: Command) -> None:
        self._sd_mounted = False
        self._sd_selected, self._sd_printing = None, False
        self._send_ok()

    def _sd_status(self) -> str:
        if self._sd_selected is None or not self._sd_printing:
            return "Not SD printing"
        return f"SD printing byte {self._sd_position}/{len(self._sd_files[self._sd_selected])}"

    def _report_sd(self, command: Command) -> None:
        interval = command.param("S") if self.options.autoreport_sd_status else None
        if interval is not None:
            # M27 S<n>: report every n seconds, 0 turns it off.
            self._sd_report_interval = max(0.0, interval)
            self._sd_report_due = self._clock + interval if interval > 0 else math.inf
        else:
            self._send(self._sd_status())
        self._send_ok()

    def _select_sd_file(self, command: Command) -> None:
        if self._without_card():
            return
        name = command.argument_text.strip().lower()
        if name in self._sd_files:
            self._sd_selected, self._sd_position, self._sd_printing = name, 0, False
            self._send(f"File opened: {name} Size: {len(self._sd_files[name])}")
            self._send("File selected")
        else:
            self._send(f"open failed, File: {name}.")
        self._send_ok()

    def _start_sd_print(self, command: Command) -> None:
        self._sd_printing = self._sd_selected is not None
        self._send_ok()

    def _pause_sd_print(self, command: Command) -> None:
        self._sd_printing = False
        self._send_ok()

    def _abort_sd_print(self, command: Command) -> None:
        # M524: stop the SD print and close the file, so M24 cannot resume it.
        self._sd_selected, self._sd_printing, self._sd_position = None, False, 0
        self._send_ok()

    def _set_sd_position(self, command: Command) -> None:
        position = command.param("S")
        if self._sd_selected is not None and position is not None:
            self._sd_position = min(max(0, int(position)), len(self._sd_files[self._sd_selected]))
        self._send_ok()

    def _start_sd_write(self, command: Command) -> None:
        name = command.argument_text.strip().lower()
        if not name:
            self._send("Error: error writing to file")
        else:
            self._sd_writing = (name, bytearray())
            self._send(f"Writing to file: {name}")
        self._send_ok()

    def _write_sd_line(self, text: str) -> None:
        assert self._sd_writing is not None
        name, data = self._sd_writing
        used = sum(len(d) for n, d in self._sd_files.items() if n != name)
        if used + len(data) + len(text) + 1 > SD_CARD_CAPACITY:
            self._sd_writing = None
            self._send("Error: error writing to file (SD card full)")
        else:
            data += text.encode("ascii", errors="replace") + b"\n"
        self._send_ok()

    def _finish_sd_write(self) -> None:
        assert self._sd_writing is not None
        name, data = self._sd_writing
        self._sd_writing = None
        self._sd_files[name] = bytes(data)
        self._send("Done saving file.")
        self._send_ok()

    def _delete_sd_file(self, command: Command) -> None:
        name = command.argument_text.strip().lower()
        if self._sd_files.pop(name, None) is None:
            self._send(f"Deletion failed, File: {name}.")
        else:
            self._send(f"File deleted:{name}")
            if self._sd_selected == name:
                self._sd_selected, self._sd_printing = None, False
        self._send_ok()

    def _run_sd_line(self) -> bool:
        """Execute the next line of the SD print; False when there is none to run now."""
        if not self._sd_printing or self._sd_selected is None or self._blocker is not None:
            return False
        data = self._sd_files[self._sd_selected]
        if self._sd_position >= len(data):
            self._sd_printing = False
            self._send("Done printing file")
            return False
        end = data.find(b"\n", self._sd_position)
        end = len(data) if end < 0 else end + 1
        text = data[self._sd_position : end].decode("ascii", errors="replace").split(";", 1)[0].strip()
        self._sd_position = end
        if text:
            self._executing_sd = True
            try:
                self._record(None, text)
                self._execute(parse_command(text))
            finally:
                self._executing_sd = False
            self._blocker_from_sd = self._blocker is not None
        return True

    # -- temperatures ----------------------------------------------------------------------------------

    def _temperature_report(self) -> str:
        tool = self._tools[self._active_tool]
        parts = [f"T:{tool.actual:.2f}/ {tool.target:.2f}"]
        if len(self._tools) > 1:
            parts += [
                f"T{i}:{heater.actual:.2f}/ {heater.target:.2f}" for i, heater in enumerate(self._tools)
            ]
        parts += [f"B:{self._bed.actual:.2f}/ {self._bed.target:.2f}", HEATER_POWER]
        return " ".join(parts)

    def _report_temperatures(self, command: Command) -> None:
        self._send(f"ok {self._temperature_report()}")

    def _set_autoreport(self, command: Command) -> None:
        interval = command.param("S") or 0.0
        self._autoreport_interval = max(0.0, interval)
        self._autoreport_due = self._clock + interval if interval > 0 else math.inf
        self._send_ok()

    def _target_tool(self, command: Command) -> Heater | None:
        """The hotend a ``T`` parameter names (default: the active one); None after an error line."""
        index = command.param("T")
        tool = self._active_tool if index is None else int(index)
        if 0 <= tool < len(self._tools):
            return self._tools[tool]
        self._send(f"echo:{command.code} Invalid extruder {tool}")
        return None

    def _set_tool_temperature(self, command: Command) -> None:
        heater = self._target_tool(command)
        target = command.param("S")
        if heater is not None and target is not None:
            heater.target = max(0.0, target)
        self._send_ok()

    def _set_bed_temperature(self, command: Command) -> None:
        target = command.param("S")
        if target is not None:
            self._bed.target = max(0.0, target)
        self._send_ok()

    def _wait_tool_temperature(self, command: Command) -> None:
        heater = self._target_tool(command)
        if heater is None:
            self._send_ok()
            return
        self._wait_for_temperature(heater, "T", command)

    def _wait_bed_temperature(self, command: Command) -> None:
        self._wait_for_temperature(self._bed, "B", command)

    def _wait_for_temperature(self, heater: Heater, label: str, command: Command) -> None:
        # S waits only while heating up, R also while cooling down (§11.2).
        cooling_target = command.param("R")
        target = cooling_target if cooling_target is not None else command.param("S")
        if target is not None:
            heater.target = max(0.0, target)
        self._blocker = _AwaitTemperature(
            heater=heater,
            label=label,
            wait_for_cooling=cooling_target is not None,
            next_check=self._clock,
        )

    def _still_heating(self, wait: _AwaitTemperature) -> bool:
        heater = wait.heater
        if heater.target <= 0:
            # Nothing to wait for with the heater off (Marlin guards M109 R0 the same way).
            return False
        if heater.actual < heater.target - HEATUP_WINDOW:
            return True
        return wait.wait_for_cooling and heater.actual > heater.target + HEATUP_WINDOW

    def _cancel_heatup(self, command: Command) -> None:
        # The emergency parser already ended any heat-up wait when the line arrived.
        self._send_ok()

    def _end_heatup(self) -> None:
        """``M108`` on arrival: a waiting ``M109``/``M190`` stops waiting and sends its ok."""
        if isinstance(self._blocker, _AwaitTemperature):
            self._blocker = None
            self._send_ok(quiet=self._blocker_from_sd)
            self._wait_due = self._clock + WAIT_INTERVAL
