"""The probes behind docs/compatibility.md's "breaks" and "not covered" cells: each builds the env the library's
way, steps it a little, and prints ``PROBE <name> OK <what it saw>`` or ``PROBE <name> FAIL <error type> <message>``.

    python benchmarks/compat_probes.py            # every probe whose library is installed
    python benchmarks/compat_probes.py torchrl    # the probes of one library

A probe steps, it does not train: a "works" in the table needs an example test (tests/examples).
"""

import importlib.util
import sys
import warnings

import gymnasium as gym

import envs


def _vec(**kwargs):
    return gym.make_vec("MEG/SingleES-v1", num_envs=4, vectorization_mode="vector_entry_point", **kwargs)


def sb3_native_vector():
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", _vec(), n_steps=64).learn(64).num_timesteps


def tianshou_native_vector():
    from tianshou.env import DummyVectorEnv

    return DummyVectorEnv([_vec]).reset()[0].shape


def tianshou_pettingzoo_aec():
    from tianshou.env import PettingZooEnv

    env = PettingZooEnv(envs.multi_ue_v1.env(num_ues=2))
    env.reset(seed=0)
    for _ in range(6):  # three turns of each agent
        obs, rewards, *_ = env.step(env.action_space.sample())
    return sorted(obs), obs["agent_id"], len(rewards)


def _skrl_steps(env):
    import torch
    from skrl.envs.wrappers.torch import wrap_env

    w = wrap_env(env, wrapper="gymnasium")
    w.reset()
    actions = torch.tensor([w.action_space.sample() for _ in range(w.num_envs)])
    for _ in range(3):
        obs, reward, *_ = w.step(actions)
    return tuple(obs.shape), tuple(reward.shape)


def skrl_single():
    return _skrl_steps(gym.make("MEG/SingleES-v1"))


def skrl_native_vector():
    return _skrl_steps(_vec())


def torchrl_native_vector_same_step():
    from torchrl.envs import GymWrapper

    return GymWrapper(_vec(autoreset_mode="SameStep")).rollout(3).shape


def torchrl_sync_vector_same_step():
    from torchrl.envs import GymWrapper

    sync = gym.make_vec("MEG/SingleES-v1", num_envs=4, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    return GymWrapper(sync).rollout(3).shape


def torchrl_native_vector_next_step():
    from torchrl.envs import GymWrapper

    return GymWrapper(_vec()).rollout(3).shape


def torchrl_pettingzoo():
    from torchrl.envs import PettingZooWrapper

    return PettingZooWrapper(envs.multi_ue_v1.parallel_env(), use_mask=False).rollout(5).shape


def mo_gymnasium_native_vector():
    from mo_gymnasium.wrappers.vector import MORecordEpisodeStatistics

    v = MORecordEpisodeStatistics(_vec(reward_type="vector"), gamma=1.0)
    v.reset(seed=0)
    returns = []
    for _ in range(402):
        *_, info = v.step(v.action_space.sample())
        if "episode" in info:
            returns.append(info["episode"]["r"].shape)
    return returns


PROBES = {  # library (module to import): probes
    "stable_baselines3": [sb3_native_vector],
    "tianshou": [tianshou_native_vector, tianshou_pettingzoo_aec],
    "skrl": [skrl_single, skrl_native_vector],
    "torchrl": [torchrl_native_vector_same_step, torchrl_sync_vector_same_step, torchrl_native_vector_next_step,
                torchrl_pettingzoo],
    "mo_gymnasium": [mo_gymnasium_native_vector],
}


def main() -> None:
    warnings.filterwarnings("ignore")
    wanted = sys.argv[1:] or list(PROBES)
    for library in wanted:
        if library not in PROBES:
            raise SystemExit(f"'library' must be one of {list(PROBES)} (got {library!r})")
        if importlib.util.find_spec(library) is None:
            print(f"PROBE {library} SKIP not installed")
            continue
        for probe in PROBES[library]:
            try:
                print(f"PROBE {probe.__name__} OK {probe()}")
            except Exception as e:  # the error is the probe's finding
                print(f"PROBE {probe.__name__} FAIL {type(e).__name__} {str(e).splitlines()[0][:400]}")


if __name__ == "__main__":
    main()
