import pytest

SHORT = {"workload": {"requests_per_episode": 4}}
LIVE_FAST = {"generation": {"steps": 4, "ue_steps": 2, "complete_steps": 4}}


@pytest.fixture(scope="session")
def single_env():
    import gymnasium as gym

    import envs  # noqa: F401

    return gym.make("MEG/SingleES-v1", **SHORT)
