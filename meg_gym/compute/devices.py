"""Device presets: how fast a UE or an ES computes, and what power it draws.

Compute latency of a stage is ``stage FLOPs / flops_per_s``. The ``flops_per_s`` of a
preset is an **effective** rate, not a datasheet peak: it is derived from a published
Stable Diffusion speed in iterations per second (one iteration = one classifier-free-guided
denoising step at 512x512) times the FLOPs of that step, counted on the same architecture
with :func:`meg_gym.compute.flops.count_flops`::

    flops_per_s = sd_it_per_s * CFG_STEP_FLOPS[sd_model]

so ``CFG_STEP_FLOPS[sd_model] / flops_per_s`` gives back exactly the published seconds
per iteration, and every other stage (VAE encode/decode, text encoder, a tiny model) runs
at the same achieved FLOP/s. Datasheet peaks are 4-10x higher than these rates (an L4
peaks at 121 dense FP16 tensor TFLOP/s); an achieved rate already holds the software
stack's efficiency, which is what a latency model needs.

Where a benchmark times a whole generation (text encoder + N steps + VAE decode), its
it/s is N / total time; the derived rate is then slightly conservative (the VAE decoder
is about 1.5 steps' worth of FLOPs out of 50).

The table :data:`DEVICES` (one row per preset, the house style):

==============  ====  ===========  ==========  ==========================================
name            kind  it/s (SD)    FLOP/s      measured on
==============  ====  ===========  ==========  ==========================================
phone_npu       ue    4.95 (2.1)   7.96e12     Snapdragon 8 Gen 2 NPU, INT8 (Galaxy S23), UNet only
phone_npu_e2e   ue    1.39 (1.5)   2.23e12     Snapdragon 8 Gen 2, SD 1.5 INT8, end to end
laptop_gpu      ue    6.9 (1.5)    1.11e13     T4-class proxy for an RTX 3060/4060 Laptop
edge_gpu        es    17.25 (1.5)  2.77e13     NVIDIA L4 (estimate, see its source)
datacenter_gpu  es    31.44 (1.5)  5.05e13     NVIDIA A100 80GB SXM
==============  ====  ===========  ==========  ==========================================

Each row's ``source`` and ``power_source`` say where its figures come from; values that
are assumptions say so.
"""

from __future__ import annotations

from dataclasses import dataclass

from meg_gym.compute._validate import ComputeError, check_one_of, check_positive

__all__ = [
    "CFG_STEP_FLOPS",
    "DEVICES",
    "DEVICE_KINDS",
    "DeviceProfile",
    "device_profile",
]

DEVICE_KINDS = ("ue", "es")

CFG_STEP_FLOPS: dict[str, int] = {
    # One classifier-free-guided UNet step at 512x512: the UNet on a batch of 2 latents
    # (2, 4, 64, 64) with text (2, 77, ctx). Counted with FlopCounterMode on the meta model
    # (torch 2.13, diffusers 0.42); tests/compute/test_flops.py recounts both.
    "sd15": 1_606_546_882_560,  # SD 1.5 UNet, configs/models/sd15.yaml, ctx 768
    "sd21-base": 1_608_514_928_640,  # SD 2.1-base UNet: heads [5,10,20,20], ctx 1024, linear proj.
}


@dataclass(frozen=True)
class DeviceProfile:
    """A compute device: its effective FLOP/s, its power, and where the figures come from.

    ``flops_per_s`` is the effective rate used for latency (stage FLOPs / flops_per_s).
    ``power_w`` is the power drawn while computing (UE energy = compute time x power_w),
    ``idle_power_w`` the power while idle. ``sd_it_per_s`` and ``sd_model`` record the
    published Stable Diffusion speed the rate was derived from (``None`` for a custom
    device given in FLOP/s); build such a row with :meth:`from_sd_it_per_s`.
    """

    name: str
    flops_per_s: float
    power_w: float
    idle_power_w: float
    kind: str
    source: str
    sd_it_per_s: float | None = None
    sd_model: str | None = None
    hardware: str = ""
    power_source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ComputeError(f"'device.name' must be a non-empty str (got {self.name!r})")
        p = f"device[{self.name}]"
        check_positive(f"{p}.flops_per_s", self.flops_per_s)
        check_positive(f"{p}.power_w", self.power_w)
        idle = check_positive(f"{p}.idle_power_w", self.idle_power_w, allow_zero=True)
        if idle > float(self.power_w):
            raise ComputeError(f"'{p}.idle_power_w' must be <= power_w={self.power_w!r} (got {self.idle_power_w!r})")
        check_one_of(f"{p}.kind", self.kind, DEVICE_KINDS)
        if not isinstance(self.source, str):
            raise ComputeError(f"'{p}.source' must be a str (got {self.source!r})")
        if (self.sd_it_per_s is None) != (self.sd_model is None):
            raise ComputeError(f"'{p}.sd_it_per_s' and '{p}.sd_model' must be given together "
                               f"(got {self.sd_it_per_s!r} and {self.sd_model!r})")
        if self.sd_it_per_s is not None:
            check_positive(f"{p}.sd_it_per_s", self.sd_it_per_s)
            check_one_of(f"{p}.sd_model", self.sd_model, CFG_STEP_FLOPS)

    @classmethod
    def from_sd_it_per_s(cls, name: str, *, kind: str, sd_it_per_s: float, sd_model: str, power_w: float,
                         idle_power_w: float, source: str, hardware: str = "",
                         power_source: str = "") -> DeviceProfile:
        """A profile whose effective rate reproduces ``sd_it_per_s`` on ``sd_model``."""
        check_one_of(f"device[{name}].sd_model", sd_model, CFG_STEP_FLOPS)
        rate = check_positive(f"device[{name}].sd_it_per_s", sd_it_per_s) * CFG_STEP_FLOPS[sd_model]
        return cls(name=name, flops_per_s=rate, power_w=power_w, idle_power_w=idle_power_w, kind=kind,
                   source=source, sd_it_per_s=float(sd_it_per_s), sd_model=sd_model, hardware=hardware,
                   power_source=power_source)

    def compute_s(self, flops: float) -> float:
        """Seconds to compute ``flops`` at this device's effective rate."""
        return check_positive("flops", flops, allow_zero=True) / self.flops_per_s

    def compute_energy_j(self, flops: float) -> float:
        """Energy to compute ``flops``: compute time x ``power_w``."""
        return self.compute_s(flops) * self.power_w

    def seconds_per_cfg_step(self, sd_model: str = "sd15") -> float:
        """Seconds for one classifier-free-guided step of ``sd_model`` at 512x512."""
        check_one_of("sd_model", sd_model, CFG_STEP_FLOPS)
        return CFG_STEP_FLOPS[sd_model] / self.flops_per_s


# -- the presets -------------------------------------------------------------------------
# Qualcomm AI Hub Models, qai_hub_models/models/stable_diffusion_v2_1_quantized/perf.yaml
# (github.com/quic/ai-hub-models, profiled 2024-08-16): UNet_Quantized, INT8, on the NPU
# of a Samsung Galaxy S23 (Snapdragon 8 Gen 2, the 2022 flagship SoC): 101.094 ms per
# UNet call at batch 1. Their app (models/_shared/stable_diffusion/app.py) runs the
# conditional and unconditional UNet one after the other, so one CFG step = 2 calls.
_S23_UNET_CALL_S = 0.101094
_PHONE_IT_PER_S = 1.0 / (2 * _S23_UNET_CALL_S)  # 4.946 it/s
# Qualcomm's Feb 2023 demo (Qualcomm OnQ blog, "World's first on-device demonstration of Stable
# Diffusion on an Android phone", 2023-02-23): SD 1.5, INT8, Snapdragon 8 Gen 2, 20 steps in
# under 15 s end to end (text encoder, UNet, decoder), 14.4 s in the demo: 20 / 14.4 it/s
_PHONE_E2E_IT_PER_S = 20 / 14.4  # 1.389 it/s

# diffusers' "Torch 2.0" optimisation page (docs/source/en/optimization/torch2.0.md,
# huggingface/diffusers): SD-1.5 txt2img, fp16, batch 1, torch 2.0 SDPA without compile:
# T4 6.9 it/s.
_T4_IT_PER_S = 6.9
# NVIDIA L4 datasheet / product page (2023): "up to 2.5x" the generative-AI (Stable
# Diffusion) performance of the T4 it replaces.
_L4_OVER_T4 = 2.5

DEVICES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile.from_sd_it_per_s(
            "phone_npu", kind="ue", sd_it_per_s=_PHONE_IT_PER_S, sd_model="sd21-base",
            power_w=6.0, idle_power_w=0.5,
            hardware="Qualcomm Snapdragon 8 Gen 2 Hexagon NPU (Samsung Galaxy S23), INT8",
            source=("Qualcomm AI Hub Models perf.yaml for stable_diffusion_v2_1_quantized (2024-08-16): "
                    "UNet 101.094 ms per call on a Galaxy S23; CFG = 2 calls per step -> 4.95 it/s. "
                    "Slower end-to-end phone figures for comparison: Qualcomm's Feb 2023 demo, SD 1.5 "
                    "INT8 on Snapdragon 8 Gen 2, 20 steps in 14.4 s incl. text encoder and decoder "
                    "(~1.4 it/s); Chen et al., 'Speed Is All You Need', CVPR-W 2023, SD 1.4 FP16 on the "
                    "S23 Ultra GPU, 20 iterations in 11.5 s (~1.7 it/s)."),
            power_source=("assumption: 6 W sustained SoC power under NPU/GPU load (flagship phone SoCs "
                          "draw ~5-8 W sustained); 0.5 W idle with the screen on"),
        ),
        DeviceProfile.from_sd_it_per_s(
            "phone_npu_e2e", kind="ue", sd_it_per_s=_PHONE_E2E_IT_PER_S, sd_model="sd15",
            power_w=6.0, idle_power_w=0.5,
            hardware="Qualcomm Snapdragon 8 Gen 2 (reference phone), SD 1.5 INT8, end to end",
            source=("Qualcomm OnQ blog, 2023-02-23: Stable Diffusion 1.5 INT8 on a Snapdragon 8 Gen 2 "
                    "phone, 20 steps in 14.4 s including text encoder and VAE decoder -> 1.39 it/s; the "
                    "end-to-end published phone figure (phone_npu is the UNet-only one, 3.6x faster)"),
            power_source="assumption, as phone_npu: 6 W sustained, 0.5 W idle",
        ),
        DeviceProfile.from_sd_it_per_s(
            "laptop_gpu", kind="ue", sd_it_per_s=_T4_IT_PER_S, sd_model="sd15",
            power_w=80.0, idle_power_w=10.0,
            hardware="RTX 3060/4060 Laptop class (proxy: NVIDIA T4 figure)",
            source=("diffusers docs, optimization/torch2.0 benchmark: SD-1.5 txt2img, fp16, batch 1, "
                    "torch 2.0 SDPA: T4 6.9 it/s, taken as the rate of a 3060/4060-Laptop-class GPU "
                    "(no laptop row in that benchmark; the T4, a 70 W Turing inference card, is taken as "
                    "their peer: an assumption)"),
            power_source=("NVIDIA GeForce RTX 3060 / 4060 Laptop GPU specifications: graphics power "
                          "configurable by the laptop maker (60-115 W / 35-115 W); 80 W taken; 10 W idle is "
                          "an assumption"),
        ),
        DeviceProfile.from_sd_it_per_s(
            "edge_gpu", kind="es", sd_it_per_s=_L4_OVER_T4 * _T4_IT_PER_S, sd_model="sd15",
            power_w=72.0, idle_power_w=16.0,
            hardware="NVIDIA L4 (24 GB, Ada), an edge/inference server GPU; A10 class",
            source=("estimate: NVIDIA L4 datasheet claims up to 2.5x the T4's generative-AI (Stable "
                    "Diffusion) performance; x the T4's 6.9 it/s (diffusers torch2.0 benchmark, SD-1.5, "
                    "fp16, batch 1) = 17.25 it/s. Cross-check: an A10 runs 4 x 50 steps in 10.0 s (same "
                    "benchmark, batch 4), i.e. ~20 image-steps/s"),
            power_source="NVIDIA L4 datasheet: 72 W max thermal design power; 16 W idle is an assumption",
        ),
        DeviceProfile.from_sd_it_per_s(
            "datacenter_gpu", kind="es", sd_it_per_s=31.44, sd_model="sd15",
            power_w=400.0, idle_power_w=50.0,
            hardware="NVIDIA A100 80GB SXM",
            source=("fal-ai/stable-diffusion-benchmarks README: SD-1.5 end-to-end, 512x512, 50 steps, "
                    "fp16, diffusers with torch 2.1 SDPA on an A100 80G SXM: 1.591 s, 31.44 it/s"),
            power_source="NVIDIA A100 datasheet: 400 W max TDP (SXM4); 50 W idle is an assumption",
        ),
    )
}


def device_profile(name: str) -> DeviceProfile:
    """The preset ``name`` from :data:`DEVICES`; an unknown name lists the known ones."""
    profile = DEVICES.get(name) if isinstance(name, str) else None
    if profile is None:
        raise ComputeError(f"'device' must be one of {sorted(DEVICES)} (got {name!r})")
    return profile
