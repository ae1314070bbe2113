"""G-code for the serial benchmark."""

from __future__ import annotations

from collections.abc import Iterator


def moves() -> Iterator[str]:
    """Endless print-like moves of 30–32 bytes (as marlin-serial.md §12's first row)."""
    i = 0
    while True:
        yield f"G1 X{100 + i % 97 * 0.131:.3f} Y{146.12 - i % 89 * 0.07:.2f} E{i * 0.0317:.5f}"
        i += 1
