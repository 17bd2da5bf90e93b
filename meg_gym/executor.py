"""One pass over a placed protocol: run the stages, send the tensors, record a trace.

At every :class:`~meg_gym.protocols.Run` the stage really executes and its FLOPs are
counted (once per input shape, with torch's ``FlopCounterMode``). At every
:class:`~meg_gym.protocols.Send` the payload is counted from the real tensor (values x
bits per value; text as UTF-8 bytes, lossless) and the channel is applied to the tensor.
The costs then go through the one timing model, :mod:`meg_gym.timing`, which gives
latency per stage, per link and queueing, and UE energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from meg_gym.ldm.stages import STAGES, GenerationSettings, StageContext, StageError, run_joint_stage, run_stage
from meg_gym.protocols import UE, PlacedProtocol, Run, _stage_names, joint_groups
from meg_gym.timing import StepCost, StepTiming, compile_plan

if TYPE_CHECKING:  # torch and the model code load when a stage runs
    import torch

    from meg_gym.ldm.components import Components

__all__ = ["Eavesdropping", "ExecutionResult", "LinkConditions", "NodeCompute", "NodeModel", "execute",
           "link_timing"]


@dataclass(frozen=True)
class LinkConditions:
    """What the radio offers this request: link SNRs, bandwidth, how tensors are sent."""

    snr_db: dict[tuple[int, str], float]  # (es_id, 'ul'|'dl') -> SNR in dB for this block
    bandwidth_hz: float
    mode: str = "analog"  # analog | digital
    bits_per_value: int = 16
    noiseless: bool = False  # the perfect channel: tensors arrive bit-identical
    digital: Any = None  # (uplink, downlink) meg_gym.channel.DigitalLink; None: its defaults
    analog_repetitions: int = 1  # copies of each analog tensor, combined at the receiver
    ue_tx_power_w: float = 0.2  # 23 dBm, 3GPP TS 38.101-1 power class 3
    ue_rx_power_w: float = 0.0  # drawn while receiving (meg_gym.compute.energy.UE_RX_POWER_W)
    # the digital link's block state: per ES [uplink fading dB, downlink fading dB, LOS 0/1]
    # (None: no fading known), and its HARQ uniforms, (sends, levels) (None: the median outcome)
    link_state: dict[int, tuple[float, float, float]] | None = None
    uniforms: Any = None


@dataclass(frozen=True)
class Eavesdropping:
    """An eavesdropper listening to one request (``meg_gym.eavesdropper``): its SNR for each hop it
    overhears, ``(es_id, 'ul')`` the UE's send towards ES ``es_id`` and ``(es_id, 'dl')`` ES
    ``es_id``'s send, in dB over the request's bandwidth; ``encrypted``: digital payloads it cannot
    read; ``seed``: its own generator's (it does not know the user's noise)."""

    snr_db: dict[tuple[int, str], float]
    encrypted: bool = False
    seed: int = 0


@dataclass
class NodeCompute:
    """Compute of the nodes: effective FLOP/s, UE power, and the ESs' queues (optional)."""

    ue_flops_per_s: float
    es_flops_per_s: dict[int, float]
    ue_power_w: float = 6.0
    queues: dict[int, Any] | None = None  # es_id -> meg_gym.compute.EsQueue
    start_s: float = 0.0
    backhaul: tuple[float, float] | None = None  # the ES-to-ES link (rate bit/s, latency s); None: the default


@dataclass(frozen=True)
class NodeModel:
    """What one node runs where it differs from the plan's model and settings (an ES's variant, the
    scenario's ``es[i]``): ``comps`` its model (None: the plan's), ``guidance_scale`` (None: the settings'),
    ``seed`` the seed of its own noise generator (None: the request's one generator, drawn in plan order)."""

    comps: Any = None
    guidance_scale: float | None = None
    seed: int | None = None


#: output shapes of stages run on the meta device, by FLOP-cache key: a meta run of a stage
#: already seen (same model, settings and input shapes) reuses them instead of tracing again
META_OUTPUTS: dict[Any, dict[str, Any]] = {}

#: one FLOP cache for the process: FLOPs depend only on model, stage, settings and shapes
SHARED_FLOPS: Any = None


def shared_flop_cache() -> Any:
    """The process-wide :class:`meg_gym.compute.FlopCache`."""
    global SHARED_FLOPS
    if SHARED_FLOPS is None:
        from meg_gym.compute import FlopCache

        SHARED_FLOPS = FlopCache()
    return SHARED_FLOPS


@dataclass
class ExecutionResult:
    """Everything one pass produced: the UE's output, what each node held, costs and timing."""

    output: torch.Tensor
    stores: dict[str, dict[str, Any]]
    costs: list[StepCost]
    trace: list[StepTiming]
    summary: dict[str, float]
    selected_index: int | None = None
    candidates: list[torch.Tensor] = field(default_factory=list)
    # with an eavesdropper: the output it finished from each tensor it could read (one per such send)
    eavesdropped: list[torch.Tensor] = field(default_factory=list)


def link_timing(plan: PlacedProtocol, costs: list[StepCost], links: LinkConditions, compute: NodeCompute,
                trace: bool = True) -> tuple[dict[str, float], list]:
    """Timing of a plan with known costs under these links and this compute: the timing walk,
    which also runs the digital link (airtimes, retransmissions, outage) for every digital send."""
    cp = compile_plan(plan, costs)
    ids = plan.es_ids
    state = None if links.link_state is None else [links.link_state[i] for i in ids]
    return cp.timing(
        ue_flops_per_s=compute.ue_flops_per_s, es_flops_per_s=[compute.es_flops_per_s[i] for i in ids],
        snr_ul_db=[links.snr_db[(i, "ul")] for i in ids], snr_dl_db=[links.snr_db[(i, "dl")] for i in ids],
        bandwidth_hz=links.bandwidth_hz, mode=links.mode, digital=links.digital,
        ue_power_w=compute.ue_power_w, ue_tx_power_w=links.ue_tx_power_w, ue_rx_power_w=links.ue_rx_power_w,
        analog_repetitions=links.analog_repetitions, backhaul=compute.backhaul,
        queues=None if compute.queues is None else [compute.queues[i] for i in ids],
        start_s=compute.start_s, link_state=state, uniforms=links.uniforms, trace=trace,
    )


def execute(
    plan: PlacedProtocol,
    comps: Components,
    image: torch.Tensor,
    prompt: str,
    *,
    settings: GenerationSettings,
    links: LinkConditions,
    compute: NodeCompute,
    generator: torch.Generator | None,
    channel_generator: torch.Generator | None = None,
    judge: Any = None,
    flop_cache: Any = None,
    eavesdropper: Eavesdropping | None = None,
    ue_comps: Components | None = None,
    node_models: dict[str, NodeModel] | None = None,
) -> ExecutionResult:
    """Run ``plan`` once: every stage on its node, every tensor through the channel.

    ``eavesdropper``: at every tensor send it gets its own copy (analog: the channel's noise at its
    SNR; digital: the bit-exact payload when its SNR supports the rate the link chose for the
    receiver, :func:`meg_gym.channel.digital.decodable`, else nothing; encrypted: nothing) and the
    rest of the plan runs on that copy (:func:`_eavesdrop`).

    ``ue_comps``: the model the UE runs (the scenario's ``ue_model``, a UE-class model sharing the
    ES model's VAE and text encoder); None: the same model as the ESs.

    ``node_models``: node name (``"es<id>"``) -> :class:`NodeModel`, the variant that node's stages run
    with (its model, guidance scale, noise generator; FLOPs counted on what it runs); nodes left out run
    ``comps`` and ``settings``. The nodes of a joint stage must run one variant (:func:`_run_joint`)."""
    import torch

    from meg_gym.channel import transmit, transmit_text
    from meg_gym.compute import count_flops

    cache = flop_cache if flop_cache is not None else shared_flop_cache()
    stores: dict[str, dict[str, Any]] = {n: {} for n in plan.nodes}
    stores[UE].update(image=image, text=prompt)
    ctx = StageContext(comps=comps, settings=settings, generator=generator, judge=judge, prompt=prompt)
    # the UE's stages run its own model, drawing from the request's one generator in plan order
    contexts = {UE: ctx if ue_comps is None else replace(ctx, comps=ue_comps)}
    for node, nm in (node_models or {}).items():
        contexts[node] = _node_context(ctx, nm)
    costs: list[StepCost] = []
    up, down = links.digital if links.digital is not None else (None, None)
    groups = joint_groups(plan.steps)
    eve_outputs: list[Any] = []
    eve_heard: dict[str, dict[str, Any]] = {}  # every copy the eavesdropper got this pass, per receiving node
    eve_gen = None if eavesdropper is None else torch.Generator().manual_seed(eavesdropper.seed)
    for i_step, step in enumerate(plan.steps):
        if i_step in groups:
            costs.extend(_run_joint([plan.steps[j] for j in groups[i_step]], contexts, ctx, stores, cache,
                                    links.bits_per_value))
            continue
        if isinstance(step, Run) and STAGES[step.stage].joint:
            continue  # a later member of a joint stage: run with its group
        if isinstance(step, Run):
            stage = STAGES[step.stage]
            rename = dict(step.rename)
            back = {mapped: own for own, mapped in rename.items()}
            params = dict(step.params)
            local = {back.get(n, n): stores[step.on][n] for n in _stage_names(step, "in")}
            node_ctx = contexts.get(step.on, ctx)
            node_comps = node_ctx.comps
            # steps (and an ES's guidance scale) live in its settings
            key = cache.key(node_comps.name, stage.name, (step.params, node_ctx.settings), local)
            flops = cache.get(key)
            meta = node_comps.device.type == "meta"
            if meta and flops is not None and key in META_OUTPUTS:  # shapes known: no need to trace again
                out = {k: torch.empty(v, device="meta") if isinstance(v, tuple) else v
                       for k, v in META_OUTPUTS[key].items()}
            elif flops is None:
                out, flops = count_flops(run_stage, stage, node_ctx, local, params)
                cache.put(key, flops)
            else:
                out = run_stage(stage, node_ctx, local, params)
            if meta:
                META_OUTPUTS[key] = {k: tuple(v.shape) if torch.is_tensor(v) else v for k, v in out.items()}
            stores[step.on].update({rename.get(k, k): v for k, v in out.items()})
            costs.append(StepCost("run", stage.name, step.on, flops=int(flops)))
            continue
        value = stores[step.src][step.tensor]
        receivers = step.dst.split(",")
        arrive_as = step.as_ or step.tensor
        link = up if step.src == UE else down
        if isinstance(value, str):  # the prompt: small, always sent losslessly
            tx = transmit_text(value, snr_db=_snr(links, step.src, receivers), bandwidth_hz=links.bandwidth_hz,
                               link=link)
            for d in receivers:
                stores[d][arrive_as] = value
            costs.append(StepCost("send", step.tensor, step.src, step.dst, payload_bits=tx.payload_bits,
                                  lossless=True))
            continue
        sent = _on_air(value)
        for d in receivers:  # a broadcast: one transmission, each receiver with its own noise
            tx = transmit(sent, snr_db=_snr(links, step.src, [d]), bandwidth_hz=links.bandwidth_hz,
                          mode=links.mode, bits_per_value=links.bits_per_value, generator=channel_generator,
                          noiseless=links.noiseless, repetitions=links.analog_repetitions, link=link)
            stores[d][arrive_as] = tx.received.to(device=value.device, dtype=value.dtype)
        costs.append(StepCost("send", step.tensor, step.src, step.dst, payload_bits=tx.payload_bits,
                              values=value.numel()))
        if eavesdropper is not None and value.device.type != "meta":
            copy = _overheard(eavesdropper, step, receivers, sent, tx.received, links, link, eve_gen)
            if copy is not None:
                for d in receivers:
                    eve_heard.setdefault(d, {})[arrive_as] = copy.to(device=value.device, dtype=value.dtype)
                out = _eavesdrop(plan, i_step, eve_heard, ctx, eve_gen)
                if out is not None:
                    eve_outputs.append(out)
    # the airtimes, and whether a digital send failed, are the timing walk's (one link model)
    summary, trace = link_timing(plan, costs, links, compute)
    ue = stores[UE]
    candidates = [ue[k] for k in sorted(ue) if k.startswith("candidate")]
    return ExecutionResult(
        output=ue["output"], stores=stores, costs=costs, trace=trace, summary=summary,
        selected_index=ue.get("selected_index"), candidates=candidates, eavesdropped=eve_outputs,
    )


def _node_context(ctx: StageContext, nm: NodeModel) -> StageContext:
    """The context of a node that runs a variant: its model, its guidance scale, its own generator (a CPU
    one, as the request's: diffusers' ``randn_tensor`` draws on the generator's device and moves the noise)."""
    import torch

    settings = ctx.settings if nm.guidance_scale is None else replace(ctx.settings, guidance_scale=nm.guidance_scale)
    generator = ctx.generator if nm.seed is None or ctx.generator is None else torch.Generator().manual_seed(nm.seed)
    return replace(ctx, comps=nm.comps if nm.comps is not None else ctx.comps, settings=settings, generator=generator)


def _run_joint(group: list[Run], contexts: dict[str, StageContext], default: StageContext,
               stores: dict[str, dict[str, Any]], cache: Any, bits_per_value: int) -> list[StepCost]:
    """Run a joint stage on its nodes at once; one :class:`StepCost` per node: its share of the FLOPs
    (the stage's ``flops_share``: tiles of one width, equal shares; exchanged activations, the columns each
    owns) and the bits it sent over the backhaul
    (values x ``bits_per_value``: the ES-to-ES link is wired and digital, the tensors arrive exact).

    The tiles are one generation (one UNet, one guidance scale, one noise draw over the whole latent), so
    the nodes must run one variant (the scenario refuses others: ``Scenario._es_variants_fit``); the stage
    runs with the first node's context (its generator: the nodes' are seeded alike)."""
    from meg_gym.compute import count_flops

    stage = STAGES[group[0].stage]
    ctxs = [contexts.get(step.on, default) for step in group]
    ctx = ctxs[0]
    seeds = {c.generator.initial_seed() if c.generator is not None and c.generator is not default.generator
             else None for c in ctxs}
    if len({(c.comps.name, c.settings) for c in ctxs}) > 1 or len(seeds) > 1:
        raise StageError(f"joint stage {stage.name!r}: its nodes {[s.on for s in group]} must run one model, "
                         f"settings and noise draw (got {[(c.comps.name, c.settings.guidance_scale) for c in ctxs]})")
    members = _joint_members(group, stores)
    params = dict(group[0].params)
    key = cache.key(ctx.comps.name, stage.name, (group[0].params, ctx.settings), members)
    flops = cache.get(key)
    if flops is None:
        outs, flops = count_flops(run_joint_stage, stage, ctx, members, params)
        cache.put(key, flops)
    else:
        outs = run_joint_stage(stage, ctx, members, params)
    costs = []
    for step, (values, exchanges, (owned, of)) in zip(group, _store_joint(group, outs, stores)):
        # the share of the work this node does (tiles: the columns it owns)
        costs.append(StepCost("run", stage.name, step.on, flops=int(flops) * owned // of,
                              backhaul_bits=values * bits_per_value, exchanges=exchanges))
    return costs


def _joint_members(group: list[Run], stores: dict[str, dict[str, Any]]) -> list[dict[str, Any]] | None:
    """A joint stage's inputs, one dict per member node, from ``stores``; None if a node lacks one."""
    members = []
    for step in group:
        back = {mapped: own for own, mapped in step.rename}
        names = _stage_names(step, "in")
        if not all(n in stores[step.on] for n in names):
            return None
        members.append({back.get(n, n): stores[step.on][n] for n in names})
    return members


def _store_joint(group: list[Run], outs: list[dict[str, Any]], stores: dict[str, dict[str, Any]]) -> list[tuple]:
    """Each member's outputs into its node's store; per member (values exchanged, exchanges, its
    (owned, of) share of the stage's FLOPs)."""
    done = []
    for step, out in zip(group, outs):
        rename = dict(step.rename)
        done.append((int(out.pop("exchange_values")), int(out.pop("exchanges")), out.pop("flops_share")))
        stores[step.on].update({rename.get(k, k): v for k, v in out.items()})
    return done


def _overheard(eve: Eavesdropping, step: Any, receivers: list[str], sent: torch.Tensor, received: torch.Tensor,
               links: LinkConditions, link: Any, generator: torch.Generator) -> torch.Tensor | None:
    """The eavesdropper's copy of one send, or None when it cannot read it (see :func:`execute`)."""
    from meg_gym.channel import transmit
    from meg_gym.channel.digital import DigitalLink, decodable

    es = int(receivers[0][2:]) if step.src == UE else int(step.src[2:])
    snr_eve = max(eve.snr_db[(int(d[2:]), "ul")] for d in receivers) if step.src == UE else eve.snr_db[(es, "dl")]
    if snr_eve == -math.inf:  # it does not hear this hop
        return None
    if links.mode == "digital":
        if eve.encrypted:
            return None
        # the rate was chosen for the receiver's SNR (the broadcast's: its worst receiver's)
        ok = links.noiseless or decodable(link if link is not None else DigitalLink(),
                                          _snr(links, step.src, receivers), snr_eve)
        return received if ok else None
    tx = transmit(sent, snr_db=snr_eve, bandwidth_hz=links.bandwidth_hz, mode="analog",
                  bits_per_value=links.bits_per_value, generator=generator, noiseless=links.noiseless,
                  repetitions=links.analog_repetitions)
    return tx.received


def _eavesdrop(plan: PlacedProtocol, i_send: int, heard: dict[str, dict[str, Any]], ctx: StageContext,
               generator: torch.Generator) -> torch.Tensor | None:
    """The eavesdropper finishes the generation after send ``i_send`` from every copy it has overheard
    so far this pass (``heard``: receiving node -> name -> its copy), with the public model: the plan's
    remaining stages run, each on its node's store of the eavesdropper's copies and the prompt (text
    is sent unencrypted beside every payload, and is tiny); a later send moves a tensor it holds from
    one of its stores to another. A stage whose inputs it lacks is skipped; a joint stage (cooperative
    tiles) runs once it holds every member's inputs (both strips of a split seed, say), and a stage
    that picks among or merges the ESs' results once it holds all of them. Its output is ``output``
    if it got that far, else None (it learnt nothing it can show). Per-node stores keep apart what
    the plan keeps apart: two tiles sent under one name to two ESs are two strips, not one."""
    store: dict[str, dict[str, Any]] = {n: {"text": ctx.prompt, **heard.get(n, {})} for n in plan.nodes}
    own = replace(ctx, generator=generator)
    groups = joint_groups(plan.steps)
    for j in range(i_send + 1, len(plan.steps)):
        step = plan.steps[j]
        if j in groups:
            group = [plan.steps[g] for g in groups[j]]
            members = _joint_members(group, store)
            if members is not None:
                _store_joint(group, run_joint_stage(STAGES[step.stage], own, members, dict(step.params)), store)
            continue
        if isinstance(step, Run):
            if STAGES[step.stage].joint:
                continue  # a later member of a joint stage: run with its group
            rename = dict(step.rename)
            back = {mapped: o for o, mapped in rename.items()}
            names = _stage_names(step, "in")
            node = store[step.on]
            if not all(n in node for n in names):
                continue
            out = run_stage(STAGES[step.stage], own, {back.get(n, n): node[n] for n in names}, dict(step.params))
            node.update({rename.get(k, k): v for k, v in out.items()})
        elif step.tensor in store[step.src]:
            for d in step.dst.split(","):
                store[d][step.as_ or step.tensor] = store[step.src][step.tensor]
    return store[UE].get("output")


def _on_air(value: torch.Tensor) -> torch.Tensor:
    """What the simulated channel carries: the tensor's values in fp32 on the CPU.

    fp32, because the noise is added there: in fp16 the signal power (a mean of squares) overflows
    above |x| ~ 256 (CLIP and SDXL activations reach that) and noise at high SNR falls below half a
    unit in the last place of the values it is added to (fp16 keeps 11 significant bits, bf16 8),
    so it would be rounded away; the receiver casts back to the model's dtype. The CPU, because the
    noise is drawn from the CPU generator of the request and the arithmetic is then the same on
    every device (and MPS has no float64 for the quantiser). Meta tensors stay meta (shapes only).
    """
    import torch

    if value.device.type == "meta":
        return value
    return value.detach().to(device="cpu", dtype=torch.float32)


def _snr(links: LinkConditions, src: str, receivers: list[str]) -> float:
    if src == UE:
        return min(links.snr_db[(int(d[2:]), "ul")] for d in receivers)
    return links.snr_db[(int(src[2:]), "dl")]
