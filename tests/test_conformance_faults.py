"""The conformance suite catches faults: each deliberately broken fake server is reported under
the requirement it breaks, and the correct fake passes those requirements.

The fakes break rules by wide margins (pushes every 0.1 s instead of 0.5 s, a throttle of 3 that is
ignored), so the verdicts do not hinge on timing jitter. All runs go at once: each mostly waits.
"""

from __future__ import annotations

import trio

from conformance import Config, Report, run_conformance
from tests.conformance_fakes import Faults, serve_fake

RUN_LIMIT = 60
"""Hang guard for one suite run against a fake (seconds)."""

FAULTS = {
    "wrong rate": (Faults(interval=0.1), "PUSH-RATE-1", "after the previous one"),
    "ignored throttle": (Faults(ignore_throttle=True), "PUSH-RATE-2", "at throttle 3"),
    "missing field": (Faults(drop_current_field="job"), "PUSH-MSG-2", "'job' is a required property"),
    "duplicated log line": (Faults(duplicate_logs=True), "PUSH-ACC-1", "in 2 current log lines"),
    "history sent twice": (Faults(history_twice=True), "PUSH-ACC-3", "2 history"),
    "crash on bad input": (Faults(crash_on_bad_input=True), "PUSH-BAD-5", "witness connection ended"),
    "terminal lines to a STATUS-only user": (
        Faults(leak_terminal=True),
        "PUSH-PERM-3",
        "status-only user: current carries logs",
    ),
}

CORRECT_ONLY = tuple(sorted({requirement for _, requirement, _ in FAULTS.values()} | {"PUSH-BAD-2"}))


async def _conform(faults: Faults, only: tuple[str, ...]) -> Report:
    async with serve_fake(faults) as url:
        with trio.fail_after(RUN_LIMIT):
            return await run_conformance(Config(url, api_key="fake-key", only=only, properties=False))


async def _conform_all() -> tuple[Report, dict[str, Report]]:
    reports: dict[str, Report] = {}

    async def conform(name: str, faults: Faults, only: tuple[str, ...]) -> None:
        reports[name] = await _conform(faults, only)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(conform, "correct", Faults(), CORRECT_ONLY)
        for name, (faults, requirement, _) in FAULTS.items():
            only = (requirement, "PUSH-BAD-2") if faults.crash_on_bad_input else (requirement,)
            nursery.start_soon(conform, name, faults, only)
    return reports.pop("correct"), reports


async def test_each_fault_is_reported_under_its_requirement_and_the_correct_fake_passes() -> None:
    correct, reports = await _conform_all()
    assert {r.requirement.id: r.status for r in correct.results if r.requirement.id in CORRECT_ONLY} == (
        dict.fromkeys(CORRECT_ONLY, "pass")
    ), correct.to_text()
    assert correct.exit_status == 0
    for name, (_, requirement, evidence) in FAULTS.items():
        result = reports[name].by_id(requirement)
        assert result.status == "fail", f"{name}: {requirement} {result.status} {result.evidence}"
        assert any(evidence in line for line in result.evidence), f"{name}: {result.evidence}"
        assert reports[name].exit_status == 1
    # The crash also shows on the connection that sent the bad input.
    assert reports["crash on bad input"].by_id("PUSH-BAD-2").status == "fail"


async def test_the_report_formats_carry_the_verdicts() -> None:
    report = await _conform(Faults(interval=0.1), ("PUSH-RATE-1",))
    assert '"id": "PUSH-RATE-1"' in report.to_json()
    assert '"status": "fail"' in report.to_json()
    junit = report.to_junit()
    assert "<failure" in junit
    assert "PUSH-RATE-1" in junit
    assert "<skipped" in junit
    assert "FAIL PUSH-RATE-1" in report.to_text()
