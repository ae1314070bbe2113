"""Fan-out: N authenticated websocket clients, the printer busy (bench firmware reporting at 10 Hz)."""

from __future__ import annotations

from typing import Any

import trio

from bench._machine import sample_process
from bench._pool import RecordResult, open_clients
from bench._servers import Server
from bench._stats import Summary, intervals, merged, percentile, tick_spreads

WARMUP = 3.0
"""Seconds between the last client's ``history`` and the window: the connect burst settles."""
TICK_GAP = 0.15
"""Seconds of silence that end a tick's burst: well under the 0.5 s between snapshots."""
EDGE = 1.0
"""Ticks whose arrivals begin or end this close to the window's edges are cut off by it: not counted."""


def connect_timeout(count: int) -> float:
    """Seconds all of ``count`` clients get to connect: 30 s, or 20 ms a client for large counts."""
    return max(30.0, count * 0.02)


async def measure_fanout(server: Server, count: int, window: float, processes: int) -> dict[str, Any]:
    """Connect ``count`` clients, record ``window`` seconds, and summarise (one table row)."""
    async with open_clients(
        server, count, processes=processes, connect_timeout=connect_timeout(count)
    ) as pool:
        connect = await pool.connected()
        start = trio.current_time() + WARMUP
        end = start + window
        record = pool.record(start, end)
        async with trio.open_nursery() as nursery:
            results: list[RecordResult] = []

            async def collect() -> None:
                results.append(await record)

            nursery.start_soon(collect)
            await trio.sleep_until(start)
            before = sample_process(server.pid) if server.pid else None
            await trio.sleep_until(end)
            after = sample_process(server.pid) if server.pid else None
        row = summarise_window(results[0], count, start, end, window)
    row.update(
        server=server.name, clients=count, connected=connect.connected, connect_s=connect.connect_seconds
    )
    if before is not None and after is not None:
        row.update(
            cpu=(after.cpu_seconds - before.cpu_seconds) / (end - start),
            rss_mib=after.rss_mib,
            hwm_mib=after.hwm_mib,
            threads=after.threads,
        )
    return row


def summarise_window(
    result: RecordResult, count: int, start: float, end: float, window: float
) -> dict[str, Any]:
    """Interval and tick-spread figures of one recording window."""
    gaps = [gap for client in result.clients for gap in intervals(client["currents"])]
    ticks = tick_spreads((t for client in result.clients for t in client["currents"]), TICK_GAP)
    inside = [tick for tick in ticks if start + EDGE <= tick.first and tick.last <= end - EDGE]
    spreads = [tick.spread for tick in inside]
    interval = Summary.of(gaps)
    return {
        "interval_median": interval.median,
        "interval_p99": interval.p99,
        "ticks": len(inside),
        "complete_ticks": sum(1 for tick in inside if tick.receivers == count),
        "merged_ticks": merged(inside, count),
        "spread_p50": percentile(spreads, 50),
        "spread_p99": percentile(spreads, 99),
        "spread_max": max(spreads, default=float("nan")),
        "client_cpu": max(result.client_cpu) / window,
    }
