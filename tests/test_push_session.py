"""The push session's rate limiting and accumulation, under a fake clock.

The aggregator, hub and session are the real ones; only the client connection is in memory.
"""

from __future__ import annotations

import gc
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from octotrio.auth import AccessConfig, AccessControl, default_group_permissions
from octotrio.printer import CommState, PrinterEvent, Reading, StateChanged, TemperatureReport, TerminalLine
from octotrio.push import BASE_INTERVAL, CLOSE_EVENTS_LOST, PushRateLimiter, ServerInfo, serve_push_session
from octotrio.push._session import PushSession
from octotrio.state import Aggregator, PrinterModel, StateHub, run_aggregator
from octotrio.state._hub import EVENTS_JOURNAL_CAPACITY, HOLD_RELEASE_INTERVAL, TERMINAL_JOURNAL_CAPACITY

from .memory_connection import MemoryConnection

OPEN_ACCESS = AccessControl(
    AccessConfig(groups={**default_group_permissions(), "guests": frozenset({"STATUS", "MONITOR_TERMINAL"})})
)
"""Guests may watch the printer and its terminal: every socket is served without ``auth``."""


@dataclass(frozen=True)
class Step:
    """Wait ``delay_ms``, then do one thing: a log line, a temperature report, or a new throttle."""

    delay_ms: int
    kind: str
    value: int


steps = st.lists(
    st.builds(
        Step,
        delay_ms=st.integers(0, 1500),
        kind=st.sampled_from(["log", "temp", "throttle"]),
        value=st.integers(1, 4),
    ),
    max_size=40,
)


def run_scenario(
    scenario: list[Step],
) -> tuple[MemoryConnection, list[str], list[float], list[tuple[float, int]]]:
    """Play ``scenario`` against one session; return what it sent and what was produced."""
    produced_logs: list[str] = []
    produced_temps: list[float] = []
    throttle_changes: list[tuple[float, int]] = [(-math.inf, 1)]
    connection = MemoryConnection()

    async def main() -> None:
        hub = StateHub(PrinterModel(), wall_clock=trio.current_time)
        send, receive = trio.open_memory_channel[PrinterEvent](64)
        async with trio.open_nursery() as nursery:
            await nursery.start(run_aggregator, receive, hub)
            nursery.start_soon(
                lambda: serve_push_session(connection, hub=hub, server=ServerInfo("test"), access=OPEN_ACCESS)
            )
            await trio.sleep(0.1)
            await send.send(StateChanged(CommState.OPERATIONAL))
            for number, step in enumerate(scenario):
                await trio.sleep(step.delay_ms / 1000)
                if step.kind == "log":
                    line = f"Recv: line {number}"
                    produced_logs.append(line)
                    await send.send(TerminalLine(line))
                elif step.kind == "temp":
                    produced_temps.append(float(number))
                    await send.send(TemperatureReport({"tool0": Reading(float(number), 0.0)}))
                else:
                    await connection.to_server.send(f'{{"throttle": {step.value}}}')
                    throttle_changes.append((trio.current_time(), step.value))
            # Long enough for the last tick to be published and pass the slowest throttle.
            await trio.sleep(BASE_INTERVAL * 4 + 1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return connection, produced_logs, produced_temps, throttle_changes


def throttle_at(changes: list[tuple[float, int]], time: float) -> int:
    """The throttle in force for a push at ``time``. One sent at the very instant of the push may
    reach the session before or after it: the smaller of the two then."""
    before = [factor for since, factor in changes if since < time][-1]
    at = [factor for since, factor in changes if since <= time][-1]
    return min(before, at)


@settings(deadline=None, max_examples=60)
@given(steps)
def test_current_respects_throttle_and_delivers_every_item_once(scenario: list[Step]) -> None:
    connection, produced_logs, produced_temps, throttle_changes = run_scenario(scenario)

    assert [r.type for r in connection.sent[:3]] == ["connected", "history", "timelapse"]
    currents = connection.of_type("current")
    for previous, following in itertools.pairwise(currents):
        factor = throttle_at(throttle_changes, following.time)
        # Intervals count from the tick a current carries (serverTime: the fake clock is the wall
        # clock here), not from the moment the session's turn came, which may be later.
        interval = following.message["current"]["serverTime"] - previous.message["current"]["serverTime"]
        assert interval >= BASE_INTERVAL * factor - 1e-9
        assert following.time >= following.message["current"]["serverTime"]

    delivered_logs = [
        line for r in currents for line in r.message["current"]["logs"] if line.startswith("Recv: line")
    ]
    assert delivered_logs == produced_logs
    delivered_temps = [point["tool0"]["actual"] for r in currents for point in r.message["current"]["temps"]]
    assert delivered_temps == produced_temps


def test_no_change_means_no_current() -> None:
    connection, *_ = run_scenario([])
    # The only change is the state change to Operational: exactly one current reports it.
    (current,) = connection.of_type("current")
    assert current.message["current"]["state"]["text"] == "Operational"


def test_state_change_fires_printer_state_changed_event() -> None:
    connection, *_ = run_scenario([])
    events = [r.message["event"] for r in connection.of_type("event")]
    assert events == [
        {"type": "PrinterStateChanged", "payload": {"state_id": "OPERATIONAL", "state_string": "Operational"}}
    ]


class SlowConnection(MemoryConnection):
    """A client whose every receive of a batch takes ten (fake) seconds."""

    def send_nowait(self, messages: Sequence[str]) -> bool:
        return False  # every batch has to wait

    async def send(self, messages: Sequence[str]) -> None:
        await trio.sleep(10)
        await super().send(messages)


async def test_a_client_that_falls_behind_on_events_is_closed_with_a_documented_code(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = StateHub(PrinterModel(), wall_clock=trio.current_time)
    connection = SlowConnection()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: serve_push_session(connection, hub=hub, server=ServerInfo("test"), access=OPEN_ACCESS)
        )
        await trio.sleep(15)  # connected and history are on their way: the session's view is open
        for n in range(EVENTS_JOURNAL_CAPACITY + 10):
            hub.publish_event("ChartMarked", {"type": "test", "label": str(n)})
        await trio.sleep(60)
    assert connection.closed_with is not None
    assert connection.closed_with[0] == CLOSE_EVENTS_LOST


async def test_logs_dropped_for_a_slow_client_are_announced_not_hidden(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = StateHub(PrinterModel(), wall_clock=trio.current_time)
    aggregator = Aggregator(hub)
    connection = SlowConnection()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: serve_push_session(connection, hub=hub, server=ServerInfo("test"), access=OPEN_ACCESS)
        )
        await trio.sleep(15)  # connected and history are on their way: the session's view is open
        for n in range(TERMINAL_JOURNAL_CAPACITY + 5):
            aggregator.fold(TerminalLine(f"Recv: {n}"))
        hub.publish_tick(trio.current_time())
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    (current,) = connection.of_type("current")
    logs = current.message["current"]["logs"]
    assert logs[0].startswith("[octotrio] 5 accumulated items were dropped")
    assert logs[1:] == [f"Recv: {n}" for n in range(5, TERMINAL_JOURNAL_CAPACITY + 5)]


async def test_sessions_whose_clients_left_are_not_kept_in_memory(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = StateHub(PrinterModel(), wall_clock=trio.current_time)
    connections = [MemoryConnection() for _ in range(3)]
    async with trio.open_nursery() as nursery:
        for connection in connections:
            nursery.start_soon(
                partial(
                    serve_push_session, connection, hub=hub, server=ServerInfo("test"), access=OPEN_ACCESS
                )
            )
        await trio.sleep(1)
        for connection in connections:
            connection.to_server.close()  # the client leaves
    # Their ClientOpened and ClientClosed stay in the hub's journal; the sessions must not.
    assert len(hub.broadcasts_since(0)[0]) == 6
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, PushSession) and o.hub is hub] == []


def test_the_interval_counts_from_the_tick_not_from_the_session_turn() -> None:
    limiter = PushRateLimiter()
    # The tick published at 10.0 reached this session's turn 0.3 s late (a thousand sessions
    # ahead of it): the next tick, published at 10.5, may still go out at once.
    limiter.record_send(now=10.3, published_at=10.0)
    assert limiter.may_send(10.5)
    assert not limiter.may_send(10.499)


def test_a_held_back_tick_counts_from_when_it_went_out() -> None:
    limiter = PushRateLimiter(throttle=2)
    limiter.record_send(now=10.0, published_at=10.0)
    # The tick of 10.5 is held back until the interval is over at 11.0; it went out at 11.02.
    assert not limiter.may_send(10.5)
    limiter.record_send(now=11.02, published_at=10.5)
    assert not limiter.may_send(12.0)
    assert limiter.may_send(12.02)


async def test_sessions_in_step_share_a_tick_and_each_variant_gets_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = StateHub(PrinterModel(), wall_clock=trio.current_time)
    aggregator = Aggregator(hub)
    everything, also_everything, no_logs, only_errors = (MemoryConnection() for _ in range(4))
    async with trio.open_nursery() as nursery:
        for connection in (everything, also_everything, no_logs, only_errors):
            nursery.start_soon(
                partial(
                    serve_push_session, connection, hub=hub, server=ServerInfo("test"), access=OPEN_ACCESS
                )
            )
        await no_logs.to_server.send('{"subscribe": {"state": {"logs": false}}}')
        await only_errors.to_server.send('{"subscribe": {"state": {"logs": "Error"}}}')
        await trio.sleep(1)
        for tick in range(3):
            aggregator.fold(TerminalLine(f"Recv: ok {tick}"))
            aggregator.fold(TerminalLine(f"Recv: Error {tick}"))
            aggregator.fold(TemperatureReport({"tool0": Reading(20.0 + tick, 0.0)}))
            hub.publish_tick(trio.current_time())
            await trio.sleep(BASE_INTERVAL)
        nursery.cancel_scope.cancel()

    def currents(connection: MemoryConnection) -> list[dict[str, Any]]:
        return [r.message["current"] for r in connection.of_type("current")]

    assert len(currents(everything)) == 3
    assert currents(everything) == currents(also_everything)
    assert [c["logs"] for c in currents(everything)] == [
        [f"Recv: ok {n}", f"Recv: Error {n}"] for n in range(3)
    ]
    assert [c["logs"] for c in currents(no_logs)] == [[], [], []]
    assert [c["logs"] for c in currents(only_errors)] == [[f"Recv: Error {n}"] for n in range(3)]
    for connection in (no_logs, only_errors):
        assert [c["temps"] for c in currents(connection)] == [c["temps"] for c in currents(everything)]


async def test_client_lifecycle_events_come_together_within_the_hold_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = StateHub(PrinterModel(), wall_clock=trio.current_time)
    watcher = MemoryConnection()
    _send, receive = trio.open_memory_channel[PrinterEvent](1)
    serve = partial(serve_push_session, hub=hub, server=ServerInfo("test"), access=OPEN_ACCESS)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_aggregator, receive, hub)
        nursery.start_soon(serve, watcher)
        await trio.sleep(1)
        first_opened = trio.current_time()
        for _ in range(10):  # ten clients connect within 0.1 s; the printer is idle: no tick
            nursery.start_soon(serve, MemoryConnection())
            await trio.sleep(0.01)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    opened = [r for r in watcher.of_type("event") if r.message["event"]["type"] == "ClientOpened"]
    assert len(opened) == 10
    (written_at,) = {r.time for r in opened}  # one write for all ten
    assert first_opened < written_at <= first_opened + HOLD_RELEASE_INTERVAL
