"""TorchRL PPO (collector + GAE + ClipPPOLoss) on MEG/SingleES-v1, one env or the native vector env.

    python examples/torchrl_ppo.py --timesteps 20000                 # GymEnv("MEG/SingleES-v1")
    python examples/torchrl_ppo.py --timesteps 20000 --num-envs 8    # GymWrapper over the native vector env

``action_type="discrete"`` gives a ``Discrete(placements x shares)`` action, which TorchRL maps to a one-hot
spec (a categorical policy). With ``--num-envs`` > 1 the env is ``gym.make_vec(..., vectorization_mode=
"vector_entry_point", autoreset_mode="Disabled")``: TorchRL resets finished copies itself (its preferred mode;
see docs/compatibility.md for why not same-step). Prints
``result: torchrl PPO MEG/SingleES-v1 (...) timesteps=... mean_reward_first=... mean_reward_last=...``
(mean reward per step of the first and the last collected batch).
"""

import argparse

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import GymEnv, GymWrapper
from torchrl.modules import OneHotCategorical, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

import envs  # noqa: F401  (registers the MEG/ ids)


def make_env(num_envs: int):
    """One GymEnv, or TorchRL's GymWrapper over the MEG native vector env (one batched core)."""
    if num_envs == 1:
        return GymEnv("MEG/SingleES-v1", action_type="discrete")
    return GymWrapper(gym.make_vec("MEG/SingleES-v1", num_envs=num_envs, vectorization_mode="vector_entry_point",
                                   autoreset_mode="Disabled", action_type="discrete"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=20_000, help="environment steps to train for (all envs)")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--frames-per-batch", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--minibatch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    env = make_env(args.num_envs)
    env.set_seed(args.seed)
    obs_dim = env.observation_spec["observation"].shape[-1]
    n_actions = env.action_spec.shape[-1]
    actor = ProbabilisticActor(
        TensorDictModule(nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, n_actions)),
                         in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], distribution_class=OneHotCategorical, spec=env.action_spec, return_log_prob=True)
    critic = ValueOperator(nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 1)), in_keys=["observation"])
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coeff=0.01)
    gae = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    optim = torch.optim.Adam(loss.parameters(), lr=3e-4)

    frames = min(args.frames_per_batch, args.timesteps)
    frames -= frames % args.num_envs
    collector = Collector(env, actor, frames_per_batch=frames, total_frames=max(frames, args.timesteps),
                          auto_register_policy_transforms=False)  # a feed-forward policy needs no InitTracker
    means, seen = [], 0
    for batch in collector:
        seen += batch.numel()
        means.append(batch["next", "reward"].mean().item())
        with torch.no_grad():
            gae(batch)
        flat = batch.reshape(-1)
        for _ in range(args.epochs):
            for idx in torch.randperm(flat.numel()).split(args.minibatch):
                terms = loss(flat[idx])
                total = terms["loss_objective"] + terms["loss_critic"] + terms["loss_entropy"]
                optim.zero_grad()
                total.backward()
                nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
                optim.step()
        collector.update_policy_weights_()
    collector.shutdown()
    kind = "GymEnv" if args.num_envs == 1 else f"native vector x{args.num_envs}"
    print(f"result: torchrl PPO MEG/SingleES-v1 ({kind}) timesteps={seen} mean_reward_first={means[0]:.3f} "
          f"mean_reward_last={means[-1]:.3f}")


if __name__ == "__main__":
    main()
