"""spec/: the requirement list is well formed, the README is current, and the JSON Schemas accept
every real OctoPrint 1.11.8 message captured in tests/fixtures while rejecting broken ones."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance import render_spec
from conformance._spec import (
    MESSAGE_TYPES,
    SCHEMA_DIR,
    load_requirements,
    message_errors,
    schema_validator,
)

FIXTURES = Path(__file__).parent / "fixtures" / "octoprint-1.11.8"


def _server_fixtures() -> list[Path]:
    return sorted(path for path in FIXTURES.glob("*.json") if not path.name.startswith("client-"))


def test_requirement_ids_are_unique_and_well_formed() -> None:
    requirements = load_requirements()
    ids = [requirement.id for requirement in requirements]
    assert len(ids) == len(set(ids))
    for requirement in requirements:
        assert re.fullmatch(r"[A-Z]+(-[A-Z]+)+-\d+", requirement.id), requirement.id
        assert requirement.level in {"MUST", "SHOULD", "MAY"}
        assert requirement.octoprint.startswith(("conforms", "deviates")), requirement.id
        assert requirement.text
        assert requirement.check
        assert requirement.ref


def test_readme_is_rendered_from_the_requirements() -> None:
    assert render_spec.main(["--check"]) == 0, "run python -m conformance.render_spec"


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda path: path.name)
def test_every_schema_is_valid_draft_2020_12(path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_every_message_type_has_a_schema() -> None:
    assert {f"{name}.json" for name in MESSAGE_TYPES} <= {path.name for path in SCHEMA_DIR.glob("*.json")}


@pytest.mark.parametrize("path", _server_fixtures(), ids=lambda path: path.name)
def test_real_octoprint_messages_validate(path: Path) -> None:
    message = json.loads(path.read_text())
    assert message_errors(message) == []
    assert not list(schema_validator("message").iter_errors(message))


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("client-*.json")), ids=lambda path: path.name)
def test_real_client_messages_validate(path: Path) -> None:
    assert not list(schema_validator("client-message").iter_errors(json.loads(path.read_text())))


def test_framed_sequence_elements_validate() -> None:
    frames = [
        line.split(None, 2)[2]
        for line in (FIXTURES / "sockjs-framed-sequence.txt").read_text().splitlines()
        if line.startswith("< ") and len(line.split(None, 2)) == 3 and line.split(None, 2)[2].startswith("a[")
    ]
    assert len(frames) >= 3
    for frame in frames:
        for element in json.loads(frame[1:]):
            assert message_errors(element) == []


def _current() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "current-printing.json").read_text())
    return loaded


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m["current"].pop("state"), "'state' is a required property"),
        (lambda m: m["current"]["state"]["flags"].pop("paused"), "'paused' is a required property"),
        (lambda m: m["current"]["progress"].update(completion="12%"), "is not of type"),
        (lambda m: m["current"]["temps"][0].update(tool0={"actual": "hot"}), "is not of type"),
        (lambda m: m["current"].update(logs=[1]), "is not of type"),
        (lambda m: m.update(extra=1), "exactly one key"),
    ],
)
def test_broken_messages_are_rejected(mutate: Any, expected: str) -> None:
    message = copy.deepcopy(_current())
    mutate(message)
    assert any(expected in error for error in message_errors(message))


def test_event_payloads_are_checked_per_type() -> None:
    good = {"event": {"type": "ZChange", "payload": {"new": 0.2, "old": None}}}
    assert message_errors(good) == []
    bad = {"event": {"type": "ZChange", "payload": {"new": "high", "old": None}}}
    assert message_errors(bad) != []
    unknown = {"event": {"type": "plugin_x_y", "payload": {"anything": [1]}}}
    assert message_errors(unknown) == []


def test_octoprint_expectation_agrees_with_the_spec() -> None:
    """Every failure expected of OctoPrint is a deviation the spec states, with the same quirk number."""
    path = Path(__file__).resolve().parent.parent / "spec" / "octoprint-1.11.8-expected.toml"
    with path.open("rb") as file:
        expected = tomllib.load(file)
    by_id = {r.id: r for r in load_requirements()}
    for rid, entry in expected.items():
        assert entry["outcome"] in ("fail", "skip"), rid
        if entry["outcome"] == "fail":
            assert by_id[rid].octoprint.startswith("deviates"), rid
            assert entry["quirk"] in by_id[rid].octoprint, rid
