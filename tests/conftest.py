import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def tiny():
    """Seeded random components with the shipped geometry (diffusers' get_dummy_components way)."""
    from meg_gym.ldm.components import build_tiny

    return build_tiny(seed=0)


@pytest.fixture()
def request_():
    from meg_gym.workload import sample_request

    return sample_request(np.random.default_rng(3), 64)


def pytest_configure(config):
    torch.set_num_threads(2)
