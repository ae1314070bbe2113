"""The machine a run happened on, and a process's CPU time and memory read from ``/proc`` (Linux)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

import trio

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
"""Units of ``utime``/``stime`` in ``/proc/<pid>/stat``."""


def describe_machine() -> dict[str, Any]:
    """nproc, memory, CPU model, Python and kernel: enough to tell whether two runs compare."""
    cpu_model = "unknown"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "memory_mib": _meminfo_kib("MemTotal") // 1024,
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_1m": os.getloadavg()[0],
    }


def _meminfo_kib(key: str) -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0])
    raise LookupError(key)


@dataclass(frozen=True)
class ProcessSample:
    """CPU seconds (user + system, the process and its threads) and memory of one process."""

    cpu_seconds: float
    rss_mib: float
    hwm_mib: float
    """Peak RSS (``VmHWM``): RSS stays near its high-water mark after clients leave."""
    threads: int


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (readable until it has been reaped);
    raises ``FileNotFoundError`` once it is gone."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name (field 2) may contain spaces; fields after its ')' are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def sample_process(pid: int) -> ProcessSample:
    """Read ``/proc/<pid>``; raises ``FileNotFoundError`` once the process is gone."""
    cpu = cpu_seconds(pid)
    status: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status_file:
        for line in status_file:
            name, _, value = line.partition(":")
            status[name] = value.strip()
    return ProcessSample(
        cpu_seconds=cpu,
        rss_mib=int(status["VmRSS"].split()[0]) / 1024,
        hwm_mib=int(status["VmHWM"].split()[0]) / 1024,
        threads=int(status["Threads"]),
    )


def tcp_connection_state(local_port: int, remote_port: int) -> str | None:
    """The kernel's state of the IPv4 TCP socket ``127.0.0.1:local_port → remote_port``, or None.

    Used to see from outside when a server closes one client's connection (its socket leaves
    ``ESTABLISHED``) while the client itself is not reading.
    """
    states = {
        "01": "ESTABLISHED",
        "02": "SYN_SENT",
        "03": "SYN_RECV",
        "04": "FIN_WAIT1",
        "05": "FIN_WAIT2",
        "06": "TIME_WAIT",
        "07": "CLOSE",
        "08": "CLOSE_WAIT",
        "09": "LAST_ACK",
        "0A": "LISTEN",
        "0B": "CLOSING",
    }
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
                return states.get(state, state)
    return None


CPU_TRACE_INTERVAL = 0.1
"""Seconds between samples of :func:`trace_cpu`: fine enough for phases of a few seconds."""


async def trace_cpu(pid: int, into: list[tuple[float, float]]) -> None:
    """Append ``(trio.current_time(), CPU seconds)`` of process ``pid`` to ``into`` every
    :data:`CPU_TRACE_INTERVAL` until the process is gone; cancel it to stop earlier."""
    while True:
        try:
            # Only the CPU: a process that exited but is not reaped yet has no memory figures.
            cpu = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            return
        into.append((trio.current_time(), cpu))
        await trio.sleep(CPU_TRACE_INTERVAL)
