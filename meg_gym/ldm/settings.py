"""How a generation runs (steps, strength, the UE's weaker setting): torch-free, so the profiled
worlds read it without importing the model code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GenerationSettings"]


@dataclass(frozen=True)
class GenerationSettings:
    """How a generation runs: the ES's full setting and the UE's weaker ones."""

    steps: int = 20
    strength: float = 0.6
    guidance_scale: float = 4.0
    # Full UE's steps: the MEG paper's setting, 20 as on the ES (fewer steps made Full UE cheap on the most
    # optimistic phone figure; a weaker UE is a weaker model, not a shortened schedule)
    ue_steps: int = 20
    sketch_scale: int = 2  # a sketch has 1/sketch_scale of the resolution per side
    complete_steps: int = 10  # UE completion: a short img2img pass over the upsampled sketch
    complete_strength: float = 0.3
    tile_overlap: int = 2  # latent pixels of overlap on each side of a cooperative tile (the halo)
    # cooperative tiles (UIDCG, DCSUC) exchange their borders every this many denoising steps over the
    # ES-to-ES backhaul, so they denoise as one image (patch-parallel diffusion: MultiDiffusion, Bar-Tal
    # et al. 2023; DistriFusion, Li et al. 2024); 0: every ES denoises its strip alone and the UE
    # cross-fades the strips (no ES-to-ES traffic, seams)
    exchange_every: int = 1
    # what cooperating tiles exchange: 'latent' (the columns above) or 'activations' (at every layer what each
    # tile's next layer reads of the others': conv halos, self-attention keys and values, GroupNorm sums;
    # DistriFusion's synchronous form, Li et al. CVPR 2024), under which the tiles denoise as the monolithic UNet
    exchange: str = "latent"

    def key(self) -> dict[str, Any]:
        """The settings as a dict for the step-cost and calibration keys: a setting added after the shipped
        tables were measured (``exchange``) is named only when it is not its default, so they keep their keys."""
        from dataclasses import asdict

        d = asdict(self)
        if d["exchange"] == "latent":
            del d["exchange"]
        return d

    @classmethod
    def from_any(cls, obj: Any) -> GenerationSettings:
        """Build from a scenario's ``generation`` section (an object or a mapping)."""
        if obj is None:
            return cls()
        if isinstance(obj, cls):
            return obj
        data = obj if isinstance(obj, dict) else obj.model_dump() if hasattr(obj, "model_dump") else vars(obj)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
