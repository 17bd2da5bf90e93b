"""What every MEG env view shares: the observation bounds, the vector reward's space and the
check of keyword arguments (scenario overrides)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from gymnasium import spaces

from meg_gym.config import OBS_LIMIT

__all__ = ["BIG", "REWARD_TYPES", "check_overrides", "check_reward_type", "obs_bounds", "reward_space"]

REWARD_TYPES = ("scalar", "vector")

# bounds far outside what the models produce (backlogs below hours, SNRs within +-300 dB); the config
# bounds and the core's build-time checks keep every observation and cost term within them
BIG = OBS_LIMIT


def obs_bounds(num_es: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of one UE's observation row (``meg_gym.core.Core.observe``)."""
    n = num_es
    low = np.array([-10.0] * 2 * n + [0.0] * 2 * n + [0.0, 0.0, 0.0, 0.0], dtype=np.float32)
    high = np.array([10.0] * 2 * n + [BIG] * 2 * n + [BIG, BIG, BIG, 1.0], dtype=np.float32)
    return low, high


def reward_space(scenario: Any) -> spaces.Box:
    """The vector reward's bounds: quality <= the largest quality weight; costs >= -BIG; deadline in [-1, 0]."""
    hi_q = float(scenario.workload.quality_weight[1])
    return spaces.Box(np.array([0.0, -BIG, -BIG, -BIG, -1.0], np.float32),
                      np.array([hi_q, 0.0, 0.0, 0.0, 0.0], np.float32))


def check_reward_type(value: Any) -> None:
    """``reward_type``: a scalar reward, or the five terms as a vector (MO-Gymnasium style)."""
    if value not in REWARD_TYPES:
        raise ValueError(f"'reward_type' must be one of {list(REWARD_TYPES)} (got {value!r})")


def check_overrides(owner: str, overrides: dict[str, Any]) -> None:
    """Keyword arguments beyond an env's own are scenario keys (``channel={...}``, ``channel__snr_db``,
    ``"channel.snr_db"``); any other name is a TypeError, as Python raises for an unknown keyword
    (libraries such as TorchRL retry without an argument on TypeError)."""
    from meg_gym.config import Scenario

    bad = [k for k in overrides if re.split(r"__|\.", k)[0] not in Scenario.model_fields]
    if bad:
        raise TypeError(f"{owner}() got an unexpected keyword argument {bad[0]!r}; besides its own arguments it "
                        f"takes scenario keys: {sorted(Scenario.model_fields)}")
