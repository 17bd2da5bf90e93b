"""The plain ids reach Ray's tune registry (what RLlib's remote EnvRunners look up), whichever is imported first.

The end-to-end check, PPO on a real local Ray with one remote EnvRunner and the plain id, is the RLlib example's
test (tests/examples/test_examples.py::test_example[rllib_single_agent])."""

import subprocess
import sys

import pytest

CHECK = """
from ray.tune.registry import ENV_CREATOR, _global_registry
import envs
missing = [i for i in envs.ENV_IDS if not _global_registry.contains(ENV_CREATOR, i)]
env = _global_registry.get(ENV_CREATOR, "MEG/SingleES-v1")({"action_type": "discrete"})
vec = _global_registry.get(ENV_CREATOR, "MEG/MultiES-v1")({"num_envs": 3})
print(missing, type(env.unwrapped).__name__, env.action_space, type(vec).__name__, vec.num_envs)
"""


@pytest.mark.parametrize("first", ["envs", "ray"])
def test_ids_in_ray_registry_whatever_the_import_order(first):
    pytest.importorskip("ray")
    lead = "import envs\nimport ray.tune.registry\n" if first == "envs" else "import ray.tune.registry\nimport envs\n"
    out = subprocess.run([sys.executable, "-c", lead + CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "MegEnv", "Discrete(18)", "MegVectorEnv", "3"], out.stdout


def test_module_prefixed_id_works_in_a_process_that_never_imported_envs():
    """The documented alternative ("envs:MEG/SingleES-v1"): gymnasium imports envs itself, as on a Ray worker."""
    code = ("import sys, gymnasium as gym\nassert 'envs' not in sys.modules\n"
            "env = gym.make('envs:MEG/SingleES-v1')\nprint(env.spec.id, type(env.unwrapped).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["MEG/SingleES-v1", "MegEnv"], out.stdout
