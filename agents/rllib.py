"""RLlib training on the MEG envs from a YAML config: all the glue, so that user code needs none.

A config (``configs/train/rllib_*.yaml``) says ``library: rllib``; its other keys::

    library: rllib
    algo: ppo                  # RLlib's PPO (new API stack: RLModule, Learner, EnvRunner)
    env: MEG/SingleES-v1       # a MEG id, or multi_ue_v1 / es_coordination_v1 (PettingZoo parallel envs)
    env_kwargs: {}             # the env's keyword arguments (scenario keys included)
    policies: shared           # multi-agent envs: shared (one policy for every agent) | per_agent
    n_timesteps: 100000        # env steps sampled (a multi-agent env step is one step of every agent)
    seed: 0
    num_env_runners: 1         # remote sampling processes (0: sample in the driver)
    num_envs_per_env_runner: 1
    hyperparams: {lr: 3.0e-4, gamma: 0.9, train_batch_size_per_learner: 1024, minibatch_size: 256, num_epochs: 10}
    model: {fcnet_hiddens: [64, 64]}   # RLlib's DefaultModelConfig
    checkpoint_freq: 20000     # env steps between checkpoints

What the glue does (``make_env``): a single-agent id is ``gym.make(id, **env_kwargs)``, with a
``dict`` observation flattened (Gymnasium's ``FlattenObservation``: RLlib's default
RLModules take flat vectors) and a vector reward scalarised with the scenario's weights
(:class:`envs.LinearReward`); a multi-agent env is RLlib's ``ParallelPettingZooEnv`` over the
parallel env, its vector rewards scalarised the same way. The env creators are registered
through Ray Tune's registry (``meg_gym:<env>``), so remote env runners build them by name.

A run folder holds ``config.yaml``, ``checkpoints/ckpt_<env steps>/`` (RLlib's
``Algorithm.save_to_path``), ``final/`` (the last checkpoint), ``progress.csv`` (per training
iteration: env steps, mean training-episode return, env steps per second) and ``summary.json``.
``--resume`` restores the latest checkpoint (weights, optimiser, counters) and trains on to
``n_timesteps`` (which may have grown; any other change of config is refused); unlike the SB3 path
it is not bit-exact (the env runners' episodes in flight at the checkpoint are not saved). ``meg-gym
evaluate --model DIR`` and ``meg-gym benchmark --model name=DIR`` run a single-agent run's policy
(:class:`RllibPolicy`, greedy) on the same seeds and tables as SB3 models.
"""

from __future__ import annotations

import copy
import csv
import inspect
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from meg_gym.cluster import init_ray
from meg_gym.config import ConfigError, read_yaml, yaml_ready
from meg_gym.files import atomic_write

__all__ = ["RllibConfig", "RllibPolicy", "build_algorithm_config", "env_name", "init_ray", "is_rllib_config",
           "is_rllib_run", "load_rllib_config", "make_env", "register_envs", "train"]

MARL_ENVS = ("multi_ue_v1", "es_coordination_v1")
POLICY_MODES = ("shared", "per_agent")
ALGOS = {"ppo": "PPO"}  # algo -> RLlib algorithm class (ray.rllib.algorithms.<algo>)
SHARED_POLICY = "shared"
_KEYS = ("library", "algo", "env", "env_kwargs", "policies", "n_timesteps", "seed", "num_env_runners",
         "num_envs_per_env_runner", "hyperparams", "model", "checkpoint_freq")


class RllibConfigError(ConfigError):
    """A bad RLlib training config or run folder (a ConfigError: the CLI prints it as one line)."""


@dataclass(frozen=True)
class RllibConfig:
    """A validated RLlib training config (see the module docstring for the keys)."""

    algo: str
    env: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policies: str = "shared"
    n_timesteps: int = 100_000
    seed: int = 0
    num_env_runners: int = 1
    num_envs_per_env_runner: int = 1
    hyperparams: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    checkpoint_freq: int = 20_000
    source: str = ""

    @property
    def marl(self) -> bool:
        return self.env in MARL_ENVS

    def to_dict(self) -> dict[str, Any]:
        d = {"library": "rllib", **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "source"}}
        return copy.deepcopy(d)


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------
def _read_yaml(source: str | Path) -> tuple[dict[str, Any], Path]:
    from agents.training import read_train_yaml

    return read_train_yaml(source, RllibConfigError)


def is_rllib_config(source: str | Path | dict[str, Any]) -> bool:
    """Does the training config say ``library: rllib``? (False where it cannot be read: SB3's loader says why.)"""
    if isinstance(source, dict):
        return source.get("library") == "rllib"
    try:
        data, _ = _read_yaml(source)
    except ConfigError:
        return False
    return data.get("library") == "rllib"


def load_rllib_config(source: str | Path | dict[str, Any], **overrides: Any) -> RllibConfig:
    """A validated :class:`RllibConfig` from a YAML path, a shipped name or a mapping; ``overrides``
    (None values ignored) replace top-level keys. Raises :class:`RllibConfigError` naming the field."""
    from agents.training import _int_field as _int

    path = None
    if isinstance(source, dict):
        data = dict(source)
    else:
        data, path = _read_yaml(source)
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise RllibConfigError(f"'{unknown[0]}' is not a known field of an RLlib training config; allowed: "
                               f"{sorted(_KEYS)}")
    if data.get("library") == "rllib":
        _require_rllib()
    if data.get("library") != "rllib":
        raise RllibConfigError(f"'library' must be 'rllib' for an RLlib config (got {data.get('library')!r})")
    algo = data.get("algo")
    if algo not in ALGOS:
        raise RllibConfigError(f"'algo' must be one of {list(ALGOS)} (got {algo!r})")
    import gymnasium as gym

    import envs  # noqa: F401  (registers the MEG ids)

    known = sorted(k for k in gym.registry if k.startswith("MEG/")) + list(MARL_ENVS)
    env = data.get("env")
    if env not in known:
        raise RllibConfigError(f"'env' must be one of {known} (got {env!r})")
    for key in ("env_kwargs", "hyperparams", "model"):
        if not isinstance(data.get(key) or {}, dict):
            raise RllibConfigError(f"'{key}' must be a mapping (got {data[key]!r})")
    policies = data.get("policies", "shared")
    if policies not in POLICY_MODES:
        raise RllibConfigError(f"'policies' must be one of {list(POLICY_MODES)} (got {policies!r})")
    if policies != "shared" and env not in MARL_ENVS:
        raise RllibConfigError(f"'policies' per_agent needs a multi-agent env, one of {list(MARL_ENVS)} "
                               f"(got env {env!r})")
    hyper = dict(data.get("hyperparams") or {})
    accepted = _training_params(algo)
    for key in hyper:
        if key not in accepted:
            raise RllibConfigError(f"'hyperparams.{key}' is not a training() parameter of RLlib's "
                                   f"{ALGOS[algo]}; allowed: {sorted(accepted)}")
    model = dict(data.get("model") or {})
    from dataclasses import fields

    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    model_keys = {f.name for f in fields(DefaultModelConfig)}
    for key in model:
        if key not in model_keys:
            raise RllibConfigError(f"'model.{key}' is not a field of RLlib's DefaultModelConfig; allowed: "
                                   f"{sorted(model_keys)}")
    return RllibConfig(
        algo=algo, env=env, env_kwargs=dict(data.get("env_kwargs") or {}), policies=policies,
        n_timesteps=_int(data, "n_timesteps", 100_000, 1), seed=_int(data, "seed", 0, 0),
        num_env_runners=_int(data, "num_env_runners", 1, 0),
        num_envs_per_env_runner=_int(data, "num_envs_per_env_runner", 1, 1), hyperparams=hyper, model=model,
        checkpoint_freq=_int(data, "checkpoint_freq", 20_000, 1), source=str(path) if path is not None else "")


def _require_rllib() -> None:
    """A one-line error where RLlib is not installed (it is the optional ``ray`` extra)."""
    try:
        import ray.rllib  # noqa: F401
    except ImportError:
        raise RllibConfigError("RLlib is not installed: pip install -e \".[ray]\" (an RLlib config or run "
                               "needs it)") from None


def _algo_config_class(algo: str) -> type:
    import importlib

    mod = importlib.import_module(f"ray.rllib.algorithms.{algo}")
    return getattr(mod, f"{ALGOS[algo]}Config")


def _training_params(algo: str) -> set[str]:
    cls = _algo_config_class(algo)
    params: set[str] = set()
    for klass in cls.__mro__:  # PPOConfig.training(**kwargs) passes the rest to AlgorithmConfig.training
        fn = klass.__dict__.get("training")
        if fn is not None:
            params |= {p for p, v in inspect.signature(fn).parameters.items()
                       if p != "self" and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
    return params - {"model"}  # RLlib's old-stack model dict: the new stack takes ``model:`` (DefaultModelConfig)


# --------------------------------------------------------------------------------------
# Envs
# --------------------------------------------------------------------------------------
def env_name(env: str) -> str:
    """The name an env's creator is registered under in Ray Tune's registry."""
    return f"meg_gym:{env}"


class _ScalarParallel:
    """A PettingZoo parallel env whose vector rewards (``reward_type="vector"``) become weights . terms."""

    def __init__(self, par: Any) -> None:
        from meg_gym.core import term_weights

        self._par = par
        self._weights = term_weights(par.scenario)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._par, name)

    def step(self, actions: dict[str, Any]) -> tuple:
        obs, rew, term, trunc, info = self._par.step(actions)
        for a, vec in rew.items():
            info.setdefault(a, {})["vector_reward"] = vec
        return obs, {a: float(np.dot(self._weights, v)) for a, v in rew.items()}, term, trunc, info


def make_env(env: str, env_kwargs: dict[str, Any] | None = None) -> Any:
    """The env RLlib trains on: a Gymnasium env (flat observations, scalar reward) for a MEG id, RLlib's
    ``ParallelPettingZooEnv`` (scalar rewards) for a multi-agent env."""
    kwargs = dict(env_kwargs or {})
    if env in MARL_ENVS:
        from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

        from agents.marl import make_parallel_env

        par = make_parallel_env(env, kwargs)
        if getattr(par, "reward_type", "scalar") == "vector":
            par = _ScalarParallel(par)
        return ParallelPettingZooEnv(par)
    import gymnasium as gym

    import envs  # noqa: F401

    e = gym.make(env, **kwargs)
    if getattr(e.unwrapped, "reward_type", "scalar") == "vector":
        from envs import LinearReward

        e = LinearReward(e)
    if isinstance(e.observation_space, gym.spaces.Dict):
        e = gym.wrappers.FlattenObservation(e)
    return e


def _creator(env: str) -> Any:
    def create(env_config: dict[str, Any]) -> Any:
        return make_env(env, dict(env_config))

    return create


def register_envs() -> None:
    """Register every MEG env's creator with Ray Tune (``meg_gym:<env>``); remote env runners then build
    them by name (the registry travels with the job)."""
    import gymnasium as gym
    from ray.tune.registry import register_env

    import envs  # noqa: F401

    for env in [k for k in gym.registry if k.startswith("MEG/")] + list(MARL_ENVS):
        register_env(env_name(env), _creator(env))


def _agent_ids(cfg: RllibConfig) -> list[str]:
    from agents.marl import make_parallel_env

    par = make_parallel_env(cfg.env, dict(cfg.env_kwargs))
    ids = list(par.possible_agents)
    par.close()
    return ids


def _shared_policy(agent_id: Any, *args: Any, **kwargs: Any) -> str:
    return SHARED_POLICY


def _own_policy(agent_id: Any, *args: Any, **kwargs: Any) -> str:
    return str(agent_id)


def build_algorithm_config(cfg: RllibConfig, **training_overrides: Any) -> Any:
    """RLlib's ``AlgorithmConfig`` for ``cfg`` (new API stack); ``training_overrides`` go to ``.training()``
    after the config's hyper-parameters (a Tune search space, for one)."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    register_envs()
    config = (
        _algo_config_class(cfg.algo)()
        .environment(env=env_name(cfg.env), env_config=dict(cfg.env_kwargs))
        .env_runners(num_env_runners=cfg.num_env_runners, num_envs_per_env_runner=cfg.num_envs_per_env_runner)
        .training(**{**cfg.hyperparams, **training_overrides})
        .rl_module(model_config=DefaultModelConfig(**cfg.model))
        .debugging(seed=cfg.seed)
        .framework("torch")
    )
    if cfg.marl:
        if cfg.policies == "shared":
            config = config.multi_agent(policies={SHARED_POLICY}, policy_mapping_fn=_shared_policy)
        else:
            config = config.multi_agent(policies=set(_agent_ids(cfg)), policy_mapping_fn=_own_policy)
    return config


# --------------------------------------------------------------------------------------
# Train
# --------------------------------------------------------------------------------------
def _ckpt_name(steps: int) -> str:
    return f"ckpt_{steps:012d}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of ``run_dir`` (one whose ``.done`` marker was written), or None."""
    done = sorted((Path(run_dir) / "checkpoints").glob("ckpt_*/.done"))
    return done[-1].parent if done else None


def _save(algo: Any, path: Path) -> None:
    """Save to ``path`` through a temporary folder, renamed when complete (a half-written one is never used)."""
    import shutil

    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    algo.save_to_path(str(tmp.resolve()))
    (tmp / ".done").write_text("", encoding="utf-8")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def _steps(result: dict[str, Any]) -> int:
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

    return int(result[ENV_RUNNER_RESULTS].get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0))


def _append_progress(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _same_config(run_dir: Path, cfg: RllibConfig) -> bool:
    """The run folder's config is ``cfg``'s, ``n_timesteps`` aside (a resume may train on further)."""
    f = run_dir / "config.yaml"
    if not f.exists():
        return False
    saved = read_yaml(f.read_text(encoding="utf-8")) or {}
    now = yaml_ready(cfg.to_dict())
    saved.pop("n_timesteps", None)
    now.pop("n_timesteps", None)
    return saved == now


def train(config: RllibConfig | str | Path | dict[str, Any], out: str | Path | None = None, resume: bool = False,
          ray_address: str | None = None, verbose: int = 0, **overrides: Any) -> dict[str, Any]:
    """Train with RLlib from a config; returns a summary (run folder, env steps, final checkpoint, speed).

    ``out``: the run folder (default ``runs/<config file stem>``); ``resume``: continue its latest
    checkpoint; ``ray_address``: see :func:`init_ray`; ``overrides``: top-level keys (``n_timesteps``...).
    """
    cfg = config if isinstance(config, RllibConfig) else load_rllib_config(config, **overrides)
    if out is None:
        stem = Path(cfg.source).stem if cfg.source else f"rllib_{cfg.algo}_{cfg.env.replace('/', '_')}"
        out = Path("runs") / stem
    run_dir = Path(out)
    if resume and (run_dir / "config.yaml").exists() and not _same_config(run_dir, cfg):
        raise RllibConfigError(f"the config differs from the one run folder {str(run_dir)!r} was started with "
                               f"({run_dir / 'config.yaml'}): resume with the same config")
    done_file = run_dir / "summary.json"
    if resume and done_file.exists() and _same_config(run_dir, cfg):
        finished = json.loads(done_file.read_text(encoding="utf-8"))
        if finished.get("timesteps", -1) >= cfg.n_timesteps:
            return {**finished, "already_complete": True}
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise RllibConfigError(f"run folder {str(run_dir)!r} has no complete checkpoint to resume from: "
                               f"start without --resume")
    if not resume and ((run_dir / "checkpoints").exists() or (run_dir / "final").exists()):
        raise RllibConfigError(f"run folder {str(run_dir)!r} already holds checkpoints: pass --resume to continue "
                               f"it, or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.yaml", yaml.safe_dump(yaml_ready(cfg.to_dict()), sort_keys=False))
    init_ray(ray_address)
    algo = build_algorithm_config(cfg).build_algo()
    try:
        if ckpt is not None:
            algo.restore_from_path(str(ckpt.resolve()))
        steps = _restored_steps(algo)
        start_steps, last_ckpt = steps, steps
        t0 = time.perf_counter()
        progress = run_dir / "progress.csv"
        while steps < cfg.n_timesteps:
            t_it = time.perf_counter()
            result = algo.train()
            new = _steps(result)
            ret = result["env_runners"].get("episode_return_mean", float("nan"))
            row = {"timesteps": new, "episode_return_mean": float(ret),
                   "env_steps_per_s": (new - steps) / (time.perf_counter() - t_it)}
            _append_progress(progress, row)
            if verbose:
                print(json.dumps(row))
            steps = new
            if steps >= last_ckpt + cfg.checkpoint_freq and steps < cfg.n_timesteps:
                _save(algo, run_dir / "checkpoints" / _ckpt_name(steps))
                last_ckpt = steps
        wall_s = time.perf_counter() - t0
        _save(algo, run_dir / "checkpoints" / _ckpt_name(steps))
        _save(algo, run_dir / "final")
    finally:
        algo.stop()
    summary = {"run_dir": str(run_dir), "library": "rllib", "algo": cfg.algo, "env": cfg.env, "timesteps": steps,
               "final_checkpoint": str(run_dir / "final"), "resumed_from": start_steps if ckpt is not None else None,
               "num_env_runners": cfg.num_env_runners,
               "env_steps_per_s": (steps - start_steps) / wall_s if wall_s > 0 else None}
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    os.replace(tmp, run_dir / "summary.json")
    return summary


def _restored_steps(algo: Any) -> int:
    """Env steps the algorithm has sampled so far (0 for a new one; a restored one's lifetime count)."""
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

    try:
        return int(algo.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0))
    except (KeyError, TypeError):
        return 0


# --------------------------------------------------------------------------------------
# Evaluation: a run's policy with SB3's predict()
# --------------------------------------------------------------------------------------
def _run_dir(path: str | Path) -> Path:
    p = Path(path)
    if p.name == "final" or p.parent.name == "checkpoints":
        return p.parent if p.name == "final" else p.parent.parent
    return p


def is_rllib_run(path: str | Path) -> bool:
    """Is ``path`` an RLlib run folder (or one of its checkpoints)?"""
    cfg = _run_dir(path) / "config.yaml"
    if not cfg.is_file():
        return False
    return (read_yaml(cfg.read_text(encoding="utf-8")) or {}).get("library") == "rllib"


class RllibPolicy:
    """A trained RLlib run's policy (its RLModule, on the CPU) with SB3's ``predict`` for one observation.

    ``path``: the run folder (its ``final`` checkpoint), ``final`` or a ``checkpoints/ckpt_*`` folder.
    Dict observations are flattened as in training. Multi-agent runs are evaluated on their
    PettingZoo env, not here.
    """

    needs_env = False

    def __init__(self, path: str | Path, env: Any) -> None:
        _require_rllib()
        import gymnasium as gym
        from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP, COMPONENT_RL_MODULE, DEFAULT_MODULE_ID
        from ray.rllib.core.rl_module.rl_module import RLModule

        p = Path(path)
        run_dir = _run_dir(p)
        ckpt = p if p != run_dir else p / "final"
        saved = read_yaml((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        if saved.get("env") in MARL_ENVS:
            raise RllibConfigError(f"model {str(path)!r} was trained on the multi-agent env {saved['env']!r}: "
                                   f"evaluate it on that env, not on a single-agent id")
        module_dir = ckpt / COMPONENT_LEARNER_GROUP / COMPONENT_LEARNER / COMPONENT_RL_MODULE / DEFAULT_MODULE_ID
        if not module_dir.is_dir():
            raise RllibConfigError(f"model {str(path)!r} has no RLlib policy at {str(module_dir)!r} "
                                   f"(train it first, or give a checkpoint folder)")
        self.module = RLModule.from_checkpoint(str(module_dir.resolve()))
        self.module.eval()
        self._dict_obs = isinstance(env.observation_space, gym.spaces.Dict)
        self._space = env.observation_space
        self._dist = self.module.get_inference_action_dist_cls()
        self._action_space = env.action_space

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True) -> Any:
        import gymnasium as gym
        import torch
        from ray.rllib.core.columns import Columns

        if self._dict_obs:
            obs = gym.spaces.flatten(self._space, obs)
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)[None])
        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: x})
            dist = self._dist.from_logits(out[Columns.ACTION_DIST_INPUTS])
            if deterministic:
                dist = dist.to_deterministic()
            action = dist.sample()[0].cpu().numpy()
        if isinstance(self._action_space, gym.spaces.Box):
            action = np.clip(action, self._action_space.low, self._action_space.high)  # as SB3's predict clips
        return action, state
