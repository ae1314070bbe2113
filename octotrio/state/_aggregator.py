"""The aggregator: the one owner of printer state.

It folds the printer link's events into the :class:`PrinterModel`, journals what sessions
accumulate, fires push events, and publishes change-driven ticks at most every
:data:`TICK_INTERVAL` seconds. It never awaits a session: everything it hands out goes
through the :class:`StateHub`.
"""

from __future__ import annotations

import math

import trio

from octotrio.printer import (
    CommState,
    Connected,
    Connecting,
    Disconnected,
    Disconnecting,
    FirmwareInfo,
    FirmwareMessage,
    LinkError,
    PrinterEvent,
    StateChanged,
    TemperatureReport,
    TerminalLine,
)

from ._hub import StateHub, encode_json
from ._model import JSONObject, never_selected_job

TICK_INTERVAL = 0.5
"""Minimum time between two ticks: OctoPrint's StateMonitor interval (octoprint-push.md §6.1)."""


class Aggregator:
    """Sans-IO fold of printer events into the hub; :func:`run_aggregator` drives it."""

    def __init__(self, hub: StateHub) -> None:
        self.hub = hub
        self.model = hub.model

    def fold(self, event: PrinterEvent) -> None:
        """Apply one printer event: update state, journal accumulations, fire push events."""
        hub, model = self.hub, self.model
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
            case Connecting():
                model.resend_count = model.transmitted = 0
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
                model.connected = False
                model.targets.clear()
                model.job = never_selected_job()
                model.add_marking("disconnected", "Disconnected", now)
                hub.publish_event("Disconnected", None)

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


async def run_aggregator(
    events: trio.MemoryReceiveChannel[PrinterEvent],
    hub: StateHub,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Fold printer events and publish ticks until cancelled or the channel closes.

    A tick goes out when something changed, at most every :data:`TICK_INTERVAL` seconds
    (no change, no tick). Cancellation simply stops both loops; there is nothing to clean up.
    """
    aggregator = Aggregator(hub)
    dirty = trio.Event()

    async def publish_ticks() -> None:
        nonlocal dirty
        last_tick = -math.inf
        while True:
            await dirty.wait()
            await trio.sleep_until(last_tick + TICK_INTERVAL)
            dirty = trio.Event()
            hub.publish_tick()
            last_tick = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_ticks)
        task_status.started()
        async with events:
            async for event in events:
                aggregator.fold(event)
                dirty.set()
        nursery.cancel_scope.cancel()
