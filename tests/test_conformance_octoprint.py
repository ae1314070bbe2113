"""The conformance suite against a real OctoPrint 1.11.8: its result matches the checked-in expectation
spec/octoprint-1.11.8-expected.toml, so a change in the suite, the spec or OctoPrint is noticed.

OctoPrint is installed once per machine from PyPI into its own gitignored virtualenv
(scripts/install-octoprint.sh, ``.octoprint-venv``) and started on 127.0.0.1 with the offline settings and
its bundled virtual printer (conformance/octoprint.py); its process is always stopped.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from conformance import Config, run_conformance
from conformance import octoprint as octoprint_launcher

EXPECTATION = Path(__file__).resolve().parent.parent / "spec" / "octoprint-1.11.8-expected.toml"

RUN_LIMIT = 150
"""Hang guard for the suite's run (seconds); a run against OctoPrint takes about 30 s here."""

TEST_LIMIT = octoprint_launcher.INSTALL_TIMEOUT + octoprint_launcher.START_TIMEOUT + RUN_LIMIT + 30
"""The per-test timeout: a first run on a fresh machine installs OctoPrint inside the fixture."""


@pytest.fixture(scope="session")
def octoprint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[octoprint_launcher.OctoPrint]:
    log = tmp_path_factory.mktemp("octoprint") / "serve.log"
    with octoprint_launcher.running_octoprint(log_path=log) as server:
        yield server


def expected_outcomes() -> dict[str, tuple[str, str]]:
    """Requirement id → (outcome, quirk) from the expectation file."""
    with EXPECTATION.open("rb") as file:
        table = tomllib.load(file)
    return {rid: (entry["outcome"], entry["quirk"]) for rid, entry in table.items()}


@pytest.mark.timeout(TEST_LIMIT)
async def test_octoprint_deviates_exactly_as_the_expectation_file_says(
    octoprint: octoprint_launcher.OctoPrint,
) -> None:
    config = Config(
        octoprint.url,
        api_key=octoprint.api_key,
        user="admin",
        password=octoprint.admin_password,
        properties=False,
    )
    with trio.fail_after(RUN_LIMIT):
        report = await run_conformance(config)
    expected = expected_outcomes()
    actual = {r.requirement.id: r.status for r in report.results}
    assert set(expected) <= set(actual), f"unknown ids in {EXPECTATION.name}: {set(expected) - set(actual)}"
    differences = {
        rid: f"expected {expected.get(rid, ('pass', ''))[0]} {expected.get(rid, ('', ''))[1]}, got {status}"
        for rid, status in actual.items()
        if status != expected.get(rid, ("pass", ""))[0]
    }
    assert differences == {}, report.to_text()
    # The restricted-user side of PUSH-PERM-* was reached, not skipped (POST /api/access/users exists).
    assert not any("restricted-user side" in note for note in report.notes), report.notes
