"""skrl 2.1 MAPPO (or IPPO) on the PettingZoo env multi_ue_v1: 4 UEs share the ESs' bandwidth and queues.

    python examples/skrl_mappo.py --timesteps 5000 --algo mappo

MAPPO's centralised critic reads the env's global ``state()`` (``state_space``: every UE's observation row
concatenated), which skrl's PettingZoo wrapper passes as ``states``; the actors read their own observation.
Actions are ``MultiDiscrete([placements, shares])``: skrl's MultiCategorical policy. Prints
``result: skrl MAPPO multi_ue_v1 agents=4 timesteps=... eval_mean_return_per_agent=...`` (one sampled episode).
"""

import argparse
import tempfile

import torch
from skrl.envs.wrappers.torch import wrap_env
from skrl.memories.torch import RandomMemory
from skrl.models.torch import DeterministicMixin, Model, MultiCategoricalMixin
from skrl.multi_agents.torch.ippo import IPPO, IPPO_CFG
from skrl.multi_agents.torch.mappo import MAPPO, MAPPO_CFG
from skrl.trainers.torch import SequentialTrainer

import envs


class Policy(MultiCategoricalMixin, Model):
    """One categorical head per action dimension, from the agent's own observation."""

    def __init__(self, observation_space, action_space, device):
        Model.__init__(self, observation_space=observation_space, action_space=action_space, device=device)
        MultiCategoricalMixin.__init__(self)
        self.net = torch.nn.Sequential(torch.nn.Linear(self.num_observations, 64), torch.nn.Tanh(),
                                       torch.nn.Linear(64, int(sum(action_space.nvec))))

    def compute(self, inputs, role=""):
        return self.net(inputs["observations"]), {}


class Value(DeterministicMixin, Model):
    """V(s): from the global state (MAPPO) or the agent's own observation (IPPO)."""

    def __init__(self, observation_space, state_space, action_space, device, key):
        Model.__init__(self, observation_space=observation_space, state_space=state_space,
                       action_space=action_space, device=device)
        DeterministicMixin.__init__(self)
        self.key = key
        size = self.num_states if key == "states" else self.num_observations
        self.net = torch.nn.Sequential(torch.nn.Linear(size, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))

    def compute(self, inputs, role=""):
        return self.net(inputs[self.key]), {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=5_000, help="joint env steps to train for")
    p.add_argument("--algo", choices=["mappo", "ippo"], default="mappo")
    p.add_argument("--num-ues", type=int, default=4)
    p.add_argument("--rollouts", type=int, default=128, help="steps per update")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    env = wrap_env(envs.multi_ue_v1.parallel_env(num_ues=args.num_ues), wrapper="pettingzoo")
    agents, device = env.possible_agents, env.device
    key = "states" if args.algo == "mappo" else "observations"
    models = {a: {"policy": Policy(env.observation_space(a), env.action_space(a), device),
                  "value": Value(env.observation_space(a), env.state_space(a), env.action_space(a), device, key)}
              for a in agents}
    memories = {a: RandomMemory(memory_size=args.rollouts, num_envs=env.num_envs, device=device) for a in agents}
    algo_cls, cfg_cls = (MAPPO, MAPPO_CFG) if args.algo == "mappo" else (IPPO, IPPO_CFG)
    cfg = cfg_cls(rollouts=args.rollouts, learning_epochs=4, mini_batches=2, learning_rate=3e-4,
                  entropy_loss_scale=0.01)
    # skrl 2.1.1's MultiAgentCfg.expand rejects its own default empty {} for the *_kwargs fields ("Specified keys
    # (set()) do not match possible agents"), whatever the env: give them per agent
    for name in ("learning_rate_scheduler_kwargs", "observation_preprocessor_kwargs", "state_preprocessor_kwargs",
                 "value_preprocessor_kwargs"):
        setattr(cfg, name, {a: {} for a in agents})
    logs = tempfile.TemporaryDirectory(prefix="skrl_meg_")  # skrl's experiment folder, removed at exit
    cfg.experiment.directory = logs.name
    cfg.experiment.write_interval = 0
    cfg.experiment.checkpoint_interval = 0
    spaces = dict(observation_spaces={a: env.observation_space(a) for a in agents},
                  action_spaces={a: env.action_space(a) for a in agents},
                  state_spaces={a: env.state_space(a) for a in agents})  # IPPO stores them too
    agent = algo_cls(possible_agents=agents, models=models, memories=memories, device=device, cfg=cfg, **spaces)
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": args.timesteps, "headless": True,
                                                  "disable_progressbar": True,
                                                  "close_environment_at_exit": False}).train()

    # one sampled episode with the trained actors
    obs, _ = env.reset()
    total, done = {a: 0.0 for a in agents}, False
    with torch.no_grad():
        while not done:
            actions = {a: models[a]["policy"].act({"observations": obs[a]}, role="policy")[0] for a in agents}
            obs, rewards, terminated, truncated, _ = env.step(actions)
            for a in agents:
                total[a] += rewards[a].sum().item()
            done = any(terminated[a].any() or truncated[a].any() for a in agents)
    env.close()
    logs.cleanup()
    print(f"result: skrl {args.algo.upper()} multi_ue_v1 agents={len(agents)} timesteps={args.timesteps} "
          f"eval_mean_return_per_agent={sum(total.values()) / len(agents):.2f}")


if __name__ == "__main__":
    main()
