"""RLlib (2.60, new API stack) PPO on MEG/SingleES-v1 by its plain id, sampled on a remote EnvRunner.

    python examples/rllib_ppo.py --timesteps 20000
    python examples/rllib_ppo.py --timesteps 20000 --num-envs 8 --native-vector   # MegVectorEnv on the runner

``import envs`` registers the MEG ids with gymnasium and with Ray's tune registry, which RLlib's remote
EnvRunners consult before gymnasium (envs/rllib.py), so ``.environment("MEG/SingleES-v1")`` works on workers
that never imported ``envs``; ``"envs:MEG/SingleES-v1"`` works too. ``--native-vector`` sets
``gym_env_vectorize_mode="vector_entry_point"``: each runner steps the envs' numpy vector env instead of N envs.
Prints ``result: rllib PPO MEG/SingleES-v1 (...) timesteps=... iterations=... episode_return_mean=...``.
"""

import argparse

import ray
from ray.rllib.algorithms.ppo import PPOConfig

import envs  # noqa: F401  (registers the MEG/ ids, for gymnasium and for Ray's workers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=20_000, help="environment steps to sample (all envs)")
    p.add_argument("--env-id", default="MEG/SingleES-v1")
    p.add_argument("--num-envs", type=int, default=1, help="envs per EnvRunner")
    p.add_argument("--native-vector", action="store_true", help="the MEG native vector env on each runner")
    p.add_argument("--batch", type=int, default=2000, help="train batch per iteration (steps)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    ray.init(num_cpus=2, include_dashboard=False)
    batch = min(args.batch, args.timesteps)
    config = (PPOConfig()
              .environment(args.env_id)
              .env_runners(num_env_runners=1, num_envs_per_env_runner=args.num_envs,
                           gym_env_vectorize_mode="vector_entry_point" if args.native_vector else "sync")
              .training(train_batch_size_per_learner=batch, minibatch_size=min(128, batch), num_epochs=4, lr=3e-4)
              .debugging(seed=args.seed))
    algo = config.build_algo()
    sampled, iterations, ret = 0, 0, float("nan")
    while sampled < args.timesteps:
        result = algo.train()
        iterations += 1
        sampled = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
        ret = result["env_runners"].get("episode_return_mean", ret)
    algo.stop()
    ray.shutdown()
    kind = f"native vector x{args.num_envs}" if args.native_vector else f"{args.num_envs} env(s)"
    print(f"result: rllib PPO {args.env_id} ({kind}, 1 remote EnvRunner) timesteps={sampled} "
          f"iterations={iterations} episode_return_mean={ret:.2f}")


if __name__ == "__main__":
    main()
