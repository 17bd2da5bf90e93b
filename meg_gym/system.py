"""MegSystem: serve one generation request under one allocation decision.

``MegSystem.serve(request, decision)`` places the chosen protocol on the chosen ESs, runs
it (live: the real split pipeline over the simulated channel), measures quality against
what a perfect channel would have delivered (same request, same generator), and returns
an :class:`Outcome` with quality, latency (per stage, per link, queueing), bits and UE
energy. The world (channel fading and mobility, other users' load on the ESs) lives in
the system's runtime state, seeded by :meth:`MegSystem.reset`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from meg_gym.channel.digital import DigitalLink, coherence_time_s, fading_cdf
from meg_gym.executor import (
    Eavesdropping,
    ExecutionResult,
    LinkConditions,
    NodeCompute,
    NodeModel,
    execute,
    link_timing,
    shared_flop_cache,
)
from meg_gym.ldm.cards import model_geometry
from meg_gym.ldm.settings import GenerationSettings
from meg_gym.protocols import PlacedProtocol, ProtocolError, place
from meg_gym.timing import StepCost

if TYPE_CHECKING:  # torch and the model code load only when a model runs (live mode, counting costs)
    import torch

    from meg_gym.compute import EsQueueBatch
    from meg_gym.ldm.components import Components

__all__ = ["Decision", "MegSystem", "Outcome", "Request"]


@dataclass(frozen=True)
class Request:
    """A text-guided image-to-image request: input image (1,3,H,W) in [0,1], prompt, seed."""

    image: torch.Tensor
    prompt: str
    seed: int = 0
    deadline_s: float = math.inf
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What the allocation policy chose: protocol, ES ids, bandwidth for this request."""

    protocol: str
    es_ids: tuple[int, ...] = (0,)
    bandwidth_hz: float | None = None  # None: the scenario's whole bandwidth_hz


@dataclass(frozen=True)
class Outcome:
    """The measured result of serving one request."""

    protocol: str
    es_ids: tuple[int, ...]
    output: torch.Tensor | None
    reference: torch.Tensor | None
    quality: float
    ssim: float
    psnr_db: float
    fidelity: float | None
    latency_s: float
    latency_breakdown: dict[str, float]
    uplink_bits: int
    downlink_bits: int
    energy_j: float
    trace: tuple
    candidates: tuple = ()
    selected_index: int | None = None
    backhaul_bits: int = 0  # ES to ES: the borders cooperating tiles exchanged
    retransmissions: int = 0  # digital: code blocks sent again (HARQ)
    outage: bool = False  # digital: a send failed, and the request with it
    leakage: float | None = None  # with an eavesdropper listening (meg_gym.eavesdropper): in [0, 1]; else None

    @property
    def total_bits(self) -> int:
        return self.uplink_bits + self.downlink_bits


class MegSystem:
    """The MEG world: model, channel, ESs and their queues; serves requests."""

    def __init__(self, scenario: Any = None, *, components: Components | None = None, judge: Any = "auto") -> None:
        from meg_gym.config import load_scenario

        self.scenario = scenario if hasattr(scenario, "model_dump") else load_scenario(scenario)
        sc = self.scenario
        self._comps, self._meta, self._cost_comps = components, None, None  # loaded on first use
        self._models: dict[tuple[str, bool], Any] = {}  # (card name, meta) -> the other nodes' models (model_comps)
        # the geometry behind FLOPs and payloads: the model itself, or a stand-in's card (cost_model)
        # the step-cost cache's key: the cost model's card geometry (None: a folder, loaded to read it)
        self._cost_geometry = model_geometry(sc.cost_model or sc.model) if components is None else None
        self.settings = GenerationSettings.from_any(sc.generation)
        self.flop_cache = shared_flop_cache()
        self._references: dict[tuple, Any] = {}
        self._meta_costs: dict[tuple, list[StepCost]] = {}
        if sc.backend == "live" and components is None:  # an unavailable torch device fails here, not mid-episode
            from meg_gym.ldm.runtime import resolve_device

            resolve_device(sc.torch_device)
        self.judge = self._load_judge() if judge == "auto" else judge  # scores prompt fidelity
        from meg_gym.quality.user import make_user

        self.user = make_user(sc.workload.selection, self.judge)  # picks among candidates (the user)
        self._init_devices()
        self.now_s = 0.0
        from meg_gym.channel.batched import make_channel_batch

        # the UE's links: a channel batch of one UE (the world core's model), built once; reset() redraws it
        self.channel = make_channel_batch(sc.channel.kind, 1, **channel_params(sc))
        self.reset(sc.seed)

    def __deepcopy__(self, memo: dict) -> MegSystem:
        """A copy with its own world state (channel, queues, randomness, clock); the model,
        the FLOP cache and the reference cache are shared, since nothing mutates them."""
        import copy

        new = copy.copy(self)
        memo[id(self)] = new
        new.channel = copy.deepcopy(self.channel, memo)
        new.queues = copy.deepcopy(self.queues, memo)
        new.rng = copy.deepcopy(self.rng, memo)
        return new

    # -- set-up -------------------------------------------------------------------------
    @property
    def comps(self) -> Components:
        """The scenario's model (loaded on first use; profiled worlds never need it)."""
        if self._comps is None:
            from meg_gym.ldm.components import load_model

            sc = self.scenario
            live = sc.backend == "live"  # a profiled world runs no model: it reads shapes, on the CPU
            self._comps = load_model(sc.model, sc.torch_device if live else "cpu", sc.torch_dtype if live else "fp32")
        return self._comps

    @property
    def meta(self) -> Components:
        """The model on the meta device: shapes and FLOPs without weights or compute."""
        if self._meta is None:
            from meg_gym.ldm.components import meta_copy

            self._meta = meta_copy(self.comps)
        return self._meta

    @property
    def cost_comps(self) -> Components:
        """The geometry behind FLOPs and payloads: the model itself, or a stand-in's card (``cost_model``)."""
        if self._cost_comps is None:
            if not self.scenario.cost_model:
                self._cost_comps = self.meta
            else:
                from meg_gym.ldm.components import load_model, meta_copy

                self._cost_comps = meta_copy(load_model(self.scenario.cost_model))
        return self._cost_comps

    @property
    def ue_model(self) -> str | None:
        """The scenario's ``ue_model`` when it differs from ``model`` (None: the UE runs the ES's model)."""
        ue = self.scenario.ue_model
        return None if ue is None or ue == self.scenario.model else ue

    @property
    def ue_comps(self) -> Components | None:
        """The model the UE runs (``ue_model``), placed as the ES's; None: the ES's model."""
        return None if self.ue_model is None else self.model_comps(self.ue_model)

    @property
    def ue_cost_comps(self) -> Components | None:
        """The UE's model on the meta device (its FLOPs); None: the ES's."""
        return None if self.ue_model is None else self.model_comps(self.ue_model, meta=True)

    def model_comps(self, name: str | None, meta: bool = False) -> Components:
        """A model another node runs (``ue_model``, ``es[i].model``: a card sharing ``model``'s parts), placed
        as the scenario's model (loaded once); ``meta``: its meta copy (shapes and FLOPs). None or ``model``:
        the scenario's model itself."""
        if name is None or name == self.scenario.model:
            return self.meta if meta else self.comps
        key = (name, meta)
        if key not in self._models:
            if meta:
                from meg_gym.ldm.components import meta_copy

                self._models[key] = meta_copy(self.model_comps(name))
            else:
                from meg_gym.ldm.components import load_model

                sc = self.scenario
                live = sc.backend == "live"
                self._models[key] = load_model(name, sc.torch_device if live else "cpu",
                                               sc.torch_dtype if live else "fp32")
        return self._models[key]

    def es_variant(self, es_id: int) -> tuple[str | None, float | None, int | None]:
        """(model, guidance scale, seed offset) ES ``es_id`` runs instead of the scenario's (``es[i]``; each
        None where it runs the scenario's)."""
        return self.scenario.es[es_id].variant(self.scenario.model, self.settings)

    def cost_variants(self, es_ids: tuple[int, ...]) -> tuple | None:
        """What of the ESs' variants their step costs depend on, per ES in ``es_ids``' order: (model,
        guidance scale) (the guidance scale decides whether the UNet runs twice per step); None where no
        ES has one, so that the shipped step costs keep their keys."""
        variants = tuple(self.es_variant(i)[:2] for i in es_ids)
        return None if all(v == (None, None) for v in variants) else variants

    def node_models(self, nodes: dict[str, int], seed: int | None) -> dict[str, NodeModel]:
        """The :class:`~meg_gym.executor.NodeModel` of each node (name -> the ES id whose variant it runs)
        that runs one, live; ``seed``: the request's (its own generator's seed is it plus the offset)."""
        out = {}
        for node, es_id in nodes.items():
            model, guidance, offset = self.es_variant(es_id)
            if (model, guidance, offset) != (None, None, None):
                own_seed = None if offset is None or seed is None else (int(seed) + offset) % 2**63
                out[node] = self._node_model(model, guidance, own_seed)
        return out

    def _node_model(self, model: str | None, guidance: float | None, seed: int | None = None,
                    meta: bool = False) -> NodeModel:
        return NodeModel(comps=None if model is None else self.model_comps(model, meta), guidance_scale=guidance,
                         seed=seed)

    def _load_judge(self) -> Any:
        """The tiny model's prompt-fidelity judge. Not shipped: none (quality is SSIM alone), with a
        warning; shipped but unreadable or not matching its SHA-256: an error, never a silent downgrade."""
        if not self.comps.name.startswith("tiny") or not self.comps.has_weights:
            return None
        from meg_gym.ldm.components import SHIPPED_DIR
        from meg_gym.quality.fidelity import load_judge

        if not (SHIPPED_DIR / "tiny" / "classifier.safetensors").is_file():
            import warnings

            warnings.warn("the attribute classifier is not installed: quality is SSIM alone, prompt fidelity is "
                          "off (run 'meg-gym train-ldm --phase classifier')", stacklevel=3)
            return None
        return load_judge()

    def _init_devices(self) -> None:
        from meg_gym.compute import device_profile

        sc = self.scenario
        ue = device_profile(sc.ue.device)
        self.ue_flops_per_s = float(sc.ue.flops_per_s or ue.flops_per_s)
        self.ue_power_w = float(sc.ue.power_w or ue.power_w)
        self.ue_tx_power_w = 10 ** ((sc.ue.tx_power_dbm - 30) / 10)
        self.ue_rx_power_w = float(sc.ue.rx_power_w)
        self.backhaul = (float(sc.backhaul.rate_bps), float(sc.backhaul.latency_s))  # the ES-to-ES link
        self.es_flops_per_s = {}
        for i, es in enumerate(sc.es):
            prof = device_profile(es.device)
            self.es_flops_per_s[i] = float(es.flops_per_s or prof.flops_per_s)

    def reset(self, seed: int | None = None) -> None:
        """New world state (channel, mobility, ES queues) from ``seed``."""
        from meg_gym.compute import EsQueue

        sc = self.scenario
        ss = np.random.SeedSequence(seed)
        ch_ss, q_ss = ss.spawn(2)
        self.rng = np.random.default_rng(ch_ss)
        self.channel.reset(self.rng, sc.num_es)
        job = self.background_job_flops()
        self.queues = {
            i: EsQueue(self.es_flops_per_s[i], es.load, job, np.random.default_rng(s))
            for i, (es, s) in enumerate(zip(sc.es, q_ss.spawn(sc.num_es)))
        }
        self.now_s = 0.0

    def queue_batch(self, copies: int) -> EsQueueBatch:
        """``copies`` independent sets of the ES queues as one :class:`~meg_gym.compute.EsQueueBatch`
        (the model of the queues :meth:`reset` builds, as arrays): the world core's queues."""
        from meg_gym.compute import EsQueueBatch

        return EsQueueBatch([self.es_flops_per_s[i] for i in range(self.scenario.num_es)],
                            [es.load for es in self.scenario.es], self.background_job_flops(), copies)

    def background_job_flops(self) -> float:
        """Work of one other user's job on an ES: the ES part of a Full-ES generation with the scenario's
        model and settings (the other users' jobs do not take this user's ES variants, ``es[i].model``...)."""
        costs = self._canonical_costs("full_es", 1, None)
        return float(sum(c.flops for c in costs if c.kind == "run" and c.node != "ue"))

    # -- plans and costs ------------------------------------------------------------------
    def plan(self, protocol: str, es_ids: tuple[int, ...]) -> PlacedProtocol:
        sc = self.scenario
        if protocol not in sc.protocols:
            raise ProtocolError(f"'protocol' must be one of the scenario's {list(sc.protocols)} (got {protocol!r})")
        bad = [i for i in es_ids if not 0 <= int(i) < sc.num_es]
        if bad:
            raise ProtocolError(f"'es_ids' must be in [0, {sc.num_es - 1}] (got {list(es_ids)})")
        return place(protocol, tuple(int(i) for i in es_ids))

    def costs(self, protocol: str, es_ids: tuple[int, ...]) -> list[StepCost]:
        """Step costs (FLOPs, payload bits) of a plan, from one run on the meta model.

        They depend on the protocol, the number of ESs, the settings and the ESs' variants
        (:meth:`cost_variants`), not on which ESs otherwise: measured once on ESs ``0..k-1`` (running
        the variants of ``es_ids``, in order) and renamed. Cached in memory, in the shipped
        ``configs/costs/<model>.json`` and in ``~/.cache/meg_gym/costs/`` (see :mod:`meg_gym.costs`).
        """
        es_ids = tuple(int(i) for i in es_ids)
        key = (protocol, es_ids, self.settings)
        if key not in self._meta_costs:
            from meg_gym import costs as cost_cache

            canon = self._canonical_costs(protocol, len(es_ids), self.cost_variants(es_ids))
            self._meta_costs[key] = cost_cache.rename(canon, es_ids)
        return self._meta_costs[key]

    def _canonical_costs(self, protocol: str, num_es: int, variants: tuple | None) -> list[StepCost]:
        """The step costs of ``protocol`` on ESs ``0..num_es-1`` running ``variants`` (:meth:`cost_variants`)."""
        from meg_gym import costs as cost_cache

        ckey = (protocol, num_es, self.settings, variants)
        if ckey not in self._meta_costs:
            self._meta_costs[ckey] = cost_cache.cached_costs(
                self._cost_geometry or self.cost_comps, protocol, num_es, self.settings,
                cost_cache.transmission_key(self.scenario), lambda p, k: self._measure_costs(p, k, variants),
                ue_model=self.ue_model, es_variants=variants)
        return self._meta_costs[ckey]

    def _measure_costs(self, protocol: str, num_es: int, variants: tuple | None = None) -> list[StepCost]:
        """Count the step costs on the meta model: ESs ``0..num_es-1``, ES k running ``variants[k]``
        ((model, guidance scale), :meth:`cost_variants`; None: the scenario's model and settings)."""
        from meg_gym.workload import TYPICAL_PROMPT

        plan = place(protocol, tuple(range(num_es)))
        nodes = {f"es{k}": self._node_model(model, guidance, meta=True)
                 for k, (model, guidance) in enumerate(variants or ()) if (model, guidance) != (None, None)}
        res = self._run(plan, self.cost_comps, _meta_image(self.cost_comps), TYPICAL_PROMPT, None,
                        self._links(1e6, noiseless=True), queues=False, ue_comps=self.ue_cost_comps,
                        node_models=nodes)
        return res.costs

    def _links(self, bandwidth_hz: float, noiseless: bool | None = None,
               snr_db: dict[tuple[int, str], float] | None = None, link_state: dict | None = None,
               uniforms: Any = None) -> LinkConditions:
        """The links a request meets: ``snr_db``'s pinned SNRs ((es_id, 'ul'|'dl') -> dB), the channel's
        now for the links it leaves out (read only when it leaves some out); ``link_state`` and
        ``uniforms`` as :class:`~meg_gym.executor.LinkConditions` (None with no pinned SNRs: the
        system's channel's fading now)."""
        sc = self.scenario
        snr = dict(snr_db or {})
        if len(snr) < 2 * sc.num_es:
            table = self.channel.snr_table_db(bandwidth_hz)[0].tolist()
            snr = {**{(i, link): table[i][j] for i in range(sc.num_es) for j, link in enumerate(("ul", "dl"))}, **snr}
        t = sc.transmission
        if link_state is None and snr_db is None and hasattr(self.channel, "fading_db"):
            # the system's own channel: its current fading blocks are what the transmitter sees
            ch = self.channel
            link_state = {i: (ch.fading_db(i, "ul"), ch.fading_db(i, "dl"), float(ch.is_los(i)))
                          for i in range(sc.num_es)}
        return LinkConditions(
            snr_db=snr, bandwidth_hz=bandwidth_hz, mode=t.mode, bits_per_value=t.bits_per_value,
            noiseless=self.channel.noiseless if noiseless is None else noiseless, digital=self.digital,
            analog_repetitions=t.analog_repetitions, ue_tx_power_w=self.ue_tx_power_w,
            ue_rx_power_w=self.ue_rx_power_w, link_state=link_state,
            uniforms=uniforms,
        )

    @cached_property
    def digital(self) -> tuple[DigitalLink, DigitalLink]:
        """The (uplink, downlink) digital links of the scenario (:mod:`meg_gym.channel.digital`)."""
        return digital_links(self.scenario)

    def _compute(self, queues: bool, other: dict[int, Any] | None = None, start_s: float | None = None) -> NodeCompute:
        """The nodes' compute: against the system's queues and clock, or ``other`` queues at ``start_s``."""
        return NodeCompute(self.ue_flops_per_s, dict(self.es_flops_per_s), self.ue_power_w,
                           queues=(self.queues if other is None else other) if queues else None,
                           start_s=self.now_s if start_s is None else start_s, backhaul=self.backhaul)

    @cached_property
    def torch_threads(self) -> int | None:
        """Intra-op threads the model runs with: the scenario's ``torch_threads``, else 1 for a model
        of at most 128 px (the tiny one), else None (torch's own default). Read once (the card is a file)."""
        if self.scenario.torch_threads is not None:
            return int(self.scenario.torch_threads)
        geometry = model_geometry(self.scenario.model)
        size = geometry.image_size if geometry is not None else self.comps.image_size
        return 1 if size <= 128 else None

    def _run(self, plan: PlacedProtocol, comps: Components, image: torch.Tensor, prompt: str, seed: int | None,
             links: LinkConditions, queues: bool = True, other_queues: dict[int, Any] | None = None,
             start_s: float | None = None, eavesdropper: Eavesdropping | None = None,
             ue_comps: Components | None | str = "own",
             node_models: dict[str, NodeModel] | str = "own") -> ExecutionResult:
        """One pass of ``plan``; ``ue_comps``: the UE's model ("own": the scenario's ``ue_model``, live);
        ``node_models``: the ESs' variants ("own": the scenario's ``es[i]`` of the plan's ESs, live)."""
        import torch

        threads = self.torch_threads
        if threads is not None and torch.get_num_threads() != threads:  # process-wide: set where a model runs
            torch.set_num_threads(threads)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        ch_gen = torch.Generator().manual_seed(seed + 7_919) if seed is not None else None
        return execute(plan, comps, image, prompt, settings=self.settings, links=links,
                       compute=self._compute(queues, other_queues, start_s), generator=gen, channel_generator=ch_gen,
                       judge=self.user, flop_cache=self.flop_cache, eavesdropper=eavesdropper,
                       ue_comps=self.ue_comps if isinstance(ue_comps, str) else ue_comps,
                       node_models=(self.node_models({f"es{i}": i for i in plan.es_ids}, seed)
                                    if isinstance(node_models, str) else node_models))

    # -- serving --------------------------------------------------------------------------
    def bandwidth(self, decision: Decision) -> float:
        bw = self.scenario.bandwidth_hz if decision.bandwidth_hz is None else float(decision.bandwidth_hz)
        if not (math.isfinite(bw) and bw > 0):
            raise ValueError(f"'bandwidth_hz' must be a finite number > 0 (got {bw})")
        return bw

    def serve(self, request: Request, decision: Decision, *, snr_db: dict[tuple[int, str], float] | None = None,
              use_queues: bool = True, queues: dict[int, Any] | None = None, start_s: float | None = None,
              link_state: dict[int, tuple[float, float, float]] | None = None, uniforms: Any = None,
              eve_snr_db: dict[tuple[int, str], float] | None = None) -> Outcome:
        """Run the decision's protocol live on the request and measure the outcome.

        ``snr_db`` pins the link SNRs ((es_id, 'ul'|'dl') -> dB) instead of the channel's
        current ones (calibration sweeps use it; the world core passes every link's, with
        their fading ``link_state`` and the HARQ ``uniforms``, see
        :class:`~meg_gym.executor.LinkConditions`; None: the system's own channel and
        generator); ``use_queues=False`` leaves the ES queues out; ``queues`` (es_id -> queue)
        and ``start_s`` serve against other queues and clock than the system's own (the world core's).

        A digital send that fails (:mod:`meg_gym.channel.digital`) fails the request: nothing
        arrives, so quality, SSIM and fidelity are 0 and ``outage`` is True; the latency is
        the time until the UE gave up.

        ``eve_snr_db``: an eavesdropper's SNR per hop ((es_id, 'ul'|'dl') -> dB over the request's
        bandwidth, :class:`~meg_gym.executor.Eavesdropping`): the outcome's ``leakage`` is then
        :func:`meg_gym.eavesdropper.leakage_score` of what it finished from each tensor it could
        read, against the user's output (the perfect channel's when the user's request failed).
        """
        plan = self.plan(decision.protocol, decision.es_ids)
        bw = self.bandwidth(decision)
        if uniforms is None and snr_db is None:
            uniforms = self.rng.random((64, max(d.levels for d in self.digital)))
        links = self._links(bw, snr_db=snr_db, link_state=link_state, uniforms=uniforms)
        from meg_gym.quality.metrics import psnr_db, ssim

        own_timing = not self.scenario.cost_model
        eve_cfg = self.scenario.eavesdropper
        eve = None
        if eve_snr_db is not None:
            eve = Eavesdropping(dict(eve_snr_db), encrypted=bool(eve_cfg is not None and eve_cfg.encryption),
                                seed=(request.seed + 104_729) % 2**63)  # its own noise, not the user's
        res = self._run(plan, self.comps, request.image, request.prompt, request.seed, links,
                        queues=use_queues and own_timing, other_queues=queues, start_s=start_s, eavesdropper=eve)
        if links.noiseless:
            ref_out = res.output
        else:  # what a perfect channel would have delivered: same request, same generator
            ref_out = self._reference_for(plan, request, links)
        out, reference = _host(res.output[0]), _host(ref_out[0])  # metrics and the judge run on the CPU, in fp32
        fid = self.judge.score(out, request.prompt) if self.judge is not None else None
        s = ssim(out, reference)
        summary, trace = res.summary, res.trace
        if not own_timing:  # timing at the stand-in's scale: its FLOPs and payloads
            summary, trace = link_timing(plan, self.costs(plan.protocol, plan.es_ids), links,
                                         self._compute(use_queues, queues, start_s))
        leak = None
        if eve is not None:
            from meg_gym.eavesdropper import leakage_score

            user = reference if summary.get("outage") else out
            leak = leakage_score([_host(o[0]) for o in res.eavesdropped], user, request.prompt, self.judge,
                                 self.scenario.reward.ssim_weight)
        if summary.get("outage"):  # nothing arrived: the request failed
            s, fid = 0.0, (0.0 if fid is not None else None)
        outcome = self._outcome(plan, summary, trace, s, psnr_db(out, reference), fid, out, reference,
                                res.candidates, res.selected_index)
        return outcome if leak is None else replace(outcome, leakage=leak)

    def _reference_for(self, plan: PlacedProtocol, request: Request, links: LinkConditions) -> torch.Tensor:
        key = (plan.protocol, plan.es_ids, request.seed, request.prompt, _digest(request.image), self.settings)
        if key not in self._references:
            if len(self._references) > 256:
                self._references.clear()
            res = self._run(plan, self.comps, request.image, request.prompt, request.seed,
                            replace(links, noiseless=True), queues=False)
            self._references[key] = res.output
        return self._references[key]

    def _outcome(self, plan: PlacedProtocol, summary: dict[str, float], trace: list, s: float, p: float,
                 fid: float | None, out: Any, ref: Any, candidates: list, selected: int | None) -> Outcome:
        w_ssim = self.scenario.reward.ssim_weight
        quality = s if fid is None else w_ssim * s + (1 - w_ssim) * fid
        breakdown = {k: summary[k] for k in ("ue_compute_s", "es_compute_s", "queue_s", "uplink_s", "downlink_s",
                                             "backhaul_s")}
        for r in trace:
            if r.kind == "run":
                key = f"{r.node}.{r.name}_s"
                breakdown[key] = breakdown.get(key, 0.0) + (r.end_s - r.start_s - r.wait_s)
        return Outcome(
            protocol=plan.protocol, es_ids=plan.es_ids, output=out, reference=ref, quality=float(quality),
            ssim=float(s), psnr_db=float(p), fidelity=fid, latency_s=float(summary["latency_s"]),
            latency_breakdown=breakdown, uplink_bits=int(summary["uplink_bits"]),
            downlink_bits=int(summary["downlink_bits"]), backhaul_bits=int(summary["backhaul_bits"]),
            energy_j=float(summary["energy_j"]),
            retransmissions=int(summary.get("retransmissions", 0)), outage=bool(summary.get("outage", 0.0)),
            trace=tuple(trace),
            candidates=tuple(candidates), selected_index=selected,
        )

    def reference(self, request: Request) -> torch.Tensor:
        """The monolithic result: Full ES over a perfect channel (= diffusers' img2img pipeline)."""
        plan = place("full_es", (0,))
        res = self._run(plan, self.comps, request.image, request.prompt, request.seed,
                        _noiseless(self._links(self.scenario.bandwidth_hz)), queues=False, node_models={})
        return _host(res.output[0])

    def advance(self, dt_s: float) -> None:
        """Move the world on by ``dt_s``: mobility, a new fading block."""
        if not (math.isfinite(dt_s) and dt_s >= 0):
            raise ValueError(f"'dt_s' must be a finite number >= 0 (got {dt_s})")
        self.channel.advance(dt_s, self.rng)
        self.now_s += dt_s


def channel_params(sc: Any) -> dict[str, Any]:
    """The channel model's keyword arguments from a scenario: its channel section plus the
    UE's and ESs' radio settings (powers, positions, speed) for the link-budget kinds. ES
    positions all at the default leave the kind's default layout; distinct ones place the
    sites; any other repeat raises, naming the ES that repeats another's."""
    params = sc.channel.params()
    if sc.channel.kind in ("awgn", "perfect"):
        # snr_db is the SNR over the whole bandwidth_hz; a smaller share concentrates the power
        params["reference_bandwidth_hz"] = sc.bandwidth_hz
        return params
    params.update(ue_tx_power_dbm=sc.ue.tx_power_dbm, ue_position_m=tuple(sc.ue.position_m),
                  ue_speed_mps=sc.ue.speed_mps)
    powers = [es.tx_power_dbm for es in sc.es]
    if any(p is not None for p in powers):  # None: the kind's own base-station power
        from meg_gym.channel import CHANNELS

        default = CHANNELS[sc.channel.kind].default_es_tx_power_dbm
        params["es_tx_power_dbm"] = [default if p is None else p for p in powers]
    positions = [tuple(es.position_m) for es in sc.es]
    if len(set(positions)) == len(positions):  # distinct positions given
        params["es_positions_m"] = positions
    elif len(set(positions)) > 1 or positions[0] != _DEFAULT_ES_POSITION:
        # ESs sharing a site that was given (not the default): a typo, not a request for the default layout
        j = next(j for j, p in enumerate(positions) if positions.index(p) != j)
        raise ValueError(f"'es[{j}].position_m' must differ from 'es[{positions.index(positions[j])}].position_m' "
                         f"(got {list(positions[j])} for both): give every ES its own position, or none for the "
                         f"kind's default layout")
    return params  # every ES at the default position: the kind's default layout


def digital_links(sc: Any) -> tuple[DigitalLink, DigitalLink]:
    """The scenario's (uplink, downlink) digital links: ``transmission``'s rate settings, the
    channel's fading law and the coherence time of the UE's speed at the carrier."""
    t, ch = sc.transmission, sc.channel
    fading = ch.fading if ch.kind in ("umi", "uma") else "none"
    k = 10.0 ** (ch.rician_k_db / 10.0) if fading == "rician" else 0.0
    coherence = coherence_time_s(sc.ue.speed_mps, ch.carrier_hz) if fading != "none" else math.inf
    margin = t.fading_margin_db if t.fading_margin_db is not None else bler_margin_db(fading, k, 0.1)
    return tuple(DigitalLink(efficiency=t.efficiency[j], snr_min_db=t.snr_min_db,
                             max_spectral_efficiency=t.max_spectral_efficiency[j], max_repetitions=t.max_repetitions,
                             margin_db=margin, coherence_s=coherence, max_retransmissions=t.max_retransmissions,
                             fading=fading, rician_k_linear=k) for j in range(2))


def bler_margin_db(fading: str, k_linear: float, bler: float) -> float:
    """The back-off m (dB) below the mean SNR at which a fresh block of this fading fails with
    probability ``bler``: F(10^(-m/10)) = bler (F: the CDF of the power gain, LOS for Rician)."""
    if fading == "none":
        return 0.0
    lo, hi = 1e-12, 1.0  # the gain quantile lies below the mean for any bler < 0.5
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if fading_cdf(fading, True, k_linear, mid) < bler:
            lo = mid
        else:
            hi = mid
    return -10.0 * math.log10(math.sqrt(lo * hi))


_DEFAULT_ES_POSITION = (0.0, 0.0)  # EsConfig.position_m's default: "no position given"


def _noiseless(links: LinkConditions) -> LinkConditions:
    return replace(links, noiseless=True)


def _host(image: torch.Tensor) -> torch.Tensor:
    """An output image as the user gets it: fp32 on the CPU, whatever device and dtype the model ran in."""
    import torch

    return image.to(device="cpu", dtype=torch.float32)


def _digest(image: torch.Tensor) -> int:
    return hash(image.detach().cpu().numpy().tobytes())


def _meta_image(comps: Components) -> torch.Tensor:
    import torch

    return torch.empty((1, 3, comps.image_size, comps.image_size), device="meta")
