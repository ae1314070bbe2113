"""The firmware's side of the line format: checksums, line numbers, command words and parameters.

Written independently of the host's encoder and parser in ``octotrio.printer`` on purpose
(architecture, independence rules): if host and simulator shared this code, a bug in it would
cancel out and no test would see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LINE_NUMBER = re.compile(rb"N(\d+)\s*")
_COMMAND_WORD = re.compile(r"([GMTgmt])(\d+)")
_PARAMETER = re.compile(r"([A-Za-z])\s*([-+]?(?:\d+\.?\d*|\.\d+))?")


def xor_checksum(data: bytes) -> int:
    """XOR of every byte: the checksum of ``N<n> <command>`` (marlin-serial.md §1)."""
    result = 0
    for byte in data:
        result ^= byte
    return result


@dataclass(frozen=True, slots=True)
class ReceivedLine:
    """One received line as the line checker sees it (marlin-serial.md §11.4)."""

    number: int | None
    """The ``N<n>`` prefix, or None for a plain line."""
    checksum_ok: bool | None
    """Whether the ``*<checksum>`` suffix matched, or None when the line has none."""
    command: str
    """The command without line number, checksum and ``;`` comment; empty for a blank line."""


def split_line(raw: bytes) -> ReceivedLine:
    """Take a line (without its terminator) apart into line number, checksum verdict and command.

    The checksum covers every byte before the last ``*``; a suffix that is not a decimal number
    counts as a mismatch.
    """
    raw = raw.strip()
    checksum_ok: bool | None = None
    star = raw.rfind(b"*")
    if star >= 0:
        given = raw[star + 1 :].strip()
        raw = raw[:star]
        checksum_ok = given.isdigit() and int(given) == xor_checksum(raw)
    number: int | None = None
    match = _LINE_NUMBER.match(raw)
    if match is not None:
        number = int(match.group(1))
        raw = raw[match.end() :]
    text = raw.decode("ascii", errors="replace").split(";", 1)[0].strip()
    return ReceivedLine(number=number, checksum_ok=checksum_ok, command=text)


@dataclass(frozen=True, slots=True)
class Command:
    """A G-code command: its word (``G1``, ``M105``, ``T0``) and what follows it."""

    code: str
    """The command word upper-cased with leading zeros dropped (``g01`` → ``G1``)."""
    text: str
    """The whole command as received, for ``Unknown command`` echoes."""
    argument_text: str
    """Everything after the command word, e.g. the message of ``M117``."""
    params: dict[str, float | None] = field(default_factory=dict)
    """Parameter letters (upper-case) to their value; None for a bare letter (``G28 X``)."""

    def param(self, letter: str) -> float | None:
        return self.params.get(letter)


def parse_command(text: str) -> Command:
    """Parse a non-empty command text; a first word that is no G/M/T code becomes the code as-is."""
    match = _COMMAND_WORD.match(text)
    if match is None:
        return Command(code=text.split(maxsplit=1)[0].upper(), text=text, argument_text="")
    rest = text[match.end() :]
    params: dict[str, float | None] = {}
    for letter, value in _PARAMETER.findall(rest):
        params.setdefault(letter.upper(), float(value) if value else None)
    return Command(
        code=f"{match.group(1).upper()}{int(match.group(2))}",
        text=text,
        argument_text=rest.strip(),
        params=params,
    )
