"""``{"command": ..., ...}`` request bodies, checked as OctoPrint checks them."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from ._common import ApiError, Call


def command_body(call: Call, commands: Mapping[str, Collection[str]]) -> tuple[str, dict[str, Any]]:
    """The command and body of a JSON command request; ``commands`` maps each valid command to
    its mandatory parameters. Errors are OctoPrint's 400s: ``Expected content-type JSON``,
    ``command is missing``, ``command is invalid``, ``<parameter> is missing``."""
    content_type = call.request.header("content-type") or ""
    if "application/json" not in content_type.lower():
        raise ApiError(400, "Expected content-type JSON")
    body = call.json_body()
    command = body.get("command")
    if command is None:
        raise ApiError(400, "command is missing")
    if not isinstance(command, str) or command not in commands:
        raise ApiError(400, "command is invalid")
    for parameter in commands[command]:
        if parameter not in body:
            raise ApiError(400, f"{parameter} is missing")
    return command, body


def number(value: object, what: str) -> float:
    """``value`` as a finite number (not a bool), or 400 ``Invalid <what>``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"Invalid {what}: {value!r}")
    return float(value)


TRUE_VALUES = frozenset({"true", "yes", "y", "1", "on"})
"""Form and query values that mean true, as OctoPrint reads them."""


def is_true(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_VALUES
