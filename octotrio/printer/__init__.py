"""The printer side: Marlin line protocol (sans-IO) and the printer link tasks."""

from ._events import CommState as CommState
from ._events import Connected as Connected
from ._events import Connecting as Connecting
from ._events import Disconnected as Disconnected
from ._events import Disconnecting as Disconnecting
from ._events import FirmwareInfo as FirmwareInfo
from ._events import FirmwareMessage as FirmwareMessage
from ._events import LinkError as LinkError
from ._events import PrinterEvent as PrinterEvent
from ._events import Reading as Reading
from ._events import StateChanged as StateChanged
from ._events import TemperatureReport as TemperatureReport
from ._events import TerminalLine as TerminalLine
from ._host import CommandQueueFull as CommandQueueFull
from ._host import LocalProtocolError as LocalProtocolError
from ._host import MarlinHost as MarlinHost
from ._host import RemoteProtocolError as RemoteProtocolError
from ._host import ResendStats as ResendStats
from ._link import PrinterDisconnected as PrinterDisconnected
from ._link import PrinterLink as PrinterLink
from ._link import PrinterNotOperational as PrinterNotOperational
from ._link import run_printer_link as run_printer_link
