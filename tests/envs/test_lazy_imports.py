"""Profiled envs start without torch or diffusers (the model code loads only when a model runs), and without Ray
(envs/rllib.py registers the ids with Ray only once Ray itself is loaded)."""

import subprocess
import sys

SCRIPT = """
import sys
import gymnasium as gym
import envs
env = gym.make("MEG/SingleES-v1")
env.reset(seed=0)
env.step(env.action_space.sample())
vec = gym.make_vec("MEG/MultiES-v1", num_envs=2, vectorization_mode="vector_entry_point")
vec.reset(seed=0)
vec.step(vec.action_space.sample())
par = envs.multi_ue_v1.parallel_env()
par.reset(seed=0)
par.step({a: par.action_space(a).sample() for a in par.agents})
from agents.baselines import make_policy
make_policy("greedy", env).predict(env.reset(seed=1)[0])
print(sorted(m for m in ("torch", "diffusers", "transformers", "ray") if m in sys.modules))
"""


def test_profiled_envs_and_baselines_do_not_import_torch_or_ray():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
