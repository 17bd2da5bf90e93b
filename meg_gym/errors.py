"""The errors a user's input can cause; the CLI prints them as one line."""

from __future__ import annotations

__all__ = ["USER_ERRORS"]


def _user_errors() -> tuple[type[BaseException], ...]:
    from meg_gym.compute import ComputeError
    from meg_gym.config import ConfigError
    from meg_gym.ldm.components import ModelError
    from meg_gym.ldm.stages import StageError
    from meg_gym.protocols import ProtocolError
    from meg_gym.quality.calibration import CalibrationError

    return (ConfigError, ModelError, ProtocolError, StageError, CalibrationError, ComputeError)


USER_ERRORS = _user_errors()
