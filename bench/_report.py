"""Tables, ratios and the issue's targets for benchmark rows."""

from __future__ import annotations

import math
from typing import Any

COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    # (key, heading, format)
    "fanout": [
        ("server", "server", "s"),
        ("clients", "N", "d"),
        ("connected", "conn", "d"),
        ("connect_s", "connect s", ".2f"),
        ("interval_median", "ivl med s", ".3f"),
        ("interval_p99", "ivl p99 s", ".3f"),
        ("spread_p50", "spread p50 ms", "ms"),
        ("spread_p99", "spread p99 ms", "ms"),
        ("spread_max", "spread max ms", "ms"),
        ("complete_ticks", "full ticks", "d"),
        ("ticks", "ticks", "d"),
        ("cpu", "CPU %", "pct"),
        ("rss_mib", "RSS MiB", ".0f"),
        ("client_cpu", "client CPU %", "pct"),
    ],
    "serial": [
        ("server", "host", "s"),
        ("baud", "baud", ""),
        ("ok_window", "ok window", "d"),
        ("lines_per_s", "lines/s", ".0f"),
        ("bytes_per_line", "B/line", ".1f"),
        ("wire_share", "wire used %", "pct"),
        ("in_flight_max", "in flight max", "d"),
        ("cpu", "host CPU %", "pct"),
        ("cpu_us_per_line", "CPU µs/line", ".0f"),
    ],
    "slow": [
        ("server", "server", "s"),
        ("readers", "readers", "d"),
        ("stall_s", "stall s", ".0f"),
        ("interval_median", "ivl med s", ".3f"),
        ("interval_p99", "ivl p99 s", ".3f"),
        ("rss_growth_mib", "RSS growth MiB", ".1f"),
        ("server_closed_after_s", "closed after s", ".1f"),
        ("stuck_close_code", "close code", ""),
        ("stuck_close_reason", "close reason", "s"),
    ],
    "storm": [
        ("server", "server", "s"),
        ("case", "case", "s"),
        ("up_s", "warm-up s", ".0f"),
        ("clients", "N", "d"),
        ("got_history", "got history", "d"),
        ("within_5s", "within 5 s", "d"),
        ("history_p50_s", "p50 s", ".2f"),
        ("history_max_s", "max s", ".2f"),
        ("server_cpu", "server CPU %", "pct"),
        ("client_cpu", "client CPU %", "pct"),
    ],
}


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if fmt == "ms":
        return f"{value * 1000:.1f}"
    if fmt == "pct":
        return f"{value * 100:.1f}"
    return format(value, fmt)


def format_rows(benchmark: str, rows: list[dict[str, Any]]) -> str:
    """A Markdown table of ``rows`` (also readable in a terminal)."""
    columns = COLUMNS[benchmark]
    lines = ["| " + " | ".join(heading for _, heading, _ in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines)


def _find(rows: list[dict[str, Any]], octotrio: bool, **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if str(row["server"]).startswith("octotrio") == octotrio and all(
            row.get(k) == v for k, v in match.items()
        ):
            return row
    return None


def _target(
    name: str, row: dict[str, Any] | None, key: str, limit: float, *, at_least: bool = False
) -> dict[str, Any]:
    """One target: the measured value, the limit and whether it holds (None: not measured)."""
    value = None if row is None else row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {"name": name, "value": None, "limit": limit, "holds": None}
    holds = value >= limit if at_least else value <= limit
    return {"name": name, "value": round(float(value), 4), "limit": limit, "holds": holds}


def check_targets(benchmark: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for octotrio on this benchmark, each with its value and verdict."""
    if benchmark == "fanout":
        n200, n5000 = _find(rows, True, clients=200), _find(rows, True, clients=5000)
        octoprint = _find(rows, False, clients=200)
        ratio = None
        if n200 and octoprint and n200.get("cpu") is not None and octoprint.get("cpu"):
            ratio = {"server": "octotrio", "cpu_ratio": n200["cpu"] / octoprint["cpu"]}
        return [
            _target("N=200: CPU ≤ 1/4 of OctoPrint's (ratio)", ratio, "cpu_ratio", 0.25),
            _target("N=200: tick spread max ≤ 20 ms (s)", n200, "spread_max", 0.020),
            _target("N=200: interval median ≤ 0.505 s", n200, "interval_median", 0.505),
            _target("N=5000: interval median ≤ 0.52 s", n5000, "interval_median", 0.52),
            _target("N=5000: tick spread p99 ≤ 150 ms (s)", n5000, "spread_p99", 0.150),
            _target("N=5000: RSS ≤ 300 MiB", n5000, "rss_mib", 300),
        ]
    if benchmark == "serial":
        # Host overhead: instant ok at the default window (1), what octotrio ships with. The ratio
        # to OctoPrint: instant ok at window 4 for both, where lines/s is the host's own work (at
        # window 1 each line also waits for the firmware process's round trip, the same for both
        # hosts, which caps the ratio). The wire: 250000 baud streaming ahead (window 4, Marlin's BUFSIZE).
        instant = _find(rows, True, baud="instant", ok_window=1)
        streaming = _find(rows, True, baud="instant", ok_window=4)
        octoprint = _find(rows, False, baud="instant", ok_window=4)
        ratio = None
        if streaming and octoprint and octoprint.get("lines_per_s"):
            ratio = {"server": "octotrio", "ratio": streaming["lines_per_s"] / octoprint["lines_per_s"]}
        return [
            _target("≥ 5,000 lines/s host overhead on a pty", instant, "lines_per_s", 5000, at_least=True),
            _target(
                "≥ 95 % of the wire at 250000 baud (ok window 4)",
                _find(rows, True, baud=250000, ok_window=4),
                "wire_share",
                0.95,
                at_least=True,
            ),
            _target(
                "≥ 3× OctoPrint's lines/s, instant ok, window 4 (ratio)", ratio, "ratio", 3.0, at_least=True
            ),
        ]
    if benchmark == "slow":
        row = _find(rows, True)
        return [
            _target("other clients' interval p99 ≤ 0.55 s", row, "interval_p99", 0.55),
            _target("RSS growth ≤ 20 MiB", row, "rss_growth_mib", 20),
            _target(
                "stuck client closed by the server within the stall (s)",
                row,
                "server_closed_after_s",
                row["stall_s"] if row else 0,
            ),
        ]
    if benchmark == "storm":
        checks = []
        for case in ("at once", "after restart"):
            row = _find(rows, True, case=case)
            missing = (
                None if row is None else {"server": "octotrio", "missing": row["clients"] - row["within_5s"]}
            )
            checks.append(
                _target(f"{case}: all clients get history within 5 s (clients late)", missing, "missing", 0)
            )
        return checks
    return []


def format_results(results: dict[str, Any]) -> str:
    parts = []
    for name, result in results["benchmarks"].items():
        parts.append(f"\n## {name}\n\n" + format_rows(name, result["rows"]))
        for target in result["targets"]:
            verdict = "holds" if target["holds"] else "MISSED" if target["holds"] is False else "not measured"
            parts.append(f"- {target['name']}: {target['value']} → {verdict}")
    return "\n".join(parts)
