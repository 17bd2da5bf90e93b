"""Image quality against the perfect-channel reference: SSIM and PSNR.

SSIM follows Wang et al. 2004 ("Image quality assessment: from error visibility to
structural similarity", IEEE TIP 13(4)): an 11x11 Gaussian window with sigma 1.5,
C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 1 for images in [0, 1], averaged over channels
and pixels (the same constants as scikit-image's ``structural_similarity`` with
``gaussian_weights=True``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["psnr_db", "ssim"]


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def _check(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape (got {tuple(a.shape)} and {tuple(b.shape)})")
    if a.dim() == 3:
        a, b = a[None], b[None]
    return a.double().clamp(0, 1), b.double().clamp(0, 1)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two images (C,H,W) or (N,C,H,W) with values in [0, 1]."""
    a, b = _check(a, b)
    c = a.shape[1]
    size = min(11, a.shape[-1], a.shape[-2])
    w = _gaussian_window(size).to(a)[None, None].repeat(c, 1, 1, 1)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    saa = filt(a * a) - mu_a**2
    sbb = filt(b * b) - mu_b**2
    sab = filt(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return float(s.mean())


def psnr_db(a: torch.Tensor, b: torch.Tensor, cap_db: float = 100.0) -> float:
    """PSNR in dB for images in [0, 1]; identical images give ``cap_db``."""
    a, b = _check(a, b)
    mse = float(torch.mean((a - b) ** 2))
    return cap_db if mse <= 10 ** (-cap_db / 10) else 10 * math.log10(1.0 / mse)
