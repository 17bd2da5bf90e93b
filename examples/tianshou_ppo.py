"""Tianshou 2.0 PPO on MEG/MultiES-v1 (or any MEG id) over Tianshou's own DummyVectorEnv.

    python examples/tianshou_ppo.py --timesteps 20000 --env-id MEG/MultiES-v1

Tianshou steps its own vector envs (``tianshou.env.DummyVectorEnv`` of ``gym.make`` envs), so the native
vector env is not used here. ``action_type="discrete"``: one ``Discrete(placements x shares)`` action for a
categorical actor. Tianshou stacks the info dicts of its envs every step, so every info key keeps one shape
(``es_mask`` is a fixed-length boolean array over the ESs). Prints
``result: tianshou PPO <id> timesteps=... test_episodes=... mean_return=...``.
"""

import argparse

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.modelfree.ppo import PPO
from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Collector, VectorReplayBuffer
from tianshou.env import DummyVectorEnv
from tianshou.trainer import OnPolicyTrainerParams
from tianshou.utils.net.common import Net
from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic

import envs  # noqa: F401  (registers the MEG/ ids)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=20_000, help="environment steps to train for (all envs)")
    p.add_argument("--env-id", default="MEG/SingleES-v1")
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--collect-steps", type=int, default=1024, help="steps collected before each update")
    p.add_argument("--test-episodes", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    def make() -> gym.Env:
        return gym.make(args.env_id, action_type="discrete")

    train_envs = DummyVectorEnv([make for _ in range(args.num_envs)])
    test_envs = DummyVectorEnv([make for _ in range(args.test_episodes)])
    train_envs.seed(args.seed)
    test_envs.seed(args.seed + 100)
    probe = make()
    obs_dim, n_actions = probe.observation_space.shape[0], int(probe.action_space.n)

    actor = DiscreteActor(preprocess_net=Net(state_shape=obs_dim, hidden_sizes=[64, 64]), action_shape=n_actions,
                          softmax_output=False)
    critic = DiscreteCritic(preprocess_net=Net(state_shape=obs_dim, hidden_sizes=[64, 64]))
    policy = DiscreteActorPolicy(actor=actor, action_space=probe.action_space, deterministic_eval=True,
                                 dist_fn=lambda logits: torch.distributions.Categorical(logits=logits))
    algorithm = PPO(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=3e-4), max_grad_norm=0.5)

    collect = min(args.collect_steps, args.timesteps)
    train_collector = Collector(algorithm, train_envs, VectorReplayBuffer(collect, args.num_envs))
    test_collector = Collector(algorithm, test_envs)
    stats = algorithm.run_training(OnPolicyTrainerParams(
        training_collector=train_collector, test_collector=None, max_epochs=1,  # tested once, below
        epoch_num_steps=max(collect, args.timesteps), collection_step_num_env_steps=collect,
        update_step_num_repetitions=4, batch_size=64,
        show_progress=False, verbose=False))
    result = test_collector.collect(n_episode=args.test_episodes, reset_before_collect=True)
    print(f"result: tianshou PPO {args.env_id} timesteps={stats.train_step} "
          f"test_episodes={result.n_collected_episodes} mean_return={np.mean(result.returns):.2f}")


if __name__ == "__main__":
    main()
