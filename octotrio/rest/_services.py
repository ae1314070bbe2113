"""What the printer, job and file endpoints work with: state, files and the printer controller."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from octotrio.files import FileStore
from octotrio.printer import CommandQueueFull, JobFile, PrinterNotOperational
from octotrio.state import PrinterModel, StateFeed

from ._common import ApiError

BAUDRATES = (250000, 230400, 115200, 57600, 38400, 19200, 9600)
"""The baud rates ``/api/connection`` offers, as OctoPrint lists them (octoprint-push.md §12.3)."""


class PrinterControl(Protocol):
    """The printer controller as REST drives it (``octotrio.printer.PrinterService``).

    Each call returns once the request is queued; what happens is reported through printer events
    (and so through :class:`PrinterModel`). Calls raise ``PrinterNotOperational`` or
    ``CommandQueueFull`` when the printer cannot take them now, ``ValueError`` for a bad argument:
    wrap them in :func:`printer_errors`.
    """

    async def connect(self, port: str | None = None, baudrate: int | None = None) -> None: ...

    async def disconnect(self) -> None: ...

    def send_commands(self, commands: Iterable[str]) -> None: ...

    def set_temperature(self, heater: str, target: float) -> None: ...

    def start_print(self, file: JobFile, local_path: Path) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def cancel(self) -> None: ...

    def restart(self) -> None: ...

    def select_sd_file(self, name: str, *, print_after: bool = False, user: str | None = None) -> None: ...

    def start_sd_print(self) -> None: ...

    def init_sd(self) -> None: ...

    def refresh_sd(self) -> None: ...

    def delete_sd_file(self, name: str) -> None: ...

    async def release_sd(self) -> None: ...


@contextlib.contextmanager
def printer_errors() -> Iterator[None]:
    """Map the controller's refusals to REST answers: 409 when it cannot now, 400 for bad values."""
    try:
        yield
    except PrinterNotOperational:
        raise ApiError(409, "Printer is not operational") from None
    except CommandQueueFull:
        raise ApiError(409, "Printer is busy, too many commands are waiting; try again later") from None
    except ValueError as error:
        raise ApiError(400, str(error)) from None


@dataclass(frozen=True)
class RestServices:
    """Everything beyond authentication that the printer, job and file endpoints need."""

    feed: StateFeed
    files: FileStore
    printer: PrinterControl
    ports: Callable[[], list[str]]
    """The serial ports a client may connect to (the built-in printer's pty, or ``--serial``)."""
    max_upload_bytes: int

    @property
    def model(self) -> PrinterModel:
        return self.feed.hub.model
