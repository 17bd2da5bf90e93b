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
mobility): the same processes, the positions of all UEs updated in one pass (compiled for the random
waypoint's first leg; the few UEs that reach a waypoint on the way walk their next legs as floats).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

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


def _reflect(pos: Any, vel: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
    """Fold ``pos`` back into [lo, hi] by mirror reflections; flip ``vel`` on an odd count.
    Floats, or arrays (one entry per UE; ``lo`` / ``hi`` may be arrays that broadcast against
    them) folded elementwise."""
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
    drawn uniformly per UE at ``reset``). ``pos`` holds the positions as (2, M), x then y (``x`` /
    ``y`` are its rows); ``advance`` leaves a new array there and returns how far each UE moved.
    Random waypoint draws a new waypoint, two uniforms, for each UE that reaches its own, in UE order.
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
        self._lo = np.array([[self.area_m[0]], [self.area_m[1]]])  # (2, 1): x, y
        self._hi = np.array([[self.area_m[2]], [self.area_m[3]]])
        self.pos = self.start_m.T.copy()

    @property
    def x(self) -> np.ndarray:
        return self.pos[0]

    @property
    def y(self) -> np.ndarray:
        return self.pos[1]

    def reset(self, rng: np.random.Generator) -> None:
        """Back to the start positions (and, per kind, new waypoints or headings)."""
        m = len(self.start_m)
        self.pos = self.start_m.T.copy()
        if self.kind == "random_waypoint":
            self.wp = np.empty((2, m))  # the waypoints, as pos
            self._new_waypoints(list(range(m)), rng)
        elif self.kind == "constant_velocity":
            heading = np.full(m, float(self.heading_deg)) if self.heading_deg is not None else 360.0 * rng.random(m)
            rad = np.radians(heading)
            self.vel = self.speed_mps * np.stack([np.cos(rad), np.sin(rad)])  # as pos

    def _new_waypoints(self, rows: list[int], rng: np.random.Generator) -> None:
        """A new waypoint for each UE in ``rows``, in that order, as RandomWaypoint._new_waypoint draws one."""
        x0, y0, x1, y1 = self.area_m
        for k, (ux, uy) in zip(rows, rng.random((len(rows), 2)).tolist()):
            self.wp[0, k], self.wp[1, k] = x0 + (x1 - x0) * ux, y0 + (y1 - y0) * uy

    def advance(self, dt_s: Any, rng: np.random.Generator) -> np.ndarray:
        """Move every UE on by ``dt_s`` seconds (one time, or one per UE); returns the distance
        each moved (start to end)."""
        pos0 = self.pos  # the walks below leave a new array in self.pos
        if self.kind == "random_waypoint" and np.any(self.speed_mps * np.asarray(dt_s) > 0.0):
            self._walk(np.ascontiguousarray(np.broadcast_to(self.speed_mps * np.asarray(dt_s, dtype=np.float64),
                                                            (pos0.shape[1],))), rng)
        elif self.kind == "constant_velocity":
            self.pos, self.vel = _reflect(self.pos + self.vel * dt_s, self.vel, self._lo, self._hi)
        else:
            return np.zeros(pos0.shape[1])
        d = self.pos - pos0
        return np.hypot(d[0], d[1])

    def _walk(self, length_m: np.ndarray, rng: np.random.Generator) -> None:
        """RandomWaypoint.advance for all UEs: legs until each has walked its ``length_m``.

        The first leg is one compiled pass over all UEs: most stop on the way to their waypoints.
        The few that reach theirs go on leg by leg, as floats: after each leg the UEs that reached
        their waypoints draw new ones (in UE order), and those with length left walk one more leg."""
        pos, dist = np.empty_like(self.pos), np.empty(self.pos.shape[1])
        reached_any = _first_leg(self.pos, self.wp, length_m, pos, dist)
        self.pos = pos
        if not reached_any:
            return
        short = dist > length_m
        x, y, wx, wy = pos[0], pos[1], self.wp[0], self.wp[1]
        reached = {k: length_m[k] - dist[k] for k in np.flatnonzero(~short).tolist()}  # UE: length left
        for leg in range(1, _MAX_LEGS_PER_CALL + 1):  # ``reached``: the UEs at their waypoints after this leg
            for k in reached:
                x[k], y[k] = wx[k], wy[k]
            self._new_waypoints(list(reached), rng)
            if leg == _MAX_LEGS_PER_CALL:
                return
            walking, reached = reached, {}
            for k, left in walking.items():
                if left <= 0.0:
                    continue
                dx, dy = wx[k] - x[k], wy[k] - y[k]
                dist_k = np.hypot(dx, dy)  # C hypot, as the first leg (Python's math.hypot may differ in the last bit)
                if dist_k > left:
                    x[k] += dx / dist_k * left
                    y[k] += dy / dist_k * left
                else:
                    reached[k] = left - dist_k
            if not reached:
                return


@njit(cache=True)
def _first_leg(pos, wp, length, pos_out, dist_out):
    """Every UE ``k`` at ``pos`` (2, UEs) walks ``length[k]`` towards its waypoint ``wp``: into ``pos_out``
    where it stops short, and its distance to the waypoint into ``dist_out``; True if any UE
    reaches its waypoint (its ``pos_out`` entry is then left for the caller, who walks its next
    legs). Compiled ``math.hypot`` is C's ``hypot``, as ``np.hypot``."""
    reached = False
    for k in range(pos.shape[1]):
        dx, dy = wp[0, k] - pos[0, k], wp[1, k] - pos[1, k]
        d = math.hypot(dx, dy)
        dist_out[k] = d
        if d > length[k]:
            pos_out[0, k] = dx / d * length[k] + pos[0, k]
            pos_out[1, k] = dy / d * length[k] + pos[1, k]
        else:
            reached = True
    return reached
