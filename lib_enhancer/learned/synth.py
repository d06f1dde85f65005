"""Seeded synthetic degradations of real photos: the training data of the learned modes.

A sample is a random crop of a photo (random scale, aspect and flip) resized to a square thumbnail,
and a degraded copy made by 0–3 random edits of the kinds photos go wrong in — exposure, gamma,
colour cast (temperature/tint in linear light), saturation per hue, contrast and fade, haze, noise —
in the order a camera pipeline would produce them. Implemented here independently of the filters the
models predict, so the models learn to undo real-looking edits rather than to invert their own ops.
Everything is drawn from a ``torch.Generator``: the same seed gives the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lib_enhancer.filters.color import linear_to_srgb, luminance, srgb_to_linear

Tensor = torch.Tensor

EDITS = ("haze", "exposure", "cast", "saturation", "gamma", "contrast", "noise")  # applied in this order
EDIT_PROBABILITY = {  # relative chance an edit is picked when a sample gets k edits
    "haze": 0.7,
    "exposure": 1.0,
    "cast": 1.0,
    "saturation": 1.0,
    "gamma": 1.0,
    "contrast": 1.0,
    "noise": 0.3,
}
EDIT_COUNT_PROBABILITY = (0.12, 0.45, 0.31, 0.12)  # 0, 1, 2 or 3 edits (0 = keep the photo)


@dataclass(frozen=True)
class SynthConfig:
    """Sampling of training pairs."""

    side: int = 96  # thumbnail side
    min_scale: float = 0.25  # smallest crop, as a fraction of the photo's short side
    strength: float = 1.0  # scales every edit's magnitude


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _col(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


def random_crops(photos: Sequence[Tensor], count: int, cfg: SynthConfig, gen: torch.Generator) -> Tensor:
    """``count`` random square-resized crops ``(count, 3, side, side)`` of float ``(3, H, W)`` photos."""
    out = []
    for _ in range(count):
        photo = photos[int(torch.randint(len(photos), (1,), generator=gen))]
        _, h, w = photo.shape
        short = min(h, w)
        scale = float(_uniform(gen, 1, cfg.min_scale, 1.0))
        aspect = math.exp(float(_uniform(gen, 1, -0.4, 0.4)))
        ch = min(h, max(8, round(short * scale / math.sqrt(aspect))))
        cw = min(w, max(8, round(short * scale * math.sqrt(aspect))))
        y = int(torch.randint(h - ch + 1, (1,), generator=gen))
        x = int(torch.randint(w - cw + 1, (1,), generator=gen))
        crop = photo[:, y : y + ch, x : x + cw].unsqueeze(0)
        crop = F.interpolate(
            crop, size=(cfg.side, cfg.side), mode="bilinear", antialias=True, align_corners=False
        )
        if float(torch.rand(1, generator=gen)) < 0.5:
            crop = crop.flip(-1)
        out.append(crop)
    return torch.cat(out).clamp(0.0, 1.0)


# ---- the edits: (B, 3, H, W) in [0, 1] -> same; `s` scales magnitudes ---------------------------


def edit_exposure(x: Tensor, gen: torch.Generator, s: float) -> Tensor:
    ev = _uniform(gen, x.shape[0], -2.2 * s, 1.4 * s)
    return linear_to_srgb(srgb_to_linear(x) * _col(2.0**ev))


def edit_gamma(x: Tensor, gen: torch.Generator, s: float) -> Tensor:
    g = torch.exp(_uniform(gen, x.shape[0], -0.7 * s, 0.7 * s))
    return x.clamp_min(0.0) ** _col(g)


def edit_cast(x: Tensor, gen: torch.Generator, s: float) -> Tensor:
    n = x.shape[0]
    temp = _uniform(gen, n, -0.4 * s, 0.4 * s)
    tint = _uniform(gen, n, -0.25 * s, 0.25 * s)
    gains = torch.stack([torch.exp(temp), torch.exp(-tint), torch.exp(-temp)], 1)  # r, g, b
    gains = gains / (0.2126 * gains[:, 0:1] + 0.7152 * gains[:, 1:2] + 0.0722 * gains[:, 2:3])
    return linear_to_srgb(srgb_to_linear(x) * gains.view(n, 3, 1, 1))


def _hue(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)
    return torch.atan2(math.sqrt(3.0) * (g - b), 2 * r - g - b).unsqueeze(1)


def edit_saturation(x: Tensor, gen: torch.Generator, s: float) -> Tensor:
    """Global saturation times a smooth random function of hue (two harmonics)."""
    n = x.shape[0]
    base = torch.exp(_uniform(gen, n, -0.9 * s, 0.7 * s))
    coef = _uniform(gen, 4 * n, -0.25 * s, 0.25 * s).view(n, 4, 1, 1)
    h = _hue(x)
    per_hue = 1.0 + coef[:, 0:1] * torch.cos(h) + coef[:, 1:2] * torch.sin(h)
    per_hue = per_hue + coef[:, 2:3] * torch.cos(2 * h) + coef[:, 3:4] * torch.sin(2 * h)
    y = luminance(x)
    return y + (x - y) * _col(base) * per_hue.clamp_min(0.0)


def edit_contrast(x: Tensor, gen: torch.Generator, s: float) -> Tensor:
    """Linear contrast about the mean, then a fade (raised blacks, lowered whites)."""
    n = x.shape[0]
    c = torch.exp(_uniform(gen, n, -0.75 * s, 0.35 * s))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    out = mean + (x - mean) * _col(c)
    lo = _uniform(gen, n, 0.0, 0.12 * s)
    hi = 1.0 - _uniform(gen, n, 0.0, 0.1 * s)
    return _col(lo) + out * _col(hi - lo)


def edit_haze(x: Tensor, gen: torch.Generator, s: float) -> Tensor:
    """Atmospheric scattering ``I t + A (1 - t)`` with transmission thinning towards the top.

    Half the samples scatter in linear light (physically), half on the encoded values (as a
    "fade" slider would); the two look different enough to matter.
    """
    n, _, h, _ = x.shape
    t_far = 1.0 - _uniform(gen, n, 0.2 * s, 0.7 * s)
    t_near = torch.minimum(t_far + _uniform(gen, n, 0.0, 0.35), torch.ones(n))
    ramp = torch.linspace(0.0, 1.0, h).view(1, 1, h, 1)
    t = _col(t_far) + (_col(t_near) - _col(t_far)) * ramp
    air = _col(_uniform(gen, n, 0.7, 1.0)) * (1.0 + _uniform(gen, 3 * n, -0.06, 0.06).view(n, 3, 1, 1))
    linear = _col((torch.rand(n, generator=gen) < 0.5).float())
    encoded = x * t + air * (1.0 - t)
    physical = linear_to_srgb(srgb_to_linear(x) * t + srgb_to_linear(air) * (1.0 - t))
    return linear * physical + (1.0 - linear) * encoded


def edit_noise(x: Tensor, gen: torch.Generator, s: float) -> Tensor:
    sigma = _uniform(gen, x.shape[0], 0.0, 0.03 * s)
    return x + _col(sigma) * torch.randn(x.shape, generator=gen)


EDIT_FUNCTIONS = {
    "haze": edit_haze,
    "exposure": edit_exposure,
    "cast": edit_cast,
    "saturation": edit_saturation,
    "gamma": edit_gamma,
    "contrast": edit_contrast,
    "noise": edit_noise,
}


def pick_edits(count: int, gen: torch.Generator) -> list[list[str]]:
    """Per sample, the edits to apply (in :data:`EDITS` order); some samples get none."""
    weights = torch.tensor([EDIT_PROBABILITY[e] for e in EDITS])
    counts = torch.multinomial(torch.tensor(EDIT_COUNT_PROBABILITY), count, replacement=True, generator=gen)
    chosen = []
    for k in counts.tolist():
        idx = set(torch.multinomial(weights, k, replacement=False, generator=gen).tolist()) if k else set()
        chosen.append([e for i, e in enumerate(EDITS) if i in idx])
    return chosen


def degrade(x: Tensor, edits: Sequence[Sequence[str]], gen: torch.Generator, strength: float = 1.0) -> Tensor:
    """Apply each sample's edits (clamping to [0, 1] after each, as a saved JPEG would)."""
    out = x.clone()
    for name in EDITS:
        rows = [i for i, e in enumerate(edits) if name in e]
        if rows:
            index = torch.tensor(rows)
            out[index] = EDIT_FUNCTIONS[name](out[index], gen, strength).clamp(0.0, 1.0)
    return out


def make_batch(
    photos: Sequence[Tensor], count: int, cfg: SynthConfig, gen: torch.Generator
) -> tuple[Tensor, Tensor, list[list[str]]]:
    """``(degraded, original, edits)``: a batch of training pairs."""
    clean = random_crops(photos, count, cfg, gen)
    edits = pick_edits(count, gen)
    return degrade(clean, edits, gen, cfg.strength), clean, edits


def photos_to_tensors(images: Sequence[np.ndarray]) -> list[Tensor]:
    """uint8 ``(H, W, 3)`` arrays -> float ``(3, H, W)`` tensors in [0, 1]."""
    return [torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0 for im in images]
