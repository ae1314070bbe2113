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
)
