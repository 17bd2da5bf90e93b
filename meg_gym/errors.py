"""The errors a user's input can cause (the CLI prints them as one line), and the short excerpt
of a given value that their messages show."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

__all__ = ["USER_ERRORS", "show", "user_error"]  # noqa: F822 - USER_ERRORS is built on first use (__getattr__)

# reprlib cuts every level (a few items of a list or mapping, a few levels deep, long strings and
# numbers shortened), so an excerpt costs the same however large the input: a YAML alias bomb's
# full repr would be gigabytes (issue 21)
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 60, 40, 60


def show(value: Any, limit: int = 80) -> str:
    """A short excerpt of ``value`` for an error message: its ``repr`` on one line, at most ``limit``
    characters, built without ever forming the ``repr`` of the whole of a large value."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still shown as something
        text = f"<{type(value).__name__}>"
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _user_errors() -> tuple[type[BaseException], ...]:
    from meg_gym.compute import ComputeError
    from meg_gym.config import ConfigError
    from meg_gym.ldm.components import ModelError
    from meg_gym.ldm.stages import StageError
    from meg_gym.protocols import ProtocolError
    from meg_gym.quality.calibration import CalibrationError

    return (ConfigError, ModelError, ProtocolError, StageError, CalibrationError, ComputeError)


_PACKAGES = tuple(str(Path(__file__).resolve().parents[1] / pkg) + "/" for pkg in ("meg_gym", "envs", "agents"))


def user_error(exc: BaseException) -> str | None:
    """The one line to show for an error the user's input caused, or None for a bug.

    A user error is one of :data:`USER_ERRORS`; a ``ValueError`` / ``TypeError`` / ``KeyError`` that
    the project's own code raised on purpose (its innermost frame is in ``meg_gym``, ``envs`` or
    ``agents``: the argument checks, whose messages name the field); a file that cannot be read or
    written (``OSError``) or a YAML file that does not parse; memory that ran out. A ``ValueError``
    that numpy or torch raised from inside their own code is a bug of ours (we passed them
    something unchecked) and gets None.
    """
    import yaml

    if isinstance(exc, (*__getattr__("USER_ERRORS"), OSError, MemoryError, yaml.YAMLError)):
        pass
    elif isinstance(exc, (ValueError, TypeError, KeyError)):
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = str(Path(tb.tb_frame.f_code.co_filename).resolve()) if tb is not None else ""
        if not where.startswith(_PACKAGES):
            return None
    else:
        return None
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        text = f"out of memory ({text}): use a smaller configuration"
    lines = text.strip().splitlines() or [type(exc).__name__]
    line = lines[0]
    return line if len(line) <= 600 else line[:597] + "..."


def __getattr__(name: str) -> Any:
    # built on first use: the error classes' modules import torch, and show() is imported by light modules
    if name == "USER_ERRORS":
        globals()["USER_ERRORS"] = value = _user_errors()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
