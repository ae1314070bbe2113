"""The state model and the aggregator's fold, without I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from octotrio.printer import (
    CommState,
    Connected,
    Connecting,
    Disconnected,
    FirmwareInfo,
    FirmwareMessage,
    LinkError,
    PrinterEvent,
    Reading,
    StateChanged,
    TemperatureReport,
    TerminalLine,
)
from octotrio.state import Aggregator, Journal, PrinterModel, StateHub, state_flags

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
    # octotrio has no SD card support yet, so sdReady is always false.
    assert state_flags(state) == {**observed, "sdReady": False}


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
        return [json.loads(item)["event"] for item in read.items]


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
    history = recorder.hub.model.history_payload(recorder.now)
    assert history["logs"] == [f"Recv: {n}" for n in range(700, 1000)]
    assert history["messages"] == [f"{n}" for n in range(700, 1000)]


def test_history_and_the_first_current_neither_overlap_nor_leave_a_gap() -> None:
    recorder = Recorder()
    recorder.aggregator.fold(TerminalLine("Recv: before"))
    history, view = recorder.hub.open_view()
    recorder.aggregator.fold(TerminalLine("Recv: after"))
    recorder.hub.publish_tick()
    _, accumulated = view.take_tick()
    assert history["logs"] == ["Recv: before"]
    assert [json.loads(line) for line in accumulated.logs] == ["Recv: after"]


def test_journal_reports_what_a_slow_reader_missed() -> None:
    journal = Journal(capacity=3)
    for n in range(5):
        journal.append(str(n))
    read = journal.read_since(0)
    assert read.items == ["2", "3", "4"]
    assert read.missed == 2
    assert journal.read_since(read.next_seq).items == []
