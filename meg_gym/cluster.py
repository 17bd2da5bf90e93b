"""Connecting to Ray (optional: ``pip install -e ".[ray]"``), for the sweeps and training that fan out to workers.

``init_ray("local")`` (or None) starts a local Ray with this machine's cores whose workers
import this checkout of meg_gym (its folder goes on their ``PYTHONPATH``: a worker process
does not inherit the driver's ``sys.path``); ``"auto"`` or ``host:port`` joins a running
cluster, whose nodes must have meg_gym installed.
"""

from __future__ import annotations

import os
from pathlib import Path

from meg_gym.config import ConfigError

__all__ = ["init_ray"]

RAY_ADDRESS_HELP = "'local' (a local Ray with this machine's cores), 'auto' (a running cluster) or host:port"


def _ray() -> object:
    try:
        import ray
    except ImportError:
        raise ConfigError("Ray is not installed: pip install -e \".[ray]\"") from None
    return ray


def init_ray(address: str | None = None) -> None:
    """Connect to Ray at ``address`` (see the module docstring); nothing to do if already connected."""
    ray = _ray()
    if ray.is_initialized():
        return
    if not isinstance(address, (str, type(None))) or address == "":
        raise ConfigError(f"'--ray' must be {RAY_ADDRESS_HELP} (got {address!r})")
    if address in (None, "local"):
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    else:
        ray.init(address=address, log_to_driver=False)
