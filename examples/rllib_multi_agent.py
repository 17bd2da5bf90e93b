"""RLlib (2.60, new API stack) PPO on the PettingZoo env multi_ue_v1, one policy shared by every UE.

    python examples/rllib_multi_agent.py --timesteps 20000

RLlib's ``ParallelPettingZooEnv`` turns the parallel env into an RLlib ``MultiAgentEnv``; ``register_env`` ships
its creator to the remote EnvRunner (``envs`` is imported there when the creator is unpickled). Every agent maps
to the policy ``"shared"`` (parameter sharing: the UEs are alike). Prints
``result: rllib PPO multi_ue_v1 agents=4 (shared policy) timesteps=... iterations=... episode_return_mean=...``
(an episode's return summed over the agents, as RLlib reports it).
"""

import argparse

import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

import envs


def make_env(env_config: dict) -> ParallelPettingZooEnv:
    """The RLlib env: multi_ue_v1 with the env config's keyword arguments (e.g. ``num_ues``)."""
    return ParallelPettingZooEnv(envs.multi_ue_v1.parallel_env(**env_config))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=20_000, help="joint env steps to sample")
    p.add_argument("--num-ues", type=int, default=4)
    p.add_argument("--batch", type=int, default=2000, help="train batch per iteration (agent steps)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    ray.init(num_cpus=2, include_dashboard=False)
    register_env("multi_ue_v1", make_env)
    batch = min(args.batch, args.timesteps)
    config = (PPOConfig()
              .environment("multi_ue_v1", env_config={"num_ues": args.num_ues})
              .env_runners(num_env_runners=1)
              .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, episode, **kw: "shared")
              .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={"shared": RLModuleSpec()}))
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
    print(f"result: rllib PPO multi_ue_v1 agents={args.num_ues} (shared policy) timesteps={sampled} "
          f"iterations={iterations} episode_return_mean={ret:.2f}")


if __name__ == "__main__":
    main()
