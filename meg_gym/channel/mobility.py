"""2-D UE mobility inside a rectangular area: static, random waypoint, constant-velocity walk.

The state is a handful of floats, so a model is cheap to deep-copy; all randomness comes
from the ``np.random.Generator`` passed in.

* ``random_waypoint``: the UE walks in a straight line at ``speed_mps`` to a waypoint drawn
  uniformly in the area, then draws the next one (no pause time). Johnson and Maltz,
  "Dynamic source routing in ad hoc wireless networks", Mobile Computing, 1996.
* ``constant_velocity``: the UE walks at ``speed_mps`` along a fixed heading and is
  reflected at the area's borders (a billiard walk).
* ``static``: the UE does not move.

:class:`MobilityBatch` walks many UEs of one kind at once, as arrays (the batched channel's
mobility): the same processes, the positions of all UEs updated in one numpy pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["MOBILITIES", "ConstantVelocity", "Mobility", "MobilityBatch", "RandomWaypoint", "Static"]

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


def _reflect(pos: Any, vel: Any, lo: float, hi: float) -> tuple[Any, Any]:
    """Fold ``pos`` back into [lo, hi] by mirror reflections; flip ``vel`` on an odd count.
    Floats, or arrays (one entry per UE) folded elementwise."""
    width = hi - lo
    if isinstance(pos, np.ndarray):
        u = np.mod(pos - lo, 2.0 * width)
        odd = u > width
        inside = (lo <= pos) & (pos <= hi)
        folded = np.where(odd, lo + 2.0 * width - u, lo + u)
        return np.where(inside, pos, folded), np.where(~inside & odd, -vel, vel)
    if lo <= pos <= hi:
        return pos, vel
    u = (pos - lo) % (2.0 * width)
    if u > width:  # an odd number of reflections: mirrored position, reversed velocity
        return lo + 2.0 * width - u, -vel
    return lo + u, vel

MOBILITIES: dict[str, type[Mobility]] = {
    "constant_velocity": ConstantVelocity,
    "random_waypoint": RandomWaypoint,
    "static": Static,
}


class MobilityBatch:
    """``M`` UEs walking in one area, each as :data:`MOBILITIES` ``[kind]`` walks one UE.

    ``start_m``: (M, 2) start positions; ``heading_deg``: constant velocity's heading (None: one
    drawn uniformly per UE at ``reset``). ``x`` / ``y`` hold the positions (arrays of M).
    ``advance`` returns how far each UE moved. Random waypoint draws a new waypoint, two
    uniforms, for each UE that reaches its own, in UE order.
    """

    def __init__(self, kind: str, start_m: np.ndarray, speed_mps: float, area_m: tuple[float, float, float, float],
                 heading_deg: float | None = None) -> None:
        if kind not in MOBILITIES:
            raise ValueError(f"'mobility' must be one of {sorted(MOBILITIES)} (got {kind!r})")
        self.kind = kind
        self.start_m = np.array(start_m, dtype=np.float64).reshape(-1, 2)
        self.speed_mps = float(speed_mps)
        self.area_m = tuple(float(a) for a in area_m)
        self.heading_deg = heading_deg
        self.x, self.y = self.start_m[:, 0].copy(), self.start_m[:, 1].copy()

    def reset(self, rng: np.random.Generator) -> None:
        """Back to the start positions (and, per kind, new waypoints or headings)."""
        m = len(self.start_m)
        self.x, self.y = self.start_m[:, 0].copy(), self.start_m[:, 1].copy()
        if self.kind == "random_waypoint":
            self.wx, self.wy = np.empty(m), np.empty(m)
            self._new_waypoints(np.arange(m), rng)
        elif self.kind == "constant_velocity":
            heading = np.full(m, float(self.heading_deg)) if self.heading_deg is not None else 360.0 * rng.random(m)
            rad = np.radians(heading)
            self.vx, self.vy = self.speed_mps * np.cos(rad), self.speed_mps * np.sin(rad)

    def _new_waypoints(self, rows: np.ndarray, rng: np.random.Generator) -> None:
        x0, y0, x1, y1 = self.area_m
        u = rng.random((len(rows), 2))
        self.wx[rows], self.wy[rows] = x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]

    def advance(self, dt_s: float, rng: np.random.Generator) -> np.ndarray:
        """Move every UE on by ``dt_s`` seconds; returns the distance each moved (start to end)."""
        x0, y0 = self.x.copy(), self.y.copy()
        if self.kind == "random_waypoint" and self.speed_mps * dt_s > 0.0:
            self._walk(self.speed_mps * dt_s, rng)
        elif self.kind == "constant_velocity":
            a = self.area_m
            self.x, self.vx = _reflect(self.x + self.vx * dt_s, self.vx, a[0], a[2])
            self.y, self.vy = _reflect(self.y + self.vy * dt_s, self.vy, a[1], a[3])
        return np.hypot(self.x - x0, self.y - y0)

    def _walk(self, length_m: float, rng: np.random.Generator) -> None:
        """RandomWaypoint.advance for all UEs: legs until each has walked ``length_m``."""
        remaining = np.full(len(self.x), length_m)
        rows = np.arange(len(self.x))  # the UEs still walking
        for _ in range(_MAX_LEGS_PER_CALL):
            dx, dy = self.wx[rows] - self.x[rows], self.wy[rows] - self.y[rows]
            dist = np.hypot(dx, dy)
            rem = remaining[rows]
            short = dist > rem  # stops on the way to its waypoint
            r = rows[short]
            self.x[r] += dx[short] / dist[short] * rem[short]
            self.y[r] += dy[short] / dist[short] * rem[short]
            arrive = rows[~short]
            if not len(arrive):
                return
            self.x[arrive], self.y[arrive] = self.wx[arrive], self.wy[arrive]
            remaining[arrive] -= dist[~short]
            self._new_waypoints(arrive, rng)
            rows = arrive[remaining[arrive] > 0.0]
            if not len(rows):
                return
