"""Heater model of the virtual printer (marlin-serial.md §11.2), solved in closed form.

OctoPrint's virtual printer steps its heaters every ~10 ms: towards a target at 10 °C/s while
more than 0.5 °C away, then moving by ``remaining × dt`` (an exponential approach); with target
0 it cools towards ambient at 2 °C/s and stops within 0.5 °C of it. Solving those rules exactly
gives the same curve whatever the step size, so the result does not depend on how often the
adapter calls ``advance``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HEATING_RATE = 10.0
"""°C per second towards a target (virtual printer, §11.2)."""
COOLING_RATE = 2.0
"""°C per second towards ambient with the heater off (virtual printer, §11.2)."""
SETTLE_BAND = 0.5
"""Within this many °C of the goal, heating turns asymptotic and cooling stops (§11.2)."""


@dataclass(slots=True)
class Heater:
    """One heater: its current temperature and its target (0 = off)."""

    actual: float
    target: float = 0.0

    def advance(self, dt: float, ambient: float) -> None:
        """Let ``dt`` simulated seconds pass."""
        if self.target > 0:
            goal, rate, settles = self.target, HEATING_RATE, True
        else:
            goal, rate, settles = ambient, COOLING_RATE, False
        gap = goal - self.actual
        distance = abs(gap)
        if distance > SETTLE_BAND:
            linear_time = (distance - SETTLE_BAND) / rate
            if dt < linear_time:
                self.actual += math.copysign(rate * dt, gap)
                return
            dt -= linear_time
            distance = SETTLE_BAND
        if settles:
            distance *= math.exp(-dt)
        self.actual = goal - math.copysign(distance, gap)
