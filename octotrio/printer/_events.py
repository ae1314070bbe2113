"""What the printer link tells the aggregator.

The printer link speaks Marlin on a serial port and reports what happened as small frozen
dataclasses, sent over a bounded memory channel to the aggregator (see ``octotrio.state``).
The link knows nothing about HTTP, sessions or push messages; the aggregator knows nothing
about serial ports. These types are the whole contract between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class CommState(Enum):
    """The link's connection state, named as OctoPrint names it (``PrinterStateChanged.state_id``)."""

    OFFLINE = "OFFLINE"
    OPEN_SERIAL = "OPEN_SERIAL"
    DETECT_SERIAL = "DETECT_SERIAL"
    CONNECTING = "CONNECTING"
    OPERATIONAL = "OPERATIONAL"
    STARTING = "STARTING"
    PRINTING = "PRINTING"
    PAUSING = "PAUSING"
    PAUSED = "PAUSED"
    RESUMING = "RESUMING"
    CANCELLING = "CANCELLING"
    FINISHING = "FINISHING"
    TRANSFERING_FILE = "TRANSFERING_FILE"
    ERROR = "ERROR"
    CLOSED_WITH_ERROR = "CLOSED_WITH_ERROR"


JOB_STATES = frozenset(
    {
        CommState.STARTING,
        CommState.PRINTING,
        CommState.PAUSING,
        CommState.PAUSED,
        CommState.RESUMING,
        CommState.CANCELLING,
        CommState.FINISHING,
    }
)
"""The states in which a job runs or is paused: from ``JobStarted`` until it finished, failed or
was cancelled."""


@dataclass(frozen=True)
class Reading:
    """One sensor in a temperature report: ``actual`` and ``target`` in °C (target None when not reported)."""

    actual: float
    target: float | None


@dataclass(frozen=True)
class StateChanged:
    """The link moved to ``state``; ``error`` carries the error text for ERROR / CLOSED_WITH_ERROR."""

    state: CommState
    error: str = ""


@dataclass(frozen=True)
class Connecting:
    """A connect attempt started (before the port is opened)."""

    port: str
    baudrate: int


@dataclass(frozen=True)
class Connected:
    """The firmware answered: the link is operational."""

    port: str
    baudrate: int


@dataclass(frozen=True)
class Disconnecting:
    """A disconnect was requested (not sent when the device vanished)."""


@dataclass(frozen=True)
class Disconnected:
    """The port is closed, whatever the reason."""


@dataclass(frozen=True)
class LinkError:
    """Something went wrong that ends the connection or the print (OctoPrint's ``Error`` event).

    ``reason`` is one of OctoPrint's reasons (``firmware``, ``resend``, ``resend_loop``, ``timeout``,
    ``connection``, ...); ``consequence`` is ``emergency``, ``disconnect``, ``cancel`` or None.
    """

    error: str
    reason: str
    consequence: str | None = None


@dataclass(frozen=True)
class TerminalLine:
    """One line for the terminal log: ``Send: ...``, ``Recv: ...`` or an informational line."""

    text: str


@dataclass(frozen=True)
class FirmwareMessage:
    """A received line the host did not fully handle (not a plain ``ok``): goes to ``messages``."""

    text: str


@dataclass(frozen=True)
class TemperatureReport:
    """One parsed temperature line: sensor name (``tool0``, ``bed``, ``chamber``, custom) → reading."""

    readings: Mapping[str, Reading]


@dataclass(frozen=True)
class FirmwareInfo:
    """The M115 reply: ``name`` (FIRMWARE_NAME), every key/value pair, and the ``Cap:`` lines."""

    name: str
    data: Mapping[str, str]
    capabilities: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ResendStatsChanged:
    """The firmware asked for a resend: OctoPrint's ``resends`` counters after it."""

    count: int
    transmitted: int


@dataclass(frozen=True)
class Position:
    """Where the print head is, as the host knows it (None where unknown)."""

    x: float | None = None
    y: float | None = None
    z: float | None = None
    e: float | None = None
    t: int | None = None
    f: float | None = None


@dataclass(frozen=True)
class JobFile:
    """The file a job prints: ``path`` relative to its storage, ``origin`` ``local`` or ``sdcard``."""

    name: str
    path: str
    origin: str
    size: int | None
    date: int | None = None


@dataclass(frozen=True)
class JobStarted:
    """The first line of ``file`` is about to be sent (after ``M110 N0``); state is STARTING/PRINTING."""

    file: JobFile


@dataclass(frozen=True)
class JobProgress:
    """Bytes of the file sent so far (``filepos``) and the seconds since the job started."""

    filepos: int
    print_time: float


@dataclass(frozen=True)
class ZChanged:
    """A G0/G1 the host sent moved Z (``old`` None for the first Z of the job)."""

    new: float
    old: float | None


@dataclass(frozen=True)
class GcodeSent:
    """A command with its own event was sent (G28 → ``Home``, M112 → ``EStop``, G4 → ``Dwelling``, ...).

    ``command`` is the bare G/M code, e.g. ``G28``.
    """

    command: str


@dataclass(frozen=True)
class JobPaused:
    """The job is paused; ``position`` was recorded (M400 then M114) when pausing."""

    position: Position
    filepos: int


@dataclass(frozen=True)
class JobResumed:
    """The job continues from where it was paused."""


@dataclass(frozen=True)
class JobCancelling:
    """A cancel was requested; ``firmware_error`` when it is because of one."""

    firmware_error: str | None = None


@dataclass(frozen=True)
class JobCancelled:
    """The job was cancelled at ``filepos`` after ``print_time`` seconds."""

    position: Position
    filepos: int
    print_time: float


@dataclass(frozen=True)
class JobFinished:
    """Every line was sent and acknowledged (after the M400 of FINISHING)."""

    print_time: float


@dataclass(frozen=True)
class JobFailed:
    """The job ended because of an error (``reason`` ``error``) with the error text."""

    error: str
    filepos: int
    print_time: float


@dataclass(frozen=True)
class SdFile:
    """One file on the firmware's SD card: ``name`` as ``M23`` takes it, ``display`` its long name
    when the firmware gave one (``EXTENDED_M20``), ``size`` in bytes."""

    name: str
    display: str
    size: int


@dataclass(frozen=True)
class SdStateChanged:
    """The firmware reported its SD card (``SD card ok``) or lost it; OctoPrint's ``sdReady``."""

    ready: bool


@dataclass(frozen=True)
class SdFilesListed:
    """The files on the SD card, as the last complete ``M20`` listing gave them."""

    files: tuple[SdFile, ...]


@dataclass(frozen=True)
class SdFileSelected:
    """The firmware opened ``file`` (origin ``sdcard``) for printing after ``M23``; ``user`` is who
    asked for it, as given to ``PrinterLink.select_sd_file``."""

    file: JobFile
    user: str | None


@dataclass(frozen=True)
class PositionReported:
    """A position report (M114 reply); ``reason`` ``pause``, ``cancel`` or None."""

    position: Position
    reason: str | None


@dataclass(frozen=True)
class PrinterReset:
    """The firmware sent ``start`` while connected (marlin-serial.md §10.2): line numbers were reset
    and autoreports re-enabled; a running print was cancelled. ``idle`` when no print was running."""

    idle: bool


@dataclass(frozen=True)
class ActionCommand:
    """A ``//action:<name> <params>`` line from the firmware; the link acts on ``pause``, ``resume``,
    ``cancel`` and ``disconnect`` right after reporting it."""

    name: str
    params: str


PrinterEvent = (
    StateChanged
    | Connecting
    | Connected
    | Disconnecting
    | Disconnected
    | LinkError
    | TerminalLine
    | FirmwareMessage
    | TemperatureReport
    | FirmwareInfo
    | ResendStatsChanged
    | JobStarted
    | JobProgress
    | ZChanged
    | GcodeSent
    | JobPaused
    | JobResumed
    | JobCancelling
    | JobCancelled
    | JobFinished
    | JobFailed
    | PositionReported
    | PrinterReset
    | ActionCommand
    | SdStateChanged
    | SdFilesListed
    | SdFileSelected
)
