"""The firmware's SD card, sans-IO: what its lines say, and how the host follows an SD print.

``SdCard`` reads the lines the firmware sends about its card (marlin-serial.md §4, §7): whether a
card is there (``SD card ok``), the file list between ``Begin file list`` and ``End file list``,
the answer to ``M23`` (``File opened: <name> Size: <n>``, ``File selected``, ``open failed``),
the print's progress (``SD printing byte <pos>/<size>``) and its end (``Done printing file``).
``SdStatusReporting`` decides how the host learns the progress: with
``Cap:AUTOREPORT_SD_STATUS:1`` the firmware reports by itself once asked with ``M27 S1``,
otherwise the host polls ``M27`` every second (§5, §10.3). Nothing here does I/O or reads a
clock; the trio side is ``_link.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._events import SdFile

# §10.3: the SD status poll interval, and the autoreport interval asked for with M27 S<n>.
SD_STATUS_INTERVAL = 1.0
SD_AUTOREPORT_ON = "M27 S1"
SD_AUTOREPORT_OFF = "M27 S0"
SD_STATUS_POLL = "M27"
# A card with more files than this is listed only in part: the list is kept in memory and
# repeated in every REST listing, so a firmware listing without end must not grow it unbounded.
MAX_SD_FILES = 1024

# §7: "<dosname> <size> [timestamp] [long name]"; Marlin's M20 T gives the FAT timestamp in hex,
# M20 L the long name after it (some firmware quotes it).
_FILE_ENTRY = re.compile(r'(?P<name>\S+)\s+(?P<size>\d+)(?:\s+0x[0-9a-fA-F]+)?(?:\s+"?(?P<long>.*?)"?)?')
_FILE_OPENED = re.compile(r"File opened:\s*(?P<name>.*?)\s+Size:\s*(?P<size>\d+)")
_PRINTING_BYTE = re.compile(r"SD printing byte (?P<pos>\d+)\s*/\s*(?P<size>\d+)")
# §9: the SD card errors OctoPrint takes for "no card" (Marlin: "SD init fail",
# "volume.init failed", "openRoot failed", "workDir open failed").
_NO_CARD = ("sd init fail", "volume.init failed", "openroot failed", "workdir open failed")


@dataclass(frozen=True)
class SdReady:
    """The card came (``SD card ok``) or went (an init failure, ``M22``)."""

    ready: bool


@dataclass(frozen=True)
class SdListed:
    """A complete file list (``End file list``)."""

    files: tuple[SdFile, ...]


@dataclass(frozen=True)
class SdOpened:
    """``M23`` opened ``name`` of ``size`` bytes (``File selected`` after ``File opened``)."""

    name: str
    size: int


@dataclass(frozen=True)
class SdOpenFailed:
    """``M23`` could not open the file (``open failed, File: <name>.``)."""


@dataclass(frozen=True)
class SdProgress:
    """``SD printing byte <pos>/<size>``: the SD print's position."""

    pos: int
    size: int


@dataclass(frozen=True)
class SdDone:
    """``Done printing file``: the firmware ran the whole file."""


SdReport = SdReady | SdListed | SdOpened | SdOpenFailed | SdProgress | SdDone


class SdCard:
    """What the firmware said about its card; feed it every line that is not an ``ok``.

    ``ready`` is whether a card is there; ``files`` the last complete listing (empty while no
    card is there).
    """

    def __init__(self) -> None:
        self.ready = False
        self.files: tuple[SdFile, ...] = ()
        self._listing: list[SdFile] | None = None
        self._opened: SdOpened | None = None

    def receive_line(self, line: str) -> SdReport | None:
        """Take one received line (stripped); what it said about the card, or None."""
        if self._listing is not None:
            if line == "End file list":
                self.files, self._listing = tuple(self._listing), None
                return SdListed(self.files)
            if (entry := _FILE_ENTRY.fullmatch(line)) is not None:
                self._add_entry(self._listing, entry)
                return None
            # Anything else is no entry: the firmware may report other things meanwhile.
        lower = line.lower()
        if lower.endswith("sd card ok"):
            return self._set_ready(True)
        if any(marker in lower for marker in _NO_CARD):
            return self._set_ready(False)
        if line == "Begin file list":
            self._listing = []
            return None
        if opened := _FILE_OPENED.search(line):
            self._opened = SdOpened(opened.group("name").lstrip("/"), int(opened.group("size")))
            return None
        if line == "File selected" and self._opened is not None:
            report, self._opened = self._opened, None
            return report
        if "open failed" in lower:
            self._opened = None
            return SdOpenFailed()
        if progress := _PRINTING_BYTE.search(line):
            return SdProgress(int(progress.group("pos")), int(progress.group("size")))
        if line.startswith("Done printing file"):
            return SdDone()
        return None

    def release(self) -> SdReady | None:
        """The host sent ``M22``: the card is gone until ``M21`` brings it back (OctoPrint does not
        wait for an answer, and firmware sends none it could recognise)."""
        return self._set_ready(False)

    def _set_ready(self, ready: bool) -> SdReady | None:
        if ready == self.ready:
            return None
        self.ready = ready
        if not ready:
            self.files = ()
            self._listing = None
        return SdReady(ready)

    @staticmethod
    def _add_entry(listing: list[SdFile], entry: re.Match[str]) -> None:
        if len(listing) < MAX_SD_FILES:
            # Directories are listed with a leading "/" by some firmware; M23 takes names without.
            name = entry.group("name").lstrip("/")
            listing.append(SdFile(name, entry.group("long") or name, int(entry.group("size"))))


class SdStatusReporting:
    """How the host follows an SD print's progress (§5): autoreport where the firmware offers it
    (``M27 S1`` when the print starts or resumes, ``M27 S0`` when it pauses or ends); otherwise
    ``autoreport`` is False and the host polls ``M27`` every ``SD_STATUS_INTERVAL`` seconds while
    the print runs.
    """

    def __init__(self, capabilities: Mapping[str, bool]) -> None:
        self.autoreport = capabilities.get("AUTOREPORT_SD_STATUS", False)

    def start(self) -> list[str]:
        """The SD print runs (again): the commands that turn the reports on."""
        return [SD_AUTOREPORT_ON] if self.autoreport else []

    def stop(self) -> list[str]:
        """The SD print paused or ended: the commands that turn the reports off."""
        return [SD_AUTOREPORT_OFF] if self.autoreport else []
