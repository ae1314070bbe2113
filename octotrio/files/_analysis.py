"""G-code analysis: print area, filament use and an estimated print time, without I/O.

Feed the file's bytes in chunks of any size with :meth:`GcodeAnalyzer.feed`, then read
:meth:`GcodeAnalyzer.result`: the ``result`` of OctoPrint's ``MetadataAnalysisFinished`` event
and the ``gcodeAnalysis`` of a file listing (octoprint-push.md §9.5). Memory stays bounded whatever
the input: the only buffer is the current line, cut at :data:`MAX_LINE_BYTES`.

The estimate is the sum of move lengths over their feed rates (plus dwells): no acceleration, so
it is low for short, jerky moves, as OctoPrint's own analysis is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

MAX_LINE_BYTES = 4096
"""Longer lines are analysed by their first 4 KiB: G-code lines are short, anything longer is
a comment or garbage, and a file without newlines must not grow the buffer."""

DEFAULT_FEEDRATE_MM_MIN = 3000.0
"""Feed rate assumed before the file sets one: Marlin's usual default (50 mm/s)."""

FILAMENT_DIAMETER_MM = 1.75
"""Diameter used for ``filament.<tool>.volume``: OctoPrint's default printer profile."""

_PARAMETER = re.compile(r"([A-Z])\s*([-+]?(?:\d+\.?\d*|\.\d+))")
_AXES = ("X", "Y", "Z")


@dataclass
class _Area:
    minimum: list[float] = field(default_factory=lambda: [math.inf] * 3)
    maximum: list[float] = field(default_factory=lambda: [-math.inf] * 3)

    def add(self, point: tuple[float, float, float]) -> None:
        for i, value in enumerate(point):
            self.minimum[i] = min(self.minimum[i], value)
            self.maximum[i] = max(self.maximum[i], value)

    def payload(self) -> tuple[dict[str, float], dict[str, float]]:
        """``(area, dimensions)`` as OctoPrint names them; zeros when nothing was added."""
        if self.minimum[0] == math.inf:
            low, high = [0.0] * 3, [0.0] * 3
        else:
            low, high = self.minimum, self.maximum
        area = {
            "maxX": high[0],
            "maxY": high[1],
            "maxZ": high[2],
            "minX": low[0],
            "minY": low[1],
            "minZ": low[2],
        }
        dimensions = {"depth": high[1] - low[1], "height": high[2] - low[2], "width": high[0] - low[0]}
        return area, dimensions


class GcodeAnalyzer:
    """Follows the moves of a G-code file (G0–G3, G4, G20/G21, G28, G90/G91, G92, M82/M83, T<n>)."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._position = [0.0, 0.0, 0.0]
        self._e = 0.0
        self._relative = False
        self._relative_e = False
        self._inches = False
        self._feedrate = DEFAULT_FEEDRATE_MM_MIN
        self._tool = 0
        self._extruded: dict[int, float] = {}
        """Per tool: the net length pushed so far (retractions count back)."""
        self._filament: dict[int, float] = {}
        """Per tool: the most ever pushed, which is the filament the print uses."""
        self._seconds = 0.0
        self._printing = _Area()
        self._travel = _Area()

    def feed(self, data: bytes) -> None:
        """Analyse the next chunk of the file."""
        lines = (bytes(self._pending) + data).split(b"\n")
        self._pending = bytearray(lines.pop()[:MAX_LINE_BYTES])
        for line in lines:
            self._line(line[:MAX_LINE_BYTES].decode("ascii", "replace"))

    def result(self) -> dict[str, Any]:
        """The analysis of everything fed so far (the last line need not end in a newline)."""
        if self._pending:
            self._line(self._pending.decode("ascii", "replace"))
            self._pending.clear()
        printing_area, dimensions = self._printing.payload()
        travel_area, travel_dimensions = self._travel.payload()
        cross_section = math.pi * (FILAMENT_DIAMETER_MM / 2) ** 2
        return {
            "printingArea": printing_area,
            "dimensions": dimensions,
            "travelArea": travel_area,
            "travelDimensions": travel_dimensions,
            "estimatedPrintTime": self._seconds,
            "filament": {
                f"tool{tool}": {"length": length, "volume": length * cross_section / 1000}
                for tool, length in sorted(self._filament.items())
            },
        }

    def _line(self, line: str) -> None:
        code = line.partition(";")[0].strip().upper()
        if not code:
            return
        if code.startswith("N"):
            code = code.lstrip("N0123456789 ")  # a line number, as in a host's log
        code = code.partition("*")[0]
        params = {letter: float(value) for letter, value in _PARAMETER.findall(code)}
        if code.startswith("T") and "T" in params:
            self._tool = int(params["T"])
            return
        command = code.split(None, 1)[0] if code else ""
        match command:
            case "G0" | "G1" | "G2" | "G3" | "G00" | "G01" | "G02" | "G03":
                self._move(params)
            case "G4" | "G04":
                self._seconds += params.get("P", 0.0) / 1000 + params.get("S", 0.0)
            case "G20":
                self._inches = True
            case "G21":
                self._inches = False
            case "G28":
                named = [i for i, axis in enumerate(_AXES) if axis in params]
                for i in named or range(3):
                    self._position[i] = 0.0
            case "G90":
                self._relative = self._relative_e = False
            case "G91":
                self._relative = self._relative_e = True
            case "G92":
                for i, axis in enumerate(_AXES):
                    if axis in params:
                        self._position[i] = self._scaled(params[axis])
                if "E" in params:
                    self._e = self._scaled(params["E"])
            case "M82":
                self._relative_e = False
            case "M83":
                self._relative_e = True

    def _scaled(self, value: float) -> float:
        return value * 25.4 if self._inches else value

    def _move(self, params: dict[str, float]) -> None:
        if "F" in params and params["F"] > 0:
            self._feedrate = self._scaled(params["F"])
        start = tuple(self._position)
        for i, axis in enumerate(_AXES):
            if axis in params:
                value = self._scaled(params[axis])
                self._position[i] = self._position[i] + value if self._relative else value
        end = (self._position[0], self._position[1], self._position[2])
        extrusion = 0.0
        if "E" in params:
            value = self._scaled(params["E"])
            extrusion = value if self._relative_e else value - self._e
            self._e = self._e + value if self._relative_e else value
        distance = math.dist(start, end) or abs(extrusion)
        self._seconds += distance / (self._feedrate / 60)
        self._travel.add(end)
        if extrusion > 0 and distance > 0:
            self._printing.add((start[0], start[1], start[2]))
            self._printing.add(end)
        if "E" in params:
            extruded = self._extruded.get(self._tool, 0.0) + extrusion
            self._extruded[self._tool] = extruded
            self._filament[self._tool] = max(self._filament.get(self._tool, 0.0), extruded)
