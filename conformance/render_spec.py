"""Render spec/README.md from spec/requirements.toml: ``python -m conformance.render_spec``.

``--check`` exits 1 when the checked-in README differs from what would be rendered.
"""

from __future__ import annotations

import sys
from collections import Counter

from ._spec import SCHEMA_DIR, SPEC_DIR, load_requirements

_INTRO = """\
# The push API specification

The normative specification of OctoPrint's push API (the SockJS endpoint at `/sockjs`) as octotrio
implements it and as the conformance suite (`octotrio conform URL`, package `conformance/`) checks it on
any server. **Generated** from [requirements.toml](requirements.toml) by `python -m conformance.render_spec`:
edit the TOML, not this file.

* Levels: **MUST** and **SHOULD** as in RFC 2119; **MAY** marks an explicit *absence* of a guarantee that
  clients must not rely on. A run of the suite fails (exit status 1) when a MUST fails.
* Ids are stable (`AREA-TOPIC-n`) and never reused.
* "OctoPrint 1.11.8" says how the real OctoPrint behaves; quirk numbers `Qn` refer to
  `shared/reference/octoprint-push.md` §10. The per-behaviour comparison tables of octotrio against OctoPrint
  live in [deviations.md](deviations.md) and [push-behaviour.md](push-behaviour.md). What the suite reports on
  a real OctoPrint 1.11.8 is pinned, requirement by requirement, in
  [octoprint-1.11.8-expected.toml](octoprint-1.11.8-expected.toml); `tests/test_conformance_octoprint.py` runs
  the suite against one (installed by `scripts/install-octoprint.sh`) and fails on any difference.
* Message shapes: one JSON Schema (draft 2020-12) per message type and payload object in
  [schemas/](schemas/); `message.json` accepts any server message, `client-message.json` any client message.
  Every captured OctoPrint 1.11.8 message in `tests/fixtures/octoprint-1.11.8/` validates against them.
"""

_AREAS = {
    "transport": "SockJS transport rules the push API relies on",
    "messages": "Messages and payloads",
    "auth": "Authentication",
    "permissions": "Permissions",
    "rate": "Rate limiting",
    "accumulation": "Accumulation between pushes",
    "subscribe": "Subscriptions",
    "ordering": "Ordering guarantees (and their absence)",
    "bad-input": "Bad input",
}


def _cell(text: str) -> str:
    """``text`` made safe for a Markdown table cell."""
    return text.replace("|", "\\|")


def render() -> str:
    """The README text for the current requirements and schemas."""
    requirements = load_requirements()
    levels = Counter(requirement.level for requirement in requirements)
    lines = [_INTRO]
    lines.append(
        f"{len(requirements)} requirements: {levels['MUST']} MUST, {levels['SHOULD']} SHOULD, "
        f"{levels['MAY']} MAY; OctoPrint 1.11.8 deviates from "
        f"{sum(r.octoprint.startswith('deviates') for r in requirements)} of them.\n"
    )
    for area, heading in _AREAS.items():
        lines.append(f"## {heading}\n")
        lines.append("| id | level | requirement | OctoPrint 1.11.8 | how it is checked |")
        lines.append("| --- | --- | --- | --- | --- |")
        for requirement in requirements:
            if requirement.area != area:
                continue
            text = _cell(f"**{requirement.title}.** {requirement.text} ({requirement.ref})")
            lines.append(
                f"| `{requirement.id}` | {requirement.level} | {text} | "
                f"{_cell(requirement.octoprint)} | {_cell(requirement.check)} |"
            )
        lines.append("")
    lines.append("## Schemas\n")
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        lines.append(f"* [`{path.name}`](schemas/{path.name})")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    readme = SPEC_DIR / "README.md"
    text = render()
    if "--check" in argv:
        if readme.read_text() != text:
            print("spec/README.md is out of date: run python -m conformance.render_spec", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
