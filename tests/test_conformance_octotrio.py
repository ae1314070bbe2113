"""The conformance suite against octotrio itself: every MUST the suite can reach passes.

One run over the wire against a real octotrio (built-in virtual printer on a pty, real sockets),
without the Hypothesis properties, which `octotrio conform` runs (see conformance/_properties.py).
"""

from __future__ import annotations

from functools import partial

import trio

from conformance import Config, load_requirements, run_conformance
from octotrio.app import RunningServer, ServerConfig, run

API_KEY = "conformance-test-key"

RUN_LIMIT = 100
"""Hang guard for the whole run (seconds); a run against octotrio takes about 40 s."""

MUSTS = tuple(r.id for r in load_requirements() if r.level == "MUST")


async def test_every_reachable_must_passes_against_octotrio() -> None:
    async with trio.open_nursery() as nursery:
        server: RunningServer = await nursery.start(
            partial(run, ServerConfig(host="127.0.0.1", port=0, api_key=API_KEY))
        )
        with trio.fail_after(RUN_LIMIT):
            report = await run_conformance(Config(server.url, api_key=API_KEY, only=MUSTS, properties=False))
        server.request_shutdown()
    failures = {r.requirement.id: r.evidence for r in report.must_failures}
    assert failures == {}, report.to_text()
    reached = [r for r in report.results if r.requirement.id in MUSTS and r.status == "pass"]
    unreached = {
        r.requirement.id: r.reason for r in report.results if r.requirement.id in MUSTS and r.status == "skip"
    }
    # Only the MUST that no run can check over the wire stays unreached.
    assert set(unreached) == {"PUSH-ACC-5"}, unreached
    assert len(reached) == len(MUSTS) - 1
    # The restricted-user side of PUSH-PERM-1/2/3 was reached too (octotrio has POST /api/access/users).
    perm = " ".join(report.by_id("PUSH-PERM-3").evidence)
    assert "status-only user" in perm, perm
    assert "terminal user" in perm, perm
