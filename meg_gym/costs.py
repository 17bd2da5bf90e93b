"""A disk cache of step costs (FLOPs and payload bits per step of a placed protocol).

Counting FLOPs on a model's meta copy (``MegSystem.costs``) takes seconds per protocol at
Stable Diffusion's scale, and every process that builds an env would pay it. The counts
depend only on the model's geometry, the protocol, the number of ESs and the generation
settings, so they are stored as JSON, keyed by all of these:

* ``configs/costs/<model>.json``: shipped with the repository for the shipped cards, written
  by ``meg-gym costs --model <name>`` (a test recounts one protocol and compares);
* ``~/.cache/meg_gym/costs/<model>.json`` (``MEG_GYM_CACHE`` overrides the folder): what a
  user's own settings add, written on first use.

Each entry holds its rows and the SHA-256 of its key and rows, and is checked when read: the
schema of :class:`~meg_gym.timing.StepCost`, non-negative integer counts, a tensor's payload equal
to its values times the bits per value, and the digest. A missing or stale entry is counted again;
a corrupt entry or file in the user cache is counted again with a warning (and rewritten); one in
the shipped folder is an error naming the file (it ships with the code and must not be edited).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from meg_gym.errors import show
from meg_gym.timing import StepCost

__all__ = ["SHIPPED_DIR", "CostCacheError", "cache_dir", "cached_costs", "entry_key", "rename", "save_shipped",
           "transmission_key"]

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "configs" / "costs"


def cache_dir() -> Path:
    return Path(os.environ.get("MEG_GYM_CACHE", Path.home() / ".cache" / "meg_gym")) / "costs"


def _file_name(comps: Any) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(comps.name)).strip("._") or "model"  # a folder path: one file name
    return f"{name}.json"


def entry_key(comps: Any, protocol: str, num_es: int, settings: Any, transmission: dict[str, Any],
              ue_model: str | None = None, es_variants: tuple | None = None) -> str:
    """Everything the counts depend on, as one string (``transmission``: mode, bits per value;
    ``ue_model``: the UE's own model; ``es_variants``: per ES, the (model, guidance scale) it runs instead
    of the scenario's, ``MegSystem.cost_variants``; each keyed only when there is one, so the other
    entries keep their keys)."""
    geometry = {"image_size": comps.image_size, "latent_channels": comps.latent_channels,
                "latent_size": comps.latent_size}
    key = {"model": str(comps.name), "geometry": geometry, "protocol": protocol, "num_es": num_es,
           "settings": settings.key(), "transmission": transmission}
    if ue_model is not None:
        key["ue_model"] = ue_model
    if es_variants is not None:
        key["es_variants"] = [{"model": m, "guidance_scale": g} for m, g in es_variants]
    return json.dumps(key, sort_keys=True)


class CostCacheError(ValueError):
    """A shipped step-cost file that does not check out (its entries are used without recounting)."""


_FIELDS = {"kind": str, "name": str, "node": str, "dst": str, "flops": int, "payload_bits": int, "values": int,
           "lossless": bool, "backhaul_bits": int, "exchanges": int}
_ADDED = {"backhaul_bits", "exchanges"}  # rows written before the backhaul lack these: legacy, counted again


def _digest(key: str, rows: Any) -> str:
    return hashlib.sha256(json.dumps([key, rows], sort_keys=True).encode()).hexdigest()


def _entry(key: str, costs: list[StepCost]) -> dict[str, Any]:
    rows = [asdict(c) for c in costs]
    return {"rows": rows, "sha256": _digest(key, rows)}


def _problem(key: str, entry: Any) -> str | None:
    """What is wrong with one entry of a cost file, or None."""
    if isinstance(entry, list):
        return "legacy"  # written before entries carried a digest: counted again, without a warning
    if not isinstance(entry, dict) or set(entry) != {"rows", "sha256"} or not isinstance(entry["rows"], list):
        return "is not {'rows': [...], 'sha256': ...}"
    if entry["sha256"] != _digest(key, entry["rows"]):
        return "does not match its SHA-256 (edited or corrupted)"
    try:
        bits = json.loads(key)["transmission"]["bits_per_value"]
    except (ValueError, KeyError, TypeError):
        return "has a key that is not an entry key"
    if all(isinstance(r, dict) and set(r) == set(_FIELDS) - _ADDED for r in entry["rows"]):
        return "legacy"
    for i, row in enumerate(entry["rows"]):
        if not isinstance(row, dict) or set(row) != set(_FIELDS):
            return f"row {i} must hold exactly {sorted(_FIELDS)} (got {show(row)})"
        for field, kind in _FIELDS.items():
            v = row[field]
            if not isinstance(v, kind) or (kind is int and (isinstance(v, bool) or v < 0)):
                want = "an integer >= 0" if kind is int else kind.__name__
                return f"row {i} '{field}' must be {want} (got {show(v)})"
        if row["kind"] not in ("run", "send"):
            return f"row {i} 'kind' must be 'run' or 'send' (got {show(row['kind'])})"
        if row["kind"] == "send" and not row["lossless"] and row["payload_bits"] != row["values"] * bits:
            return (f"row {i} sends {row['values']} values as {row['payload_bits']} bits "
                    f"(must be values x bits_per_value = {row['values'] * bits})")
    return None


def _read(path: Path, shipped: bool = False) -> dict[str, Any]:
    """A cost file's valid entries. Shipped: a bad file or entry raises; the user cache: a warning,
    and the bad entries are left out (they are counted again and the file rewritten)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"the top level must be a JSON object (got {type(data).__name__})")
    except (OSError, ValueError) as exc:
        problems = {"": f"is not readable JSON ({show(exc)})"}
        data = {}
    else:
        problems = {k: p for k, v in data.items() if (p := _problem(k, v)) is not None}
    legacy = {k for k, p in problems.items() if p == "legacy" and not shipped}
    data = {k: v for k, v in data.items() if k not in legacy}
    problems = {k: p for k, p in problems.items() if k not in legacy}
    if problems:
        key, what = next(iter(problems.items()))
        where = f"entry {show(json.loads(key).get('protocol') if key else '')}" if key else "the file"
        msg = f"step-cost file {str(path)!r}: {where} {what}"
        if shipped:
            raise CostCacheError(msg + " (restore it from the repository, or recount with 'meg-gym costs --install')")
        warnings.warn(f"{msg}; {len(problems)} bad entr{'y' if len(problems) == 1 else 'ies'} will be counted "
                      f"again", stacklevel=3)
    return {k: v for k, v in data.items() if k not in problems}


def _decode(rows: list[dict[str, Any]]) -> list[StepCost]:
    return [StepCost(**row) for row in rows]


def cached_costs(comps: Any, protocol: str, num_es: int, settings: Any, transmission: dict[str, Any],
                 measure: Callable[[str, int], list[StepCost]], ue_model: str | None = None,
                 es_variants: tuple | None = None) -> list[StepCost]:
    """The step costs from a cache file, or ``measure(protocol, num_es)`` (then cached)."""
    key = entry_key(comps, protocol, num_es, settings, transmission, ue_model, es_variants)
    fname = _file_name(comps)
    for folder, shipped in ((SHIPPED_DIR, True), (cache_dir(), False)):
        entry = _read(folder / fname, shipped).get(key)
        if entry is not None:
            return _decode(entry["rows"])
    costs = measure(protocol, num_es)
    try:
        _write(cache_dir() / fname, {key: _entry(key, costs)})
    except OSError:
        pass  # a read-only home: the counts stay in memory
    return costs


def _write(path: Path, entries: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # what is wrong with the file was said when it was read
        warnings.simplefilter("ignore")
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
        variants = system.cost_variants(tuple(range(k)))  # ESs 0..k-1 of the scenario
        costs = system._measure_costs(protocol, k, variants)
        key = entry_key(system.cost_comps, protocol, k, system.settings, transmission_key(system.scenario),
                        system.ue_model, variants)
        entries[key] = _entry(key, costs)
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
