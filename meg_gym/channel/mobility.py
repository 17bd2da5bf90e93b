"""2-D UE mobility inside a rectangular area: static, random waypoint, constant-velocity walk.

The state is a handful of floats, so a model is cheap to deep-copy; all randomness comes
from the ``np.random.Generator`` passed in.

* ``random_waypoint``: the UE walks in a straight line at ``speed_mps`` to a waypoint drawn
  uniformly in the area, then draws the next one (no pause time). Johnson and Maltz,
  "Dynamic source routing in ad hoc wireless networks", Mobile Computing, 1996.
* ``constant_velocity``: the UE walks at ``speed_mps`` along a fixed heading and is
  reflected at the area's borders (a billiard walk).
* ``static``: the UE does not move.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MOBILITIES", "ConstantVelocity", "Mobility", "RandomWaypoint", "Static"]

# A huge ``dt_s`` would need many waypoints; after this many legs in one call the walk stops
# early (the position is then already a draw from the walk's stationary distribution).
_MAX_LEGS_PER_CALL = 64


class Mobility:
    """A UE position (metres) that moves with time. ``area_m`` = (x_min, y_min, x_max, y_max)."""

    def __init__(self, start_m: tuple[float, float], speed_mps: float, area_m: tuple[float, float, float, float],
                 heading_deg: float | None = None) -> None:
        self.start_m = (float(start_m[0]), float(start_m[1]))
        self.speed_mps = float(speed_mps)
        self.area_m = tuple(float(a) for a in area_m)
        self.heading_deg = heading_deg
        self.x, self.y = self.start_m

    @property
    def position_m(self) -> tuple[float, float]:
        return (self.x, self.y)

    def reset(self, rng: np.random.Generator) -> None:
        """Back to the start position."""
        self.x, self.y = self.start_m

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        """Move on by ``dt_s`` seconds."""


class Static(Mobility):
    """The UE stays where it starts."""


class RandomWaypoint(Mobility):
    """Random waypoint walk, no pause (Johnson and Maltz 1996)."""

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self._new_waypoint(rng)

    def _new_waypoint(self, rng: np.random.Generator) -> None:
        x0, y0, x1, y1 = self.area_m
        u = rng.random(2)
        self.wx, self.wy = x0 + (x1 - x0) * float(u[0]), y0 + (y1 - y0) * float(u[1])

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        remaining = self.speed_mps * dt_s
        for _ in range(_MAX_LEGS_PER_CALL):
            if remaining <= 0.0:
                return
            dx, dy = self.wx - self.x, self.wy - self.y
            dist = math.hypot(dx, dy)
            if dist > remaining:
                self.x += dx / dist * remaining
                self.y += dy / dist * remaining
                return
            self.x, self.y = self.wx, self.wy
            remaining -= dist
            self._new_waypoint(rng)


class ConstantVelocity(Mobility):
    """Straight walk at a fixed heading (drawn uniformly at reset when not given), reflected at the borders."""

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        heading = self.heading_deg if self.heading_deg is not None else 360.0 * float(rng.random())
        rad = math.radians(heading)
        self.vx, self.vy = self.speed_mps * math.cos(rad), self.speed_mps * math.sin(rad)

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        x0, y0, x1, y1 = self.area_m
        self.x, self.vx = _reflect(self.x + self.vx * dt_s, self.vx, x0, x1)
        self.y, self.vy = _reflect(self.y + self.vy * dt_s, self.vy, y0, y1)


def _reflect(pos: float, vel: float, lo: float, hi: float) -> tuple[float, float]:
    """Fold ``pos`` back into [lo, hi] by mirror reflections; flip ``vel`` on an odd count."""
    if lo <= pos <= hi:
        return pos, vel
    width = hi - lo
    u = (pos - lo) % (2.0 * width)
    if u > width:  # an odd number of reflections: mirrored position, reversed velocity
        return lo + 2.0 * width - u, -vel
    return lo + u, vel

MOBILITIES: dict[str, type[Mobility]] = {
    "constant_velocity": ConstantVelocity,
    "random_waypoint": RandomWaypoint,
    "static": Static,
}
