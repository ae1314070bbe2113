"""A process of push clients, driven by the runner over stdin/stdout: ``python -m bench._clients``.

Clients run in processes of their own so that their CPU never counts as the server's, and so that
the runner can split thousands of them over several processes when one would be the bottleneck.

Protocol (one JSON object per line):

1. stdin: the spec ``{"port", "path", "base_url", "api_key", "count", "concurrency",
   "connect_timeout", "reconnect_seconds", "plans": {"<index>": {"receive_buffer", "stall"}}}``;
   ``stall`` is ``[start, end]`` in seconds after the recording window starts.
2. stdout, once every client has its ``history`` or gave up: ``{"connected", "started",
   "connect_seconds", "local_ports"}`` (``local_ports`` of the clients that have a plan).
3. stdin: ``{"start", "end"}``, the recording window in ``time.monotonic()`` seconds.
4. stdout, after the window: ``{"clients": [...], "cpu_seconds"}``; each client as
   :class:`bench._wsclient.ClientRecord`.
5. stdin: end of input closes every client and ends the process.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
from typing import Any

import trio

from bench._clock import MonotonicClock
from bench._wsclient import Auth, ClientPlan, ClientRecord, Window, run_client

GC_YOUNG_THRESHOLD = 50_000
"""As the server's (``octotrio.cli.GC_YOUNG_THRESHOLD``): thousands of client tasks allocate per
message, and frequent collections that promote those objects end in full collections that pause
every client of the process at once, which would read as the server spreading a tick."""


def _raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _read_line(stdin: trio.abc.ReceiveStream, buffer: bytearray) -> dict[str, Any] | None:
    while b"\n" not in buffer:
        data = await stdin.receive_some()
        if not data:
            return None
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    value: dict[str, Any] = json.loads(line)
    return value


def _write_line(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve_clients() -> None:
    """Run the protocol above. On end of stdin every client is cancelled (TCP connections closed)."""
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    buffer = bytearray()
    spec = await _read_line(stdin, buffer)
    if spec is None:
        return
    auth = Auth(spec["base_url"], spec["api_key"])
    window = Window()
    records = [ClientRecord() for _ in range(spec["count"])]
    plans = [ClientPlan() for _ in records]
    for index, plan_spec in spec.get("plans", {}).items():
        plans[int(index)].receive_buffer = plan_spec.get("receive_buffer")
    reconnect_until = trio.current_time() + spec.get("reconnect_seconds", 0)
    for plan in plans:
        plan.reconnect_until = reconnect_until
    limiter = trio.Semaphore(spec["concurrency"])

    async with trio.open_nursery() as nursery:

        async def launch(record: ClientRecord, plan: ClientPlan) -> None:
            async with limiter:
                nursery.start_soon(run_client, spec["port"], spec["path"], auth, record, plan, window)
                await record.settled.wait()

        started = trio.current_time()
        # One deadline for the whole connect phase; clients still connecting then go on connecting.
        with trio.move_on_after(spec["connect_timeout"]):
            async with trio.open_nursery() as launcher:
                for record, plan in zip(records, plans, strict=True):
                    launcher.start_soon(launch, record, plan)
        connected = [r.history_times[0] for r in records if r.history_times]
        _write_line(
            {
                "connected": len(connected),
                "started": started,
                "connect_seconds": max(connected, default=started) - started,
                "local_ports": {index: records[int(index)].local_port for index in spec.get("plans", {})},
            }
        )

        times = await _read_line(stdin, buffer)
        if times is not None:
            window.start, window.end = times["start"], times["end"]
            for index, plan_spec in spec.get("plans", {}).items():
                if "stall" in plan_spec:
                    begin, end = plan_spec["stall"]
                    plans[int(index)].stall = (window.start + begin, window.start + end)
            cpu_before = _cpu_seconds()
            await trio.sleep_until(window.end)
            _write_line(
                {
                    "clients": [_record_json(r) for r in records],
                    "cpu_seconds": _cpu_seconds() - cpu_before,
                }
            )
            await _read_line(stdin, buffer)
        nursery.cancel_scope.cancel()


def _record_json(record: ClientRecord) -> dict[str, Any]:
    return {
        "local_port": record.local_port,
        "history_times": record.history_times,
        "currents": record.currents,
        "events": record.events,
        "close": record.close,
        "error": record.error,
    }


def main() -> None:
    _raise_file_limit()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    trio.run(serve_clients, clock=MonotonicClock())


if __name__ == "__main__":
    main()
