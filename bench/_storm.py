"""Connect storm: many clients at once, and all of them again after a server restart."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import trio

from bench._pool import open_clients
from bench._servers import Server, free_port
from bench._stats import percentile

DEADLINE = 5.0
"""The issue's target: every client has its ``history`` within this many seconds."""
CONNECT_TIMEOUT = 60.0
"""Seconds the storm may take before the clients that did not make it are counted as failed."""
RECONNECT_FOR = 120.0
"""Seconds the clients keep reconnecting after the server went away."""
AFTER_RESTART = 15.0
"""Seconds recorded after the restarted server listens."""


async def measure_storm(
    name: str, count: int, start_server: Callable[[int], AbstractAsyncContextManager[Server]]
) -> list[dict[str, Any]]:
    """Two rows: ``count`` clients connecting at once, then reconnecting after a restart."""
    port = free_port()
    async with AsyncExitStack() as outer:
        first = AsyncExitStack()
        server = await first.enter_async_context(start_server(port))
        pool = await outer.enter_async_context(
            open_clients(
                server,
                count,
                concurrency=count,
                connect_timeout=CONNECT_TIMEOUT,
                reconnect_seconds=RECONNECT_FOR,
            )
        )
        connect = await pool.connected()
        await first.aclose()
        # Taken once the first server is gone: clients of the first storm that were still
        # connecting may have got their history during its shutdown.
        stopped_at = trio.current_time()
        second = await outer.enter_async_context(start_server(port))
        start = trio.current_time()
        result = await pool.record(start, start + AFTER_RESTART)
    initial = [c["history_times"][0] - connect.started for c in result.clients if c["history_times"]]
    again = [
        min(t for t in c["history_times"] if t > stopped_at) - second.listening_at
        for c in result.clients
        if any(t > stopped_at for t in c["history_times"])
    ]
    return [_row(name, "at once", count, initial), _row(name, "after restart", count, again)]


def _row(name: str, case: str, count: int, latencies: list[float]) -> dict[str, Any]:
    return {
        "server": name,
        "case": case,
        "clients": count,
        "got_history": len(latencies),
        "within_5s": sum(1 for t in latencies if t <= DEADLINE),
        "history_p50_s": percentile(latencies, 50),
        "history_max_s": max(latencies, default=float("nan")),
    }
