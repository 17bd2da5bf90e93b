"""A disk cache of step costs (FLOPs and payload bits per step of a placed protocol).

Counting FLOPs on a model's meta copy (``MegSystem.costs``) takes seconds per protocol at
Stable Diffusion's scale, and every process that builds an env would pay it. The counts
depend only on the model's geometry, the protocol, the number of ESs and the generation
settings, so they are stored as JSON, keyed by all of these:

* ``configs/costs/<model>.json``: shipped with the repository for the shipped cards, written
  by ``meg-gym costs --model <name>`` (a test recounts one protocol and compares);
* ``~/.cache/meg_gym/costs/<model>.json`` (``MEG_GYM_CACHE`` overrides the folder): what a
  user's own settings add, written on first use.

A missing or stale entry is simply counted again; a corrupt file is ignored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from meg_gym.timing import StepCost

__all__ = ["SHIPPED_DIR", "cache_dir", "cached_costs", "entry_key", "rename", "save_shipped", "transmission_key"]

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "configs" / "costs"


def cache_dir() -> Path:
    return Path(os.environ.get("MEG_GYM_CACHE", Path.home() / ".cache" / "meg_gym")) / "costs"


def _file_name(comps: Any) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(comps.name)).strip("._") or "model"  # a folder path: one file name
    return f"{name}.json"


def entry_key(comps: Any, protocol: str, num_es: int, settings: Any, transmission: dict[str, Any]) -> str:
    """Everything the counts depend on, as one string (``transmission``: mode, bits per value)."""
    geometry = {"image_size": comps.image_size, "latent_channels": comps.latent_channels,
                "latent_size": comps.latent_size}
    return json.dumps({"model": str(comps.name), "geometry": geometry, "protocol": protocol, "num_es": num_es,
                       "settings": asdict(settings), "transmission": transmission}, sort_keys=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _decode(rows: list[dict[str, Any]]) -> list[StepCost]:
    return [StepCost(**row) for row in rows]


def cached_costs(comps: Any, protocol: str, num_es: int, settings: Any, transmission: dict[str, Any],
                 measure: Callable[[str, int], list[StepCost]]) -> list[StepCost]:
    """The step costs from a cache file, or ``measure(protocol, num_es)`` (then cached)."""
    key = entry_key(comps, protocol, num_es, settings, transmission)
    fname = _file_name(comps)
    for folder in (SHIPPED_DIR, cache_dir()):
        rows = _read(folder / fname).get(key)
        if rows is not None:
            try:
                return _decode(rows)
            except TypeError:
                pass  # an entry from another version of StepCost: count again
    costs = measure(protocol, num_es)
    try:
        _write(cache_dir() / fname, {key: [asdict(c) for c in costs]})
    except OSError:
        pass  # a read-only home: the counts stay in memory
    return costs


def _write(path: Path, entries: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _read(path)
    data.update(entries)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    tmp.replace(path)


def save_shipped(system: Any, protocols: list[str], max_es: int, folder: Path | None = None,
                 progress: bool = False) -> Path:
    """Count every protocol on 1 (single-ES) or 2..max_es ESs and write the shipped file (or the
    same file in ``folder``, e.g. the user cache, which every env also reads). ``progress``: a bar
    over the (protocol, ESs) counts on stderr. The file is written once, at the end."""
    from tqdm import tqdm

    from meg_gym.protocols import PROTOCOLS

    jobs = [(p, k) for p in protocols for k in (range(2, max_es + 1) if PROTOCOLS[p].multi_es else [1])]
    entries = {}
    for protocol, k in tqdm(jobs, desc="costs", unit="count", disable=not progress, leave=False):
        costs = system._measure_costs(protocol, k)
        entries[entry_key(system.cost_comps, protocol, k, system.settings, transmission_key(system.scenario))] = \
            [asdict(c) for c in costs]
    path = (SHIPPED_DIR if folder is None else Path(folder)) / _file_name(system.cost_comps)
    _write(path, entries)
    return path


def transmission_key(scenario: Any) -> dict[str, Any]:
    """What of the transmission settings payload sizes depend on."""
    t = scenario.transmission
    return {"mode": t.mode, "bits_per_value": t.bits_per_value}


def rename(costs: list[StepCost], es_ids: tuple[int, ...]) -> list[StepCost]:
    """Costs measured on ESs 0..k-1, with their node names moved to ``es_ids``."""
    if es_ids == tuple(range(len(es_ids))):
        return list(costs)

    def node(name: str) -> str:
        return f"es{es_ids[int(name[2:])]}" if name.startswith("es") else name

    return [replace(c, node=node(c.node), dst=",".join(node(d) for d in c.dst.split(",")) if c.dst else c.dst)
            for c in costs]
