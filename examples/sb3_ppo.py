"""Stable-Baselines3 PPO on MEG/SingleES-v1, then a deterministic evaluation.

    python examples/sb3_ppo.py --timesteps 20000

Prints one line: ``result: sb3 PPO MEG/SingleES-v1 timesteps=... eval_episodes=... mean_return=... (random ...)``.
"""

import argparse

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import envs  # noqa: F401  (registers the MEG/ ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=20_000, help="environment steps to train for")
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = gym.make("MEG/SingleES-v1")
    # n_steps no larger than the budget, so a tiny run still updates the policy once
    model = PPO("MlpPolicy", env, n_steps=min(1024, args.timesteps), batch_size=64, seed=args.seed, verbose=0)
    model.learn(total_timesteps=args.timesteps)

    eval_env = Monitor(gym.make("MEG/SingleES-v1"))  # episode returns as the env gave them
    eval_env.reset(seed=args.seed + 1)
    mean_return, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    eval_env.reset(seed=args.seed + 1)
    eval_env.action_space.seed(args.seed)
    random_return = _random_return(eval_env, args.eval_episodes)
    print(f"result: sb3 PPO MEG/SingleES-v1 timesteps={model.num_timesteps} eval_episodes={args.eval_episodes} "
          f"mean_return={mean_return:.2f} (random {random_return:.2f})")


def _random_return(env: gym.Env, episodes: int) -> float:
    """Mean episode return of uniformly random actions (the baseline a trained policy should beat)."""
    total = 0.0
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
    return total / episodes


if __name__ == "__main__":
    main()
