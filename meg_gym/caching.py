"""Model caching at the ESs: which generation models each ES holds in its GPU memory.

The MEG paper's first open problem is "the enormous storage space required by the GAI model";
the survey's joint model caching and inference has an ES evict "the cached PFM with the least
contexts" (the LC rule; Xu et al. 2023, "Joint Foundation Model Caching and Inference of
Generative AI Services for Edge Intelligence", arXiv:2305.12130) when GPU memory is needed.

A catalogue (``configs/catalogue.yaml``) gives each model its memory footprint and a relative
quality; a scenario's ``caching`` section lists the models in popularity rank order, a Zipf
exponent, each ES's GPU memory, the backhaul rate and what a miss meets (``on_miss``). Every
request asks for one model (Zipf, drawn per request). :class:`ModelCache` keeps, per copy and
ES, the set of models held (a bitmask; only sets that fit the memory exist, so a cache never
holds more than its capacity), when each finished loading, and each model's request history at
the ES (last request time, count, decayed contexts) that the LRU, LFU and LC rules read.

One epoch (``meg_gym.core.Core.step_checked``): the cache sets are changed first (an agent's
action, or the scenario's ``rule`` from the requests now waiting), every model newly held
starts loading over its ES's backhaul (one load at a time, ``memory_gb * 8e9 /
backhaul_bps`` s each); then each request is a hit when its model is held and loaded at every
ES it uses; a miss is served by ``on_miss``: ``wait`` (for the load still running, or for a
load of the model for this request alone, which keeps the backhaul busy), ``cloud`` (the cloud
serves it: ``cloud_latency_s`` more, full quality) or ``fallback`` (the best model loaded at
all its ESs serves it, at quality ratio ``min(1, q_served / q_asked)``; with none loaded, the
cloud). Compute time is the scenario's cost model for every catalogue model (the cards differ
in memory, load time and quality, not in FLOPs), and the added wait comes after the timing
walk's latency (the ES's queue reservation is not moved by it).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CATALOGUE_FILE", "MAX_MODELS", "RULES", "CacheOutcome", "CatalogueModel", "ModelCache",
           "load_catalogue", "zipf_popularity"]

CATALOGUE_FILE = Path(__file__).resolve().parents[1] / "configs" / "catalogue.yaml"
MAX_MODELS = 12  # the cache sets are enumerated (2^K masks)
RULES = ("lru", "lfu", "lc", "none")


@dataclass(frozen=True)
class CatalogueModel:
    """One cacheable model: its fp16 weights' footprint in GB and its relative quality in (0, 1]."""

    name: str
    memory_gb: float
    quality: float
    source: str


@functools.cache
def load_catalogue(path: str | None = None) -> dict[str, CatalogueModel]:
    """The catalogue (``configs/catalogue.yaml`` by default), name -> :class:`CatalogueModel`."""
    file = Path(path) if path else CATALOGUE_FILE
    from meg_gym.config import read_yaml

    data = read_yaml(file.read_text(encoding="utf-8"))
    out = {}
    for name, card in data.items():
        mem, q = card.get("memory_gb"), card.get("quality")
        if not (isinstance(mem, (int, float)) and mem > 0):
            raise ValueError(f"'{name}.memory_gb' in {file} must be a number > 0 (got {mem!r})")
        if not (isinstance(q, (int, float)) and 0 < q <= 1):
            raise ValueError(f"'{name}.quality' in {file} must be a number in (0, 1] (got {q!r})")
        out[name] = CatalogueModel(name, float(mem), float(q), str(card.get("source", "")))
    return out


def zipf_popularity(count: int, exponent: float) -> np.ndarray:
    """Zipf's law over ``count`` ranks: ``p_r ~ r^-exponent``, r = 1..count (0: uniform)."""
    w = np.arange(1, count + 1, dtype=np.float64) ** -float(exponent)
    return w / w.sum()


@dataclass(slots=True)
class CacheOutcome:
    """How an epoch's requests met the caches, arrays (copies, ues)."""

    hit: np.ndarray  # the model was held and loaded at every ES the request used
    extra_s: np.ndarray  # latency added to the first attempt (a wait for a load, or the cloud's)
    retry_extra_s: np.ndarray  # latency added to every later attempt (the cloud's; 0 once a load is waited for)
    factor: np.ndarray  # quality ratio of the model that served it to the one it asked for
    served_by: np.ndarray  # catalogue index of the model that served it (-1: the cloud)


class ModelCache:
    """The caches of ``copies x num_es`` ESs over a scenario's ``caching`` catalogue.

    ``sets``: every subset of the catalogue that fits ``es_memory_gb``, as bitmasks, the empty
    set first, then by size and index: an agent's cache action at an ES is an index into it.
    State (arrays (copies, num_es[, models])): ``mask`` (the set held), ``ready_s`` (when each
    held model is loaded), ``backhaul_free_s``, and the request history ``last_s``, ``count``,
    ``contexts`` (decayed at ``contexts_t``)."""

    def __init__(self, cfg: Any, copies: int, num_es: int) -> None:
        cat = load_catalogue()
        self.cfg = cfg
        self.names = list(cfg.models)
        self.k = len(self.names)
        self.memory_gb = np.array([cat[n].memory_gb for n in self.names])
        self.quality = np.array([cat[n].quality for n in self.names])
        self.load_s = self.memory_gb * 8e9 / cfg.backhaul_bps  # GB -> bits over the backhaul
        self.popularity = zipf_popularity(self.k, cfg.zipf_exponent)
        self._cdf = np.cumsum(self.popularity)
        self._cdf[-1] = 1.0
        masks = [s for s in range(1 << self.k) if self.mask_gb(s) <= cfg.es_memory_gb]
        self.sets = np.array(sorted(masks, key=lambda s: (bin(s).count("1"), s)), dtype=np.int64)
        self.set_index = {int(s): i for i, s in enumerate(self.sets)}
        self.copies, self.num_es = copies, num_es
        self.decay_per_s = math.log(2.0) / cfg.context_half_life_s
        self.reset()

    def mask_gb(self, mask: int) -> float:
        """GPU memory (GB) of the models in a bitmask."""
        return float(sum(self.memory_gb[j] for j in range(self.k) if mask >> j & 1))

    def reset(self) -> None:
        """Empty caches, an idle backhaul and no request history (a cold start)."""
        c, n, k = self.copies, self.num_es, self.k
        self.mask = np.zeros((c, n), dtype=np.int64)
        self.ready_s = np.zeros((c, n, k))
        self.backhaul_free_s = np.zeros((c, n))
        self.last_s = np.full((c, n, k), -np.inf)
        self.count = np.zeros((c, n, k))
        self.contexts = np.zeros((c, n, k))
        self.contexts_t = np.zeros((c, n, k))
        self.loaded_bits = np.zeros(c)  # the backhaul's bits this episode (loads kept and loads for one request)

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Each request's model (catalogue index), by the Zipf popularity."""
        return np.searchsorted(self._cdf, rng.random(shape), side="right").astype(np.int64)

    # -- the cache decision -------------------------------------------------------------------
    def held(self) -> np.ndarray:
        """(copies, num_es, models): is the model in the ES's GPU memory (loaded or loading)."""
        return (self.mask[..., None] >> np.arange(self.k)) & 1 > 0

    def loaded(self, now_s: np.ndarray) -> np.ndarray:
        """(copies, num_es, models): held and finished loading at each copy's ``now_s``."""
        return self.held() & (self.ready_s <= now_s[:, None, None])

    def check_action(self, action: Any) -> np.ndarray:
        """A cache action (copies, num_es) of indices into :attr:`sets`, or a one-line error."""
        a = np.asarray(action)
        shape = (self.copies, self.num_es)
        if a.shape != shape or a.dtype.kind not in "iu":
            raise ValueError(f"'cache' must be integers of shape (copies, num_es) = {shape} (got {a.shape}, "
                             f"dtype {a.dtype})")
        bad = (a < 0) | (a >= len(self.sets))
        if bad.any():
            c, e = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"'cache[{c}, {e}]' must be a cache set in [0, {len(self.sets) - 1}] (got {a[c, e]})")
        return a.astype(np.int64)

    def rule_action(self, rule: str, models: np.ndarray, uses: np.ndarray, order: np.ndarray,
                    now_s: np.ndarray) -> np.ndarray:
        """The cache sets (copies, num_es) that ``rule`` picks for the requests now waiting: at each ES,
        each requested model not held is admitted (in service order), evicting held models that no
        waiting request asks for, lowest score first (LRU: last request; LFU: request count; LC:
        contexts) until it fits; ``none`` changes nothing. ``uses``: (copies, ues, num_es) bool."""
        if rule not in RULES:
            raise ValueError(f"'rule' must be one of {list(RULES)} (got {rule!r})")
        out = np.array([[self.set_index[int(s)] for s in row] for row in self.mask])
        if rule == "none":
            return out
        cap = self.cfg.es_memory_gb
        m = models.shape[1]
        score = {"lru": self.last_s, "lfu": self.count, "lc": self.contexts_now(now_s)}[rule]
        for c in range(self.copies):
            ks = [int(k) - c * m for k in order if c * m <= k < (c + 1) * m]
            for e in range(self.num_es):
                asked = [int(models[c, k]) for k in ks if uses[c, k, e]]
                mask = int(self.mask[c, e])
                keep = 0
                for j in asked:
                    keep |= 1 << j
                for j in dict.fromkeys(asked):
                    if mask >> j & 1:
                        continue
                    victims = sorted((j2 for j2 in range(self.k) if mask >> j2 & 1 and not keep >> j2 & 1),
                                     key=lambda j2: (score[c, e, j2], -j2))
                    trial = mask | 1 << j
                    for v in victims:
                        if self.mask_gb(trial) <= cap:
                            break
                        trial &= ~(1 << v)
                    if self.mask_gb(trial) <= cap:
                        mask = trial
                out[c, e] = self.set_index[mask]
        return out

    def contexts_now(self, now_s: np.ndarray) -> np.ndarray:
        """The LC rule's contexts at ``now_s``: each request adds one, which loses half its weight per half-life."""
        return self.contexts * np.exp(-self.decay_per_s * (now_s[:, None, None] - self.contexts_t))

    def apply(self, action: np.ndarray, now_s: np.ndarray, models: np.ndarray, uses: np.ndarray) -> None:
        """Hold the sets ``action`` names: models dropped are evicted at once, models added start
        loading over the backhaul one after another (those the waiting requests ask for first)."""
        new = self.sets[action]
        for c, e in zip(*np.nonzero(new != self.mask)):
            added = int(new[c, e]) & ~int(self.mask[c, e])
            asked = set(models[c][uses[c, :, e]].tolist())
            t = max(float(now_s[c]), float(self.backhaul_free_s[c, e]))
            for j in sorted((j for j in range(self.k) if added >> j & 1), key=lambda j: (j not in asked, j)):
                t += self.load_s[j]
                self.ready_s[c, e, j] = t
                self.loaded_bits[c] += self.memory_gb[j] * 8e9
            self.backhaul_free_s[c, e] = t
            self.mask[c, e] = new[c, e]

    def route(self, models: np.ndarray, backlog_s: np.ndarray, now_s: np.ndarray) -> np.ndarray:
        """Cache-aware routing, (copies, ues) ES ids: each request to an ES that has its model loaded
        (the least backlogged of them), else to the least backlogged ES (ties: the lowest id)."""
        loaded = self.loaded(now_s)
        out = np.empty(models.shape, dtype=np.int64)
        for c, u in np.ndindex(*models.shape):
            ready = loaded[c, :, models[c, u]]
            pool = np.flatnonzero(ready) if ready.any() else np.arange(self.num_es)
            out[c, u] = pool[np.argmin(backlog_s[c, pool])]
        return out

    # -- serving --------------------------------------------------------------------------------
    def serve(self, models: np.ndarray, uses: np.ndarray, order: np.ndarray, now_s: np.ndarray) -> CacheOutcome:
        """Each request against the caches (after :meth:`apply`), in service order; then the
        request history of every ES a request used is updated."""
        c, m = models.shape
        cfg = self.cfg
        hit = np.zeros((c, m), dtype=bool)
        extra, retry_extra = np.zeros((c, m)), np.zeros((c, m))
        factor, served_by = np.ones((c, m)), models.copy()
        ready = self.loaded(now_s)
        for k in order.tolist():
            cp, u = divmod(int(k), m)
            j = int(models[cp, u])
            es = np.flatnonzero(uses[cp, u])
            now = float(now_s[cp])
            if ready[cp, es, j].all():
                hit[cp, u] = True
            elif cfg.on_miss == "wait":
                wait = 0.0
                for e in es.tolist():
                    if self.mask[cp, e] >> j & 1:  # loading: wait for the rest of it
                        wait = max(wait, self.ready_s[cp, e, j] - now)
                    elif not ready[cp, e, j]:  # a load for this request alone, on the backhaul after the others
                        t = max(now, float(self.backhaul_free_s[cp, e])) + self.load_s[j]
                        self.backhaul_free_s[cp, e] = t
                        self.loaded_bits[cp] += self.memory_gb[j] * 8e9
                        wait = max(wait, t - now)
                extra[cp, u] = wait
            else:
                both = ready[cp, es].all(axis=0)  # models loaded at every ES the request uses
                if cfg.on_miss == "fallback" and both.any():
                    best = int(np.argmax(np.where(both, self.quality, -1.0)))
                    factor[cp, u] = min(1.0, self.quality[best] / self.quality[j])
                    served_by[cp, u] = best
                else:
                    extra[cp, u] = retry_extra[cp, u] = cfg.cloud_latency_s
                    served_by[cp, u] = -1
        # the request history (what LRU, LFU and LC read): every request counts at the ESs it used
        ctx = self.contexts_now(now_s)
        for cp, u in zip(*np.nonzero(np.ones((c, m), dtype=bool))):
            j = int(models[cp, u])
            for e in np.flatnonzero(uses[cp, u]).tolist():
                self.last_s[cp, e, j] = now_s[cp]
                self.count[cp, e, j] += 1.0
                ctx[cp, e, j] += 1.0
                self.contexts_t[cp, e, j] = now_s[cp]
                self.contexts[cp, e, j] = ctx[cp, e, j]
        return CacheOutcome(hit, extra, retry_extra, factor, served_by)

    def features(self, models: np.ndarray, now_s: np.ndarray, scale_s: float) -> np.ndarray:
        """Per request the cache's observation row (copies, ues, K + 4 num_es K), all in [0, 1]: its
        model one-hot; then per ES and model: loaded, the load still to run (share of a load), the
        recency of its last request (exp(-age / scale_s)), its share of the ES's requests."""
        c, m = models.shape
        k, n = self.k, self.num_es
        onehot = np.zeros((c, m, k))
        np.put_along_axis(onehot, models[..., None], 1.0, axis=2)
        held = self.held()
        rest = np.where(held, np.clip((self.ready_s - now_s[:, None, None]) / self.load_s, 0.0, 1.0), 0.0)
        age = now_s[:, None, None] - self.last_s
        recency = np.where(np.isfinite(age), np.exp(-np.maximum(age, 0.0) / scale_s), 0.0)
        share = self.count / np.maximum(self.count.sum(axis=2, keepdims=True), 1.0)
        per_es = np.stack([self.loaded(now_s), rest, recency, share], axis=2).astype(np.float64)  # (c, n, 4, k)
        return np.concatenate([onehot, np.broadcast_to(per_es.reshape(c, 1, -1), (c, m, 4 * n * k))], axis=2)
