"""Slow client: one client stops reading for a while among many readers."""

from __future__ import annotations

from typing import Any

import trio

from bench._machine import sample_process, tcp_connection_state
from bench._pool import RecordResult, open_clients
from bench._servers import Server
from bench._stats import Summary, intervals

STALL_START = 2.0
"""Seconds into the window at which the stuck client stops reading."""
AFTER_STALL = 5.0
"""Seconds recorded after the stuck client resumes reading."""
STUCK_RECEIVE_BUFFER = 8192
"""SO_RCVBUF of the stuck client, as of a phone on a poor link: with loopback's default buffers
(hundreds of KiB) a server would not notice a minute of ``current``\\ s going unread."""
POLL_INTERVAL = 0.25
"""Seconds between looks at the server's socket of the stuck client and at the server's RSS."""


async def measure_slow(server: Server, readers: int, stall: float) -> dict[str, Any]:
    """``readers`` clients keep reading while client number ``readers`` stalls for ``stall`` seconds."""
    stuck = readers
    plans = {stuck: {"receive_buffer": STUCK_RECEIVE_BUFFER, "stall": [STALL_START, STALL_START + stall]}}
    async with open_clients(server, readers + 1, plans=plans) as pool:
        connect = await pool.connected()
        start = trio.current_time() + 1.0
        end = start + STALL_START + stall + AFTER_STALL
        stall_at = start + STALL_START
        results: list[RecordResult] = []
        rss: list[float] = []
        server_closed_at: float | None = None
        async with trio.open_nursery() as nursery:

            async def collect() -> None:
                results.append(await pool.record(start, end))

            nursery.start_soon(collect)
            await trio.sleep_until(start)
            while trio.current_time() < end:
                if server.pid is not None:
                    rss.append(sample_process(server.pid).rss_mib)
                state = tcp_connection_state(server.port, connect.local_ports[stuck])
                if server_closed_at is None and state != "ESTABLISHED":
                    server_closed_at = trio.current_time()
                await trio.sleep(POLL_INTERVAL)
    clients = results[0].clients
    gaps = Summary.of([gap for client in clients[:stuck] for gap in intervals(client["currents"])])
    close = clients[stuck]["close"]
    return {
        "server": server.name,
        "readers": readers,
        "stall_s": stall,
        "interval_median": gaps.median,
        "interval_p99": gaps.p99,
        "rss_growth_mib": (max(rss) - rss[0]) if rss else None,
        "server_closed_after_s": None if server_closed_at is None else server_closed_at - stall_at,
        "stuck_close_code": close[1] if close else None,
        "stuck_close_reason": close[2] if close else "still open",
    }
