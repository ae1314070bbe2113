"""Connect storm: many clients at once, and all of them again after a server restart."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import trio

from bench._machine import trace_cpu
from bench._pool import open_clients
from bench._servers import Server, free_port
from bench._stats import cpu_share, percentile

DEADLINE = 5.0
"""The issue's target: every client has its ``history`` within this many seconds."""
CONNECT_TIMEOUT = 60.0
"""Seconds the storm may take before the clients that did not make it are counted as failed."""
RECONNECT_FOR = 120.0
"""Seconds the clients keep reconnecting after the server went away."""
AFTER_RESTART = 15.0
"""Seconds recorded after the restarted server listens."""


async def measure_storm(
    name: str,
    count: int,
    start_server: Callable[[int], AbstractAsyncContextManager[Server]],
    *,
    processes: int = 1,
    warmup: float = 0.0,
) -> list[dict[str, Any]]:
    """Two rows: ``count`` clients (over ``processes`` client processes) connecting at once to a
    server that has run ``warmup`` seconds (its history grows meanwhile), then reconnecting after
    a restart. Each row has the server's CPU share and the busiest client process's during its
    phase (until the last client had ``history``): a client process near 100 % would mean the
    clients, not the server, set the pace."""
    port = free_port()
    servers: list[list[tuple[float, float]]] = [[], []]
    async with AsyncExitStack() as outer:
        tracers = await outer.enter_async_context(trio.open_nursery())
        first = AsyncExitStack()
        server = await first.enter_async_context(start_server(port))
        _trace_server(tracers, server, servers[0])
        await trio.sleep(warmup)  # the printer reports temperatures meanwhile: history grows
        pool = await outer.enter_async_context(
            open_clients(
                server,
                count,
                processes=processes,
                concurrency=count,
                connect_timeout=CONNECT_TIMEOUT,
                reconnect_seconds=RECONNECT_FOR,
            )
        )
        clients: list[list[tuple[float, float]]] = [[] for _ in pool.processes]
        for process, trace in zip(pool.processes, clients, strict=True):
            tracers.start_soon(trace_cpu, process.process.pid, trace)
        connect = await pool.connected()
        await first.aclose()
        # Taken once the first server is gone: clients of the first storm that were still
        # connecting may have got their history during its shutdown.
        stopped_at = trio.current_time()
        second = await outer.enter_async_context(start_server(port))
        _trace_server(tracers, second, servers[1])
        start = trio.current_time()
        result = await pool.record(start, start + AFTER_RESTART)
        tracers.cancel_scope.cancel()
    initial = [c["history_times"][0] - connect.started for c in result.clients if c["history_times"]]
    again = [
        min(t for t in c["history_times"] if t > stopped_at) - second.listening_at
        for c in result.clients
        if any(t > stopped_at for t in c["history_times"])
    ]
    return [
        {**_row(name, "at once", count, initial, connect.started, servers[0], clients), "up_s": warmup},
        {**_row(name, "after restart", count, again, second.listening_at, servers[1], clients), "up_s": 0.0},
    ]


def _trace_server(nursery: trio.Nursery, server: Server, trace: list[tuple[float, float]]) -> None:
    """Trace the server's CPU from now on, starting from its CPU when it began listening."""
    if server.pid is None or server.listening_cpu is None:
        return
    trace.append((server.listening_at, server.listening_cpu))
    nursery.start_soon(trace_cpu, server.pid, trace)


def _row(
    name: str,
    case: str,
    count: int,
    latencies: list[float],
    start: float,
    server: list[tuple[float, float]],
    clients: list[list[tuple[float, float]]],
) -> dict[str, Any]:
    end = start + max(latencies, default=0.0)
    return {
        "server": name,
        "case": case,
        "clients": count,
        "got_history": len(latencies),
        "within_5s": sum(1 for t in latencies if t <= DEADLINE),
        "history_p50_s": percentile(latencies, 50),
        "history_max_s": max(latencies, default=float("nan")),
        "server_cpu": cpu_share(server, start, end),
        "client_cpu": max(
            (share for trace in clients if not math.isnan(share := cpu_share(trace, start, end))),
            default=math.nan,
        ),
    }
