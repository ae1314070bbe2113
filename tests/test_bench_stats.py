"""The benchmark runner's statistics and parsing: what its printed figures are computed from."""

from __future__ import annotations

import math

import pytest

from bench._cli import build_parser
from bench._report import check_targets
from bench._stats import Summary, cpu_share, intervals, merged, percentile, tick_spreads


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([5.0, 1.0, 3.0], 0) == 1.0
    assert percentile([5.0, 1.0, 3.0], 100) == 5.0
    assert math.isnan(percentile([], 50))


def test_percentile_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], 101)


def test_intervals_are_gaps_between_arrivals() -> None:
    assert intervals([10.0, 10.5, 11.25]) == pytest.approx([0.5, 0.75])
    assert intervals([10.0]) == []


def test_ticks_are_bursts_separated_by_silence() -> None:
    # Three clients, two ticks 0.5 s apart; the second tick's fan-out took 30 ms.
    arrivals = [1.000, 1.001, 1.002, 1.500, 1.510, 1.530]
    ticks = tick_spreads(arrivals, gap=0.15)
    assert [t.receivers for t in ticks] == [3, 3]
    assert [t.spread for t in ticks] == pytest.approx([0.002, 0.030])
    assert merged(ticks, clients=3) == 0


def test_bursts_that_run_into_each_other_are_counted_as_merged() -> None:
    # Two clients, fan-out so slow that the gaps never reach 0.15 s: one "tick" with 4 arrivals.
    ticks = tick_spreads([1.0, 1.1, 1.2, 1.3], gap=0.15)
    assert merged(ticks, clients=2) == 1


def test_summary_of_nothing_is_nan_not_an_error() -> None:
    summary = Summary.of([])
    assert summary.count == 0
    assert math.isnan(summary.median)


def test_parser_reads_client_counts_and_rejects_nonsense() -> None:
    args = build_parser().parse_args(["fanout", "--clients", "10,200"])
    assert args.clients == [10, 200]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fanout", "--clients", "0"])


def test_targets_say_which_hold_and_which_were_not_measured() -> None:
    rows = [
        {"server": "octotrio", "clients": 200, "cpu": 0.02, "spread_max": 0.010, "interval_median": 0.510},
        {"server": "OctoPrint", "clients": 200, "cpu": 0.12, "spread_max": 0.2, "interval_median": 0.55},
    ]
    verdicts = {t["name"]: t["holds"] for t in check_targets("fanout", rows)}
    assert verdicts["N=200: CPU ≤ 1/4 of OctoPrint's (ratio)"] is True
    assert verdicts["N=200: tick spread max ≤ 20 ms (s)"] is True
    assert verdicts["N=200: interval median ≤ 0.505 s"] is False
    assert verdicts["N=5000: RSS ≤ 300 MiB"] is None


def test_cpu_share_spans_the_samples_around_the_phase() -> None:
    trace = [(0.0, 1.0), (1.0, 1.5), (2.0, 2.5), (3.0, 2.5)]
    assert cpu_share(trace, 1.0, 2.0) == pytest.approx(1.0)
    assert cpu_share(trace, 0.5, 2.5) == pytest.approx((2.5 - 1.0) / 3.0)
    assert cpu_share(trace, -1.0, 9.0) == pytest.approx(1.5 / 3.0)
    assert math.isnan(cpu_share([(0.0, 1.0)], 0.0, 1.0))
    assert math.isnan(cpu_share([], 0.0, 1.0))
