"""Action codecs: one decision space, three Gymnasium encodings.

A decision is a *placement* (a protocol with the ES or ES set that serves it, from
``env.unwrapped.decisions``) and a *bandwidth share* (from the scenario's ``bandwidth_shares``).
Every action of every codec decodes to a valid decision, so any policy can act:

* ``multidiscrete`` (default; PPO, A2C): ``MultiDiscrete([n_placements, n_shares])``;
* ``discrete`` (DQN): ``Discrete(n_placements * n_shares)``, placement-major;
* ``box`` (SAC, TD3): ``Box(-1, 1, (2,))``, each coordinate split into equal bins.

A malformed action (wrong shape, out of range, NaN) raises :class:`InvalidAction` naming the
allowed range before anything changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from meg_gym.errors import show

__all__ = ["CODECS", "ActionCodec", "InvalidAction", "make_codec"]


class InvalidAction(ValueError):
    """An action outside the action space."""


class ActionCodec:
    """Maps actions to (placement index, share index) and back."""

    name = ""

    def __init__(self, n_placements: int, n_shares: int) -> None:
        self.n_placements = n_placements
        self.n_shares = n_shares
        self.space = self._space()

    def _space(self) -> spaces.Space:
        raise NotImplementedError

    def decode(self, action: Any) -> tuple[int, int]:
        raise NotImplementedError

    def encode(self, placement: int, share: int) -> Any:
        raise NotImplementedError

    def mask(self, placement_ok: np.ndarray) -> np.ndarray:
        """The action mask for sb3-contrib's MaskablePPO, given which placements are feasible."""
        raise NotImplementedError

    def decode_batch(self, actions: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Placement and share index arrays for a batch of ``n`` actions (a vector env's);
        a malformed batch raises :class:`InvalidAction` naming the expected shape and range."""
        raise NotImplementedError


def _show(value: Any) -> str:
    """A short repr for an error message (a huge or nested input is abbreviated, not printed whole)."""
    return show(value)


def _array(action: Any, expected: str, what: str = "action") -> np.ndarray:
    """``action`` as a numeric numpy array, or :class:`InvalidAction` naming what is expected: booleans,
    complex numbers, strings and other objects are not actions, even where numpy would convert them."""
    try:
        a = np.asarray(action)
    except (ValueError, TypeError):  # ragged or unconvertible
        raise InvalidAction(f"{what} must be {expected} (got {_show(action)})") from None
    if a.dtype.kind not in "iuf":
        raise InvalidAction(f"{what} must be {expected} (got {_show(action)} of dtype {a.dtype})")
    return a


def _integers(a: np.ndarray) -> bool:
    return a.dtype.kind in "iu" or (a.dtype.kind == "f" and bool(np.isfinite(a).all() and (a % 1 == 0).all()))


class MultiDiscreteCodec(ActionCodec):
    name = "multidiscrete"

    def _space(self) -> spaces.Space:
        return spaces.MultiDiscrete([self.n_placements, self.n_shares])

    def decode(self, action: Any) -> tuple[int, int]:
        expected = f"2 integers [placement, share] in MultiDiscrete([{self.n_placements}, {self.n_shares}])"
        a = _array(action, expected)
        if a.shape == (2,) and a.dtype.kind in "iu":  # the usual case: what the space samples
            p, s = a.tolist()
            if 0 <= p < self.n_placements and 0 <= s < self.n_shares:
                return p, s
        if a.shape != (2,) or not _integers(a):
            raise InvalidAction(f"action must be {expected} (got {_show(action)})")
        p, s = int(a[0]), int(a[1])
        if not (0 <= p < self.n_placements and 0 <= s < self.n_shares):
            raise InvalidAction(f"action [placement, share] must be in [0, {self.n_placements - 1}] x "
                                f"[0, {self.n_shares - 1}] (got [{p}, {s}])")
        return p, s

    def encode(self, placement: int, share: int) -> np.ndarray:
        return np.array([placement, share], dtype=np.int64)

    def decode_batch(self, actions: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        expected = f"an array of shape ({n}, 2) of integers in [0, {self.n_placements - 1}] x [0, {self.n_shares - 1}]"
        a = _array(actions, expected, "actions")
        if a.shape == (n, 2) and _integers(a):
            p, s = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
            if ((p >= 0) & (p < self.n_placements) & (s >= 0) & (s < self.n_shares)).all():
                return p, s
        raise InvalidAction(f"actions must be {expected} (got {_show(actions)})")

    def mask(self, placement_ok: np.ndarray) -> np.ndarray:
        return np.concatenate([placement_ok, np.ones(self.n_shares, dtype=bool)])


class DiscreteCodec(ActionCodec):
    name = "discrete"

    def _space(self) -> spaces.Space:
        return spaces.Discrete(self.n_placements * self.n_shares)

    def decode(self, action: Any) -> tuple[int, int]:
        n = self.n_placements * self.n_shares
        a = _array(action, f"one integer in [0, {n - 1}]")
        if a.size != 1 or not np.isfinite(a).all() or float(a.reshape(())) % 1 != 0:
            raise InvalidAction(f"action must be one integer in [0, {n - 1}] (got {_show(action)})")
        i = int(a.reshape(()))
        if not 0 <= i < n:
            raise InvalidAction(f"action must be in [0, {n - 1}] (got {i})")
        return divmod(i, self.n_shares)

    def encode(self, placement: int, share: int) -> int:
        return placement * self.n_shares + share

    def decode_batch(self, actions: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        total = self.n_placements * self.n_shares
        a = _array(actions, f"an array of shape ({n},) of integers in [0, {total - 1}]", "actions")
        if a.shape == (n,) and _integers(a):
            i = a.astype(np.int64)
            if ((i >= 0) & (i < total)).all():
                return i // self.n_shares, i % self.n_shares
        raise InvalidAction(f"actions must be an array of shape ({n},) of integers in [0, {total - 1}] "
                            f"(got {_show(actions)})")

    def mask(self, placement_ok: np.ndarray) -> np.ndarray:
        return np.repeat(placement_ok, self.n_shares)


class BoxCodec(ActionCodec):
    name = "box"

    def _space(self) -> spaces.Space:
        return spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    @staticmethod
    def _bin(x: Any, n: int) -> Any:
        """The bin of x in [-1, 1] among n equal bins (floats or integer arrays)."""
        b = (np.asarray(x) + 1.0) / 2.0 * n
        return np.minimum(n - 1, b.astype(np.int64)) if b.ndim else min(n - 1, int(b))

    def decode(self, action: Any) -> tuple[int, int]:
        a = _array(action, "2 finite numbers in [-1, 1]").astype(np.float64)
        if a.shape != (2,) or not np.isfinite(a).all() or (np.abs(a) > 1.0).any():
            raise InvalidAction(f"action must be 2 finite numbers in [-1, 1] (got {_show(action)})")
        return self._bin(float(a[0]), self.n_placements), self._bin(float(a[1]), self.n_shares)

    def decode_batch(self, actions: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        expected = f"an array of shape ({n}, 2) of finite numbers in [-1, 1]"
        a = _array(actions, expected, "actions")
        if a.shape != (n, 2) or not np.isfinite(a).all() or (np.abs(a) > 1.0).any():
            raise InvalidAction(f"actions must be {expected} (got {_show(actions)})")
        return self._bin(a[:, 0], self.n_placements), self._bin(a[:, 1], self.n_shares)

    def encode(self, placement: int, share: int) -> np.ndarray:
        centre = [(placement + 0.5) / self.n_placements * 2 - 1, (share + 0.5) / self.n_shares * 2 - 1]
        return np.array(centre, dtype=np.float32)

    def mask(self, placement_ok: np.ndarray) -> np.ndarray:
        return np.concatenate([placement_ok, np.ones(self.n_shares, dtype=bool)])


CODECS: dict[str, type[ActionCodec]] = {c.name: c for c in (MultiDiscreteCodec, DiscreteCodec, BoxCodec)}


def make_codec(name: str, n_placements: int, n_shares: int) -> ActionCodec:
    """The codec ``name``; an unknown name lists the known ones."""
    if name not in CODECS:
        raise ValueError(f"'action_type' must be one of {sorted(CODECS)} (got {name!r})")
    return CODECS[name](n_placements, n_shares)
