"""Train SB3 agents on the MEG environments from a YAML config; checkpoints and an exact resume.

A training config (rl-baselines3-zoo style; ``configs/train/*.yaml``)::

    algo: ppo                  # ppo | a2c | dqn | sac | maskable_ppo
    env: MEG/SingleES-v1       # a Gymnasium id, or multi_ue_v1 / es_coordination_v1 (PettingZoo, shared policy)
    env_kwargs: {action_type: multidiscrete}
    n_envs: 4
    n_timesteps: 200000
    seed: 0
    policy: MlpPolicy
    normalize: false           # true or VecNormalize's keyword arguments
    hyperparams: {n_steps: 256, learning_rate: lin_3e-4, policy_kwargs: {net_arch: [64, 64]}}
    checkpoint_freq: 20000     # timesteps between checkpoints
    eval_freq: 20000           # timesteps between evaluations on fixed seeds (0: none)
    eval_episodes: 2
    vec_env: dummy             # dummy: SB3's DummyVecEnv of Monitor-wrapped envs; native: the batched core
                               # (agents.native_vec, profiled ids only: same seeding, statistics and resume)

``train(config, out=...)`` writes into its run folder: ``config.yaml``, TensorBoard logs in
``tb/``, Monitor files in ``monitor/``, ``evaluations.npz``, ``checkpoints/`` and
``final_model.zip`` (with ``vecnormalize.json`` + ``.npz`` when normalising); every file is written
atomically (a temporary file, fsync, rename), and ``config.yaml`` once, when the run begins.
Nothing of the project's own is pickled (:mod:`meg_gym.state`); the model zips are SB3's own
format, whose loading unpickles parts of them: load run folders from trusted sources only.

Resume. A checkpoint is taken where an update has just finished and the next rollout begins
(SB3's ``on_rollout_start``), and holds everything the rest of the run depends on: the model
(parameters, optimiser state, ``num_timesteps``, the last observation), the replay buffer
(DQN, SAC), the VecNormalize statistics and running returns, the state of every training env
(the MEG world: channel, queues, request stream and their generators; the wrappers' counters)
and the random generators (Python, NumPy's global, torch's, the action space's).
A checkpoint counts once its manifest, written last, lists its files with matching SHA-256s.
``train(config, out=..., resume=True)`` restores the newest complete checkpoint (it says which;
newer ones that a kill or a truncation left incomplete are skipped with a warning; a folder
with none begins the run again) and continues, and
gives the same final parameters as an uninterrupted run with the same seed (bit for bit:
checked for PPO with VecNormalize, A2C, DQN, SAC and MaskablePPO; the test suite checks PPO
and, marked slow, DQN). It needs the in-process ``DummyVecEnv`` or native vector env (``vec_env: native``)
that ``train`` builds. Not exact: SAC or PPO with gSDE (``use_sde``), whose exploration noise is drawn before
the checkpoint point, and the PettingZoo envs, whose vector env does not expose its envs' state (they restart
from a reset).
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback

from meg_gym.config import ConfigError, read_yaml, yaml_ready
from meg_gym.errors import show
from meg_gym.files import atomic_write

__all__ = ["ALGOS", "MARL_ENVS", "TrainConfig", "TrainConfigError", "load_model", "load_train_config", "train"]

MARL_ENVS = ("multi_ue_v1", "es_coordination_v1")
VEC_ENVS = ("dummy", "native")  # SB3's DummyVecEnv of single envs | agents.native_vec over the batched core
TRAIN_CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs" / "train"

# algo -> (module, class, the action_type it needs by default, the action_types it accepts)
ALGOS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "ppo": ("stable_baselines3", "PPO", "multidiscrete", ("multidiscrete", "discrete", "box")),
    "a2c": ("stable_baselines3", "A2C", "multidiscrete", ("multidiscrete", "discrete", "box")),
    "dqn": ("stable_baselines3", "DQN", "discrete", ("discrete",)),
    "sac": ("stable_baselines3", "SAC", "box", ("box",)),
    "maskable_ppo": ("sb3_contrib", "MaskablePPO", "multidiscrete", ("multidiscrete", "discrete")),
}
_OFF_POLICY = ("dqn", "sac")
_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU"}


class TrainConfigError(ConfigError):
    """A bad training config or run folder (a ConfigError: the CLI prints it as one line)."""


@dataclass(frozen=True)
class TrainConfig:
    """A validated training config (see the module docstring for the keys)."""

    algo: str
    env: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    n_envs: int = 1
    n_timesteps: int = 100_000
    seed: int = 0
    policy: str = "MlpPolicy"
    normalize: Any = False
    hyperparams: dict[str, Any] = field(default_factory=dict)
    checkpoint_freq: int = 10_000
    eval_freq: int = 0
    eval_episodes: int = 2
    eval_seed: int = 10_000
    vec_env: str = "dummy"
    source: str = ""

    @property
    def marl(self) -> bool:
        return self.env in MARL_ENVS

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "source"}
        if d["vec_env"] == "dummy":  # the default stays out of the saved config (run folders made before it match)
            del d["vec_env"]
        return copy.deepcopy(d)


_KEYS = {f for f in TrainConfig.__dataclass_fields__ if f != "source"}


def _int_field(data: dict[str, Any], key: str, default: int, minimum: int) -> int:
    v = data.get(key, default)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise TrainConfigError(f"'{key}' must be an integer >= {minimum} (got {show(v)})")
    return v


def _algo_class(algo: str) -> type:
    module, name, _, _ = ALGOS[algo]
    mod = __import__(module, fromlist=[name])
    return getattr(mod, name)


def read_train_yaml(source: str | Path, error: type[ConfigError] = TrainConfigError) -> tuple[dict[str, Any], Path]:
    """A training config file's top-level mapping and its path (a shipped config by its bare name), for
    the SB3 and the RLlib loader; a missing file, bad YAML or no mapping is an ``error`` naming it."""
    path = Path(source)
    if not path.exists() and isinstance(source, str) and not path.suffix and len(path.parts) == 1:
        path = TRAIN_CONFIGS_DIR / f"{source}.yaml"  # a shipped config's bare name
    if not path.is_file():
        raise error(f"training config {source} does not exist (shipped: "
                    f"{sorted(p.stem for p in TRAIN_CONFIGS_DIR.glob('*.yaml'))})")
    try:
        # the scenario loader's YAML: safe, reads 3e-4 as a number (YAML 1.1 wants 3.0e-4), no duplicate keys
        data = read_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise error(f"training config {source} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise error(f"training config {source} must hold a mapping at top level (got {type(data).__name__})")
    return data, path


def load_train_config(source: str | Path | dict[str, Any], **overrides: Any) -> TrainConfig:
    """A validated :class:`TrainConfig` from a YAML path or a mapping; ``overrides`` replace top-level keys.

    Raises :class:`TrainConfigError` naming the field, what is allowed and what was given.
    """
    path: Path | None = None
    if isinstance(source, (str, Path)):
        data, path = read_train_yaml(source)
    else:
        data = dict(source)
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    library = data.pop("library", "sb3")
    if library != "sb3":
        raise TrainConfigError(f"'library' must be 'sb3' for an SB3 config (got {library!r}; an RLlib config "
                               f"loads with agents.rllib.load_rllib_config, and meg-gym train runs either)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise TrainConfigError(f"'{unknown[0]}' is not a known field of a training config; allowed: {sorted(_KEYS)}")
    algo = data.get("algo")
    if not isinstance(algo, str) or algo not in ALGOS:
        raise TrainConfigError(f"'algo' must be one of {list(ALGOS)} (got {show(algo)})")
    env = data.get("env")
    import gymnasium as gym

    import envs  # noqa: F401  (registers the MEG ids)

    known_envs = sorted(k for k in gym.registry if k.startswith("MEG/")) + list(MARL_ENVS)
    if not isinstance(env, str) or env not in known_envs:
        raise TrainConfigError(f"'env' must be one of {known_envs} (got {show(env)})")
    env_kwargs = data.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise TrainConfigError(f"'env_kwargs' must be a mapping (got {show(env_kwargs)})")
    env_kwargs = dict(env_kwargs)
    _, _, default_action, allowed_actions = ALGOS[algo]
    if env not in MARL_ENVS:
        action_type = env_kwargs.setdefault("action_type", default_action)
        if not isinstance(action_type, str) or action_type not in allowed_actions:
            raise TrainConfigError(f"'env_kwargs.action_type' must be one of {list(allowed_actions)} for {algo} "
                                   f"(got {show(action_type)})")
    hyper = data.get("hyperparams") or {}
    if not isinstance(hyper, dict):
        raise TrainConfigError(f"'hyperparams' must be a mapping (got {show(hyper)})")
    cls = _algo_class(algo)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env", "seed", "tensorboard_log",
                                                                   "_init_setup_model"}
    for key in hyper:
        if key not in accepted:
            raise TrainConfigError(f"'hyperparams.{key}' is not a parameter of {cls.__name__}; allowed: "
                                   f"{sorted(accepted)}")
    normalize = data.get("normalize", False)
    if not isinstance(normalize, (bool, dict)):
        raise TrainConfigError(f"'normalize' must be true, false or a mapping of VecNormalize arguments "
                               f"(got {show(normalize)})")
    policy = data.get("policy", "MlpPolicy")
    if not isinstance(policy, str) or policy not in ("MlpPolicy", "MultiInputPolicy"):
        raise TrainConfigError(f"'policy' must be one of ['MlpPolicy', 'MultiInputPolicy'] (got {show(policy)})")
    vec_env = data.get("vec_env", "dummy")
    if not isinstance(vec_env, str) or vec_env not in VEC_ENVS:
        raise TrainConfigError(f"'vec_env' must be one of {list(VEC_ENVS)} (got {show(vec_env)})")
    if vec_env == "native" and (env in MARL_ENVS or gym.registry[env].vector_entry_point is None):
        native = sorted(k for k, s in gym.registry.items() if k.startswith("MEG/") and s.vector_entry_point)
        raise TrainConfigError(f"'vec_env' native needs an env with a native vector env, one of {native} "
                               f"(got env {env!r})")
    return TrainConfig(
        algo=algo, env=env, env_kwargs=env_kwargs, n_envs=_int_field(data, "n_envs", 1, 1),
        n_timesteps=_int_field(data, "n_timesteps", 100_000, 1), seed=_int_field(data, "seed", 0, 0),
        policy=policy, normalize=normalize, hyperparams=dict(hyper),
        checkpoint_freq=_int_field(data, "checkpoint_freq", 10_000, 1), eval_freq=_int_field(data, "eval_freq", 0, 0),
        eval_episodes=_int_field(data, "eval_episodes", 2, 1), eval_seed=_int_field(data, "eval_seed", 10_000, 0),
        vec_env=vec_env, source=str(path) if path is not None else "")


# --------------------------------------------------------------------------------------
# Hyper-parameters: zoo-style strings into objects
# --------------------------------------------------------------------------------------
class LinearSchedule:
    """``lin_<x>``: from x at the start down to 0 at the end (picklable, unlike a lambda)."""

    def __init__(self, start: float) -> None:
        self.start = float(start)

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start


def _hyperparams(cfg: TrainConfig) -> dict[str, Any]:
    import torch

    hp = copy.deepcopy(cfg.hyperparams)
    for key in ("learning_rate", "clip_range"):
        v = hp.get(key)
        if isinstance(v, str):
            m = re.fullmatch(r"lin_([0-9.eE+-]+)", v)
            if not m:
                raise TrainConfigError(f"'hyperparams.{key}' must be a number or 'lin_<number>' (got {show(v)})")
            hp[key] = LinearSchedule(float(m.group(1)))
    pk = hp.get("policy_kwargs")
    if pk is not None:
        if not isinstance(pk, dict):
            raise TrainConfigError(f"'hyperparams.policy_kwargs' must be a mapping (got {show(pk)})")
        pk = dict(pk)
        act = pk.get("activation_fn")
        if isinstance(act, str):
            if act not in _ACTIVATIONS:
                raise TrainConfigError(f"'hyperparams.policy_kwargs.activation_fn' must be one of "
                                       f"{sorted(_ACTIVATIONS)} (got {show(act)})")
            pk["activation_fn"] = getattr(torch.nn, _ACTIVATIONS[act])
        hp["policy_kwargs"] = pk
    hp.setdefault("device", "cpu")  # small MLPs: the CPU is faster than a GPU round trip
    return hp


# --------------------------------------------------------------------------------------
# Envs
# --------------------------------------------------------------------------------------
def _make_env_fn(env_id: str, env_kwargs: dict[str, Any], monitor_file: str | None, append: bool) -> Any:
    def _init() -> Any:
        import gymnasium as gym
        from stable_baselines3.common.monitor import Monitor

        import envs  # noqa: F401

        return Monitor(gym.make(env_id, **env_kwargs), filename=monitor_file, override_existing=not append)

    return _init


def _make_vec_env(cfg: TrainConfig, run_dir: Path, append: bool) -> Any:
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    mon = run_dir / "monitor"
    mon.mkdir(parents=True, exist_ok=True)
    if cfg.marl:
        try:
            from agents.marl import make_sb3_vec_env
        except ImportError as exc:
            raise TrainConfigError(f"'env' {cfg.env!r} needs agents.marl (the PettingZoo envs), which did not "
                                   f"import: {exc}") from None
        venv = make_sb3_vec_env(cfg.env, dict(cfg.env_kwargs), cfg.n_envs, cfg.seed)
        return VecMonitor(venv, filename=str(mon / "vec"))
    if cfg.vec_env == "native":
        from agents.native_vec import native_vec_env

        return native_vec_env(cfg.env, cfg.n_envs, seed=cfg.seed, monitor_dir=mon, append=append, **cfg.env_kwargs)
    return DummyVecEnv([_make_env_fn(cfg.env, cfg.env_kwargs, str(mon / str(i)), append) for i in range(cfg.n_envs)])


def _wrap_normalize(cfg: TrainConfig, venv: Any) -> Any:
    if not cfg.normalize:
        return venv
    from stable_baselines3.common.vec_env import VecNormalize

    kwargs = cfg.normalize if isinstance(cfg.normalize, dict) else {}
    try:
        return VecNormalize(venv, **kwargs)
    except TypeError as exc:
        raise TrainConfigError(f"'normalize' has an argument VecNormalize does not take: {exc}") from None


# --------------------------------------------------------------------------------------
# The state of the training envs (what a resume needs besides the model)
# --------------------------------------------------------------------------------------
def _env_chain(gym_env: Any) -> list[Any]:
    """A training env and the envs it wraps, outermost first (the MEG env last)."""
    chain = [gym_env]
    while hasattr(chain[-1], "env") and chain[-1] is not chain[-1].unwrapped:
        chain.append(chain[-1].env)
    return chain


def _env_state(gym_env: Any) -> dict[str, Any]:
    """The state of one training env, as data (:mod:`meg_gym.state`): the attributes of the MEG env
    (the world: channel, queues, request stream and their generators) and of every wrapper
    (Monitor's and TimeLimit's counters); the model and the frozen configs are rebuilt from the config."""
    from meg_gym.state import attrs_of

    return {"chain": [attrs_of(e) for e in _env_chain(gym_env)]}


def _set_env_state(gym_env: Any, state: dict[str, Any]) -> None:
    chain = _env_chain(gym_env)
    if not isinstance(state, dict) or len(state.get("chain", ())) != len(chain):
        from meg_gym.state import StateError

        raise StateError("the checkpoint's env state does not fit this env (other wrappers?)")
    for env, attrs in zip(chain, state["chain"]):
        for k, v in attrs.items():
            object.__setattr__(env, k, v)


def _envs_state(inner: Any) -> Any:
    """The training envs' states as data: each of DummyVecEnv's envs, or the native vector env and its
    adapter's counters; None where they are not reachable (SuperSuit's vector env)."""
    from agents.native_vec import NativeVecEnv

    if isinstance(inner, NativeVecEnv):
        return {"native": _env_state(inner.vector_env), "counters": inner.get_counters()}
    if hasattr(inner, "envs"):
        return [_env_state(e) for e in inner.envs]
    return None


def _inner_venv(venv: Any) -> Any:
    from stable_baselines3.common.vec_env import VecEnvWrapper

    while isinstance(venv, VecEnvWrapper):
        venv = venv.venv
    return venv


def _rng_state(model: Any) -> dict[str, Any]:
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "action_space": copy.deepcopy(model.action_space.np_random.bit_generator.state)}


def _set_rng_state(model: Any, state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    model.action_space.np_random.bit_generator.state = state["action_space"]


# --------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------
class _Checkpointer(BaseCallback):
    """Checkpoints at rollout starts (after an update), every ``freq`` timesteps; on a resume, the
    first rollout start restores the random generators saved with the checkpoint instead."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, last: int = 0, restore: dict | None = None,
                 evaluator: Any = None) -> None:
        super().__init__(verbose=0)
        self.cfg = cfg
        self.dir = run_dir / "checkpoints"
        self.last = last
        self.restore = restore
        self.evaluator = evaluator

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        t = self.model.num_timesteps
        if self.restore is not None:
            _set_rng_state(self.model, self.restore)
            self.restore = None
            return
        if self.evaluator is not None:
            self.evaluator.maybe_evaluate(self.model)
        if t > 0 and t >= self.last + self.cfg.checkpoint_freq:
            save_checkpoint(self.model, self.cfg, self.dir, self.evaluator)
            self.last = t


class _Evaluator:
    """Mean return on fixed seeds (``eval_seed`` + k), deterministic actions, every ``eval_freq`` timesteps."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, history: dict[str, list] | None = None) -> None:
        from agents.evaluation import make_eval_env

        self.cfg = cfg
        self.path = run_dir / "evaluations.npz"
        self.env = make_eval_env(cfg.env, cfg.env_kwargs)  # made now: env construction must not happen mid-run
        self.history = history or {"timesteps": [], "results": []}
        self.last = self.history["timesteps"][-1] if self.history["timesteps"] else -1

    def maybe_evaluate(self, model: Any) -> None:
        t = model.num_timesteps
        if self.cfg.eval_freq <= 0 or t <= self.last or (self.last >= 0 and t < self.last + self.cfg.eval_freq):
            return
        self.last = t
        norm = model.get_vec_normalize_env()
        masked = type(model).__name__ == "MaskablePPO"
        returns = []
        for k in range(self.cfg.eval_episodes):
            obs, _ = self.env.reset(seed=self.cfg.eval_seed + k)
            done, total = False, 0.0
            while not done:
                o = norm.normalize_obs(obs) if norm is not None else obs
                if masked:
                    a, _ = model.predict(o, deterministic=True, action_masks=self.env.unwrapped.action_masks())
                else:
                    a, _ = model.predict(o, deterministic=True)
                obs, r, term, trunc, _ = self.env.step(a)
                total += float(r)
                done = term or trunc
            returns.append(total)
        self.history["timesteps"].append(t)
        self.history["results"].append(returns)
        np.savez(self.path, timesteps=np.array(self.history["timesteps"]),
                 results=np.array(self.history["results"], dtype=np.float64))
        model.logger.record("eval/mean_return", float(np.mean(returns)))


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------
def _ckpt_name(steps: int) -> str:
    return f"ckpt_{steps:012d}"


def _rms_state(rms: Any) -> Any:
    if isinstance(rms, dict):  # a Dict observation space: one per key
        return {k: _rms_state(v) for k, v in rms.items()}
    return {"mean": rms.mean, "var": rms.var, "count": rms.count}


def _set_rms(rms: Any, state: Any) -> None:
    if isinstance(rms, dict):
        for k, v in rms.items():
            _set_rms(v, state[k])
        return
    rms.mean, rms.var, rms.count = np.asarray(state["mean"]), np.asarray(state["var"]), float(state["count"])


def _norm_state(norm: Any) -> dict[str, Any]:
    """VecNormalize's statistics and settings as data (SB3 pickles the whole wrapper)."""
    return {"obs_rms": _rms_state(norm.obs_rms), "ret_rms": _rms_state(norm.ret_rms), "returns": norm.returns,
            "clip_obs": norm.clip_obs, "clip_reward": norm.clip_reward, "gamma": norm.gamma, "epsilon": norm.epsilon,
            "norm_obs": norm.norm_obs, "norm_reward": norm.norm_reward, "training": norm.training}


def _set_norm(norm: Any, state: dict[str, Any]) -> None:
    _set_rms(norm.obs_rms, state["obs_rms"])
    _set_rms(norm.ret_rms, state["ret_rms"])
    norm.returns = np.asarray(state["returns"])
    norm.training = bool(state["training"])


def _save_zip(model: Any, path: Path) -> None:
    """``model.save`` whole or not at all (SB3 writes the zip in place)."""
    from meg_gym.files import fsync_dir

    tmp = path.with_name(f".{path.stem}.tmp.zip")
    model.save(str(tmp))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _save_norm(norm: Any, stem: Path) -> list[Path]:
    from meg_gym.state import encode, save_state

    tree, arrays = encode(_norm_state(norm))
    return list(save_state(stem, tree, arrays))


def _load_norm(stem: Path) -> dict[str, Any]:
    from meg_gym.state import decode, load_state

    tree, arrays = load_state(stem)
    return decode(tree, arrays)


def save_checkpoint(model: Any, cfg: TrainConfig, ckpt_dir: Path, evaluator: Any = None) -> Path:
    """Model, replay buffer, VecNormalize, env states and random generators at ``model.num_timesteps``.

    Files: ``<stem>.zip`` (SB3's model), ``<stem>_state.json`` + ``<stem>_state.npz`` (everything
    else, as data: :mod:`meg_gym.state`), each written atomically, then ``<stem>_manifest.json``,
    written last, listing the files and their SHA-256: a checkpoint counts only when its manifest
    checks out (:func:`latest_checkpoint`).
    """
    from meg_gym.files import atomic_write, sha256_file
    from meg_gym.state import encode, save_state

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stem = ckpt_dir / _ckpt_name(model.num_timesteps)
    files = [Path(str(stem) + ".zip")]
    _save_zip(model, files[0])
    venv = model.get_env()
    norm = model.get_vec_normalize_env()
    inner = _inner_venv(venv)
    state: dict[str, Any] = {
        "num_timesteps": model.num_timesteps, "rng": _rng_state(model), "envs": _envs_state(inner),
        "vecnormalize": _norm_state(norm) if norm is not None else None,
        "replay_buffer": _buffer_state(model) if cfg.algo in _OFF_POLICY else None,
        "evaluations": copy.deepcopy(evaluator.history) if evaluator is not None else None}
    trees, arrays = {}, {}
    for key, value in state.items():  # each part on its own: decoded apart on resume
        trees[key], part = encode(value)
        arrays.update({f"{key}.{k}": v for k, v in part.items()})
        trees[key] = _prefix(trees[key], f"{key}.")
    files += save_state(Path(str(stem) + "_state"), trees, arrays)
    manifest = {"num_timesteps": int(model.num_timesteps), "files": {f.name: sha256_file(f) for f in files}}
    atomic_write(Path(str(stem) + "_manifest.json"), json.dumps(manifest, indent=1))
    return stem


def _prefix(tree: Any, prefix: str) -> Any:
    """``tree`` with its array keys prefixed (the parts of a checkpoint share one .npz)."""
    if isinstance(tree, list):
        return [_prefix(x, prefix) for x in tree]
    if isinstance(tree, dict):
        return {k: (prefix + v if k in ("a", "tensor") and isinstance(v, str) else _prefix(v, prefix))
                for k, v in tree.items()}
    return tree


def _buffer_state(model: Any) -> dict[str, Any]:
    from meg_gym.state import attrs_of

    return attrs_of(model.replay_buffer)


def _checkpoint_problem(manifest_path: Path) -> tuple[str | None, dict[str, Any]]:
    """What keeps a checkpoint from counting (None: it is complete), and its manifest."""
    from meg_gym.files import sha256_file

    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if not isinstance(files, dict) or not files or not isinstance(manifest["num_timesteps"], int):
            raise ValueError("no file list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its manifest is unreadable ({exc})", {}
    for name, digest in files.items():
        path = manifest_path.parent / str(name)
        if Path(str(name)).name != name or not path.is_file():
            return f"{name} is missing", manifest
        if sha256_file(path) != digest:
            return f"{name} does not match the SHA-256 its manifest records", manifest
    return None, manifest


def latest_checkpoint(run_dir: Path, report: bool = False) -> Path | None:
    """The stem of the newest complete checkpoint in ``run_dir/checkpoints`` (its manifest lists
    its files and they match their SHA-256), or None. A newer one that does not check out (a kill
    mid-write, a truncated file) is skipped, with a warning when ``report``."""
    import warnings

    folder = Path(run_dir) / "checkpoints"
    names = {p.name[:17] for p in folder.glob("ckpt_*") if re.match(r"ckpt_\d{12}", p.name)}
    for name in sorted(names, reverse=True):
        stem = folder / name
        m = Path(str(stem) + "_manifest.json")
        problem = _checkpoint_problem(m)[0] if m.exists() else "it has no manifest (a kill while it was written)"
        if problem is None:
            return stem
        if report:
            warnings.warn(f"checkpoint {stem.name} is skipped: {problem}", stacklevel=2)
    return None


def _has_complete_run(run_dir: Path) -> bool:
    return (run_dir / "final_model.zip").exists() or latest_checkpoint(run_dir) is not None


def _truncate_monitors(run_dir: Path, steps_per_env: int) -> None:
    """Keep the Monitor rows of episodes that ended by the checkpoint (the rest will be replayed)."""
    for f in (run_dir / "monitor").glob("*.monitor.csv"):
        lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
        if len(lines) < 2:
            continue
        keep, total = lines[:2], 0
        for line in lines[2:]:
            total += int(line.split(",")[1])
            if total > steps_per_env:
                break
            keep.append(line)
        atomic_write(f, "".join(keep))


# --------------------------------------------------------------------------------------
# Train
# --------------------------------------------------------------------------------------
def train(config: TrainConfig | str | Path | dict[str, Any], out: str | Path | None = None, resume: bool = False,
          callbacks: list | None = None, verbose: int = 0, **overrides: Any) -> dict[str, Any]:
    """Train from a config; returns a summary (run folder, timesteps, final model path).

    ``out``: the run folder (default ``runs/<config file stem>``). ``resume``: continue from its
    latest checkpoint to the same result as an uninterrupted run. ``callbacks``: extra SB3
    callbacks. ``overrides``: top-level config keys (``n_timesteps=...``, ``seed=...``).
    """
    cfg = config if isinstance(config, TrainConfig) else load_train_config(config, **overrides)
    if out is None:
        stem = Path(cfg.source).stem if cfg.source else f"{cfg.algo}_{cfg.env.replace('/', '_')}"
        out = Path("runs") / stem
    run_dir = Path(out)
    cfg_file = run_dir / "config.yaml"
    ckpt = latest_checkpoint(run_dir, report=True) if resume else None
    complete = ckpt is not None or _has_complete_run(run_dir)
    if complete and cfg_file.exists() and not _same_config(run_dir, cfg):
        raise TrainConfigError(f"the config differs from the one run folder {str(run_dir)!r} was started with "
                               f"({cfg_file}): resume with the same config, or choose another --out")
    done_file = run_dir / "summary.json"
    if resume and done_file.exists() and cfg_file.exists():
        finished = _read_json(done_file)
        if finished.get("timesteps", -1) >= cfg.n_timesteps and _same_config(run_dir, cfg):
            return {**finished, "already_complete": True}
    if not resume and complete:
        raise TrainConfigError(f"run folder {str(run_dir)!r} already holds checkpoints or a model: pass --resume "
                               f"to continue it, or choose another --out")
    if resume:  # say where the run goes on from: the newest complete checkpoint, or the start
        where = (f"checkpoint {ckpt.name}" if ckpt is not None
                 else "the start (no complete checkpoint: the run is begun again)")
        print(f"meg-gym train: resuming {run_dir} from {where}", file=sys.stderr)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not cfg_file.exists() or not _same_config(run_dir, cfg):  # written once (again only for a run never begun)
        atomic_write(cfg_file, yaml.safe_dump(yaml_ready(cfg.to_dict()), sort_keys=False))
    cls = _algo_class(cfg.algo)
    hp = _hyperparams(cfg)
    tb = str(run_dir / "tb")
    trees: dict[str, Any] | None = None
    arrays: dict[str, Any] = {}
    if ckpt is not None:
        from meg_gym.state import decode, load_state

        trees, arrays = load_state(Path(str(ckpt) + "_state"))
        if not isinstance(trees, dict):
            raise TrainConfigError(f"checkpoint {ckpt} holds no state mapping")
        steps = int(decode(trees["num_timesteps"], arrays))
        _truncate_monitors(run_dir, steps // cfg.n_envs)
    venv = _make_vec_env(cfg, run_dir, append=ckpt is not None)
    evaluator = None
    if cfg.eval_freq > 0 and not cfg.marl:
        history = decode(trees["evaluations"], arrays) if trees else None
        evaluator = _Evaluator(cfg, run_dir, history)
    venv = _wrap_normalize(cfg, venv)
    restore = None
    if ckpt is None:
        model = cls(cfg.policy, venv, seed=cfg.seed, tensorboard_log=tb, verbose=verbose, **hp)
        last = 0
    else:
        assert trees is not None
        model = cls.load(str(ckpt) + ".zip", env=venv, tensorboard_log=tb, device=hp["device"], force_reset=False,
                         verbose=verbose)  # the saved model's verbosity otherwise: --verbose was ignored on resume
        last, restore = _restore_checkpoint(model, cfg, trees, arrays)
    checkpointer = _Checkpointer(cfg, run_dir, last=last, restore=restore, evaluator=evaluator)
    remaining = cfg.n_timesteps - model.num_timesteps
    if remaining > 0:
        from stable_baselines3.common.callbacks import CallbackList

        model.learn(remaining, callback=CallbackList([checkpointer, *(callbacks or [])]),
                    reset_num_timesteps=ckpt is None, tb_log_name="run")
    final = run_dir / "final_model.zip"
    _save_zip(model, final)
    norm = model.get_vec_normalize_env()
    if norm is not None:
        _save_norm(norm, run_dir / "vecnormalize")
    venv.close()
    steps_from = int(decode(trees["num_timesteps"], arrays)) if trees else None
    summary = {"run_dir": str(run_dir), "algo": cfg.algo, "env": cfg.env, "timesteps": int(model.num_timesteps),
               "final_model": str(final), "resumed_from": steps_from}
    atomic_write(done_file, json.dumps(summary, indent=2))
    return summary


def _restore_checkpoint(model: Any, cfg: TrainConfig, trees: dict[str, Any], arrays: Any) -> tuple[int, Any]:
    """Write a checkpoint's state into a model loaded from its zip and its fresh envs: VecNormalize,
    the envs' worlds, the replay buffer. Returns (timesteps, the random generators' state)."""
    from meg_gym.state import attrs_of, decode

    norm = model.get_vec_normalize_env()
    if norm is not None and trees.get("vecnormalize") is not None:
        _set_norm(norm, decode(trees["vecnormalize"], arrays))
    from agents.native_vec import NativeVecEnv

    inner = _inner_venv(model.get_env())
    env_trees = trees.get("envs")
    if env_trees is not None and isinstance(inner, NativeVecEnv):
        inner.vector_env.reset(seed=0)  # what a reset builds is there to write into
        st = decode(env_trees, arrays, _envs_state(inner))
        _set_env_state(inner.vector_env, st["native"])
        inner.set_counters(st["counters"])
    elif env_trees is not None and hasattr(inner, "envs"):
        for e in inner.envs:  # a fresh env is reset first, so that what a reset builds is there to write into
            e.reset(seed=0)
        current = [_env_state(e) for e in inner.envs]
        for e, st in zip(inner.envs, decode(env_trees, arrays, current)):
            _set_env_state(e, st)
    else:  # the env state is not restorable (the PettingZoo vector envs): start the envs afresh
        model._last_obs = None
    if cfg.algo in _OFF_POLICY and trees.get("replay_buffer") is not None:
        buf = model.replay_buffer
        for k, v in decode(trees["replay_buffer"], arrays, attrs_of(buf)).items():
            object.__setattr__(buf, k, v)
    return int(decode(trees["num_timesteps"], arrays)), decode(trees["rng"], arrays)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainConfigError(f"{path} is not readable JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _same_config(run_dir: Path, cfg: TrainConfig) -> bool:
    f = run_dir / "config.yaml"
    return f.exists() and read_yaml(f.read_text(encoding="utf-8")) == yaml_ready(cfg.to_dict())


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's ``config.yaml`` as a mapping ({} if there is none); unreadable: TrainConfigError."""
    cfg_file = Path(run_dir) / "config.yaml"
    if not cfg_file.exists():
        return {}
    try:
        saved = read_yaml(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TrainConfigError(f"{cfg_file} is not readable YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(saved, dict):
        raise TrainConfigError(f"{cfg_file} must hold a mapping (got {type(saved).__name__})")
    return saved


class _Stats:
    """VecNormalize's running mean and variance as loaded from data (``.mean``, ``.var``, ``.count``)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.mean, self.var, self.count = np.asarray(state["mean"]), np.asarray(state["var"]), float(state["count"])


def load_model(path: str | Path) -> tuple[Any, Any]:
    """(model, VecNormalize statistics or None) from a run folder, its ``final_model.zip`` or a checkpoint.

    The statistics are ``(obs_rms, epsilon, clip_obs)``: observations go in as
    ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``.
    """
    p = Path(path)
    zip_path = p / "final_model.zip" if p.is_dir() else p
    if not zip_path.exists():
        raise TrainConfigError(f"model {str(zip_path)!r} does not exist (train first, or give a checkpoint .zip)")
    run_dir = zip_path.parent.parent if zip_path.parent.name == "checkpoints" else zip_path.parent
    algo = run_config(run_dir).get("algo")
    candidates = [algo] if algo in ALGOS else list(ALGOS)
    model, errors = None, []
    for a in candidates:
        try:
            model = _algo_class(a).load(str(zip_path), device="cpu")
            break
        except Exception as exc:  # noqa: BLE001 - try the next algorithm
            errors.append(f"{a}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if model is None:
        raise TrainConfigError(f"model {str(zip_path)!r} could not be loaded as any of {candidates} ({errors[0]})")
    norm_stem = (Path(str(zip_path)[: -len(".zip")] + "_state") if zip_path.parent.name == "checkpoints"
                 else run_dir / "vecnormalize")
    obs_rms = None
    if zip_path.parent.name == "checkpoints" and norm_stem.with_name(norm_stem.name + ".json").exists():
        from meg_gym.state import decode, load_state

        trees, arrays = load_state(norm_stem)
        norm = decode(trees.get("vecnormalize"), arrays) if isinstance(trees, dict) else None
    elif norm_stem.with_name(norm_stem.name + ".json").exists():
        norm = _load_norm(norm_stem)
    else:
        norm = None
    if norm and norm["norm_obs"]:
        obs_rms = (_Stats(norm["obs_rms"]), float(norm["epsilon"]), float(norm["clip_obs"]))
    return model, obs_rms
