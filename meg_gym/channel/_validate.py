"""Argument checks whose messages name the field, what is allowed and what was given."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from meg_gym.errors import show  # the one short excerpt of a given value

__all__ = ["check_choice", "check_int", "check_number", "check_position", "show"]


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


def check_number(name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False, finite: bool = True) -> float:
    """``value`` as a float; ValueError unless it is a (finite) number within the bounds."""
    ok = _is_number(value)
    v = float(value) if ok else math.nan
    if ok and finite and not math.isfinite(v):
        ok = False
    if ok and math.isnan(v):
        ok = False
    if ok and lo is not None and (v < lo or (lo_open and v == lo)):
        ok = False
    if ok and hi is not None and (v > hi or (hi_open and v == hi)):
        ok = False
    if not ok:
        raise ValueError(f"'{name}' must be {_describe(lo, hi, lo_open, hi_open, finite)} (got {show(value)})")
    return v


def _describe(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool, finite: bool) -> str:
    kind = "a finite number" if finite else "a number (not NaN)"
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{kind} {'<' if hi_open else '<='} {hi:g}"
    return kind


def check_int(name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int; ValueError unless it is an int (not a bool, not 2.0) within the bounds."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        try:
            import numpy as np

            ok = isinstance(value, np.integer)
        except ImportError:  # pragma: no cover
            ok = False
    if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        ok = False
    if not ok:
        if lo is not None and hi is not None:
            what = f"an int in [{lo}, {hi}]"
        elif lo is not None:
            what = f"an int >= {lo}"
        else:
            what = "an int"
        raise ValueError(f"'{name}' must be {what} (got {show(value)})")
    return int(value)


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else ValueError listing them."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"'{name}' must be one of {sorted(allowed)} (got {show(value)})")
    return value


def check_position(name: str, value: Any) -> tuple[float, float]:
    """``value`` as an (x, y) pair of finite floats in metres."""
    ok = (not isinstance(value, (str, bytes, Mapping)) and hasattr(value, "__len__")
          and hasattr(value, "__getitem__") and len(value) == 2)
    if ok:
        ok = all(_is_number(v) and math.isfinite(float(v)) for v in value)
    if not ok:
        raise ValueError(f"'{name}' must hold 2 finite numbers [x, y] in metres (got {show(value)})")
    return (float(value[0]), float(value[1]))
