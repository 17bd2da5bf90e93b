"""Gymnasium (and PettingZoo) environments over meg_gym; ``import envs`` registers the ids.

* ``MEG/SingleES-v1``: one UE, one ES, the six single-ES protocols (profiled mode);
* ``MEG/MultiES-v1``: one UE, three ESs, all 11 protocols (profiled mode);
* ``MEG/SingleES-live-v1``, ``MEG/MultiES-live-v1``: the same with the real split LDM every step;
* ``MEG/GenerationSplit-v0``: one UE, one ES; the placements divide the generation between them: the
  temporal split ``tsplit:<k>`` (the UE finishes with its own smaller model, tiny_ue), the spatial split
  ``ssplit:<area>`` (the ES generates the centre, the UE outpaints the rest) and step budgets
  ``<protocol>@<steps>`` (``configs/scenarios/generation_split.yaml``; info ``es_steps``, ``ue_steps``, ``es_area``);
* ``MEG/ModelCaching-v0``: two ESs that cache generation models (``configs/scenarios/model_caching.yaml``):
  the agent also picks the set of models each ES keeps (``envs.model_caching``).

The same ids reach RLlib's remote workers through Ray's tune registry (``envs.rllib``), so
``PPOConfig().environment("MEG/SingleES-v1")`` works as written; ``"envs:MEG/SingleES-v1"`` works too.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from envs.codecs import CODECS, InvalidAction
from envs.meg_env import MegEnv
from envs.wrappers import LinearReward

__all__ = ["CODECS", "ENV_IDS", "InvalidAction", "LinearReward", "MegEnv"]

ENV_IDS = {
    "MEG/SingleES-v1": {"config": "case_study", "backend": "profiled"},
    "MEG/SingleES-live-v1": {"config": "case_study", "backend": "live"},
    "MEG/MultiES-v1": {"config": "multi_es", "backend": "profiled"},
    "MEG/MultiES-live-v1": {"config": "multi_es", "backend": "live"},
    # the generation split (issue 17): temporal split, step budget, the UE's own smaller model
    "MEG/GenerationSplit-v0": {"config": "generation_split", "backend": "profiled"},
}

for _id, _kwargs in ENV_IDS.items():
    if _id not in registry:
        # profiled ids also have the native numpy vector env (vectorization_mode="vector_entry_point")
        register(id=_id, entry_point="envs.meg_env:MegEnv", kwargs=dict(_kwargs), disable_env_checker=False,
                 vector_entry_point="envs.vector:MegVectorEnv" if _kwargs["backend"] == "profiled" else None)

if "MEG/ModelCaching-v0" not in registry:
    register(id="MEG/ModelCaching-v0", entry_point="envs.model_caching:ModelCachingEnv",
             kwargs={"config": "model_caching"}, disable_env_checker=False)

# PettingZoo environments (modules with parallel_env / env / raw_env factories)
from envs import es_coordination as es_coordination_v1  # noqa: E402
from envs import model_caching as model_caching_v0  # noqa: E402
from envs import multi_ue as multi_ue_v1  # noqa: E402

__all__ += ["es_coordination_v1", "model_caching_v0", "multi_ue_v1"]

# the same ids for RLlib's remote workers (Ray's tune registry), without importing Ray: see envs/rllib.py
from envs import rllib as _rllib  # noqa: E402

_rllib._install()
