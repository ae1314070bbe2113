"""Judging recorded connections: pure functions from what a connection received to violations, by
requirement. No I/O; times are the arrival times recorded by :mod:`conformance._wire`."""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._spec import message_errors
from ._wire import Connection, Received

RATE_TOLERANCE = 0.06
"""Seconds by which a measured `current` interval may fall short of 0.5 s × throttle (PUSH-RATE-1):
arrival times are taken at the client, so a delayed message followed by a punctual one looks closer
than they were sent. OctoPrint's measured minimum at throttle 1 is 0.499 s."""

RATE_SLACK = 0.15
"""Seconds the median `current` interval may exceed 0.5 s × throttle while the state keeps changing
(PUSH-RATE-5); OctoPrint measures 0.503 s at throttle 1 and 0.557 s with 200 clients."""

BASE_INTERVAL = 0.5
"""OctoPrint's minimum interval between `current` pushes at throttle 1 (octoprint-push.md §6.2)."""

FLAG_IMPLIES_OPERATIONAL = ("printing", "paused", "ready", "pausing", "resuming", "cancelling", "finishing")


def short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class Profile:
    """What the runner knows about a connection: its throttle over time and its entitlements."""

    connection: Connection
    authed: bool = False
    throttle: list[tuple[float, int]] = field(default_factory=lambda: [(0.0, 1)])
    subscribed_events: bool = True
    subscribed_state: bool = True
    resubscribed: bool = False
    """Whether its state selection changed after registration (a second `history` is then due)."""

    def factor_at(self, when: float) -> int:
        factor = 1
        for at, value in self.throttle:
            if at <= when:
                factor = value
        return factor


def message_violations(connection: Connection) -> dict[str, list[str]]:
    """PUSH-MSG-1/2 for every message, plus what the reader saw (framing, JSON text)."""
    found: dict[str, list[str]] = {}
    for requirement, evidence in connection.violations:
        found.setdefault(requirement, []).append(f"{connection.name}: {evidence}")
    for item in connection.received:
        for error in message_errors(item.message):
            requirement = "PUSH-MSG-1" if "PUSH-MSG-1" in error else "PUSH-MSG-2"
            found.setdefault(requirement, []).append(f"{connection.name}: {error} in {short(item.message)}")
    return found


def lifecycle_violations(profile: Profile) -> dict[str, list[str]]:
    """PUSH-CONNECTED-1, PUSH-ORDER-1, PUSH-HISTORY-1, PUSH-ORDER-3, PUSH-CURRENT-1, PUSH-STATE-1."""
    connection = profile.connection
    name = connection.name
    found: dict[str, list[str]] = {}
    types = [item.type for item in connection.received]
    if connection.received:
        if types[0] != "connected":
            found.setdefault("PUSH-CONNECTED-1", []).append(f"{name}: first message is {types[0]!r}")
        if types.count("connected") != 1:
            found.setdefault("PUSH-CONNECTED-1", []).append(f"{name}: {types.count('connected')} connected")
    if "current" in types:
        first_current = types.index("current")
        if "history" not in types[:first_current]:
            found.setdefault("PUSH-ORDER-1", []).append(
                f"{name}: current at #{first_current} before any history"
            )
    if "history" in types:
        after = types.index("history") + 1
        following = [t for t in types[after:] if t != "event" and t != "plugin"][:1]
        if following != ["timelapse"]:
            found.setdefault("PUSH-HISTORY-1", []).append(
                f"{name}: after history came {following or 'nothing'} instead of timelapse"
            )
    currents = connection.of_type("current")
    previous: Received | None = None
    for item in currents:
        payload = item.payload if isinstance(item.payload, dict) else {}
        if previous is not None:
            old = previous.payload if isinstance(previous.payload, dict) else {}
            if (
                isinstance(payload.get("serverTime"), int | float)
                and isinstance(old.get("serverTime"), int | float)
                and payload["serverTime"] < old["serverTime"]
            ):
                found.setdefault("PUSH-ORDER-3", []).append(
                    f"{name}: serverTime {old['serverTime']} then {payload['serverTime']}"
                )
            old_marks = old.get("markings") or []
            new_marks = payload.get("markings") or []
            missing = [mark for mark in old_marks if mark not in new_marks]
            if missing:
                found.setdefault("PUSH-CURRENT-1", []).append(f"{name}: markings lost: {short(missing)}")
        previous = item
    for item in currents + connection.of_type("history"):
        problem = state_problem(item.payload.get("state") if isinstance(item.payload, dict) else None)
        if problem:
            found.setdefault("PUSH-STATE-1", []).append(f"{name}: {problem} in {item.type}")
    return found


def state_problem(state: Any) -> str | None:
    """What is inconsistent in a `state` object (PUSH-STATE-1), or None."""
    if not isinstance(state, dict) or not isinstance(state.get("flags"), dict):
        return None  # the schema check reports it
    flags = state["flags"]
    text = state.get("text")
    for flag in FLAG_IMPLIES_OPERATIONAL:
        if flags.get(flag) and not flags.get("operational"):
            return f"{flag} without operational ({short(state)})"
    if flags.get("paused") and flags.get("printing"):
        return f"paused and printing ({short(state)})"
    if flags.get("closedOrError") and flags.get("operational"):
        return f"closedOrError and operational ({short(state)})"
    expected = {
        "Operational": "ready",
        "Printing": "printing",
        "Paused": "paused",
        "Offline": "closedOrError",
    }
    if isinstance(text, str) and text in expected and not flags.get(expected[text]):
        return f"text {text!r} without {expected[text]} ({short(state)})"
    return None


def rate_violations(profile: Profile) -> tuple[list[str], list[float]]:
    """PUSH-RATE-1: intervals shorter than 0.5 s × throttle - tolerance; also every interval measured.

    Not for xhr polling: batched frames arrive together, so arrival times say nothing about sends.
    """
    connection = profile.connection
    if connection.transport == "xhr":
        return [], []
    currents = connection.of_type("current")
    violations: list[str] = []
    intervals: list[float] = []
    for earlier, later in itertools.pairwise(currents):
        factor = min(profile.factor_at(earlier.at), profile.factor_at(later.at))
        interval = later.at - earlier.at
        intervals.append(interval)
        minimum = BASE_INTERVAL * factor - RATE_TOLERANCE
        if interval >= minimum:
            continue
        # A client that was slow to read sees a burst; the server's own send times (serverTime,
        # taken at send time as in OctoPrint) tell a burst of ours from a burst of the server's.
        sent = _server_time(later) - _server_time(earlier)
        if sent >= minimum:
            continue
        violations.append(
            f"{connection.name}: current {interval:.3f} s after the previous one (serverTime +{sent:.3f} s) "
            f"at throttle {factor} (minimum {BASE_INTERVAL * factor:.2f} s - {RATE_TOLERANCE} s)"
        )
    return violations, intervals


def _server_time(item: Received) -> float:
    """``serverTime`` of a `current`, or -inf-like 0 when missing (the schema check reports that)."""
    payload = item.payload if isinstance(item.payload, dict) else {}
    value = payload.get("serverTime")
    return float(value) if isinstance(value, int | float) else 0.0


def median_interval(profile: Profile, since: float) -> float | None:
    times = [item.at for item in profile.connection.of_type("current") if item.at >= since]
    intervals = [b - a for a, b in itertools.pairwise(times)]
    return statistics.median(intervals) if len(intervals) >= 3 else None


def marker_pattern(marker: str) -> re.Pattern[str]:
    """A `Send:` log line carrying ``M117 <marker>`` (with or without line number and checksum)."""
    return re.compile(rf"^Send: (N\d+ )?M117 {re.escape(marker)}(\*\d+)?$")


def marker_counts(
    connection: Connection, markers: Sequence[str], *, since: int = 0, message_type: str = "current"
) -> dict[str, int]:
    """How many `current` (or ``message_type``) log lines carry each marker (PUSH-ACC-1)."""
    patterns = {marker: marker_pattern(marker) for marker in markers}
    counts = dict.fromkeys(markers, 0)
    for item in connection.received[since:]:
        if item.type != message_type or not isinstance(item.payload, dict):
            continue
        for line in item.payload.get("logs") or []:
            for marker, pattern in patterns.items():
                if isinstance(line, str) and pattern.match(line):
                    counts[marker] += 1
    return counts


def accumulated(connection: Connection, key: str) -> list[list[str]]:
    """The items of ``key`` (`temps`, `messages`) per `current`, each item as canonical JSON."""
    return [
        [json.dumps(value, sort_keys=True) for value in (item.payload.get(key) or [])]
        for item in connection.of_type("current")
        if isinstance(item.payload, dict)
    ]


def is_contiguous_within(inner: list[str], outer: list[str]) -> bool:
    """Whether ``inner`` occurs as one contiguous run in ``outer``."""
    if not inner:
        return True
    width = len(inner)
    return any(outer[start : start + width] == inner for start in range(len(outer) - width + 1))


def comparable_events(connection: Connection) -> list[str]:
    """Events that every connection of the same user gets identically (PUSH-ORDER-2): without the
    per-connection Client* events and the racy ones."""
    return [
        json.dumps(_without_racy_fields(item.payload), sort_keys=True)
        for item in connection.of_type("event")
        if isinstance(item.payload, dict)
        and not str(item.payload.get("type", "")).startswith(("Client", "User"))
    ]


def _without_racy_fields(event: dict[str, Any]) -> dict[str, Any]:
    """OctoPrint adds `reason` to PrintCancelled's payload after firing it, so some connections
    serialise it and some do not (octoprint-push.md Q2): the order is compared without it."""
    if event.get("type") != "PrintCancelled" or not isinstance(event.get("payload"), dict):
        return event
    payload = {k: v for k, v in event["payload"].items() if k != "reason"}
    return {**event, "payload": payload}
