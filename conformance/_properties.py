"""Hypothesis properties against the live target (PUSH-RATE-1, PUSH-ACC-1, PUSH-MSG-2, PUSH-BAD-5).

Hypothesis drives the examples from a worker thread; each example runs on the run's own trio loop
through ``trio.from_thread.run``, so every connection it opens is recorded and judged with the rest.
The shrunk counterexample of a failing property is reported as evidence.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from . import _analysis as analysis
from ._runner import HISTORY_TIMEOUT, Run
from ._wire import Transport


class PropertyFailed(AssertionError):
    """A property's violation, with the requirement it breaks."""

    def __init__(self, requirement: str, evidence: str) -> None:
        super().__init__(evidence)
        self.requirement = requirement
        self.evidence = evidence


STATES = st.sampled_from([True, {"logs": True, "messages": True}, {"logs": True, "messages": False}])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("throttle"), st.integers(min_value=1, max_value=4)),
        st.tuples(st.just("subscribe"), STATES),
        st.tuples(st.just("reconnect"), st.none()),
        st.tuples(st.just("wait"), st.integers(min_value=3, max_value=15).map(lambda tenths: tenths / 10)),
    ),
    min_size=1,
    max_size=4,
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
CLIENT_MESSAGES = st.one_of(
    st.text(max_size=30),
    JSON_VALUES.map(json.dumps),
    st.fixed_dictionaries(
        {}, optional={"auth": JSON_VALUES, "throttle": JSON_VALUES, "subscribe": JSON_VALUES}
    ).map(json.dumps),
)


@dataclass
class _Outcome:
    failure: PropertyFailed | None = None
    example: Any = None
    examples: int = 0


async def _rate_and_accumulation(run: Run, steps: list[tuple[str, Any]]) -> None:
    assert run.login is not None
    profile = await run.connect("raw", "property-rate", auth=run.login)
    await profile.connection.wait_for(lambda item: item.type == "history", HISTORY_TIMEOUT)
    markers = await run.markers(2, spacing=0.1)
    first = profile
    for kind, value in steps:
        if kind == "throttle":
            await run.throttle(profile, value, value)
        elif kind == "subscribe":
            await profile.connection.send({"subscribe": {"state": value, "events": True, "plugins": True}})
            profile.resubscribed = True
        elif kind == "reconnect":
            profile.connection.close()
            profile = await run.connect("raw", "property-rate", auth=run.login)
            await profile.connection.wait_for(lambda item: item.type == "history", HISTORY_TIMEOUT)
        else:
            await trio.sleep(value)
    await trio.sleep(1.6 * max(factor for _, factor in profile.throttle))
    for candidate in {id(first): first, id(profile): profile}.values():
        violations, _ = analysis.rate_violations(candidate)
        if violations:
            raise PropertyFailed("PUSH-RATE-1", violations[0])
    counts = analysis.marker_counts(first.connection, markers)
    # A marker may instead arrive in a later `history` (a changed state selection re-sends history,
    # and PUSH-ACC-4 asks not to repeat its content in the next `current`).
    resent = analysis.marker_counts(
        first.connection, markers, since=1 + _first_history(first), message_type="history"
    )
    stayed = first is profile
    for marker, count in counts.items():
        if count > 1 or (stayed and count == 0 and not resent[marker]):
            raise PropertyFailed("PUSH-ACC-1", f"marker {marker} in {count} current log lines")
    profile.connection.close()
    first.connection.close()


async def _bad_input(run: Run, texts: list[str], sockjs: bool) -> None:
    assert run.login is not None
    witness = await run.connect("raw", "property-witness", auth=run.login)
    await witness.connection.wait_for(lambda item: item.type == "history", HISTORY_TIMEOUT)
    transport: Transport = "websocket" if sockjs and "websocket" in run.offered else "raw"
    victim = await run.connect(transport, "property-fuzzed", auth=run.login)
    for text in texts:
        await victim.connection.send_text(text)
    mark = len(witness.connection.received)
    await trio.sleep(0.2)
    if await witness.connection.wait_type("current", 3, start=mark) is None or not witness.connection.open:
        raise PropertyFailed(
            "PUSH-BAD-5", f"another connection stopped receiving current ({witness.connection.ended})"
        )
    newcomer = await run.connect("raw", "property-newcomer")
    if not newcomer.connection.of_type("connected"):
        raise PropertyFailed("PUSH-BAD-5", f"a new connection got no connected ({newcomer.connection.ended})")
    for profile in (witness, victim, newcomer):
        profile.connection.close()


def _first_history(profile: analysis.Profile) -> int:
    types = [item.type for item in profile.connection.received]
    return types.index("history") if "history" in types else len(types)


def _search(run: Run, name: str, strategy: st.SearchStrategy[Any], body: Any, examples: int) -> _Outcome:
    """Run one property in this (worker) thread; examples execute on the run's trio loop."""
    outcome = _Outcome()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(strategy)
    def prop(example: Any) -> None:
        outcome.examples += 1
        try:
            trio.from_thread.run(body, run, *example)
        except PropertyFailed as failure:
            outcome.failure, outcome.example = failure, example
            raise

    # A live target may fail an example only once (Flaky): the first failure is still a failure.
    with contextlib.suppress(PropertyFailed, Flaky):
        prop()
    return outcome


async def run_properties(run: Run) -> None:
    """Both properties, with a small example budget each so the full run stays under 3 minutes."""
    if run.login is None:
        return
    examples = run.config.property_examples
    properties = [
        (
            "random throttle/reconnect/subscribe sequences",
            STEPS.map(lambda steps: (steps,)),
            _rate_and_accumulation,
        ),
        (
            "random and malformed client messages",
            st.tuples(st.lists(CLIENT_MESSAGES, min_size=1, max_size=6), st.booleans()),
            _bad_input,
        ),
    ]
    for name, strategy, body in properties:
        outcome = await trio.to_thread.run_sync(_search, run, name, strategy, body, examples)
        if outcome.failure is not None:
            run.results.failed(
                outcome.failure.requirement,
                f"property '{name}': {outcome.failure.evidence}; shrunk counterexample: {outcome.example!r}",
            )
        else:
            requirement = "PUSH-RATE-1" if body is _rate_and_accumulation else "PUSH-BAD-5"
            run.results.passed(requirement, f"property '{name}': {outcome.examples} examples held")
