"""The aggregator: the one owner of printer state.

It folds the printer link's events, and the server's own (:mod:`octotrio.state._local`: uploads,
selections), into the :class:`PrinterModel`, journals what sessions accumulate, fires push events
in OctoPrint's order and with its payloads (octoprint-push.md §9), and publishes change-driven
ticks at most every :data:`TICK_INTERVAL` seconds. It never awaits a session: everything it hands
out goes through the :class:`StateHub`.

Where OctoPrint 1.11.8 is quirky, octotrio does the sensible thing; each case is listed in
``spec/deviations.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from octotrio.printer import (
    ActionCommand,
    CommState,
    Connected,
    Connecting,
    Disconnected,
    Disconnecting,
    FirmwareInfo,
    FirmwareMessage,
    GcodeSent,
    JobCancelled,
    JobCancelling,
    JobFailed,
    JobFile,
    JobFinished,
    JobPaused,
    JobProgress,
    JobResumed,
    JobStarted,
    LinkError,
    Position,
    PositionReported,
    PrinterEvent,
    PrinterReset,
    ResendStatsChanged,
    SdFileSelected,
    SdFilesListed,
    SdStateChanged,
    StateChanged,
    TemperatureReport,
    TerminalLine,
    ZChanged,
)

from ._hub import HOLD_RELEASE_INTERVAL, StateHub, encode_json
from ._local import FileDeselected, FileRemoved, FileSelected, FileUploaded, LocalEvent, OffsetsChanged
from ._model import JSONObject, SelectedJob, empty_progress, progress_payload

TICK_INTERVAL = 0.5
"""Minimum time between two ticks: OctoPrint's StateMonitor interval (octoprint-push.md §6.1)."""

GCODE_EVENTS = {
    "M80": "PowerOn",
    "M81": "PowerOff",
    "G28": "Home",
    "G4": "Dwelling",
    "M0": "Waiting",
    "M1": "Waiting",
    "M226": "Waiting",
    "M245": "Cooling",
    "M300": "Alert",
    "M240": "Conveyor",
    "M40": "Eject",
    "M112": "EStop",
    "M600": "FilamentChange",
    "M701": "FilamentChange",
    "M702": "FilamentChange",
}
"""G-code triggered events, payload null (§9.3; OctoPrint's docs call ``Dwelling`` "Dwell")."""

MACHINECODE_TYPE = ["machinecode", "gcode"]
"""``type`` of a G-code file in file events (§9.5)."""

AggregatorInput = PrinterEvent | LocalEvent


def position_payload(position: Position) -> JSONObject:
    return {
        "x": position.x,
        "y": position.y,
        "z": position.z,
        "e": position.e,
        "t": position.t,
        "f": position.f,
    }


class Aggregator:
    """Sans-IO fold of printer and local events into the hub; :func:`run_aggregator` drives it.

    ``on_change`` is called after every fold, so that a driver can schedule a tick.
    """

    def __init__(self, hub: StateHub, on_change: Callable[[], None] = lambda: None) -> None:
        self.hub = hub
        self.model = hub.model
        self.on_change = on_change
        self._job_file = JobFile(name="", path="", origin="local", size=None)
        """The file of the current or last job (set on selection and on JobStarted)."""

    def fold(self, event: AggregatorInput) -> None:
        """Apply one event: update state, journal accumulations, fire push events."""
        hub, model = self.hub, self.model
        hub.model_changed()
        now = hub.wall_clock()
        match event:
            case TerminalLine(text=text):
                self._log(text)
            case FirmwareMessage(text=text):
                model.messages.append(text)
                hub.messages.append(encode_json(text))
            case TemperatureReport(readings=readings):
                finite = [(name, r) for name, r in readings.items() if math.isfinite(r.actual)]
                point = model.temperature_point(finite, now)
                model.add_temperature(point)
                hub.temps.append(encode_json(point))
            case StateChanged(state=state, error=error):
                self._change_state(state, error)
            case Connecting(port=port, baudrate=baudrate):
                model.resend_count = model.transmitted = 0
                model.port, model.baudrate = port, baudrate
                hub.publish_event("Connecting", None)
            case Connected(port=port, baudrate=baudrate):
                model.connected = True
                model.add_marking("connected", "Connected", now)
                hub.publish_event("Connected", {"port": port, "baudrate": baudrate})
            case FirmwareInfo(name=name, data=data):
                hub.publish_event("FirmwareData", {"name": name, "data": dict(data)})
            case LinkError(error=error, reason=reason, consequence=consequence):
                model.error = error
                payload: JSONObject = {"error": error, "reason": reason}
                if consequence is not None:
                    payload["consequence"] = consequence
                payload["logs"] = list(model.logs)[-20:]
                hub.publish_event("Error", payload)
            case Disconnecting():
                hub.publish_event("Disconnecting", None)
            case Disconnected():
                self._disconnected(now)
            case PrinterReset(idle=idle):
                hub.publish_event("PrinterReset", {"idle": idle})
            case ResendStatsChanged(count=count, transmitted=transmitted):
                model.resend_count, model.transmitted = count, transmitted
            case GcodeSent(command=command):
                if (event_type := GCODE_EVENTS.get(command.upper())) is not None:
                    hub.publish_event(event_type, None)
            case ZChanged(new=new, old=old):
                model.current_z = new
                hub.publish_event("ZChange", {"new": new, "old": old})
            case ActionCommand(name="notification", params=params):
                # //action:notification <text> → plugin action_command_notification (§3.6).
                hub.publish_plugin("action_command_notification", {"message": params})
            case SdStateChanged(ready=ready):
                model.sd_ready = ready
                if not ready:
                    model.sd_files = ()
            case SdFilesListed(files=files):
                # OctoPrint fires UpdatedFiles for every SD listing (the last event of §9.7 connect).
                model.sd_files = files
                hub.publish_event("UpdatedFiles", {"type": "printables"})
            case SdFileSelected(file=file, user=user):
                self._select(SelectedJob(file, user, None))
            case PositionReported(position=position, reason=None):
                # Pause positions come with JobPaused (to keep §9.7's order); cancel positions are
                # not logged by OctoPrint's defaults. A plain M114 reply is reported as it comes.
                hub.publish_event("PositionUpdate", {"reason": None, **position_payload(position)})
            case _:
                self._fold_job(event, now)
        self.on_change()

    def _fold_job(self, event: AggregatorInput, now: float) -> None:
        hub, model = self.hub, self.model
        match event:
            case JobStarted(file=file):
                self._job_file = file
                model.progress = empty_progress()
                model.current_z = None
                hub.publish_event("PrintStarted", self._job_payload())
                self._mark("print", "Start", now)
            case JobProgress(filepos=filepos, print_time=print_time):
                file = self._job_file
                expected = model.expected_print_time(file.path)
                model.progress = progress_payload(filepos, file.size, print_time, expected)
            case JobPaused(position=position, filepos=filepos):
                hub.publish_event(
                    "PrintPaused",
                    self._job_payload(position=position_payload(position), **self._at(filepos)),
                )
                self._mark("pause", "Pause", now)
                hub.publish_event("PositionUpdate", {"reason": "pause", **position_payload(position)})
            case JobResumed():
                hub.publish_event("PrintResumed", self._job_payload())
                self._mark("resume", "Resume", now)
            case JobCancelling(firmware_error=firmware_error):
                extra = {} if firmware_error is None else {"firmwareError": firmware_error}
                hub.publish_event("PrintCancelling", {**self._job_payload(), **extra})
            case JobCancelled(position=position, filepos=filepos, print_time=print_time):
                payload = self._job_payload(
                    position=position_payload(position), **self._at(filepos), time=print_time
                )
                hub.publish_event("PrintCancelled", payload)
                self._mark("cancel", "Cancel", now)
                self._statistics_updated()
                hub.publish_event("PrintFailed", {**payload, "reason": "cancelled"})
                model.progress = empty_progress()
                model.current_z = None
            case JobFinished(print_time=print_time):
                file = self._job_file
                model.progress = progress_payload(file.size or 0, file.size, print_time)
                self._mark("done", "Done", now)
                model.record_print(file.path, print_time)
                hub.publish_event("PrintDone", self._job_payload(time=print_time))
                self._statistics_updated()
            case JobFailed(error=error, filepos=filepos, print_time=print_time):
                hub.publish_event(
                    "PrintFailed",
                    self._job_payload(
                        time=print_time, reason="error", error=error, progress=self._at(filepos)["progress"]
                    ),
                )
                model.progress = empty_progress()
            case _:
                self._fold_local(event)

    def _fold_local(self, event: AggregatorInput) -> None:
        hub, model = self.hub, self.model
        match event:
            case FileUploaded() as upload:
                self._file_event("FileAdded", upload.path, upload.name, "add")
                hub.publish_event("UpdatedFiles", {"type": "printables"})
                origin = {"name": upload.name, "path": upload.path, "origin": "local"}
                hub.publish_event("MetadataAnalysisStarted", {**origin, "type": "gcode"})
                hub.publish_event(
                    "Upload",
                    {
                        "name": upload.name,
                        "path": upload.path,
                        "target": "local",
                        "select": upload.select,
                        "print": upload.print,
                        "effective_select": upload.effective_select,
                        "effective_print": upload.effective_print,
                    },
                )
                hub.publish_event("MetadataAnalysisFinished", {**origin, "result": dict(upload.analysis)})
            case FileRemoved(path=path, name=name):
                self._file_event("FileRemoved", path, name, "remove")
                hub.publish_event("UpdatedFiles", {"type": "printables"})
            case FileSelected(file=file, user=user, analysis=analysis):
                self._select(SelectedJob(file, user, analysis))
            case FileDeselected():
                self._deselect()
            case OffsetsChanged(offsets=offsets):
                model.offsets.update(offsets)

    def _select(self, selected: SelectedJob) -> None:
        model = self.model
        model.selected = selected
        model.ever_selected = True
        self._job_file = selected.file
        model.progress = empty_progress()
        model.current_z = None
        self.hub.publish_event("FileSelected", self._job_payload())

    def _job_payload(self, **extra: object) -> JSONObject:
        """The base payload of job events (§9.4), then ``extra``, then ``owner`` and ``user``.

        ``time``, ``reason``, ``error`` follow ``owner``/``user`` as in OctoPrint's samples.
        """
        file = self._job_file
        selected = self.model.selected
        user = selected.user if selected is not None else None
        payload: JSONObject = {"name": file.name, "path": file.path, "origin": file.origin, "size": file.size}
        after: dict[str, object] = {
            key: extra.pop(key) for key in ("time", "reason", "error") if key in extra
        }
        payload.update(extra)
        if user is not None:
            payload["owner"] = user
            payload["user"] = user
        payload.update(after)
        return payload

    def _at(self, filepos: int) -> dict[str, object]:
        """``fileposition`` and ``progress`` (whole percent, rounded down as OctoPrint does)."""
        size = self._job_file.size
        progress = min(100, filepos * 100 // size) if size else 0
        return {"fileposition": filepos, "progress": progress}

    def _mark(self, kind: str, label: str, now: float) -> None:
        self.model.add_marking(kind, label, now)
        self.hub.publish_event("ChartMarked", {"type": kind, "label": label})

    def _statistics_updated(self) -> None:
        file = self._job_file
        if file.origin == "local":
            self.hub.publish_event("MetadataStatisticsUpdated", {"storage": "local", "path": file.path})

    def _file_event(self, event_type: str, path: str, name: str, operation: str) -> None:
        self.hub.publish_event(
            event_type,
            {
                "storage": "local",
                "path": path,
                "name": name,
                "type": MACHINECODE_TYPE,
                "operation": operation,
            },
        )

    def _deselect(self) -> None:
        model = self.model
        if model.selected is not None:
            model.selected = None
            self.hub.publish_event("FileDeselected", None)
        model.progress = empty_progress()
        model.current_z = None

    def _disconnected(self, now: float) -> None:
        """§9.7: UpdatedFiles → FileDeselected (when a file was selected) → Disconnected → plugin
        ``action_command_notification {}`` (clears the notifications the printer sent). OctoPrint's
        ``firmware_check {"type":"update"}`` that follows is not sent: octotrio has no firmware check."""
        model = self.model
        model.connected = False
        model.sd_ready, model.sd_files = False, ()
        model.port = model.baudrate = None
        model.resend_count = model.transmitted = 0
        model.targets.clear()
        self.hub.publish_event("UpdatedFiles", {"type": "printables"})
        self._deselect()
        model.add_marking("disconnected", "Disconnected", now)
        self.hub.publish_event("Disconnected", None)
        self.hub.publish_plugin("action_command_notification", {})

    def _log(self, text: str) -> None:
        self.model.logs.append(text)
        self.hub.logs.append(encode_json(text))
        if text.startswith("Send: "):
            self.model.transmitted += 1

    def _change_state(self, state: CommState, error: str) -> None:
        model = self.model
        old_text = model.state_text
        model.state = state
        if state in (CommState.ERROR, CommState.CLOSED_WITH_ERROR):
            model.error = error or model.error
        elif state is not CommState.OFFLINE:
            model.error = ""
        self._log(f'Changing monitoring state from "{old_text}" to "{model.state_text}"')
        self.hub.publish_event(
            "PrinterStateChanged", {"state_id": state.value, "state_string": model.state_text}
        )


class StateFeed:
    """How the rest of the server hands :mod:`octotrio.state._local` events to the aggregator.

    :func:`run_aggregator` reports one. :meth:`submit` folds at once, in the caller's task, so the
    events it fires come before anything the caller does next (e.g. ``FileSelected`` before the
    printer's STARTING).
    """

    def __init__(self, aggregator: Aggregator) -> None:
        self._aggregator = aggregator

    @property
    def hub(self) -> StateHub:
        return self._aggregator.hub

    def submit(self, event: LocalEvent) -> None:
        self._aggregator.fold(event)


async def run_aggregator(
    events: trio.MemoryReceiveChannel[PrinterEvent],
    hub: StateHub,
    *,
    task_status: trio.TaskStatus[StateFeed] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Fold printer events and publish ticks until cancelled or the channel closes.

    Reports a :class:`StateFeed` for the server's own events. A tick goes out when something
    changed, at most every :data:`TICK_INTERVAL` seconds (no change, no tick). Events sessions
    hold are released :data:`HOLD_RELEASE_INTERVAL` after the first request. Cancellation simply
    stops both loops; there is nothing to clean up.
    """
    dirty = trio.Event()

    def mark_dirty() -> None:
        dirty.set()

    aggregator = Aggregator(hub, on_change=mark_dirty)

    async def publish_ticks() -> None:
        nonlocal dirty
        last_tick = -math.inf
        while True:
            await dirty.wait()
            await trio.sleep_until(last_tick + TICK_INTERVAL)
            dirty = trio.Event()
            last_tick = trio.current_time()
            hub.publish_tick(last_tick)

    async def release_held_events() -> None:
        while True:
            await hub.release_requested.wait()
            await trio.sleep(HOLD_RELEASE_INTERVAL)
            hub.release_held()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_ticks)
        nursery.start_soon(release_held_events)
        task_status.started(StateFeed(aggregator))
        async with events:
            async for event in events:
                aggregator.fold(event)
        nursery.cancel_scope.cancel()
