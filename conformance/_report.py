"""Results per requirement and the report formats: text grouped by area, JSON and JUnit XML."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree

from ._spec import Requirement, load_requirements

Status = Literal["pass", "fail", "skip"]

MAX_EVIDENCE = 8
"""Evidence lines kept per requirement: enough to see a pattern, short enough to read."""

MAX_EVIDENCE_CHARS = 600
"""Longest evidence line; the offending message is cut after this many characters."""


@dataclass
class Result:
    requirement: Requirement
    status: Status = "skip"
    reason: str = ""
    evidence: list[str] = field(default_factory=list)
    checked: bool = False


class Results:
    """Outcomes by requirement id. A requirement fails if any check of it failed, passes if at least
    one check passed and none failed, and is skipped (with the reason) otherwise."""

    def __init__(self, only: Iterable[str] = ()) -> None:
        self.only = set(only)
        self._results = {requirement.id: Result(requirement) for requirement in load_requirements()}
        unknown = self.only - set(self._results)
        if unknown:
            raise ValueError(f"unknown requirement ids: {', '.join(sorted(unknown))}")

    def wanted(self, *ids: str) -> bool:
        """Whether any of ``ids`` is part of this run (``--only``)."""
        return not self.only or bool(self.only.intersection(ids))

    def _add_evidence(self, result: Result, evidence: str) -> None:
        if evidence and len(result.evidence) < MAX_EVIDENCE and evidence not in result.evidence:
            result.evidence.append(evidence[:MAX_EVIDENCE_CHARS])

    def passed(self, requirement_id: str, evidence: str = "") -> None:
        result = self._results[requirement_id]
        result.checked = True
        if result.status != "fail":
            result.status = "pass"
            self._add_evidence(result, evidence)

    def failed(self, requirement_id: str, evidence: str) -> None:
        result = self._results[requirement_id]
        if result.status != "fail":
            result.evidence.clear()
        result.checked = True
        result.status = "fail"
        self._add_evidence(result, evidence)

    def check(self, requirement_id: str, violations: list[str], evidence: str = "") -> None:
        """Pass with ``evidence`` when ``violations`` is empty, else fail with them."""
        if violations:
            for violation in violations:
                self.failed(requirement_id, violation)
        else:
            self.passed(requirement_id, evidence)

    def skipped(self, requirement_id: str, reason: str) -> None:
        """Record why a requirement could not be reached, unless a check already decided it."""
        result = self._results[requirement_id]
        if not result.checked and not result.reason:
            result.reason = reason

    def finish(self) -> list[Result]:
        """Every result, in spec order; unreached requirements get their reason."""
        for result in self._results.values():
            if self.only and result.requirement.id not in self.only:
                # Checks run for shared scenarios also judge unselected requirements: drop those verdicts.
                result.status, result.reason, result.evidence = "skip", "not selected (--only)", []
            elif result.checked:
                continue
            elif not result.requirement.checkable:
                result.reason = result.requirement.check
            elif not result.reason:
                result.reason = "not reached by this run"
        return list(self._results.values())


@dataclass(frozen=True)
class Report:
    target: str
    results: list[Result]
    notes: list[str]
    duration: float

    @property
    def must_failures(self) -> list[Result]:
        return [r for r in self.results if r.status == "fail" and r.requirement.level == "MUST"]

    @property
    def exit_status(self) -> int:
        """1 when a MUST failed, else 0 (PUSH-* levels: a SHOULD failure is reported, not fatal)."""
        return 1 if self.must_failures else 0

    def by_id(self, requirement_id: str) -> Result:
        return next(r for r in self.results if r.requirement.id == requirement_id)

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for result in self.results:
            counts[result.status] += 1
        return counts

    def to_text(self) -> str:
        lines = [f"conformance of {self.target} ({self.duration:.0f} s)"]
        lines += [f"  note: {note}" for note in self.notes]
        area = None
        for result in self.results:
            requirement = result.requirement
            if requirement.area != area:
                area = requirement.area
                lines.append(f"\n[{area}]")
            mark = {"pass": "PASS", "fail": "FAIL", "skip": "skip"}[result.status]
            lines.append(f"  {mark} {requirement.id} ({requirement.level}) {requirement.title}")
            if result.status == "skip":
                lines.append(f"       skipped: {result.reason}")
            if result.status == "fail":
                lines += [f"       - {evidence}" for evidence in result.evidence]
        counts = self.counts()
        lines.append(
            f"\n{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped; "
            f"{len(self.must_failures)} MUST failed: "
            + (", ".join(r.requirement.id for r in self.must_failures) or "none")
        )
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "target": self.target,
                "duration": round(self.duration, 1),
                "notes": self.notes,
                "counts": self.counts(),
                "exit_status": self.exit_status,
                "results": [
                    {
                        "id": r.requirement.id,
                        "level": r.requirement.level,
                        "area": r.requirement.area,
                        "title": r.requirement.title,
                        "status": r.status,
                        "reason": r.reason,
                        "evidence": r.evidence,
                    }
                    for r in self.results
                ],
            },
            indent=2,
        )

    def to_junit(self) -> str:
        suites = ElementTree.Element("testsuites", name=f"conformance of {self.target}")
        areas: dict[str, ElementTree.Element] = {}
        for result in self.results:
            requirement = result.requirement
            suite = areas.get(requirement.area)
            if suite is None:
                suite = areas[requirement.area] = ElementTree.SubElement(
                    suites, "testsuite", name=requirement.area
                )
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{requirement.area}",
                name=f"{requirement.id} ({requirement.level}) {requirement.title}",
            )
            if result.status == "fail":
                failure = ElementTree.SubElement(case, "failure", message=f"{requirement.level} failed")
                failure.text = "\n".join(result.evidence)
            elif result.status == "skip":
                ElementTree.SubElement(case, "skipped", message=result.reason)
            elif result.evidence:
                ElementTree.SubElement(case, "system-out").text = "\n".join(result.evidence)
        for suite in areas.values():
            cases = suite.findall("testcase")
            suite.set("tests", str(len(cases)))
            suite.set("failures", str(sum(case.find("failure") is not None for case in cases)))
            suite.set("skipped", str(sum(case.find("skipped") is not None for case in cases)))
        return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)

    def write(self, json_path: Path | None, junit_path: Path | None) -> None:
        if json_path is not None:
            json_path.write_text(self.to_json())
        if junit_path is not None:
            junit_path.write_text(self.to_junit())
