"""What every MEG env view shares: the observation bounds, the vector reward's space and the
check of keyword arguments (scenario overrides)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from gymnasium import spaces

from meg_gym.config import OBS_LIMIT

__all__ = ["BIG", "REWARD_TYPES", "check_overrides", "check_reward_type", "feature_info", "no_feature_info",
           "obs_bounds", "reward_space"]

REWARD_TYPES = ("scalar", "vector")

# bounds far outside what the models produce (backlogs below hours, SNRs within +-300 dB); the config
# bounds and the core's build-time checks keep every observation and cost term within them
BIG = OBS_LIMIT


def obs_bounds(num_es: int, extra: Any = ()) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of one UE's observation row (``meg_gym.core.Core.observe``); ``extra``: the features'
    columns' (low, high) after it (``Core.obs_extra``)."""
    n = num_es
    ex = list(extra)
    low = np.array([-10.0] * 2 * n + [0.0] * 2 * n + [0.0, 0.0, 0.0, 0.0] + [lo for lo, _ in ex], dtype=np.float32)
    high = np.array([10.0] * 2 * n + [BIG] * 2 * n + [BIG, BIG, BIG, 1.0] + [hi for _, hi in ex], dtype=np.float32)
    return low, high


# the features' reward terms' bounds (meg_gym.core.FEATURE_TERMS): leakage in [0, 1]; the twin's mean age >= T / 2
_FEATURE_BOUNDS = {"leakage": (-1.0, 0.0), "aoi": (-BIG, -0.5)}


def reward_space(scenario: Any) -> spaces.Box:
    """The vector reward's bounds: quality <= the largest quality weight; costs >= -BIG; deadline in [-1, 0];
    then the features' terms (``meg_gym.core.term_names``)."""
    from meg_gym.core import REWARD_TERMS, term_names

    hi_q = float(scenario.workload.quality_weight[1])
    extra = [_FEATURE_BOUNDS[t] for t in term_names(scenario)[len(REWARD_TERMS):]]
    return spaces.Box(np.array([0.0, -BIG, -BIG, -BIG, -1.0] + [lo for lo, _ in extra], np.float32),
                      np.array([hi_q, 0.0, 0.0, 0.0, 0.0] + [hi for _, hi in extra], np.float32))


def feature_info(res: Any, pick: Any) -> dict[str, Any]:
    """The features' info keys of a step (``leakage``, ``aoi_s`` where the scenario sets them), each of
    the core's (copies, ues) arrays through ``pick`` (the view's row or rows)."""
    out = {}
    if res.leakage is not None:
        out["leakage"] = pick(res.leakage)
    if res.aoi_s is not None:
        out["aoi_s"] = pick(res.aoi_s)
    return out


def no_feature_info(world: Any, empty: Any) -> dict[str, Any]:
    """:func:`feature_info`'s keys before anything was served: ``empty()`` each (the view's zeros)."""
    out = {}
    if world.eve is not None:
        out["leakage"] = empty()
    if world.twin is not None:
        out["aoi_s"] = empty()
    return out


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
