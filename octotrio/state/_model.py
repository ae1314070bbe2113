"""The printer state model: what ``current`` and ``history`` describe, as plain data.

Sans-IO: no trio, no clock reads. The aggregator owns one :class:`PrinterModel` and folds
:mod:`octotrio.printer` events into it; times are passed in (wall-clock seconds).
Payload shapes follow OctoPrint 1.11.8 (reference: octoprint-push.md §8).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from octotrio.printer import JOB_STATES, CommState, JobFile, Reading, SdFile

JSONObject = dict[str, Any]

STATE_TEXTS: dict[CommState, str] = {
    CommState.OFFLINE: "Offline",
    CommState.OPEN_SERIAL: "Opening serial connection",
    CommState.DETECT_SERIAL: "Detecting serial connection",
    CommState.CONNECTING: "Connecting",
    CommState.OPERATIONAL: "Operational",
    CommState.STARTING: "Starting",
    CommState.PRINTING: "Printing",
    CommState.PAUSING: "Pausing",
    CommState.PAUSED: "Paused",
    CommState.RESUMING: "Resuming",
    CommState.CANCELLING: "Cancelling",
    CommState.FINISHING: "Finishing",
    CommState.TRANSFERING_FILE: "Transferring file to SD",
    CommState.ERROR: "Error",
    CommState.CLOSED_WITH_ERROR: "Offline after error",
}

SD_STATE_TEXTS: dict[CommState, str] = {
    CommState.STARTING: "Starting print from SD",
    CommState.PRINTING: "Printing from SD",
}
"""Where the text differs while the selected file is on the SD card (octoprint-push.md §8.1)."""

_OPERATIONAL = JOB_STATES | {CommState.OPERATIONAL, CommState.TRANSFERING_FILE}
# OctoPrint's "printing" flag is off while paused; "ready" is off while any job state lasts.
_PRINTING = JOB_STATES - {CommState.PAUSED}
_CLOSED_OR_ERROR = frozenset({CommState.OFFLINE, CommState.ERROR, CommState.CLOSED_WITH_ERROR})
_ERROR = frozenset({CommState.ERROR, CommState.CLOSED_WITH_ERROR})

HISTORY_CUTOFF_SECONDS = 30 * 60
"""Temperatures and markings older than this leave ``history`` (OctoPrint's ``temperature.cutoff``)."""

TEMPERATURE_HISTORY_LIMIT = 3600
"""Hard cap on stored temperature points: the 30-minute cutoff at two points per second, so a
firmware that floods temperature lines cannot grow memory without bound."""

TERMINAL_HISTORY_LIMIT = 300
"""Logs and messages kept for ``history``: the last 300 of each, as OctoPrint keeps them."""

MARKINGS_LIMIT = 500
"""Hard cap on markings besides the time cutoff; each is repeated in every ``current``."""


def state_flags(state: CommState, *, sd_ready: bool = False) -> dict[str, bool]:
    """The 11 ``state.flags``, derived as OctoPrint derives them (octoprint-push.md §8.1);
    ``sd_ready`` is whether the firmware reported an SD card.

    Deviation, on purpose: ``error`` is true in "Offline after error" too (OctoPrint reports
    false there because its connection object is gone; quirk Q3).
    """
    operational = state in _OPERATIONAL
    return {
        "operational": operational,
        "printing": state in _PRINTING,
        "cancelling": state is CommState.CANCELLING,
        "pausing": state is CommState.PAUSING,
        "resuming": state is CommState.RESUMING,
        "finishing": state is CommState.FINISHING,
        "closedOrError": state in _CLOSED_OR_ERROR,
        "error": state in _ERROR,
        "paused": state is CommState.PAUSED,
        "ready": operational and state not in JOB_STATES,
        "sdReady": sd_ready,
    }


STATISTICS_LIMIT = 4096
"""Files whose print times are remembered (for ``averagePrintTime``/``lastPrintTime``)."""


def never_selected_job() -> JSONObject:
    """The "no job since server start" shape (octoprint-push.md §8.2, first variant)."""
    return {
        "file": {"name": None, "path": None, "size": None, "origin": None, "date": None},
        "estimatedPrintTime": None,
        "lastPrintTime": None,
        "filament": {"length": None, "volume": None},
        "user": None,
    }


def deselected_job() -> JSONObject:
    """The "no job after a deselect or disconnect" shape: every key present and null (§8.2, Q9)."""
    return {
        "file": {"name": None, "path": None, "display": None, "origin": None, "size": None, "date": None},
        "estimatedPrintTime": None,
        "averagePrintTime": None,
        "lastPrintTime": None,
        "filament": None,
        "user": None,
    }


def empty_progress() -> JSONObject:
    return {
        "completion": None,
        "filepos": None,
        "printTime": None,
        "printTimeLeft": None,
        "printTimeLeftOrigin": None,
    }


# §8.3 printTimeLeftOrigin: how the estimate moves from the print time expected before the print
# to the rate so far. OctoPrint's estimation.printTime defaults: blend the two until
# statsWeighingUntil = 50 % (weighted by progress), and the rate alone ("linear") from
# forceDumbFromPercent = 30 % or forceDumbAfterMin = 30 minutes on. OctoPrint gives the expected
# time alone until its rolling estimate settles; below EXPECTED_ONLY_BELOW the rate of a few lines
# (heating, homing) says little, so that stateless threshold stands in for it.
EXPECTED_ONLY_BELOW = 0.1
BLEND_UNTIL = 0.5
LINEAR_FROM = 0.3
LINEAR_AFTER = 30 * 60.0


@dataclass(frozen=True)
class ExpectedPrintTime:
    """How long the print should take, known before it started: from the file's analysis
    (``analysis``) or from earlier prints of the file (``average``)."""

    seconds: float
    origin: str


def time_left(
    fraction: float, print_time: float, expected: ExpectedPrintTime | None
) -> tuple[int | None, str | None]:
    """``printTimeLeft`` and ``printTimeLeftOrigin`` for ``fraction`` (0–1) of the file printed in
    ``print_time`` seconds (§8.3).

    At 0 % both are null; at 100 % the time left is 0 and the origin null. In between: the expected
    time early in the print (origin ``analysis`` or ``average``), then a blend
    (``mixed-analysis``, ``mixed-average``), then the rate so far (``linear``: elapsed / fraction);
    without an expected time, the rate so far throughout.
    """
    if fraction >= 1.0:
        return 0, None
    if fraction <= 0.0:
        return None, None
    linear = print_time / fraction
    if expected is None or fraction >= LINEAR_FROM or print_time >= LINEAR_AFTER:
        total, origin = linear, "linear"
    elif fraction < EXPECTED_ONLY_BELOW:
        total, origin = expected.seconds, expected.origin
    else:
        weight = fraction / BLEND_UNTIL
        total, origin = (1 - weight) * expected.seconds + weight * linear, f"mixed-{expected.origin}"
    return max(0, round(total - print_time)), origin


def progress_payload(
    filepos: int, size: int | None, print_time: float, expected: ExpectedPrintTime | None = None
) -> JSONObject:
    """``progress`` while printing; ``time_left`` estimates the time left from ``expected``."""
    fraction = min(1.0, filepos / size) if size else 0.0
    left, origin = time_left(fraction, print_time, expected)
    return {
        "completion": 100.0 * fraction,
        "filepos": filepos,
        "printTime": int(print_time),
        "printTimeLeft": left,
        "printTimeLeftOrigin": origin,
    }


@dataclass(frozen=True)
class SelectedJob:
    """The selected file, who selected it and its analysis (``estimatedPrintTime``, ``filament``)."""

    file: JobFile
    user: str | None
    analysis: Mapping[str, Any] | None


@dataclass(frozen=True)
class PrintStatistics:
    """Successful prints of one file: for ``averagePrintTime`` and ``lastPrintTime``."""

    count: int
    total_seconds: float
    last_seconds: float

    @property
    def average_seconds(self) -> float:
        return self.total_seconds / self.count


@dataclass
class PrinterModel:
    """Everything the push API reports about the printer, owned by the aggregator."""

    state: CommState = CommState.OFFLINE
    error: str = ""
    connected: bool = False
    sd_ready: bool = False
    sd_files: tuple[SdFile, ...] = ()
    """The SD card's files, as the firmware listed them last (empty without a card)."""
    port: str | None = None
    baudrate: int | None = None
    selected: SelectedJob | None = None
    ever_selected: bool = False
    statistics: OrderedDict[str, PrintStatistics] = field(default_factory=OrderedDict)
    progress: JSONObject = field(default_factory=empty_progress)
    current_z: float | None = None
    offsets: dict[str, float] = field(default_factory=dict)
    resend_count: int = 0
    transmitted: int = 0
    targets: dict[str, float | None] = field(default_factory=dict)
    temps: deque[JSONObject] = field(default_factory=lambda: deque(maxlen=TEMPERATURE_HISTORY_LIMIT))
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=TERMINAL_HISTORY_LIMIT))
    messages: deque[str] = field(default_factory=lambda: deque(maxlen=TERMINAL_HISTORY_LIMIT))
    markings: deque[JSONObject] = field(default_factory=lambda: deque(maxlen=MARKINGS_LIMIT))

    @property
    def state_text(self) -> str:
        if self.selected is not None and self.selected.file.origin == "sdcard":
            return SD_STATE_TEXTS.get(self.state, STATE_TEXTS[self.state])
        return STATE_TEXTS[self.state]

    @property
    def busy(self) -> bool:
        """A job is running or paused: its file must not be changed (``busyFiles``)."""
        return self.state in JOB_STATES

    @property
    def operational(self) -> bool:
        return self.state in _OPERATIONAL

    @property
    def job(self) -> JSONObject:
        """``job`` as OctoPrint reports it, in its key order (§8.2)."""
        selected = self.selected
        if selected is None:
            return deselected_job() if self.ever_selected else never_selected_job()
        file, analysis = selected.file, selected.analysis or {}
        statistics = self.statistics.get(file.path)
        return {
            "file": {
                "name": file.name,
                "path": file.path,
                "display": file.name,
                "origin": file.origin,
                "size": file.size,
                "date": file.date,
            },
            "estimatedPrintTime": analysis.get("estimatedPrintTime"),
            "averagePrintTime": statistics.average_seconds if statistics else None,
            "lastPrintTime": statistics.last_seconds if statistics else None,
            "filament": analysis.get("filament") or None,
            "user": selected.user,
        }

    def expected_print_time(self, path: str) -> ExpectedPrintTime | None:
        """How long a print of ``path`` should take: the average of its earlier successful prints,
        else the analysis of the selected file (if it is ``path``), else unknown."""
        if (statistics := self.statistics.get(path)) is not None:
            return ExpectedPrintTime(statistics.average_seconds, "average")
        selected = self.selected
        if selected is None or selected.file.path != path or selected.analysis is None:
            return None
        estimated = selected.analysis.get("estimatedPrintTime")
        if isinstance(estimated, int | float) and estimated > 0:
            return ExpectedPrintTime(float(estimated), "analysis")
        return None

    def record_print(self, path: str, seconds: float) -> None:
        """Remember a successful print of ``path`` that took ``seconds``."""
        old = self.statistics.pop(path, PrintStatistics(0, 0.0, 0.0))
        self.statistics[path] = PrintStatistics(old.count + 1, old.total_seconds + seconds, seconds)
        while len(self.statistics) > STATISTICS_LIMIT:
            self.statistics.popitem(last=False)

    def temperature_point(self, readings: Iterable[tuple[str, Reading]], now: float) -> JSONObject:
        """Turn one temperature report into a ``temps[]`` data point and remember targets.

        A reading without a target (``B:51.42`` while M190 waits) keeps the last known target.
        ``bed`` and ``chamber`` are always present while connected, null when not reported,
        as OctoPrint sends them (octoprint-push.md §8.5).
        """
        point: JSONObject = {"time": int(now)}
        for name, reading in readings:
            if reading.target is not None:
                self.targets[name] = reading.target
            point[name] = {"actual": reading.actual, "target": self.targets.get(name)}
        for name in ("bed", "chamber"):
            point.setdefault(name, {"actual": None, "target": None})
        return point

    def add_temperature(self, point: JSONObject) -> None:
        self.temps.append(point)
        self._expire(point["time"])

    def add_marking(self, kind: str, label: str, now: float) -> JSONObject:
        marking = {"type": kind, "label": label, "time": now}
        self.markings.append(marking)
        self._expire(now)
        return marking

    def _expire(self, now: float) -> None:
        cutoff = now - HISTORY_CUTOFF_SECONDS
        while self.temps and self.temps[0]["time"] < cutoff:
            self.temps.popleft()
        while self.markings and self.markings[0]["time"] < cutoff:
            self.markings.popleft()

    def state_payload(self) -> JSONObject:
        return {
            "text": self.state_text,
            "flags": state_flags(self.state, sd_ready=self.sd_ready),
            "error": self.error,
        }

    def resends_payload(self) -> JSONObject:
        ratio = int(100 * self.resend_count / self.transmitted) if self.transmitted else 0
        return {"count": self.resend_count, "transmitted": self.transmitted, "ratio": ratio}

    def snapshot_head(self) -> JSONObject:
        """The part of ``current`` that is the same for every client, in OctoPrint's key order."""
        return {
            "state": self.state_payload(),
            "job": self.job,
            "currentZ": self.current_z,
            "progress": self.progress,
            "offsets": self.offsets,
            "resends": self.resends_payload(),
        }

    def busy_files(self) -> list[JSONObject]:
        """The file being printed (or paused), as ``busyFiles`` lists it (§8.7)."""
        if self.selected is None or not self.busy:
            return []
        return [{"origin": self.selected.file.origin, "path": self.selected.file.path}]

    def history_payload(self) -> JSONObject:
        """The ``history`` payload but its last member, ``serverTime`` (each session's own): snapshot
        plus full temperature, log, message and marking histories."""
        return {
            **self.snapshot_head(),
            "temps": list(self.temps),
            "logs": list(self.logs),
            "messages": list(self.messages),
            "markings": list(self.markings),
        }
