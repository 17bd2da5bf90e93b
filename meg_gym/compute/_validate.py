"""Argument checks shared by the compute modules.

Every message names the field, what is allowed and what was given, the way
:mod:`meg_gym.config` does: ``'flops_per_s' must be a finite number > 0 (got -3.0)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from meg_gym.errors import show

__all__ = ["ComputeError", "check_finite", "check_one_of", "check_positive", "check_range"]


class ComputeError(ValueError):
    """A bad argument to a compute model: a device, a queue, an energy term."""


def _number(field: str, value: Any, rule: str) -> float:
    if type(value) is float and value - value == 0.0:  # the common case, checked cheaply: a finite float
        return value
    rule = f" {rule}" if rule else ""
    # bool is an int in Python, but True flops per second is a bug, not a number
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ComputeError(f"'{field}' must be a finite number{rule} (got {show(value)})")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ComputeError(f"'{field}' must be a finite number{rule} (got {show(value)})") from None
    if not math.isfinite(out):
        raise ComputeError(f"'{field}' must be a finite number{rule} (got {show(value)})")
    return out


def check_finite(field: str, value: Any) -> float:
    """``value`` as a float; it must be a finite real number."""
    return _number(field, value, "")


def check_positive(field: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a float; it must be finite and > 0 (>= 0 with ``allow_zero``)."""
    rule = ">= 0" if allow_zero else "> 0"
    out = _number(field, value, rule)
    if out < 0 or (out == 0 and not allow_zero):
        raise ComputeError(f"'{field}' must be {rule} (got {show(value)})")
    return out


def check_range(field: str, value: Any, low: float, high: float, *, high_open: bool = True) -> float:
    """``value`` as a float in ``[low, high)`` (or ``[low, high]`` with ``high_open=False``)."""
    rule = f"in [{low:g}, {high:g}{')' if high_open else ']'}"
    out = _number(field, value, rule)
    if out < low or out > high or (high_open and out == high):
        raise ComputeError(f"'{field}' must be {rule} (got {show(value)})")
    return out


def check_one_of(field: str, value: Any, allowed: Iterable[str]) -> str:
    """``value`` itself; it must be one of ``allowed``."""
    known = sorted(allowed)
    if not isinstance(value, str) or value not in known:
        raise ComputeError(f"'{field}' must be one of {known} (got {show(value)})")
    return value
