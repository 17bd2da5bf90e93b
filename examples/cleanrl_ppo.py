"""A CleanRL-style single-file PPO over the native vector env (one batched core, no subprocesses).

    python examples/cleanrl_ppo.py --timesteps 50000

The env is ``gym.make_vec("MEG/SingleES-v1", num_envs=8, vectorization_mode="vector_entry_point")``
(``envs.vector.MegVectorEnv``) with same-step autoreset, so every step is a real transition; as in
CleanRL's ``ppo.py`` a truncation is treated as the episode's end (no bootstrap from the final observation).
The action is ``MultiDiscrete([placements, shares])``: one categorical head per dimension.
Prints ``result: cleanrl PPO MEG/SingleES-v1 (vector x8) timesteps=... mean_reward_first=... mean_reward_last=...``
(the mean reward per step of the first and the last rollout).
"""

import argparse

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

import envs  # noqa: F401  (registers the MEG/ ids)


class Agent(nn.Module):
    """Separate actor and critic MLPs; the actor's logits split into one categorical per action dimension."""

    def __init__(self, obs_dim: int, nvec: np.ndarray) -> None:
        super().__init__()
        self.nvec = [int(n) for n in nvec]
        self.critic = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
        self.actor = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                   nn.Linear(64, sum(self.nvec)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def act(self, obs: torch.Tensor, action: torch.Tensor | None = None) -> tuple:
        dists = [Categorical(logits=lg) for lg in torch.split(self.actor(obs), self.nvec, dim=-1)]
        if action is None:
            action = torch.stack([d.sample() for d in dists], dim=-1)
        logp = sum(d.log_prob(action[..., i]) for i, d in enumerate(dists))
        entropy = sum(d.entropy() for d in dists)
        return action, logp, entropy, self.value(obs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=50_000, help="environment steps to train for (all envs)")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--num-steps", type=int, default=128, help="steps per env per rollout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--minibatches", type=int, default=4)
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.01)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # small MLPs: threads only add overhead

    envs_ = gym.make_vec("MEG/SingleES-v1", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                         autoreset_mode="SameStep")
    agent = Agent(envs_.single_observation_space.shape[0], envs_.single_action_space.nvec)
    optim = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)
    n, t = args.num_envs, args.num_steps
    obs_b = torch.zeros((t, n, envs_.single_observation_space.shape[0]))
    act_b = torch.zeros((t, n, len(agent.nvec)), dtype=torch.long)
    logp_b, rew_b, done_b, val_b = (torch.zeros((t, n)) for _ in range(4))

    obs, _ = envs_.reset(seed=args.seed)
    obs, done = torch.as_tensor(obs), torch.zeros(n)
    iterations = max(1, args.timesteps // (n * t))
    rollout_means = []
    for _ in range(iterations):
        for step in range(t):
            obs_b[step], done_b[step] = obs, done
            with torch.no_grad():
                action, logp, _, value = agent.act(obs)
            act_b[step], logp_b[step], val_b[step] = action, logp, value
            next_obs, reward, term, trunc, _ = envs_.step(action.numpy())
            rew_b[step] = torch.as_tensor(reward, dtype=torch.float32)
            obs, done = torch.as_tensor(next_obs), torch.as_tensor(np.logical_or(term, trunc), dtype=torch.float32)
        rollout_means.append(rew_b.mean().item())

        with torch.no_grad():  # generalised advantage estimation (Schulman et al. 2016)
            adv, last = torch.zeros_like(rew_b), torch.zeros(n)
            next_value, next_nonterminal = agent.value(obs), 1.0 - done
            for step in reversed(range(t)):
                if step < t - 1:
                    next_value, next_nonterminal = val_b[step + 1], 1.0 - done_b[step + 1]
                delta = rew_b[step] + args.gamma * next_value * next_nonterminal - val_b[step]
                adv[step] = last = delta + args.gamma * args.gae_lambda * next_nonterminal * last
            ret = adv + val_b

        b_obs, b_act = obs_b.reshape(n * t, -1), act_b.reshape(n * t, -1)
        b_logp, b_adv, b_ret = logp_b.reshape(-1), adv.reshape(-1), ret.reshape(-1)
        size = n * t // args.minibatches
        for _ in range(args.epochs):
            for idx in torch.randperm(n * t).split(size):
                _, logp, entropy, value = agent.act(b_obs[idx], b_act[idx])
                ratio = (logp - b_logp[idx]).exp()
                a = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)
                pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - args.clip, 1 + args.clip)).mean()
                loss = pg_loss + 0.5 * ((value - b_ret[idx]) ** 2).mean() - args.ent_coef * entropy.mean()
                optim.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                optim.step()
    envs_.close()
    print(f"result: cleanrl PPO MEG/SingleES-v1 (vector x{n}) timesteps={iterations * n * t} "
          f"mean_reward_first={rollout_means[0]:.3f} mean_reward_last={rollout_means[-1]:.3f}")


if __name__ == "__main__":
    main()
