"""SB3 PPO training speed (default settings, 8 envs) on MEG/SingleES-v1 against CartPole-v1, in one process.

Usage: PYTHONPATH=. python benchmarks/sb3_native_speed.py [--rounds 2] [--n-envs 8] [--action-type multidiscrete]
       [--dummy] [--json [PATH]]

Each model is SB3's ``PPO("MlpPolicy", venv)`` with its default hyper-parameters
(``n_steps=2048``, ``batch_size=64``, ``n_epochs=10``), so a round is one rollout of
``2048 x n_envs`` steps and one update. MEG/SingleES-v1 steps through the native vector env
adapter (``agents.native_vec_env``; ``--dummy`` adds SB3's ``DummyVecEnv`` of Monitor-wrapped
envs, the path ``vec_env: dummy`` trains on), CartPole-v1 through ``DummyVecEnv`` (SB3's
``make_vec_env``). The models take turns, one round each, and each one's best round is
reported (``timeit``'s advice: slower rounds measure the machine's other jobs), with the
per-round ratio's range. Steps per second count env steps, rollout and update together.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

RESULT = Path(__file__).resolve().parent / "results" / "sb3_native_speed.json"


def _models(n_envs: int, dummy: bool, action_type: str) -> dict[str, object]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    import envs  # noqa: F401
    from agents.native_vec import native_vec_env

    venvs = {"CartPole-v1": make_vec_env("CartPole-v1", n_envs=n_envs, seed=0),
             "MEG/SingleES-v1 native": native_vec_env("MEG/SingleES-v1", n_envs, seed=0, action_type=action_type)}
    if dummy:
        venvs["MEG/SingleES-v1 dummy"] = make_vec_env("MEG/SingleES-v1", n_envs=n_envs, seed=0,
                                                      env_kwargs={"action_type": action_type})
    return {name: PPO("MlpPolicy", v, seed=0, device="cpu") for name, v in venvs.items()}


def measure(rounds: int, n_envs: int, dummy: bool, action_type: str = "multidiscrete") -> dict[str, object]:
    models = _models(n_envs, dummy, action_type)
    per_round: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():  # warm-up: the env's compiled walk and torch's first calls stay out of the rounds
        venv = m.get_env()
        obs = venv.reset()
        for _ in range(64):
            obs, *_ = venv.step(m.predict(obs)[0])
        m._last_obs = None  # learn() starts from a reset
    for _ in range(rounds):
        for k, m in models.items():
            steps = m.n_steps * n_envs
            t0 = time.perf_counter()
            m.learn(steps, reset_num_timesteps=False)
            per_round[k].append(steps / (time.perf_counter() - t0))
    best = {k: max(v) for k, v in per_round.items()}
    out: dict[str, object] = {"steps_per_s": best, "per_round": per_round, "rounds": rounds, "n_envs": n_envs,
                              "action_type": action_type, "torch_threads": torch.get_num_threads()}
    for k in models:
        if k != "CartPole-v1":
            ratios = [a / c for a, c in zip(per_round[k], per_round["CartPole-v1"], strict=True)]
            out[f"{k} / CartPole-v1"] = {"best": best[k] / best["CartPole-v1"], "min_round": min(ratios),
                                         "max_round": max(ratios)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n-envs", type=int, default=8)
    ap.add_argument("--action-type", default="multidiscrete", help="the MEG env's action codec: multidiscrete "
                    "(two heads, as the shipped configs train) or discrete (one head, as CartPole's)")
    ap.add_argument("--dummy", action="store_true", help="also time MEG/SingleES-v1 on DummyVecEnv")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--json", nargs="?", const=str(RESULT), help=f"write the result as JSON (default {RESULT})")
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    res = measure(args.rounds, args.n_envs, args.dummy, args.action_type)
    for k, v in res["steps_per_s"].items():
        print(f"{k:<26} {v:10,.0f} steps/s (best of {args.rounds})")
    for k, v in res.items():
        if k.endswith("/ CartPole-v1"):
            print(f"{k}: {v['best']:.3f}x (rounds {v['min_round']:.3f}..{v['max_round']:.3f})")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(res, indent=2), encoding="utf-8")
        tmp.replace(path)


if __name__ == "__main__":
    main()
