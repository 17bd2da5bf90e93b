"""Every script in examples/ runs with a tiny budget and prints its result line, so the examples cannot rot.

Each runs in a fresh interpreter (as a user runs it: ``python examples/NAME.py ...``) from the repository root;
the result line must report at least the budget's steps and a finite number for its metric. Skipped when the
example's library is not installed (``pip install -e ".[examples]"`` installs them all; CI does).
"""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# id: (script, arguments, library that must be importable, result prefix, metric key)
CASES = {
    "sb3": ("sb3_ppo.py", ["--timesteps", "256", "--eval-episodes", "1"], "stable_baselines3",
            "result: sb3 PPO MEG/SingleES-v1", "mean_return"),
    "cleanrl_vector": ("cleanrl_ppo.py", ["--timesteps", "1024", "--num-steps", "64"], "torch",
                       "result: cleanrl PPO MEG/SingleES-v1 (vector x8)", "mean_reward_last"),
    "mo_gymnasium": ("mo_gymnasium_ppo.py", ["--timesteps", "128"], "mo_gymnasium",
                     "result: mo-gymnasium PPO MEG/SingleES-v1", "scalar"),
    "torchrl_single": ("torchrl_ppo.py", ["--timesteps", "256", "--frames-per-batch", "128"], "torchrl",
                       "result: torchrl PPO MEG/SingleES-v1 (GymEnv)", "mean_reward_last"),
    "torchrl_vector": ("torchrl_ppo.py", ["--timesteps", "256", "--frames-per-batch", "128", "--num-envs", "4"],
                       "torchrl", "result: torchrl PPO MEG/SingleES-v1 (native vector x4)", "mean_reward_last"),
    "tianshou_multi_es": ("tianshou_ppo.py", ["--timesteps", "256", "--collect-steps", "128", "--env-id",
                                              "MEG/MultiES-v1", "--test-episodes", "1"], "tianshou",
                          "result: tianshou PPO MEG/MultiES-v1", "mean_return"),
    "skrl_mappo": ("skrl_mappo.py", ["--timesteps", "128", "--rollouts", "64"], "skrl",
                   "result: skrl MAPPO multi_ue_v1 agents=4", "eval_mean_return_per_agent"),
    # the plain id on a remote EnvRunner: the end-to-end test of envs/rllib.py's registration
    "rllib_single_agent": ("rllib_ppo.py", ["--timesteps", "256", "--batch", "256"], "ray.rllib",
                           "result: rllib PPO MEG/SingleES-v1 (1 env(s), 1 remote EnvRunner)", "episode_return_mean"),
    "rllib_native_vector": ("rllib_ppo.py", ["--timesteps", "800", "--batch", "800", "--num-envs", "4",
                                             "--native-vector"], "ray.rllib",
                            "result: rllib PPO MEG/SingleES-v1 (native vector x4, 1 remote EnvRunner)",
                            "episode_return_mean"),
    # agents/rllib.py's glue under Ray Tune: a learning-rate grid from a shipped RLlib training config
    "rllib_tune_lr": ("rllib_tune_lr.py", ["--tiny", "--timesteps", "80"], "ray.rllib",
                      "result: rllib Tune PPO lr sweep MEG/SingleES-v1 trials=2", "episode_return_mean"),
    "rllib_multi_agent": ("rllib_multi_agent.py", ["--timesteps", "256", "--batch", "256"], "ray.rllib",
                          "result: rllib PPO multi_ue_v1 agents=4 (shared policy)", "episode_return_mean"),
}


# the native-vector RLlib run is the single-agent one again (same registration path) with 4x the steps: the
# slowest, kept out of the default run (python -m pytest -m slow tests/examples runs it)
SLOW = {"rllib_native_vector"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in CASES])
def test_example(case):
    script, args, library, prefix, metric = CASES[case]
    pytest.importorskip(library)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("result: ")]
    assert len(lines) == 1 and lines[0].startswith(prefix), out.stdout[-3000:]
    budget = int(args[args.index("--timesteps") + 1])
    assert int(re.search(r"timesteps=(\d+)", lines[0]).group(1)) >= budget, lines[0]
    values = [float(v) for v in re.findall(rf"{metric}=(-?[\d.]+|nan)", lines[0])]
    assert values and all(math.isfinite(v) for v in values), lines[0]
