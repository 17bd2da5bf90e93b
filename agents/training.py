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
``final_model.zip`` (with ``vecnormalize.pkl`` when normalising).

Resume. A checkpoint is taken where an update has just finished and the next rollout begins
(SB3's ``on_rollout_start``), and holds everything the rest of the run depends on: the model
(parameters, optimiser state, ``num_timesteps``, the last observation), the replay buffer
(DQN, SAC), the VecNormalize statistics and running returns, the state of every training env
(the MEG world: channel, queues, request stream and their generators; the wrappers' counters)
and the random generators (Python, NumPy's global, torch's, the action space's).
``train(config, out=..., resume=True)`` restores the latest checkpoint and continues, and
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
import io
import json
import os
import pickle
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback

from meg_gym.config import ConfigError, yaml_ready
from meg_gym.config import _Loader as _Loader  # the project's safe YAML loader

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
        raise TrainConfigError(f"'{key}' must be an integer >= {minimum} (got {v!r})")
    return v


def _algo_class(algo: str) -> type:
    module, name, _, _ = ALGOS[algo]
    mod = __import__(module, fromlist=[name])
    return getattr(mod, name)


def load_train_config(source: str | Path | dict[str, Any], **overrides: Any) -> TrainConfig:
    """A validated :class:`TrainConfig` from a YAML path or a mapping; ``overrides`` replace top-level keys.

    Raises :class:`TrainConfigError` naming the field, what is allowed and what was given.
    """
    shown = ""
    path: Path | None = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        shown = str(source)
        if not path.exists() and isinstance(source, str) and not path.suffix and len(path.parts) == 1:
            path = TRAIN_CONFIGS_DIR / f"{source}.yaml"  # a shipped config's bare name
        if not path.is_file():
            raise TrainConfigError(f"training config {shown} does not exist (shipped: "
                                   f"{sorted(p.stem for p in TRAIN_CONFIGS_DIR.glob('*.yaml'))})")
        try:
            # the scenario loader's YAML: safe, reads 3e-4 as a number (YAML 1.1 wants 3.0e-4), no duplicate keys
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}  # noqa: S506
        except yaml.YAMLError as exc:
            raise TrainConfigError(f"training config {shown} is not valid YAML: {str(exc).splitlines()[0]}") from None
    else:
        data = dict(source)
    if not isinstance(data, dict):
        raise TrainConfigError(f"training config {shown} must hold a mapping at top level (got {type(data).__name__})")
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    library = data.pop("library", "sb3")
    if library != "sb3":
        raise TrainConfigError(f"'library' must be 'sb3' for an SB3 config (got {library!r}; an RLlib config "
                               f"loads with agents.rllib.load_rllib_config, and meg-gym train runs either)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise TrainConfigError(f"'{unknown[0]}' is not a known field of a training config; allowed: {sorted(_KEYS)}")
    algo = data.get("algo")
    if algo not in ALGOS:
        raise TrainConfigError(f"'algo' must be one of {list(ALGOS)} (got {algo!r})")
    env = data.get("env")
    import gymnasium as gym

    import envs  # noqa: F401  (registers the MEG ids)

    known_envs = sorted(k for k in gym.registry if k.startswith("MEG/")) + list(MARL_ENVS)
    if env not in known_envs:
        raise TrainConfigError(f"'env' must be one of {known_envs} (got {env!r})")
    env_kwargs = data.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise TrainConfigError(f"'env_kwargs' must be a mapping (got {env_kwargs!r})")
    env_kwargs = dict(env_kwargs)
    _, _, default_action, allowed_actions = ALGOS[algo]
    if env not in MARL_ENVS:
        action_type = env_kwargs.setdefault("action_type", default_action)
        if action_type not in allowed_actions:
            raise TrainConfigError(f"'env_kwargs.action_type' must be one of {list(allowed_actions)} for {algo} "
                                   f"(got {action_type!r})")
    hyper = data.get("hyperparams") or {}
    if not isinstance(hyper, dict):
        raise TrainConfigError(f"'hyperparams' must be a mapping (got {hyper!r})")
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
                               f"(got {normalize!r})")
    policy = data.get("policy", "MlpPolicy")
    if policy not in ("MlpPolicy", "MultiInputPolicy"):
        raise TrainConfigError(f"'policy' must be one of ['MlpPolicy', 'MultiInputPolicy'] (got {policy!r})")
    vec_env = data.get("vec_env", "dummy")
    if vec_env not in VEC_ENVS:
        raise TrainConfigError(f"'vec_env' must be one of {list(VEC_ENVS)} (got {vec_env!r})")
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
                raise TrainConfigError(f"'hyperparams.{key}' must be a number or 'lin_<number>' (got {v!r})")
            hp[key] = LinearSchedule(float(m.group(1)))
    pk = hp.get("policy_kwargs")
    if pk is not None:
        if not isinstance(pk, dict):
            raise TrainConfigError(f"'hyperparams.policy_kwargs' must be a mapping (got {pk!r})")
        pk = dict(pk)
        act = pk.get("activation_fn")
        if isinstance(act, str):
            if act not in _ACTIVATIONS:
                raise TrainConfigError(f"'hyperparams.policy_kwargs.activation_fn' must be one of "
                                       f"{sorted(_ACTIVATIONS)} (got {act!r})")
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
def _static_objects(base: Any) -> dict[int, tuple[str, ...]]:
    """Heavy objects a fresh env of the same config rebuilds identically: the model components
    (and any torch module) held by the env's system. Pickled as references, not copied."""
    import torch

    out: dict[int, tuple[str, ...]] = {}
    system = getattr(getattr(base, "world", None), "system", None)
    if system is None:
        return out
    for k, v in vars(system).items():
        if type(v).__name__ == "Components" or isinstance(v, torch.nn.Module):
            out[id(v)] = ("world", "system", k)
    return out


def _resolve(base: Any, path: tuple[str, ...]) -> Any:
    obj = base
    for part in path:
        obj = getattr(obj, part)
    return obj


def _dump_env(gym_env: Any) -> bytes:
    """The state of one training env (the MEG env and its wrappers' counters) as bytes."""
    base = gym_env.unwrapped
    static = _static_objects(base)

    class _P(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return static.get(id(obj))

    wrappers = []
    e = gym_env
    while e is not base:
        state = {}
        for k, v in vars(e).items():
            if k in ("env", "results_writer") or k.startswith("_cached"):
                continue
            try:
                pickle.dumps(v)
            except Exception:  # noqa: BLE001 - file handles and the like: not state
                continue
            state[k] = v
        wrappers.append(state)
        e = e.env
    buf = io.BytesIO()
    _P(buf).dump({"base": base.__dict__, "wrappers": wrappers})
    return buf.getvalue()


def _load_env(gym_env: Any, blob: bytes) -> None:
    base = gym_env.unwrapped

    class _U(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            return _resolve(base, pid)

    state = _U(io.BytesIO(blob)).load()
    base.__dict__.update(state["base"])
    e = gym_env
    for w in state["wrappers"]:
        for k, v in w.items():
            setattr(e, k, v)
        e = e.env


def _dump_envs(inner: Any) -> list[bytes] | None:
    """The training envs' states: each of DummyVecEnv's envs, or the native vector env and its adapter's
    counters; None where they are not reachable (SuperSuit's vector env)."""
    from agents.native_vec import NativeVecEnv

    if isinstance(inner, NativeVecEnv):
        return [_dump_env(inner.vector_env), pickle.dumps(inner.get_counters())]
    if hasattr(inner, "envs"):
        return [_dump_env(e) for e in inner.envs]
    return None


def _load_envs(inner: Any, blobs: list[bytes]) -> None:
    from agents.native_vec import NativeVecEnv

    if isinstance(inner, NativeVecEnv):
        _load_env(inner.vector_env, blobs[0])
        inner.set_counters(pickle.loads(blobs[1]))  # noqa: S301 - our own checkpoint
        return
    for e, blob in zip(inner.envs, blobs):
        _load_env(e, blob)


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


def save_checkpoint(model: Any, cfg: TrainConfig, ckpt_dir: Path, evaluator: Any = None) -> Path:
    """Model, replay buffer, VecNormalize, env states and random generators at ``model.num_timesteps``.

    The state file is written last (atomically): a checkpoint without it is incomplete and ignored.
    """
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stem = ckpt_dir / _ckpt_name(model.num_timesteps)
    model.save(str(stem) + ".zip")
    if cfg.algo in _OFF_POLICY:
        model.save_replay_buffer(str(stem) + "_replay_buffer.pkl")
    venv = model.get_env()
    norm = model.get_vec_normalize_env()
    state: dict[str, Any] = {"num_timesteps": model.num_timesteps, "rng": _rng_state(model), "envs": None,
                             "vecnormalize_returns": None,
                             "evaluations": copy.deepcopy(evaluator.history) if evaluator is not None else None}
    if norm is not None:
        norm.save(str(stem) + "_vecnormalize.pkl")
        state["vecnormalize_returns"] = norm.returns.copy()
    state["envs"] = _dump_envs(_inner_venv(venv))
    tmp = Path(str(stem) + "_state.pkl.tmp")
    with tmp.open("wb") as f:
        pickle.dump(state, f)
    os.replace(tmp, str(stem) + "_state.pkl")
    return stem


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The stem of the newest complete checkpoint in ``run_dir/checkpoints``, or None."""
    states = sorted((Path(run_dir) / "checkpoints").glob("ckpt_*_state.pkl"))
    for s in reversed(states):
        stem = Path(str(s)[: -len("_state.pkl")])
        if Path(str(stem) + ".zip").exists():
            return stem
    return None


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
        f.write_text("".join(keep), encoding="utf-8")


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
    ckpt = latest_checkpoint(run_dir) if resume else None
    done_file = run_dir / "summary.json"
    if resume and done_file.exists() and (run_dir / "config.yaml").exists():
        finished = json.loads(done_file.read_text(encoding="utf-8"))
        if finished.get("timesteps", -1) >= cfg.n_timesteps and _same_config(run_dir, cfg):
            return {**finished, "already_complete": True}
    if resume and (run_dir / "config.yaml").exists() and not _same_config(run_dir, cfg):
        raise TrainConfigError(f"the config differs from the one run folder {str(run_dir)!r} was started with "
                               f"({run_dir / 'config.yaml'}): resume with the same config")
    if resume and ckpt is None:
        raise TrainConfigError(f"run folder {str(run_dir)!r} has no complete checkpoint to resume from: "
                               f"start without --resume")
    started = (run_dir / "final_model.zip").exists() or ((run_dir / "checkpoints").exists()
                                                         and any((run_dir / "checkpoints").iterdir()))
    if not resume and started:
        raise TrainConfigError(f"run folder {str(run_dir)!r} already holds checkpoints or a model: pass --resume "
                               f"to continue it, or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(yaml_ready(cfg.to_dict()), sort_keys=False),
                                         encoding="utf-8")
    cls = _algo_class(cfg.algo)
    hp = _hyperparams(cfg)
    tb = str(run_dir / "tb")
    state: dict[str, Any] | None = None
    if ckpt is not None:
        with open(str(ckpt) + "_state.pkl", "rb") as f:
            state = pickle.load(f)
        _truncate_monitors(run_dir, state["num_timesteps"] // cfg.n_envs)
    venv = _make_vec_env(cfg, run_dir, append=ckpt is not None)
    evaluator = None
    if cfg.eval_freq > 0 and not cfg.marl:
        evaluator = _Evaluator(cfg, run_dir, state["evaluations"] if state else None)
    if ckpt is None:
        venv = _wrap_normalize(cfg, venv)
        model = cls(cfg.policy, venv, seed=cfg.seed, tensorboard_log=tb, verbose=verbose, **hp)
        last = 0
    else:
        assert state is not None
        if cfg.normalize:
            from stable_baselines3.common.vec_env import VecNormalize

            venv = VecNormalize.load(str(ckpt) + "_vecnormalize.pkl", venv)
            venv.returns = state["vecnormalize_returns"]
        if state["envs"] is not None:
            _load_envs(_inner_venv(venv), state["envs"])
        model = cls.load(str(ckpt) + ".zip", env=venv, tensorboard_log=tb, device=hp["device"], force_reset=False,
                         verbose=verbose)  # the saved model's verbosity otherwise: --verbose was ignored on resume
        if cfg.algo in _OFF_POLICY:
            model.load_replay_buffer(str(ckpt) + "_replay_buffer.pkl")
        if state["envs"] is None:  # the env state is not restorable: start the envs afresh
            model._last_obs = None
        last = state["num_timesteps"]
    checkpointer = _Checkpointer(cfg, run_dir, last=last, restore=state["rng"] if state else None,
                                 evaluator=evaluator)
    remaining = cfg.n_timesteps - model.num_timesteps
    if remaining > 0:
        from stable_baselines3.common.callbacks import CallbackList

        model.learn(remaining, callback=CallbackList([checkpointer, *(callbacks or [])]),
                    reset_num_timesteps=ckpt is None, tb_log_name="run")
    final = run_dir / "final_model.zip"
    model.save(str(final))
    norm = model.get_vec_normalize_env()
    if norm is not None:
        norm.save(str(run_dir / "vecnormalize.pkl"))
    venv.close()
    summary = {"run_dir": str(run_dir), "algo": cfg.algo, "env": cfg.env, "timesteps": int(model.num_timesteps),
               "final_model": str(final), "resumed_from": int(state["num_timesteps"]) if state else None}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _same_config(run_dir: Path, cfg: TrainConfig) -> bool:
    f = run_dir / "config.yaml"
    return f.exists() and yaml.safe_load(f.read_text(encoding="utf-8")) == yaml_ready(cfg.to_dict())


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
    algo = None
    cfg_file = run_dir / "config.yaml"
    if cfg_file.exists():
        algo = (yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}).get("algo")
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
    norm_file = (Path(str(zip_path)[: -len(".zip")] + "_vecnormalize.pkl") if zip_path.parent.name == "checkpoints"
                 else run_dir / "vecnormalize.pkl")
    obs_rms = None
    if norm_file.exists():
        with norm_file.open("rb") as f:
            norm = pickle.load(f)
        if norm.norm_obs:
            obs_rms = (norm.obs_rms, norm.epsilon, norm.clip_obs)
    return model, obs_rms
