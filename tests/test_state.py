"""The state model and the aggregator's fold, without I/O."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio

from octotrio.printer import (
    CommState,
    Connected,
    Connecting,
    Disconnected,
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
    PrinterEvent,
    PrinterReset,
    Reading,
    ResendStatsChanged,
    SdFile,
    SdFileSelected,
    SdFilesListed,
    SdStateChanged,
    StateChanged,
    TemperatureReport,
    TerminalLine,
    ZChanged,
)
from octotrio.push._messages import encode_history, history_for
from octotrio.push._subscription import Filter
from octotrio.state import (
    Aggregator,
    AggregatorInput,
    FileDeselected,
    FileRemoved,
    FileSelected,
    FileUploaded,
    Journal,
    OffsetsChanged,
    PrinterModel,
    StateHub,
    encode_json,
    state_flags,
)
from octotrio.state._model import ExpectedPrintTime, time_left

FIXTURES = Path(__file__).parent / "fixtures" / "octoprint-1.11.8"


def sample_payload(name: str) -> dict[str, Any]:
    message: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    (payload,) = message.values()
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize(
    ("state", "sample"),
    [
        (CommState.OFFLINE, "history-fresh-offline.json"),
        (CommState.OPEN_SERIAL, "current-connecting.json"),
        (CommState.OPERATIONAL, "current-idle-operational.json"),
        (CommState.PRINTING, "current-printing.json"),
        (CommState.PAUSED, "current-paused.json"),
    ],
)
def test_flags_match_octoprint(state: CommState, sample: str) -> None:
    observed = sample_payload(sample)["state"]["flags"]
    # OctoPrint's virtual printer has an SD card: sdReady is set once it said "SD card ok".
    assert state_flags(state, sd_ready=observed["sdReady"]) == observed


def test_offline_after_error_sets_the_error_flag_unlike_octoprint() -> None:
    flags = state_flags(CommState.CLOSED_WITH_ERROR)
    assert flags["closedOrError"]
    assert flags["error"]
    assert not flags["operational"]


class Recorder:
    """A hub with an aggregator and a fake wall clock, recording published events."""

    def __init__(self) -> None:
        self.now = 1_795_462_132.25
        self.hub = StateHub(PrinterModel(), wall_clock=lambda: self.now)
        self.aggregator = Aggregator(self.hub)
        self._events_seq = 0

    def events(self) -> list[dict[str, Any]]:
        read = self.hub.events.read_since(self._events_seq)
        self._events_seq = read.next_seq
        # The journal also carries plugin messages (sent on disconnect); these tests follow events.
        messages = [json.loads(item) for item in read.items]
        return [message["event"] for message in messages if "event" in message]


def test_connect_sequence_fires_octoprint_events_in_order() -> None:
    recorder = Recorder()
    sequence: list[PrinterEvent] = [
        Connecting("/dev/pts/3", 115200),
        StateChanged(CommState.OPEN_SERIAL),
        StateChanged(CommState.CONNECTING),
        StateChanged(CommState.OPERATIONAL),
        Connected("/dev/pts/3", 115200),
        FirmwareInfo(
            "Virtual Marlin 1.0", {"FIRMWARE_NAME": "Virtual Marlin 1.0", "PROTOCOL_VERSION": "1.0"}
        ),
    ]
    for event in sequence:
        recorder.aggregator.fold(event)
    events = recorder.events()
    assert [e["type"] for e in events] == [
        "Connecting",
        "PrinterStateChanged",
        "PrinterStateChanged",
        "PrinterStateChanged",
        "Connected",
        "FirmwareData",
    ]
    assert [e["payload"]["state_id"] for e in events[1:4]] == ["OPEN_SERIAL", "CONNECTING", "OPERATIONAL"]
    assert events[4]["payload"] == {"port": "/dev/pts/3", "baudrate": 115200}
    assert events[5]["payload"] == sample_payload("event-FirmwareData.json")["payload"]
    assert recorder.hub.model.markings[-1]["type"] == "connected"


def test_device_loss_reports_error_then_offline_after_error() -> None:
    recorder = Recorder()
    recorder.aggregator.fold(StateChanged(CommState.OPERATIONAL))
    recorder.events()
    loss: list[PrinterEvent] = [
        StateChanged(CommState.ERROR, "Device vanished"),
        LinkError("Device vanished", "connection"),
        Disconnected(),
        StateChanged(CommState.CLOSED_WITH_ERROR, "Device vanished"),
    ]
    for event in loss:
        recorder.aggregator.fold(event)
    events = recorder.events()
    assert [e["type"] for e in events] == [
        "PrinterStateChanged",
        "Error",
        "UpdatedFiles",
        "Disconnected",
        "PrinterStateChanged",
    ]
    assert events[1]["payload"]["error"] == "Device vanished"
    assert events[1]["payload"]["reason"] == "connection"
    state = recorder.hub.model.state_payload()
    assert state["text"] == "Offline after error"
    assert state["error"] == "Device vanished"


def test_temperature_points_keep_targets_and_always_carry_bed_and_chamber() -> None:
    recorder = Recorder()
    recorder.aggregator.fold(TemperatureReport({"tool0": Reading(21.3, 0.0), "bed": Reading(40.0, 60.0)}))
    recorder.aggregator.fold(TemperatureReport({"bed": Reading(51.42, None)}))  # an M190 wait line
    first, second = recorder.hub.model.temps
    assert first == {
        "time": 1_795_462_132,
        "tool0": {"actual": 21.3, "target": 0.0},
        "bed": {"actual": 40.0, "target": 60.0},
        "chamber": {"actual": None, "target": None},
    }
    assert second["bed"] == {"actual": 51.42, "target": 60.0}


def test_non_finite_temperatures_are_left_out() -> None:
    recorder = Recorder()
    recorder.aggregator.fold(
        TemperatureReport({"tool0": Reading(float("nan"), 0.0), "bed": Reading(20.0, 0.0)})
    )
    (point,) = recorder.hub.model.temps
    assert "tool0" not in point
    json.dumps(point, allow_nan=False)


def test_logs_and_messages_history_is_bounded_to_the_last_300() -> None:
    recorder = Recorder()
    for n in range(1000):
        recorder.aggregator.fold(TerminalLine(f"Recv: {n}"))
        recorder.aggregator.fold(FirmwareMessage(f"{n}"))
    history = recorder.hub.model.history_payload()
    assert history["logs"] == [f"Recv: {n}" for n in range(700, 1000)]
    assert history["messages"] == [f"{n}" for n in range(700, 1000)]


def test_history_and_the_first_current_neither_overlap_nor_leave_a_gap() -> None:
    recorder = Recorder()
    recorder.aggregator.fold(TerminalLine("Recv: before"))
    history, view = recorder.hub.open_view()
    recorder.aggregator.fold(TerminalLine("Recv: after"))
    recorder.hub.publish_tick(0.0)
    _, accumulated = view.take_tick()
    assert history.payload["logs"] == ["Recv: before"]
    assert [json.loads(line) for line in accumulated.logs] == ["Recv: after"]


def test_history_is_taken_once_per_state_version_and_encoded_once_per_kind_of_session() -> None:
    recorder = Recorder()
    recorder.aggregator.fold(TerminalLine("Recv: one"))
    first, _ = recorder.hub.open_view()
    again, _ = recorder.hub.open_view()
    assert again is first  # nothing changed: a storm of sessions shares one history
    admin = encode_history(first, 1.5, terminal=True, logs=True, messages=True)
    assert encode_history(again, 1.5, terminal=True, logs=True, messages=True) == admin
    recorder.aggregator.fold(TerminalLine("Recv: two"))
    later, _ = recorder.hub.open_view()
    assert later is not first
    assert json.loads(encode_history(later, 2.0, terminal=True, logs=True, messages=True))["history"][
        "logs"
    ] == ["Recv: one", "Recv: two"]
    assert json.loads(admin)["history"]["logs"] == ["Recv: one"]


@pytest.mark.parametrize(
    ("terminal", "logs", "messages"),
    [(True, True, True), (True, True, False), (False, True, True), (True, re.compile("two"), False)],
)
def test_encoded_history_is_the_session_s_view_with_its_own_server_time_last(
    terminal: bool, logs: Filter, messages: Filter
) -> None:
    recorder = Recorder()
    for line in ("Recv: one", "Recv: two"):
        recorder.aggregator.fold(TerminalLine(line))
    recorder.aggregator.fold(FirmwareMessage("hello"))
    history, _ = recorder.hub.open_view()
    encoded = encode_history(history, 12.25, terminal=terminal, logs=logs, messages=messages)
    expected = history_for(history.payload, terminal=terminal, logs=logs, messages=messages)
    expected["serverTime"] = 12.25
    assert encoded == encode_json({"history": expected})
    assert list(json.loads(encoded)["history"])[-1] == "serverTime"


def test_journal_reports_what_a_slow_reader_missed() -> None:
    journal: Journal[str] = Journal(capacity=3)
    for n in range(5):
        journal.append(str(n))
    read = journal.read_since(0)
    assert read.items == ["2", "3", "4"]
    assert read.missed == 2
    assert journal.read_since(read.next_seq).items == []


FILE = JobFile(name="research_short.gcode", path="research_short.gcode", origin="local", size=11468, date=17)
PAUSE_POSITION = Position(x=70.0, y=52.0, z=2.6, e=98.4, t=0, f=300.0)


def fold_all(recorder: Recorder, events: list[AggregatorInput]) -> list[dict[str, Any]]:
    for event in events:
        recorder.aggregator.fold(event)
    return recorder.events()


def printing(recorder: Recorder) -> list[dict[str, Any]]:
    """Select FILE as ``_api`` and start it; the events fired."""
    fold_all(recorder, [StateChanged(CommState.OPERATIONAL)])
    return fold_all(
        recorder,
        [
            FileSelected(
                FILE, "_api", {"estimatedPrintTime": 1630.9, "filament": {"tool0": {"length": 320.0}}}
            ),
            StateChanged(CommState.STARTING),
            JobStarted(FILE),
            StateChanged(CommState.PRINTING),
        ],
    )


def names(events: list[dict[str, Any]]) -> list[str]:
    """Event types, with the state of PrinterStateChanged and the type of ChartMarked."""
    return [
        f"{e['type']} {e['payload']['state_id']}"
        if e["type"] == "PrinterStateChanged"
        else f"ChartMarked {e['payload']['type']}"
        if e["type"] == "ChartMarked"
        else e["type"]
        for e in events
    ]


def test_select_and_print_fire_octoprint_events_in_order_with_its_payloads() -> None:
    recorder = Recorder()
    events = printing(recorder)
    assert names(events) == [
        "FileSelected",
        "PrinterStateChanged STARTING",
        "PrintStarted",
        "ChartMarked print",
        "PrinterStateChanged PRINTING",
    ]
    # Deviation on purpose: FileSelected carries the size (OctoPrint sends null, Q11).
    assert events[0]["payload"] == {**sample_payload("event-FileSelected.json")["payload"], "size": 11468}
    assert events[2]["payload"] == sample_payload("event-PrintStarted.json")["payload"]
    assert events[3]["payload"] == sample_payload("event-ChartMarked.json")["payload"]
    model = recorder.hub.model
    assert model.busy_files() == [{"origin": "local", "path": "research_short.gcode"}]
    assert model.job["file"]["display"] == "research_short.gcode"
    assert model.job["estimatedPrintTime"] == 1630.9
    assert model.job["user"] == "_api"
    assert list(model.job) == list(sample_payload("current-printing.json")["job"])


def left_and_origin(model: PrinterModel) -> tuple[object, object]:
    return model.progress["printTimeLeft"], model.progress["printTimeLeftOrigin"]


def test_progress_estimates_the_time_left_from_the_analysis_then_the_rate() -> None:
    recorder = Recorder()
    printing(recorder)  # the file's analysis expects 1630.9 s
    model = recorder.hub.model
    assert model.progress["completion"] is None  # null after start (§8.3)
    recorder.aggregator.fold(JobProgress(filepos=0, print_time=3.0))
    assert model.progress["printTimeLeft"] is None
    assert model.progress["printTimeLeftOrigin"] is None
    # Early: the analysis alone ("analysis" early in a print, §8.3).
    recorder.aggregator.fold(JobProgress(filepos=573, print_time=10.0))
    assert left_and_origin(model) == (1621, "analysis")
    # A quarter of the file: half analysis, half the rate so far (120 s in all).
    recorder.aggregator.fold(JobProgress(filepos=2867, print_time=30.0))
    assert model.progress == {
        "completion": 25.0,
        "filepos": 2867,
        "printTime": 30,
        "printTimeLeft": 845,
        "printTimeLeftOrigin": "mixed-analysis",
    }
    # Half of the file: the rate so far alone.
    recorder.aggregator.fold(JobProgress(filepos=5734, print_time=60.0))
    assert left_and_origin(model) == (60, "linear")
    recorder.aggregator.fold(JobFinished(print_time=120.0))
    assert left_and_origin(model) == (0, None)


def test_a_file_printed_before_is_estimated_from_its_average_print_time() -> None:
    recorder = Recorder()
    printing(recorder)
    fold_all(recorder, [JobFinished(print_time=200.0), StateChanged(CommState.OPERATIONAL)])
    fold_all(recorder, [StateChanged(CommState.STARTING), JobStarted(FILE), StateChanged(CommState.PRINTING)])
    recorder.aggregator.fold(JobProgress(filepos=573, print_time=10.0))
    model = recorder.hub.model
    assert left_and_origin(model) == (190, "average")


@pytest.mark.parametrize(
    ("fraction", "print_time", "expected", "left"),
    [
        (0.0, 5.0, ExpectedPrintTime(100.0, "analysis"), (None, None)),
        (1.0, 90.0, ExpectedPrintTime(100.0, "analysis"), (0, None)),
        (0.05, 5.0, None, (95, "linear")),
        (0.05, 5.0, ExpectedPrintTime(100.0, "analysis"), (95, "analysis")),
        (0.05, 200.0, ExpectedPrintTime(100.0, "analysis"), (0, "analysis")),
        (0.2, 10.0, ExpectedPrintTime(100.0, "average"), (70, "mixed-average")),
        (0.3, 30.0, ExpectedPrintTime(1000.0, "analysis"), (70, "linear")),
        (0.2, 1800.0, ExpectedPrintTime(1000.0, "analysis"), (7200, "linear")),
    ],
)
def test_time_left_and_its_origin(
    fraction: float,
    print_time: float,
    expected: ExpectedPrintTime | None,
    left: tuple[int | None, str | None],
) -> None:
    # §8.3: null at 0 %, 0 and null at 100 %; expected time early, a blend, then the rate so far.
    assert time_left(fraction, print_time, expected) == left


def test_pause_resume_and_z_changes() -> None:
    recorder = Recorder()
    printing(recorder)
    events = fold_all(
        recorder,
        [
            GcodeSent("G28"),
            ZChanged(0.2, None),
            ZChanged(0.4, 0.2),
            StateChanged(CommState.PAUSING),
            JobPaused(PAUSE_POSITION, filepos=3544),
            StateChanged(CommState.PAUSED),
        ],
    )
    assert names(events) == [
        "Home",
        "ZChange",
        "ZChange",
        "PrinterStateChanged PAUSING",
        "PrintPaused",
        "ChartMarked pause",
        "PositionUpdate",
        "PrinterStateChanged PAUSED",
    ]
    assert events[1]["payload"] == sample_payload("event-ZChange.json")["payload"]
    assert events[4]["payload"] == sample_payload("event-PrintPaused.json")["payload"]
    assert events[6]["payload"] == sample_payload("event-PositionUpdate.json")["payload"]
    assert recorder.hub.model.current_z == 0.4
    assert recorder.hub.model.busy_files() != []  # a paused job's file is still busy

    events = fold_all(
        recorder, [StateChanged(CommState.RESUMING), JobResumed(), StateChanged(CommState.PRINTING)]
    )
    assert names(events) == [
        "PrinterStateChanged RESUMING",
        "PrintResumed",
        "ChartMarked resume",
        "PrinterStateChanged PRINTING",
    ]
    assert events[1]["payload"] == sample_payload("event-PrintResumed.json")["payload"]


def test_cancel_fires_cancelled_then_failed_and_clears_progress() -> None:
    recorder = Recorder()
    printing(recorder)
    recorder.aggregator.fold(JobProgress(filepos=5000, print_time=40.0))
    recorder.aggregator.fold(ZChanged(1.0, None))
    recorder.events()
    events = fold_all(
        recorder,
        [
            JobCancelling(),
            StateChanged(CommState.CANCELLING),
            JobCancelled(Position(), filepos=9949, print_time=91.06804582500001),
            StateChanged(CommState.OPERATIONAL),
        ],
    )
    assert names(events) == [
        "PrintCancelling",
        "PrinterStateChanged CANCELLING",
        "PrintCancelled",
        "ChartMarked cancel",
        "MetadataStatisticsUpdated",
        "PrintFailed",
        "PrinterStateChanged OPERATIONAL",
    ]
    assert events[0]["payload"] == sample_payload("event-PrintCancelling.json")["payload"]
    # Never the racy ``reason`` of Q2 on PrintCancelled; always on PrintFailed.
    assert events[2]["payload"] == sample_payload("event-PrintCancelled.json")["payload"]
    assert events[4]["payload"] == sample_payload("event-MetadataStatisticsUpdated.json")["payload"]
    assert events[5]["payload"] == sample_payload("event-PrintFailed.json")["payload"]
    model = recorder.hub.model
    assert set(model.progress.values()) == {None}
    assert model.current_z is None
    assert model.busy_files() == []
    assert model.job["file"]["path"] == "research_short.gcode"  # still selected


def test_finish_records_the_print_time_and_reports_100_percent() -> None:
    recorder = Recorder()
    printing(recorder)
    events = fold_all(
        recorder,
        [
            StateChanged(CommState.FINISHING),
            JobFinished(print_time=12.5),
            StateChanged(CommState.OPERATIONAL),
        ],
    )
    assert names(events) == [
        "PrinterStateChanged FINISHING",
        "ChartMarked done",
        "PrintDone",
        "MetadataStatisticsUpdated",
        "PrinterStateChanged OPERATIONAL",
    ]
    assert events[2]["payload"] == {
        "name": "research_short.gcode",
        "path": "research_short.gcode",
        "origin": "local",
        "size": 11468,
        "owner": "_api",
        "user": "_api",  # deviation on purpose: OctoPrint leaves it out (Q11)
        "time": 12.5,
    }
    model = recorder.hub.model
    assert model.progress["completion"] == 100.0
    assert model.progress["printTimeLeft"] == 0
    assert model.progress["printTimeLeftOrigin"] is None
    assert model.job["lastPrintTime"] == 12.5
    assert model.job["averagePrintTime"] == 12.5


def test_fatal_error_mid_print_fails_the_job_and_deselects_on_disconnect() -> None:
    recorder = Recorder()
    printing(recorder)
    events = fold_all(
        recorder,
        [
            StateChanged(CommState.ERROR, "Printer halted. kill() called!"),
            LinkError("Printer halted. kill() called!", "firmware", "emergency"),
            JobFailed("Printer halted. kill() called!", filepos=5734, print_time=20.0),
            GcodeSent("M112"),
            Disconnected(),
            StateChanged(CommState.CLOSED_WITH_ERROR, "Printer halted. kill() called!"),
        ],
    )
    assert names(events) == [
        "PrinterStateChanged ERROR",
        "Error",
        "PrintFailed",
        "EStop",
        "UpdatedFiles",
        "FileDeselected",
        "Disconnected",
        "PrinterStateChanged CLOSED_WITH_ERROR",
    ]
    assert events[2]["payload"]["reason"] == "error"
    assert events[2]["payload"]["error"] == "Printer halted. kill() called!"
    assert events[2]["payload"]["progress"] == 50  # whole percent, like the other job events
    model = recorder.hub.model
    assert model.job == sample_payload("current-offline-after-disconnect.json")["job"]
    assert model.busy_files() == []


def test_never_selected_and_deselected_job_shapes_differ_as_in_octoprint() -> None:
    recorder = Recorder()
    assert recorder.hub.model.job == sample_payload("history-fresh-offline.json")["job"]
    events = fold_all(recorder, [FileDeselected()])
    assert events == []  # nothing was selected
    fold_all(recorder, [FileSelected(FILE, "_api"), FileDeselected()])
    assert recorder.hub.model.job == sample_payload("current-offline-after-disconnect.json")["job"]


def test_upload_fires_file_events_in_octoprint_order() -> None:
    recorder = Recorder()
    analysis = sample_payload("event-MetadataAnalysisFinished.json")["payload"]["result"]
    events = fold_all(
        recorder,
        [FileUploaded("research_short.gcode", "research_short.gcode", analysis, False, False, False, False)],
    )
    assert [e["type"] for e in events] == [
        "FileAdded",
        "UpdatedFiles",
        "MetadataAnalysisStarted",
        "Upload",
        "MetadataAnalysisFinished",
    ]
    for event in events:
        assert event["payload"] == sample_payload(f"event-{event['type']}.json")["payload"]
    events = fold_all(recorder, [FileRemoved("a/b.gcode", "b.gcode")])
    assert [e["type"] for e in events] == ["FileRemoved", "UpdatedFiles"]
    assert events[0]["payload"] == {
        "storage": "local",
        "path": "a/b.gcode",
        "name": "b.gcode",
        "type": ["machinecode", "gcode"],
        "operation": "remove",
    }


def test_resend_stats_and_offsets_show_in_the_snapshot() -> None:
    recorder = Recorder()
    fold_all(recorder, [ResendStatsChanged(count=4, transmitted=164), OffsetsChanged({"tool0": 5.0})])
    head = recorder.hub.model.snapshot_head()
    assert head["resends"] == sample_payload("current-paused.json")["resends"]
    assert head["offsets"] == {"tool0": 5.0}


def test_every_g_code_event_has_a_null_payload() -> None:
    recorder = Recorder()
    events = fold_all(recorder, [GcodeSent("G4"), GcodeSent("M600"), GcodeSent("G1")])
    assert events == [{"type": "Dwelling", "payload": None}, {"type": "FilamentChange", "payload": None}]


def test_a_printer_reset_is_reported_with_whether_it_was_idle() -> None:
    recorder = Recorder()
    assert fold_all(recorder, [PrinterReset(idle=True)]) == [
        {"type": "PrinterReset", "payload": {"idle": True}}
    ]


def test_the_sd_card_shows_in_the_flags_its_listing_fires_updated_files_and_its_prints_say_so() -> None:
    recorder = Recorder()
    model = recorder.hub.model
    cube = JobFile("cube.gco", "cube.gco", "sdcard", 1234)
    sequence: list[PrinterEvent] = [
        SdStateChanged(True),
        StateChanged(CommState.OPERATIONAL),
        SdFilesListed((SdFile("CUBE.GCO", "Cube.gcode", 1234),)),
        SdFileSelected(cube, "_api"),
    ]
    for event in sequence:
        recorder.aggregator.fold(event)
    assert model.state_payload()["flags"]["sdReady"]
    assert len(model.sd_files) == 1
    events = recorder.events()
    # §9.7 connect: the SD listing's UpdatedFiles; then FileSelected with the sdcard origin.
    assert names(events)[1:] == ["UpdatedFiles", "FileSelected"]
    assert events[1]["payload"] == {"type": "printables"}
    assert events[2]["payload"] == {
        "name": "cube.gco",
        "path": "cube.gco",
        "origin": "sdcard",
        "size": 1234,
        "owner": "_api",
        "user": "_api",
    }
    texts = []
    for state in (CommState.STARTING, CommState.PRINTING, CommState.PAUSED):
        recorder.aggregator.fold(StateChanged(state))
        texts.append(model.state_text)
    # octoprint-push.md §8.1: the texts of a print from the SD card.
    assert texts == ["Starting print from SD", "Printing from SD", "Paused"]
    assert model.busy_files() == [{"origin": "sdcard", "path": "cube.gco"}]
    for gone in (SdStateChanged(False), Disconnected()):
        recorder.aggregator.fold(SdStateChanged(True))
        recorder.aggregator.fold(SdFilesListed((SdFile("CUBE.GCO", "Cube.gcode", 1234),)))
        recorder.aggregator.fold(gone)
        assert not model.state_payload()["flags"]["sdReady"]
        assert not model.sd_files


async def test_a_waiter_that_fails_to_be_served_in_place_is_woken_and_the_others_still_served() -> None:
    hub = StateHub(PrinterModel(), wall_clock=lambda: 0.0)
    served: list[str] = []

    def fail() -> bool:
        raise RuntimeError("a bug in one session")

    def serve(name: str) -> bool:
        served.append(name)
        return True

    broken_wake, declined_wake, served_wake = trio.Event(), trio.Event(), trio.Event()
    hub.wake_on_change("broken", broken_wake, fail)
    hub.wake_on_change("declines", declined_wake, lambda: False)
    hub.wake_on_change("served", served_wake, lambda: serve("served"))
    hub.publish_tick(0.0)
    assert broken_wake.is_set()
    assert declined_wake.is_set()
    assert not served_wake.is_set()
    assert served == ["served"]
