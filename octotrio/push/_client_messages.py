"""Client → server messages: parsing and validation, sans-IO.

OctoPrint checks ``auth``, ``throttle`` and ``subscribe`` in that order and applies only the
first key present (octoprint-push.md §4). Where OctoPrint aborts the connection on a type
error (quirk Q14), octotrio ignores the message and says why in the log; where an invalid
``subscribe`` switches OctoPrint's socket to "nothing" (Q13), octotrio keeps the previous
selection. The full table of answers is in spec/push-behaviour.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ._subscription import Subscription, parse_subscription

MAX_THROTTLE = 3600
"""Largest throttle factor: one ``current`` per half hour. Larger values (OctoPrint accepts any
integer) are clamped, so an absurd factor cannot overflow the rate limiter's float arithmetic."""


@dataclass(frozen=True)
class SetThrottle:
    """``{"throttle": n}``: ``current`` at most every 0.5 s × ``factor``."""

    factor: int


@dataclass(frozen=True)
class Auth:
    """``{"auth": "user:session"}``: authenticate with a session from ``POST /api/login``."""

    user: str
    session: str


@dataclass(frozen=True)
class Subscribe:
    """``{"subscribe": {...}}``: a valid selection, replacing the previous one."""

    subscription: Subscription


@dataclass(frozen=True)
class Ignored:
    """A message with nothing to do, and why (logged by the session)."""

    reason: str


ClientMessage = SetThrottle | Auth | Subscribe | Ignored


def _parse_throttle(value: object) -> ClientMessage:
    # OctoPrint applies Python int(): "3" → 3, 2.9 → 2, true → 1; below 1 is invalid.
    if isinstance(value, bool):
        factor = int(value)
    elif isinstance(value, int):
        factor = value
    elif isinstance(value, float) and value == value and abs(value) != float("inf"):
        factor = int(value)
    elif isinstance(value, str):
        try:
            factor = int(value.strip())
        except ValueError:
            return Ignored("invalid throttle factor")
    else:
        return Ignored("invalid throttle factor")
    if factor < 1:
        return Ignored("invalid throttle factor")
    return SetThrottle(min(factor, MAX_THROTTLE))


def parse_client_message(text: str) -> ClientMessage:
    """Classify one client message. Never raises: bad input becomes :class:`Ignored`."""
    if not text.strip():
        return Ignored("empty message")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return Ignored("invalid JSON")
    if not isinstance(message, dict):
        return Ignored("not a JSON object")
    if "auth" in message:
        auth = message["auth"]
        if not isinstance(auth, str) or auth.count(":") != 1:
            return Ignored("auth must be a string 'user:session'")
        user, session = auth.split(":")
        return Auth(user, session)
    if "throttle" in message:
        return _parse_throttle(message["throttle"])
    if "subscribe" in message:
        selection = message["subscribe"]
        if not isinstance(selection, dict):
            return Ignored("subscribe must be an object; previous selection kept")
        try:
            return Subscribe(parse_subscription(selection))
        except ValueError as error:
            return Ignored(f"invalid subscribe, previous selection kept: {error}")
    return Ignored("no known key")
