"""Client processes (``bench._clients``) driven from the runner, seen as one pool of clients."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from bench._servers import BENCH_DIR, Server

CONNECT_CONCURRENCY = 200
"""Handshakes in flight per client process while a fan-out connects: enough to be quick, few
enough to stay under the listen backlog. Connect storms use the whole count instead."""


@dataclass
class ClientProcess:
    process: trio.Process
    first: int
    """Index of this process's first client in the pool."""
    buffer: bytearray = field(default_factory=bytearray)

    async def send(self, value: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(json.dumps(value).encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self.buffer:
            data = await self.process.stdout.receive_some()
            if not data:
                raise EOFError("a client process ended early; see its stderr")
            self.buffer += data
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer[:] = rest
        value: dict[str, Any] = json.loads(line)
        return value


@dataclass
class ConnectResult:
    connected: int
    started: float
    connect_seconds: float
    local_ports: dict[int, int]


@dataclass
class RecordResult:
    clients: list[dict[str, Any]]
    client_cpu: list[float]
    """CPU seconds of each client process during the window."""


class ClientPool:
    """``count`` push clients spread over ``len(processes)`` processes."""

    def __init__(self, processes: list[ClientProcess]) -> None:
        self.processes = processes

    async def connected(self) -> ConnectResult:
        replies = [await p.receive() for p in self.processes]
        ports = {
            p.first + int(i): port
            for p, r in zip(self.processes, replies, strict=True)
            for i, port in r["local_ports"].items()
        }
        started = min(r["started"] for r in replies)
        return ConnectResult(
            connected=sum(r["connected"] for r in replies),
            started=started,
            connect_seconds=max(r["started"] + r["connect_seconds"] for r in replies) - started,
            local_ports=ports,
        )

    async def record(self, start: float, end: float) -> RecordResult:
        """Record ``current`` arrivals between ``start`` and ``end``; returns after ``end``."""
        for p in self.processes:
            await p.send({"start": start, "end": end})
        replies = [await p.receive() for p in self.processes]
        return RecordResult(
            clients=[c for r in replies for c in r["clients"]],
            client_cpu=[r["cpu_seconds"] for r in replies],
        )


@asynccontextmanager
async def open_clients(
    server: Server,
    count: int,
    *,
    processes: int = 1,
    concurrency: int = CONNECT_CONCURRENCY,
    connect_timeout: float = 60.0,
    reconnect_seconds: float = 0.0,
    plans: dict[int, dict[str, Any]] | None = None,
) -> AsyncIterator[ClientPool]:
    """Start the client processes and have them connect; on exit they close their clients.

    ``plans`` maps a client index to its plan (``receive_buffer``, ``stall``; see ``bench._clients``).
    """
    plans = plans or {}
    async with AsyncExitStack() as stack:
        pool_processes: list[ClientProcess] = []
        share, extra = divmod(count, processes)
        first = 0
        for index in range(processes):
            size = share + (1 if index < extra else 0)
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "bench._clients"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=BENCH_DIR.parent,
            )
            stack.push_async_callback(_close, process)
            client = ClientProcess(process, first)
            await client.send(
                {
                    "port": server.port,
                    "path": "/sockjs/websocket",
                    "base_url": server.base_url,
                    "api_key": server.api_key,
                    "count": size,
                    "concurrency": concurrency,
                    "connect_timeout": connect_timeout,
                    "reconnect_seconds": reconnect_seconds,
                    "plans": {str(i - first): plan for i, plan in plans.items() if first <= i < first + size},
                }
            )
            pool_processes.append(client)
            first += size
        yield ClientPool(pool_processes)


async def _close(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.stdin is not None:
            await process.stdin.aclose()
        with trio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
