"""``subscribe``: what a socket asked to receive. Sans-IO.

OctoPrint's semantics (octoprint-push.md §4.3): the first valid ``subscribe`` activates
subscriptions, after which a missing ``state``/``plugins``/``events`` means none of that kind;
each ``subscribe`` replaces the previous selection; ``state: true`` means logs on, messages off;
``logs``/``messages`` may be regular expressions applied with search semantics per line; lists
are exact-match allow-lists. octotrio differs in one place (Q13): an invalid ``subscribe`` is
refused as a whole and the previous selection stays in force.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PATTERN_CHARS = 256
"""Longest regular expression accepted for ``logs``/``messages``: filters match log lines, and
nothing useful needs more; a bound keeps compile time and memory small."""

MAX_LIST_ITEMS = 256
"""Longest ``plugins``/``events`` allow-list: OctoPrint has ~80 event names."""

_NESTED_QUANTIFIER = re.compile(r"\([^()]*[*+}][^()]*\)\s*[*+{]")
"""A quantified group that itself contains a quantifier, such as ``(a+)+``: the shape of
catastrophic backtracking. Python's ``re`` has no match timeout, and one slow match would stall
every session, so such patterns are refused (a heuristic: it errs on the side of refusing)."""

Filter = bool | re.Pattern[str]


@dataclass(frozen=True)
class Subscription:
    """One selection. ``state`` off means no ``history``/``current`` at all."""

    state: bool = True
    logs: Filter = True
    messages: Filter = True
    plugins: bool | frozenset[str] = True
    events: bool | frozenset[str] = True

    def state_key(self) -> tuple[object, ...]:
        """The normalised state selection: a change of it (while on) sends a new ``history``."""
        return (self.state, _filter_key(self.logs), _filter_key(self.messages))

    def wants_event(self, name: str) -> bool:
        return self.events if isinstance(self.events, bool) else name in self.events

    def wants_plugin(self, plugin: str) -> bool:
        return self.plugins if isinstance(self.plugins, bool) else plugin in self.plugins


DEFAULT_SUBSCRIPTION = Subscription()
"""Before any ``subscribe``: everything, logs and messages included (MONITOR_TERMINAL permitting)."""


def _filter_key(value: Filter) -> object:
    return value if isinstance(value, bool) else value.pattern


def _compile_filter(value: object, key: str) -> Filter:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError(f"state.{key} must be true, false or a regular expression")
    if len(value) > MAX_PATTERN_CHARS:
        raise ValueError(f"state.{key}: regular expression longer than {MAX_PATTERN_CHARS} characters")
    if _NESTED_QUANTIFIER.search(value):
        raise ValueError(f"state.{key}: nested quantifiers are refused (catastrophic backtracking)")
    try:
        return re.compile(value)
    except (re.error, RecursionError, OverflowError, ValueError) as error:
        raise ValueError(f"state.{key}: invalid regular expression: {error}") from None


def _allow_list(value: object, key: str) -> bool | frozenset[str]:
    if isinstance(value, bool):
        return value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be true, false or a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"{key}: more than {MAX_LIST_ITEMS} entries")
    return frozenset(value)


def parse_subscription(selection: dict[str, object]) -> Subscription:
    """The selection a valid ``subscribe`` payload asks for; ValueError says what is invalid."""
    state = selection.get("state", False)
    logs: Filter
    messages: Filter
    if isinstance(state, bool):
        # state: true is {"logs": true, "messages": false} (messages off, §4.3).
        state_on, logs, messages = state, state, False
    elif isinstance(state, dict):
        state_on = True
        logs = _compile_filter(state.get("logs", False), "logs")
        messages = _compile_filter(state.get("messages", False), "messages")
    else:
        raise ValueError("state must be true, false or an object")
    return Subscription(
        state=state_on,
        logs=logs,
        messages=messages,
        plugins=_allow_list(selection.get("plugins", False), "plugins"),
        events=_allow_list(selection.get("events", False), "events"),
    )


def filter_lines(lines: list[str], wanted: Filter) -> list[str]:
    """Lines a ``logs``/``messages`` filter lets through (regex: search semantics per line)."""
    if isinstance(wanted, bool):
        return lines if wanted else []
    return [line for line in lines if wanted.search(line)]
