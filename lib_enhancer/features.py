"""A built-in image feature extractor that needs no download: colour, tone, layout and texture statistics.

It is the fallback backbone of the personal taste model (:mod:`lib_enhancer.taste`) when no CLIP
weights are on disk, and the input of the unpaired enhancer's generator (:mod:`lib_enhancer.unpaired`).
Every feature is a smooth function of the pixels (soft histograms, sorted-value quantiles, pooled
gradients), so a head on top of it is a differentiable scorer the optimizer can climb.

Features (:data:`FEATURE_NAMES`, 107 values), computed on a working copy whose long side is
:data:`WORK_SIDE` (``crop_mode="whole"``) or on the four corner and centre crops at native resolution
(``crop_mode="five_crop"``, averaged; WESPE's high-resolution protocol):

* tone: mean, spread and 7 quantiles of L*, soft 8-bin L* histogram, soft clipped-white and
  crushed-black shares;
* colour: mean and spread of a*, b*, chroma (mean, spread, 90th percentile), Hasler-Süsstrunk
  colourfulness, grey-world cast of the least chromatic pixels, a chroma-weighted 12-bin hue
  histogram, the dark channel (haze);
* layout: mean L*, a*, b* on a 3x3 grid (exposure and colour distribution across the frame);
* texture: mean gradient magnitude of L* at 4 scales, Laplacian energy, share of strong edges,
  local contrast (std of L* in windows), a 4-bin edge orientation histogram, high-frequency
  "noise" in flat areas.

The values are raw (different units); heads standardise them with training-set statistics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lib_enhancer.scorers.preprocess import CropSpec, multi_crop, resize

Tensor = torch.Tensor

#: Bump when a feature's definition changes: cached embeddings are keyed by it.
FEATURE_VERSION = 1
WORK_SIDE = 256  # long side of the working copy in "whole" mode
CROP_SIZE = 224  # square side in "five_crop" mode
CROP_MODES = ("whole", "five_crop")

_L_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_L_BINS = 8
_HUE_BINS = 12
_GRID = 3
_GRAD_SCALES = 4


def _names() -> tuple[str, ...]:
    names = ["L_mean", "L_std", *(f"L_q{int(q * 100):02d}" for q in _L_QUANTILES)]
    names += [f"L_hist{i}" for i in range(_L_BINS)]
    names += ["clip_white", "crush_black"]
    names += ["a_mean", "b_mean", "a_std", "b_std", "C_mean", "C_std", "C_q90", "colourfulness"]
    names += ["cast_a", "cast_b", "dark_channel"]
    names += [f"hue_hist{i}" for i in range(_HUE_BINS)]
    names += [f"grid_{c}_{i}{j}" for c in ("L", "a", "b") for i in range(_GRID) for j in range(_GRID)]
    names += [f"grad_s{s}" for s in range(_GRAD_SCALES)]
    names += ["laplacian", "edge_share", "local_contrast", "noise"]
    names += [f"orient{i}" for i in range(4)]
    # the same tone and texture summary on the log scale: ratios matter more than differences
    names += [f"log_grad_s{s}" for s in range(_GRAD_SCALES)] + ["log_laplacian", "log_noise"]
    names += ["sat_mean", "sat_std", "sat_q90", "value_mean", "value_std"]
    names += ["rgb_mean_r", "rgb_mean_g", "rgb_mean_b", "rgb_std_r", "rgb_std_g", "rgb_std_b"]
    names += ["L_skew", "L_entropy", "tail_dark", "tail_bright"]
    names += ["mid_contrast", "ab_corr", "warmth", "greenness", "blue_sky"]
    return tuple(names)


FEATURE_NAMES: tuple[str, ...] = _names()

_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE = (0.95047, 1.0, 1.08883)


def srgb_to_lab(image: Tensor) -> Tensor:
    """``(B, 3, H, W)`` sRGB in [0, 1] -> CIELAB (D65), L* in [0, 100]; differentiable."""
    x = image.clamp(0.0, 1.0)
    lin = torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(_RGB_TO_XYZ, device=image.device, dtype=image.dtype)
    xyz = torch.einsum("ij,bjhw->bihw", m, lin)
    white = torch.tensor(_WHITE, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    t = xyz / white
    d = 6.0 / 29.0
    f = torch.where(t > d**3, t.clamp_min(d**3) ** (1.0 / 3.0), t / (3 * d * d) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(1)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)


def _soft_hist(values: Tensor, centres: Tensor, width: float, weights: Tensor | None = None) -> Tensor:
    """Soft histogram ``(B, K)`` of ``values`` ``(B, N)`` with Gaussian bins; rows sum to 1."""
    w = torch.exp(-0.5 * ((values.unsqueeze(-1) - centres) / width) ** 2)  # (B, N, K)
    w = w / (w.sum(-1, keepdim=True) + 1e-8)
    if weights is not None:
        w = w * weights.unsqueeze(-1)
    h = w.sum(1)
    return h / (h.sum(-1, keepdim=True) + 1e-8)


def _sobel(lum: Tensor) -> tuple[Tensor, Tensor]:
    k = torch.tensor(
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=lum.device, dtype=lum.dtype
    )
    p = F.pad(lum, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(p, (k / 8.0).view(1, 1, 3, 3))
    gy = F.conv2d(p, (k.t() / 8.0).view(1, 1, 3, 3))
    return gx, gy


def image_features(images: Tensor) -> Tensor:
    """The :data:`FEATURE_NAMES` statistics of ``(B, 3, H, W)`` sRGB images in [0, 1] -> ``(B, D)``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
    x = images.clamp(0.0, 1.0)
    b = x.shape[0]
    dev, dt = x.device, x.dtype
    lab = srgb_to_lab(x)
    lum = lab[:, :1] / 100.0  # (B,1,H,W) in [0, 1]
    L = lum.flatten(1)
    a = lab[:, 1].flatten(1) / 100.0
    bb = lab[:, 2].flatten(1) / 100.0
    chroma = torch.sqrt(a * a + bb * bb + 1e-6)
    feats: list[Tensor] = []

    # tone
    q = torch.quantile(L, torch.tensor(_L_QUANTILES, device=dev, dtype=dt), dim=1).t()
    feats += [L.mean(1, keepdim=True), L.std(1, keepdim=True), q]
    centres = torch.linspace(0.0, 1.0, _L_BINS, device=dev, dtype=dt)
    feats.append(_soft_hist(L, centres, 0.5 / (_L_BINS - 1)))
    cmax = x.amax(1).flatten(1)
    feats.append(torch.sigmoid((cmax - 0.985) / 0.005).mean(1, keepdim=True))
    feats.append(torch.sigmoid((0.02 - L) / 0.005).mean(1, keepdim=True))

    # colour
    cq = torch.quantile(chroma, 0.9, dim=1, keepdim=True)
    r, g, bl = x[:, 0].flatten(1), x[:, 1].flatten(1), x[:, 2].flatten(1)
    rg, yb = r - g, 0.5 * (r + g) - bl
    colourfulness = torch.sqrt(rg.var(1) + yb.var(1) + 1e-8) + 0.3 * torch.sqrt(
        rg.mean(1) ** 2 + yb.mean(1) ** 2 + 1e-8
    )
    thr = torch.quantile(chroma.detach(), 0.2, dim=1, keepdim=True)
    wn = torch.sigmoid((thr - chroma) / 0.02)
    den = wn.sum(1) + 1e-6
    patch = max(3, round(min(x.shape[-2:]) / 40) | 1)
    dark = -F.max_pool2d(-x.amin(1, keepdim=True), patch, stride=1, padding=patch // 2)
    feats += [
        a.mean(1, keepdim=True),
        bb.mean(1, keepdim=True),
        a.std(1, keepdim=True),
        bb.std(1, keepdim=True),
        chroma.mean(1, keepdim=True),
        chroma.std(1, keepdim=True),
        cq,
        colourfulness.unsqueeze(1),
        ((wn * a).sum(1) / den).unsqueeze(1),
        ((wn * bb).sum(1) / den).unsqueeze(1),
        dark.flatten(1).mean(1, keepdim=True),
    ]
    hue = torch.atan2(bb, a)  # (B, N) in (-pi, pi]
    hc = torch.linspace(-math.pi, math.pi, _HUE_BINS + 1, device=dev, dtype=dt)[:-1]
    diff = torch.remainder(hue.unsqueeze(-1) - hc + math.pi, 2 * math.pi) - math.pi
    hw = torch.exp(-0.5 * (diff / (math.pi / _HUE_BINS)) ** 2)
    hw = hw / (hw.sum(-1, keepdim=True) + 1e-8) * chroma.unsqueeze(-1)
    hist = hw.sum(1)
    feats.append(hist / (hist.sum(-1, keepdim=True) + 1e-8))

    # layout
    grid = F.adaptive_avg_pool2d(torch.cat([lum, lab[:, 1:] / 100.0], dim=1), _GRID)
    feats.append(grid.flatten(1))

    # texture
    grads = []
    level = lum
    for _ in range(_GRAD_SCALES):
        gx, gy = _sobel(level)
        grads.append(torch.sqrt(gx * gx + gy * gy + 1e-8).flatten(1).mean(1, keepdim=True))
        if min(level.shape[-2:]) >= 4:
            level = F.avg_pool2d(level, 2)
    gx, gy = _sobel(lum)
    mag = torch.sqrt(gx * gx + gy * gy + 1e-8)
    lap_k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=dev, dtype=dt)
    lap = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), lap_k.view(1, 1, 3, 3))
    laplacian = lap.abs().flatten(1).mean(1, keepdim=True)
    edge_share = torch.sigmoid((mag - 0.05) / 0.01).flatten(1).mean(1, keepdim=True)
    k = max(3, round(min(x.shape[-2:]) / 16) | 1)
    mu = F.avg_pool2d(lum, k, stride=1, padding=k // 2, count_include_pad=False)
    mu2 = F.avg_pool2d(lum * lum, k, stride=1, padding=k // 2, count_include_pad=False)
    local_contrast = torch.sqrt((mu2 - mu * mu).clamp_min(0.0) + 1e-8).flatten(1).mean(1, keepdim=True)
    flat = torch.sigmoid((0.02 - mag) / 0.005)
    noise = ((lap.abs() * flat).flatten(1).sum(1) / (flat.flatten(1).sum(1) + 1e-6)).unsqueeze(1)
    theta = torch.atan2(gy, gx).flatten(1)
    ow = mag.flatten(1)
    oc = torch.tensor([0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4], device=dev, dtype=dt)
    od = torch.remainder(theta.unsqueeze(-1) - oc + math.pi / 2, math.pi) - math.pi / 2
    owt = torch.exp(-0.5 * (od / (math.pi / 8)) ** 2)
    owt = owt / (owt.sum(-1, keepdim=True) + 1e-8) * ow.unsqueeze(-1)
    orient = owt.sum(1)
    feats += [*grads, laplacian, edge_share, local_contrast, noise]
    feats.append(orient / (orient.sum(-1, keepdim=True) + 1e-8))
    feats += [torch.log(gr + 1e-4) for gr in grads]
    feats += [torch.log(laplacian + 1e-4), torch.log(noise + 1e-4)]

    # HSV-like saturation and value, RGB moments
    cmin = x.amin(1).flatten(1)
    sat = (cmax - cmin) / (cmax + 1e-3)
    feats += [
        sat.mean(1, keepdim=True),
        sat.std(1, keepdim=True),
        torch.quantile(sat, 0.9, dim=1, keepdim=True),
        cmax.mean(1, keepdim=True),
        cmax.std(1, keepdim=True),
    ]
    flat_rgb = x.flatten(2)
    feats += [flat_rgb.mean(2), flat_rgb.std(2)]

    # distribution shape and a few colour-semantic summaries
    lc = L - L.mean(1, keepdim=True)
    skew = (lc**3).mean(1) / (L.std(1) ** 3 + 1e-4)
    hist_l = _soft_hist(L, torch.linspace(0.0, 1.0, 16, device=dev, dtype=dt), 0.5 / 15)
    entropy = -(hist_l * torch.log(hist_l + 1e-8)).sum(1)
    mid = torch.exp(-0.5 * ((L - 0.5) / 0.2) ** 2)
    mid_contrast = (mid * lc.abs()).sum(1) / (mid.sum(1) + 1e-6)
    ac, bc = a - a.mean(1, keepdim=True), bb - bb.mean(1, keepdim=True)
    ab_corr = (ac * bc).mean(1) / (a.std(1) * bb.std(1) + 1e-4)
    feats += [
        skew.unsqueeze(1),
        entropy.unsqueeze(1),
        torch.sigmoid((0.1 - L) / 0.02).mean(1, keepdim=True),
        torch.sigmoid((L - 0.9) / 0.02).mean(1, keepdim=True),
        mid_contrast.unsqueeze(1),
        ab_corr.unsqueeze(1),
        (torch.relu(bb) * torch.sigmoid((a + 0.05) / 0.02)).mean(1, keepdim=True),
        torch.relu(-a).mean(1, keepdim=True),
        (torch.relu(-bb) * torch.sigmoid((L - 0.5) / 0.1)).mean(1, keepdim=True),
    ]
    out = torch.cat(feats, dim=1)
    assert out.shape == (b, len(FEATURE_NAMES)), (out.shape, len(FEATURE_NAMES))
    return out


class BuiltinFeatures(nn.Module):
    """``(B, 3, H, W)`` sRGB in [0, 1] -> ``(B, D)`` :data:`FEATURE_NAMES` (no weights, differentiable).

    Args:
        crop_mode: ``"whole"`` (the image at :data:`WORK_SIDE` px on its long side, aspect kept) or
            ``"five_crop"`` (corners and centre, :data:`CROP_SIZE` px squares at native resolution,
            features averaged: sees full-resolution sharpness and noise).
    """

    def __init__(self, crop_mode: str = "whole") -> None:
        super().__init__()
        if crop_mode not in CROP_MODES:
            raise ValueError(
                f"unknown crop mode {crop_mode!r} for built-in features; use {', '.join(CROP_MODES)}"
            )
        self.crop_mode = crop_mode

    @property
    def key(self) -> str:
        """Identifies the embedding space (cache key)."""
        return f"builtin-v{FEATURE_VERSION}-{self.crop_mode}"

    @property
    def dim(self) -> int:
        return len(FEATURE_NAMES)

    def spec(self) -> dict[str, str]:
        """How to rebuild this extractor (stored in model cards)."""
        return {"kind": "builtin", "crop_mode": self.crop_mode, "key": self.key}

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
        x = images.float()
        if self.crop_mode == "five_crop":
            crops, n = multi_crop(x, CropSpec(size=CROP_SIZE, mode="five_crop"))
            return image_features(crops).view(x.shape[0], n, -1).mean(1)
        h, w = x.shape[-2:]
        scale = WORK_SIDE / max(h, w)
        if scale < 1.0:
            x = resize(x, max(8, round(h * scale)), max(8, round(w * scale)))
        return image_features(x)
