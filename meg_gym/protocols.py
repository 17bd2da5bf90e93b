"""Every MEG protocol as data: a tuple of :class:`Run` and :class:`Send` steps.

A protocol is a template over symbolic nodes: ``"ue"``, ``"es"`` (the one ES of a
single-ES protocol) and ``"es{k}"`` (each of the K ESs of a multi-ES protocol). A step whose
node or tensor names contain ``{k}`` stands for K steps, one per ES. :func:`place` expands a
protocol for concrete ES ids and validates it: every stage input must have been produced
on, or sent to, the node that runs the stage, and the UE must end with ``output``.

The table follows the MEG paper's protocol list (see ``shared/docs/MEG.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from meg_gym.ldm.stages import STAGES

__all__ = [
    "MULTI_ES",
    "FIXED",
    "PROTOCOLS",
    "ProtocolTable",
    "SINGLE_ES",
    "PlacedProtocol",
    "Protocol",
    "ProtocolError",
    "Run",
    "Send",
    "generation_split",
    "get_protocol",
    "joint_groups",
    "place",
]

UE = "ue"
ES = "es"
EACH = "es{k}"


class ProtocolError(ValueError):
    """An inconsistent protocol or an impossible placement."""


@dataclass(frozen=True)
class Run:
    """Run ``stage`` on node ``on``; ``rename`` maps the stage's tensor names to the node's."""

    stage: str
    on: str
    rename: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Send:
    """Send tensor ``tensor`` from ``src`` to ``dst`` (arriving as ``as_``).

    ``broadcast=True`` on a send to ``es{k}`` sends once over the air to all K ESs.
    """

    tensor: str
    src: str
    dst: str
    as_: str | None = None
    broadcast: bool = False

    @property
    def link(self) -> str:
        return "ul" if self.src == UE else "dl"


@dataclass(frozen=True)
class Protocol:
    """A named MEG protocol template."""

    name: str
    title: str
    steps: tuple[Run | Send, ...]
    multi_es: bool = False
    description: str = ""

    @property
    def min_es(self) -> int:
        return 2 if self.multi_es else 1

    @property
    def max_es(self) -> int | None:
        return None if self.multi_es else 1


@dataclass(frozen=True)
class PlacedProtocol:
    """A protocol expanded for concrete ESs: nodes are ``"ue"`` and ``"es<id>"``."""

    protocol: str
    es_ids: tuple[int, ...]
    steps: tuple[Run | Send, ...] = field(repr=False)

    @property
    def nodes(self) -> tuple[str, ...]:
        return (UE, *(f"es{i}" for i in self.es_ids))


def _rn(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(pairs.items())


_K = (("k", "{K}"),)  # a stage parameter filled with the number of ESs at placement
_TILE = (*_K, ("index", "{k}"))  # ... and with the ES's place among them (its tile)
_WEAK = (("weak", True),)

# Request to the ES: the input image and the prompt text (text always lossless).
_REQ_TO_ES = (Send("image", UE, ES), Send("text", UE, ES))
_REQ_TO_EACH = (Send("image", UE, EACH, broadcast=True), Send("text", UE, EACH, broadcast=True))

class ProtocolTable(dict):
    """The protocol table: the MEG paper's fixed protocols by name, iterated in the paper's order, and
    the parametric families of the follow-up literature, built when first named (never iterated):

    * ``tsplit:<k>``: the temporal split (LowLatencyMEG's step ratio; "Large Model at Edge: An Optimal
      MEG Design"): the UE sends the seed; the ES runs the first ``k`` of the img2img loop's denoising
      steps and sends the partly denoised latent (seed-sized) down; the UE runs the rest with its own
      model (the scenario's ``ue_model``) and decodes. ``k`` is in [1, n-1] for a loop of n steps
      (``denoising_loop_steps``); k = 0 is Full UE and k = n is CIAG.
    * ``ssplit:<area>``: the spatial split (MEGSplitting, the MEG group's code for "Large Model at Edge"):
      the UE sends the seed's centre rectangle covering ``area`` of the image (one of
      :data:`~meg_gym.ldm.stages.SPATIAL_AREAS`); the ES generates that region and sends it down; the UE
      outpaints the rest of the image around it with its own model, RePaint-style (the known region
      re-noised and pasted at every step) and decodes.
    * ``<protocol>@<steps>``: any of them under a step budget: every generation denoising stage of the
      placement (not ESUC's short completion pass) runs ``steps`` scheduler steps (img2img then runs
      int(steps x strength) of them) instead of the scenario's ``generation.steps`` (and Full UE's
      ``ue_steps``); ``<protocol>@<steps>/<strength>`` also sets the img2img strength.
    """

    def __missing__(self, name: str) -> Protocol:
        proto = _family(name)
        if proto is None:
            raise KeyError(name)
        self[name] = proto  # built once; dict iteration below lists the fixed table only
        return proto

    def __contains__(self, name: object) -> bool:
        if dict.__contains__(self, name):
            return True
        try:
            self[name]
        except (KeyError, ProtocolError, TypeError):
            return False
        return True

    def __iter__(self):  # noqa: ANN204 - the fixed protocols, in the paper's order
        return iter(FIXED)

    def items(self):  # noqa: ANN201
        return [(n, dict.__getitem__(self, n)) for n in FIXED]

    def keys(self):  # noqa: ANN201
        return list(FIXED)

    def values(self):  # noqa: ANN201
        return [dict.__getitem__(self, n) for n in FIXED]

    def __len__(self) -> int:
        return len(FIXED)


PROTOCOLS: ProtocolTable = ProtocolTable({
    p.name: p
    for p in (
        Protocol("full_ue", "Full UE (local)", (
            Run("encode_text", UE), Run("encode_image", UE), Run("denoise", UE, params=_WEAK), Run("decode", UE),
        ), description="whole pipeline on the UE (generation.ue_steps steps, 20 by default); no traffic"),
        Protocol("full_es", "Full ES (centralized)", (
            *_REQ_TO_ES, Run("encode_text", ES), Run("encode_image", ES), Run("denoise", ES), Run("decode", ES),
            Send("output", ES, UE),
        ), description="image up, generated image down"),
        Protocol("uieg", "UE inference, edge generation", (
            Run("encode_image", UE), Send("seed", UE, ES), Send("text", UE, ES),
            Run("encode_text", ES), Run("denoise", ES), Run("decode", ES), Send("output", ES, UE),
        ), description="seed up, image down: saves uplink"),
        Protocol("eiug", "Edge inference, UE generation", (
            *_REQ_TO_ES, Run("encode_text", ES), Run("encode_image", ES), Run("denoise", ES),
            Send("gen_seed", ES, UE), Run("decode", UE),
        ), description="image up, generated seed down: saves downlink"),
        Protocol("ciag", "Cooperative inference and generation", (
            Run("encode_image", UE), Send("seed", UE, ES), Send("text", UE, ES),
            Run("encode_text", ES), Run("denoise", ES), Send("gen_seed", ES, UE), Run("decode", UE),
        ), description="only latents cross the air"),
        Protocol("esuc", "Edge sketch, UE complete", (
            *_REQ_TO_ES, Run("encode_text", ES), Run("encode_image", ES), Run("denoise", ES), Run("sketch", ES),
            Send("sketch", ES, UE), Run("encode_text", UE), Run("complete", UE),
        ), description="a previewable low-resolution sketch down, completed on the UE"),
        Protocol("uidg", "UE inference, distributed generation", (
            Run("encode_image", UE), Send("seed", UE, EACH, broadcast=True), Send("text", UE, EACH, broadcast=True),
            Run("encode_text", EACH), Run("denoise", EACH), Run("decode", EACH),
            Send("output", EACH, UE, as_="candidate{k}"),
            Run("select", UE, rename=_rn(selected="output"), params=_K),
        ), multi_es=True, description="seed broadcast; every ES returns an image; the user picks one"),
        Protocol("diug", "Distributed inference, UE generation", (
            *_REQ_TO_EACH, Run("encode_text", EACH), Run("encode_image", EACH), Run("denoise", EACH),
            Send("gen_seed", EACH, UE, as_="gen_seed{k}"),
            Run("decode", UE, rename=_rn(gen_seed="gen_seed{k}", output="candidate{k}")),
            Run("select", UE, rename=_rn(selected="output"), params=_K),
        ), multi_es=True, description="every ES returns a generated seed; the UE decodes them all"),
        Protocol("dsuc", "Distributed sketching, UE completion", (
            *_REQ_TO_EACH, Run("encode_text", EACH), Run("encode_image", EACH), Run("denoise", EACH),
            Run("sketch", EACH), Send("sketch", EACH, UE, as_="candidate{k}"),
            Run("select", UE, rename=_rn(selected="sketch"), params=_K),
            Run("encode_text", UE), Run("complete", UE),
        ), multi_es=True, description="every ES returns a sketch; the user picks one; the UE completes it"),
        Protocol("uidcg", "UE inference, distributed cooperative generation", (
            Run("encode_image", UE), Run("split_seed", UE, params=_K),
            Send("seed_tile{k}", UE, EACH, as_="seed"), Send("text", UE, EACH, broadcast=True),
            Run("encode_text", EACH), Run("denoise_tiles", EACH, params=_K),
            Run("crop_seed", EACH, rename=_rn(tile="gen_seed"), params=_TILE),
            Send("gen_seed", EACH, UE, as_="gen_tile{k}"),
            Run("merge_seed", UE, params=_K), Run("decode", UE),
        ), multi_es=True, description="the seed split into strips, one per ES, denoised together (borders exchanged "
                                      "over the backhaul every generation.exchange_every steps); the UE merges "
                                      "and decodes"),
        Protocol("dcsuc", "Distributed cooperative sketching, UE completion", (
            Run("split_image", UE, params=_K),
            Send("image_tile{k}", UE, EACH, as_="image"), Send("text", UE, EACH, broadcast=True),
            Run("encode_text", EACH), Run("encode_image", EACH),
            Run("denoise_tiles", EACH, params=(*_K, ("final", True))),
            Run("sketch", EACH), Run("crop_sketch", EACH, rename=_rn(tile="sketch"), params=_TILE),
            Send("sketch", EACH, UE, as_="sketch_tile{k}"),
            Run("merge_sketch", UE, params=_K), Run("encode_text", UE), Run("complete", UE),
        ), multi_es=True, description="each ES sketches a strip (the strips' latents denoised together, as UIDCG's); "
                                      "the UE merges and completes"),
    )
})
FIXED: tuple[str, ...] = tuple(dict.keys(PROTOCOLS))

# the stages that run the generation's denoising loop (ESUC's completion keeps its own short pass)
_BUDGETED = ("denoise", "denoise_head", "denoise_tail", "denoise_tiles", "outpaint")


def _int_part(text: str, what: str, name: str, lo: int, hi: int) -> int:
    # written plainly (no sign, no leading zero), so that one protocol has one name (its costs, its table row)
    if not text.isdigit() or str(int(text)) != text or not lo <= int(text) <= hi:
        raise ProtocolError(f"protocol {name!r}: {what} must be an integer in [{lo}, {hi}] written without "
                            f"leading zeros (got {text!r})")
    return int(text)


def _float_part(text: str, what: str, name: str, allowed: str, ok: Any) -> float:
    """A decimal part of a protocol name, written as Python prints it (one protocol, one name), for which
    ``ok(value)`` holds; else a one-line error saying what it must be (``allowed``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not ok(value) or str(value) != text:
        raise ProtocolError(f"protocol {name!r}: {what} must be {allowed} written as Python prints it (got {text!r})")
    return value


def _family(name: str) -> Protocol | None:
    """A parametric protocol (:class:`ProtocolTable`) from its name, or None for a name of no family."""
    if not isinstance(name, str):
        return None
    if "@" in name:
        base_name, _, budget = name.partition("@")
        base = PROTOCOLS[base_name] if base_name in PROTOCOLS else None
        if base is None or "@" in base_name:
            return None
        steps_text, _, strength_text = budget.partition("/")
        params: tuple[tuple[str, object], ...] = (("steps", _int_part(steps_text, "the step budget", name, 1, 1000)),)
        if strength_text:
            strength = _float_part(strength_text, "the strength", name, "a number in (0, 1], e.g. 0.5,",
                                   lambda v: 0.0 < v <= 1.0)
            params += (("strength", strength),)
        steps = tuple(replace(st, params=(*st.params, *params)) if isinstance(st, Run) and st.stage in _BUDGETED
                      else st for st in base.steps)
        return Protocol(name, f"{base.title} at {budget} steps", steps, base.multi_es,
                        f"{base.description} (step budget {budget})")
    if name.startswith("tsplit:"):
        k = _int_part(name[len("tsplit:"):], "the ES's steps k", name, 1, 999)
        split = (("split", k),)
        return Protocol(name, f"Temporal split, ES runs {k} steps", (
            Run("encode_image", UE), Send("seed", UE, ES), Send("text", UE, ES),
            Run("encode_text", ES), Run("denoise_head", ES, params=split), Send("mid_seed", ES, UE),
            Run("encode_text", UE), Run("denoise_tail", UE, params=split), Run("decode", UE),
        ), description=f"the ES runs the first {k} denoising steps, the UE the rest with its own model")
    if name.startswith("ssplit:"):
        from meg_gym.ldm.stages import SPATIAL_AREAS

        area = _float_part(name[len("ssplit:"):], "the ES's area", name, f"one of {list(SPATIAL_AREAS)}",
                           lambda v: v in SPATIAL_AREAS)
        at = (("area", area),)
        return Protocol(name, f"Spatial split, ES generates {area:g} of the image", (
            Run("encode_image", UE), Run("crop_centre", UE, params=at), Send("seed_centre", UE, ES),
            Send("text", UE, ES), Run("encode_text", ES),
            Run("denoise", ES, rename=_rn(seed="seed_centre", gen_seed="gen_centre")),
            Send("gen_centre", ES, UE, as_="centre"),
            Run("encode_text", UE), Run("outpaint", UE, params=at), Run("decode", UE),
        ), description=f"the ES generates the centre {area:g} of the image, the UE outpaints the rest with its "
                       f"own model")
    return None

SINGLE_ES: tuple[str, ...] = tuple(n for n, p in PROTOCOLS.items() if not p.multi_es)
MULTI_ES: tuple[str, ...] = tuple(n for n, p in PROTOCOLS.items() if p.multi_es)


def generation_split(name: str, settings: Any) -> tuple[int, int, float]:
    """How a protocol divides the generation between the nodes, under ``settings``
    (:class:`~meg_gym.ldm.settings.GenerationSettings`): (denoising steps one ES runs, denoising steps the
    UE runs, the share of the image an ES generates). The steps are UNet steps of the img2img loop
    (int(steps x strength)); the UE's include ESUC's completion pass."""
    from meg_gym.ldm.stages import denoising_loop_steps

    es_steps = ue_steps = 0
    area = 0.0
    for st in get_protocol(name).steps:
        if not isinstance(st, Run):
            continue
        p = dict(st.params)
        strength = p.get("strength", settings.strength)
        if st.stage == "complete":
            ue_steps += denoising_loop_steps(settings.complete_steps, settings.complete_strength)
            continue
        if st.stage not in _BUDGETED:
            continue
        default = settings.ue_steps if p.get("weak") else settings.steps
        n = denoising_loop_steps(p.get("steps", default), strength)
        # cooperative tiles: every ES runs all n steps on its strip; together they generate the whole image
        run = {"denoise": n, "denoise_tiles": n, "denoise_head": p.get("split", 0),
               "denoise_tail": n - p.get("split", 0), "outpaint": n}[st.stage]
        if st.on == UE:
            ue_steps += run
            # the spatial split: the ES generated the centre rectangle, the UE's loop the rest around it
            area = p.get("area", area)
        else:
            es_steps, area = max(es_steps, run), 1.0
    return es_steps, ue_steps, area


def get_protocol(name: str) -> Protocol:
    """The protocol ``name``; an unknown name lists the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ProtocolError(f"'protocol' must be one of {list(PROTOCOLS)}, 'tsplit:<k>', 'ssplit:<area>' or "
                            f"'<protocol>@<steps>' "
                            f"(got {name!r})") from None


def _node(sym: str, es_ids: tuple[int, ...], k: int | None) -> str:
    if sym == UE:
        return UE
    if sym == ES:
        return f"es{es_ids[0]}"
    return f"es{es_ids[k]}"


def _fmt(name: str | None, k: int | None) -> str | None:
    return None if name is None else name.replace("{k}", str(k)) if k is not None else name


def _expand(step: Run | Send, es_ids: tuple[int, ...]) -> list[Run | Send]:
    K = len(es_ids)
    if isinstance(step, Send):
        per_es = EACH in (step.src, step.dst)
        if per_es and step.broadcast:
            # one transmission over the air, received by every ES
            return [Send(step.tensor, UE, ",".join(f"es{i}" for i in es_ids), step.as_, True)]
        ks = range(K) if per_es else [None]
        return [Send(_fmt(step.tensor, k), _node(step.src, es_ids, k), _node(step.dst, es_ids, k), _fmt(step.as_, k))
                for k in ks]
    def params(k: int | None) -> tuple[tuple[str, object], ...]:
        return tuple((key, K if val == "{K}" else k if val == "{k}" else val) for key, val in step.params)

    templ = any("{k}" in new for _, new in step.rename)
    if step.on == EACH or templ:
        return [Run(step.stage, _node(step.on, es_ids, k), tuple((a, _fmt(b, k)) for a, b in step.rename), params(k))
                for k in range(K)]
    return [Run(step.stage, _node(step.on, es_ids, None), step.rename, params(None))]


def _stage_names(step: Run, which: str) -> list[str]:
    stage = STAGES[step.stage]
    k = dict(step.params).get("k")
    rename = dict(step.rename)
    names = stage.inputs if which == "in" else stage.outputs
    out: list[str] = []
    for n in names:
        expanded = [n.format(k=i) for i in range(k)] if "{k}" in n else [n]
        out.extend(rename.get(e, e) for e in expanded)
    return out


def joint_groups(steps: tuple) -> dict[int, list[int]]:
    """The joint stages of a placed protocol: first step -> the steps of its group (consecutive
    runs of the same joint stage, one per node)."""
    groups: dict[int, list[int]] = {}
    first = None
    for i, step in enumerate(steps):
        joint = isinstance(step, Run) and STAGES[step.stage].joint
        if joint and first is not None and steps[first].stage == step.stage:
            groups[first].append(i)
            continue
        first = i if joint else None
        if joint:
            groups[i] = [i]
    return groups


def validate(steps: tuple[Run | Send, ...], name: str) -> None:
    """Check that every step's inputs exist where it runs and the UE ends with ``output``."""
    have: dict[str, set[str]] = {UE: {"image", "text"}}
    for i, step in enumerate(steps):
        if isinstance(step, Run):
            if step.stage not in STAGES:
                raise ProtocolError(f"protocol {name!r} step {i}: unknown stage {step.stage!r}; known: {list(STAGES)}")
            node_has = have.setdefault(step.on, set())
            for n in _stage_names(step, "in"):
                if n not in node_has:
                    raise ProtocolError(f"protocol {name!r} step {i} ({step.stage} on {step.on}): "
                                        f"input {n!r} is not on {step.on}")
            node_has.update(_stage_names(step, "out"))
        else:
            if step.tensor not in have.get(step.src, set()):
                raise ProtocolError(f"protocol {name!r} step {i}: {step.src} sends {step.tensor!r} it does not have")
            for dst in step.dst.split(","):
                have.setdefault(dst, set()).add(step.as_ or step.tensor)
    if "output" not in have[UE]:
        raise ProtocolError(f"protocol {name!r} never delivers 'output' to the UE")


@lru_cache(maxsize=1024)
def place(protocol: str, es_ids: tuple[int, ...]) -> PlacedProtocol:
    """Expand ``protocol`` onto the ESs ``es_ids`` and validate it (cached)."""
    p = get_protocol(protocol)
    es_ids = tuple(int(i) for i in es_ids)
    if len(set(es_ids)) != len(es_ids):
        raise ProtocolError(f"'es_ids' must be distinct (got {list(es_ids)})")
    if len(es_ids) < p.min_es or (p.max_es is not None and len(es_ids) > p.max_es):
        want = f"exactly {p.min_es}" if p.max_es == p.min_es else f"at least {p.min_es}"
        if protocol == "full_ue":
            want = "exactly 1 (it is not used)"
        raise ProtocolError(f"'es_ids' for {protocol!r} must hold {want} ES id(s) (got {list(es_ids)})")
    steps = tuple(s for step in p.steps for s in _expand(step, es_ids))
    validate(steps, protocol)
    return PlacedProtocol(protocol, es_ids, steps)


for _name in PROTOCOLS:  # every template must be consistent when the module loads
    place(_name, (0, 1) if PROTOCOLS[_name].multi_es else (0,))
