"""Ray Tune sweep of RLlib PPO's learning rate on a MEG env, from a shipped RLlib training config.

Usage:
    python examples/rllib_tune_lr.py [--config configs/train/rllib_ppo_single_es.yaml]
        [--lr 1e-4,3e-4,1e-3] [--timesteps 20000] [--out out/tune_lr] [--ray-address auto] [--tiny]

Each trial is the config's PPO with one learning rate (a grid search), stopped after
``--timesteps`` env steps; it prints one line per trial and a ``result:`` line with each
trial's last mean training-episode return. ``--tiny`` is a smoke setting (20-request episodes,
a 40-step batch, the first two learning rates, sampling in the driver). The env creators, the
shared policy of a multi-agent config and the rest of the glue come from ``agents.rllib``;
this file holds none.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agents.rllib import build_algorithm_config, init_ray, load_rllib_config

TINY = {"env_kwargs": {"workload": {"requests_per_episode": 20}}, "num_env_runners": 0,
        "hyperparams": {"train_batch_size_per_learner": 40, "minibatch_size": 20, "num_epochs": 1},
        "model": {"fcnet_hiddens": [16]}}


def sweep(config: str, lrs: list[float], n_timesteps: int, out: Path, ray_address: str | None,
          tiny: bool = False) -> list[dict[str, float]]:
    """Run one trial per learning rate; per trial its lr, env steps and last mean training return."""
    from ray import tune

    overrides = dict(TINY) if tiny else {}
    if tiny:
        base = load_rllib_config(config)
        overrides["hyperparams"] = {**base.hyperparams, **TINY["hyperparams"]}
    cfg = load_rllib_config(config, n_timesteps=n_timesteps, **overrides)
    init_ray(ray_address)
    param_space = build_algorithm_config(cfg, lr=tune.grid_search(lrs))
    tuner = tune.Tuner(
        cfg.algo.upper(), param_space=param_space,
        run_config=tune.RunConfig(name="lr_sweep", storage_path=str(out.resolve()), verbose=0,
                                  stop={"env_runners/num_env_steps_sampled_lifetime": n_timesteps}))
    grid = tuner.fit()
    rows = []
    for res in grid:
        m = res.metrics or {}
        er = m.get("env_runners", {})
        rows.append({"lr": float(res.config["lr"]), "timesteps": int(er.get("num_env_steps_sampled_lifetime", 0)),
                     "episode_return_mean": float(er.get("episode_return_mean", float("nan")))})
    return sorted(rows, key=lambda r: r["lr"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train/rllib_ppo_single_es.yaml")
    ap.add_argument("--lr", default="1e-4,3e-4,1e-3", help="comma-separated learning rates")
    ap.add_argument("--timesteps", type=int, default=20_000, help="env steps per trial")
    ap.add_argument("--out", default="out/tune_lr")
    ap.add_argument("--ray-address", help="'auto' or host:port (default: a local Ray with this machine's cores)")
    ap.add_argument("--tiny", action="store_true", help="smoke settings: short episodes, small batches, 2 rates")
    args = ap.parse_args()
    lrs = [float(x) for x in args.lr.split(",")]
    if args.tiny:
        lrs = lrs[:2]
    rows = sweep(args.config, lrs, args.timesteps, Path(args.out), args.ray_address, tiny=args.tiny)
    for row in rows:
        print(json.dumps(row))
    env = load_rllib_config(args.config).env
    trials = " ".join(f"lr={r['lr']:g}:episode_return_mean={r['episode_return_mean']:.3f}" for r in rows)
    print(f"result: rllib Tune PPO lr sweep {env} trials={len(rows)} timesteps={min(r['timesteps'] for r in rows)} "
          f"{trials}")


if __name__ == "__main__":
    main()
