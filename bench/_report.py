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


def check_targets(benchmark: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for this benchmark: each with the measured value and whether it holds."""
    return []


def format_results(results: dict[str, Any]) -> str:
    parts = []
    for name, result in results["benchmarks"].items():
        parts.append(f"\n## {name}\n\n" + format_rows(name, result["rows"]))
        for target in result["targets"]:
            verdict = "holds" if target["holds"] else "MISSED" if target["holds"] is False else "not measured"
            parts.append(f"- {target['name']}: {target['value']} → {verdict}")
    return "\n".join(parts)
