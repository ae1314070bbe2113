"""The specification as data: requirements from spec/requirements.toml, schemas from spec/schemas/.

The conformance suite reads ``spec/`` from the source tree (the package is installed editable);
it never imports octotrio's server code.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
import referencing
import referencing.jsonschema

SPEC_DIR = Path(__file__).resolve().parent.parent / "spec"
SCHEMA_DIR = SPEC_DIR / "schemas"

Level = Literal["MUST", "SHOULD", "MAY"]

MESSAGE_TYPES = (
    "connected",
    "reauthRequired",
    "history",
    "current",
    "event",
    "timelapse",
    "slicingProgress",
    "renderProgress",
    "plugin",
)
"""Every server → client message type (PUSH-MSG-1)."""


@dataclass(frozen=True)
class Requirement:
    """One numbered rule of the specification."""

    id: str
    level: Level
    area: str
    title: str
    text: str
    octoprint: str
    ref: str
    check: str

    @property
    def checkable(self) -> bool:
        """False for rules the suite cannot check over the wire (their ``check`` says why)."""
        return not self.check.startswith("not checkable")


@cache
def load_requirements() -> tuple[Requirement, ...]:
    """Every requirement, in the order of spec/requirements.toml."""
    with (SPEC_DIR / "requirements.toml").open("rb") as file:
        data = tomllib.load(file)
    return tuple(Requirement(**entry) for entry in data["requirement"])


@cache
def _registry() -> referencing.Registry[Any]:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], referencing.jsonschema.DRAFT202012.create_resource(contents)))
    return referencing.Registry().with_resources(resources)


@cache
def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for ``spec/schemas/<name>.json``, resolving its references locally."""
    contents = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return jsonschema.Draft202012Validator(contents, registry=_registry())


def message_errors(message: object) -> list[str]:
    """What is wrong with a server → client message (PUSH-MSG-1, PUSH-MSG-2); empty when valid."""
    if not isinstance(message, dict) or len(message) != 1:
        return ["not an object with exactly one key (PUSH-MSG-1)"]
    (message_type,) = message
    if message_type not in MESSAGE_TYPES:
        return [f"unknown message type {message_type!r} (PUSH-MSG-1)"]
    validator = schema_validator(message_type)
    return [
        f"{message_type}: {'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(message), key=lambda error: list(error.absolute_path))
    ]
