"""``natural``: the built-in, weight-free, differentiable technical-quality scorer.

It measures what a photo editor checks first, from image statistics in CIELAB:

* exposure — mean lightness L*;
* tonal range — the 1st and 99th lightness percentiles (are there blacks and whites?), and
  lightness spread;
* clipping — the share of pixels burnt to white or crushed to black;
* colour cast — the mean a*, b* of the least chromatic pixels (grey-world on what should be grey);
* colourfulness — mean chroma, and the share of garishly over-saturated pixels.

Each statistic has a band that real photographs fall in (calibrated on the mate-backgrounds and
``skimage.data`` photos, see ``bench/calibrate_natural.py``). Outside the band the penalty grows
quadratically; inside, a weak pull towards the band's centre remains. The score is
``10 / (1 + Σ penalties)``: 10 for a photo with nothing to fix. Everything is differentiable (the
percentiles through sorting), so the gradient optimizer can climb it directly. It is resolution
independent: the image is area-downscaled to at most 160 px first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lib_enhancer.filters.color import srgb_to_linear
from lib_enhancer.scorers.registry import ScorerInfo, register_scorer

Tensor = torch.Tensor

ANALYSIS_SIDE = 160
CAST_PIXEL_SHARE = 0.2  # the least chromatic share of pixels that estimates a colour cast

# sRGB (D65) linear RGB -> XYZ, and the D65 white.
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE = (0.95047, 1.0, 1.08883)


@dataclass(frozen=True)
class Band:
    """A statistic's natural range, the scale of its penalty outside, and a weak pull to the centre.

    Outside the band the penalty is the pseudo-Huber ``sqrt(1 + u²) - 1`` of ``u = distance / scale``:
    quadratic near the band, linear far away, so one unusual statistic (a photo that is mostly sky)
    cannot dominate everything else.
    """

    low: float
    high: float
    scale: float
    pull: float = 0.0

    def penalty(self, value: Tensor) -> Tensor:
        outside = (F.relu(self.low - value) + F.relu(value - self.high)) / self.scale
        out = torch.sqrt(1.0 + outside * outside) - 1.0
        if self.pull:
            centre = 0.5 * (self.low + self.high)
            half = 0.5 * (self.high - self.low)
            out = out + self.pull * ((value - centre) / half) ** 2
        return out


# Absolute bands on L*/100, Lab units and pixel shares; see bench/calibrate_natural.py for where real
# photographs fall. The scales of the three range statistics (mean lightness 0.25, dark percentile
# 0.8, bright percentile 0.5: soft) and the optimizer pull this scorer declares (l2 = 3.0) were chosen
# for blind restoration on calibration photos the quality benchmark does not use
# (bench/natural_restoration.py, Lomiri + Plasma photos), with the optimizer starting from auto
# contrast (the prior this scorer declares), which restores a lost tonal range exactly: legitimately dark or
# misty photos are barely pushed, degraded ones still get fixed. Clipping and garishness are judged
# relative to the untouched input (or the optimizer's start point) when one is set (an edit must not
# *create* them), else against the wide absolute bands.
BANDS: dict[str, Band] = {
    "mean_lightness": Band(0.32, 0.66, 0.25),
    "dark_percentile": Band(0.0, 0.14, 0.8),
    "bright_percentile": Band(0.82, 1.0, 0.5),
    "lightness_spread": Band(0.13, 0.34, 0.04),
    "clipped_whites": Band(0.0, 0.20, 0.05),
    "crushed_blacks": Band(0.0, 0.06, 0.03),
    "neutral_cast": Band(0.0, 12.0, 8.0),
    "mean_chroma": Band(10.0, 72.0, 10.0),
    "garish_share": Band(0.0, 0.35, 0.10),
}
RELATIVE_BANDS: dict[str, Band] = {
    "clipped_whites": Band(-1.0, 0.005, 0.01),
    "crushed_blacks": Band(-1.0, 0.005, 0.01),
    "garish_share": Band(-1.0, 0.01, 0.02),
}


def _lab_f(t: Tensor) -> Tensor:
    delta = 6.0 / 29.0
    return torch.where(t > delta**3, t.clamp_min(delta**3) ** (1.0 / 3.0), t / (3 * delta**2) + 4.0 / 29.0)


def srgb_to_lab(image: Tensor) -> Tensor:
    """``(*, 3, H, W)`` sRGB in [0, 1] -> CIELAB (D65), L* in [0, 100]."""
    lin = srgb_to_linear(image.clamp(0.0, 1.0))
    m = torch.tensor(_RGB_TO_XYZ, device=image.device, dtype=image.dtype)
    xyz = torch.einsum("ij,...jhw->...ihw", m, lin)
    white = torch.tensor(_WHITE, device=image.device, dtype=image.dtype).view(3, 1, 1)
    fx, fy, fz = _lab_f(xyz / white).unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def _shrink(image: Tensor, side: int) -> Tensor:
    h, w = image.shape[-2:]
    scale = side / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image, size=size, mode="area")


def natural_stats(images: Tensor) -> dict[str, Tensor]:
    """The statistics the scorer judges, each ``(B,)``. ``images``: ``(B, 3, H, W)`` sRGB in [0, 1]."""
    x = _shrink(images.clamp(0.0, 1.0), ANALYSIS_SIDE)
    lab = srgb_to_lab(x)
    lightness = lab[:, 0].flatten(1) / 100.0
    a = lab[:, 1].flatten(1)
    b = lab[:, 2].flatten(1)
    chroma = torch.sqrt(a * a + b * b + 1e-6)
    quant = torch.quantile(lightness, torch.tensor([0.01, 0.99], device=x.device, dtype=x.dtype), dim=1)
    # Grey-world on the least chromatic pixels (those below the 20th chroma percentile): under a
    # global cast, what was grey is still the least chromatic part of the image, just shifted.
    threshold = torch.quantile(chroma.detach(), CAST_PIXEL_SHARE, dim=1, keepdim=True)
    neutral_w = torch.sigmoid((threshold - chroma) / 2.0)
    denom = neutral_w.sum(1) + 1e-6
    cast_a = (neutral_w * a).sum(1) / denom
    cast_b = (neutral_w * b).sum(1) / denom
    channel_max = x.amax(dim=1).flatten(1)
    return {
        "mean_lightness": lightness.mean(1),
        "dark_percentile": quant[0],
        "bright_percentile": quant[1],
        "lightness_spread": lightness.std(1),
        "clipped_whites": torch.sigmoid((channel_max - 0.99) / 0.004).mean(1),
        "crushed_blacks": torch.sigmoid((0.01 - lightness) / 0.004).mean(1),
        "neutral_cast": torch.sqrt(cast_a**2 + cast_b**2 + 1e-6),
        "mean_chroma": chroma.mean(1),
        "garish_share": torch.sigmoid((chroma - 85.0) / 4.0).mean(1),
    }


def natural_penalties(images: Tensor, reference: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Per-statistic penalties ``(B,)`` (0 = nothing to fix for that aspect).

    Args:
        images: ``(B, 3, H, W)`` sRGB in [0, 1].
        reference: :func:`natural_stats` of the untouched image; clipping and garishness are then
            penalised only where the edit adds them.
    """
    return penalties_of(natural_stats(images), reference)


def penalties_of(stats: dict[str, Tensor], reference: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """:func:`natural_penalties` of statistics already computed (:func:`natural_stats`)."""
    out = {}
    for name, value in stats.items():
        if reference is not None and name in RELATIVE_BANDS:
            out[name] = RELATIVE_BANDS[name].penalty(value - reference[name].to(value))
        else:
            out[name] = BANDS[name].penalty(value)
    return out


class NaturalScorer(torch.nn.Module):
    """Weight-free technical photo quality; ``forward`` returns ``(B,)`` scores in (0, 10].

    After :meth:`set_reference` (the optimizer calls it with the untouched preview) clipping and
    garish colours are judged relative to that image, so an edit is never rewarded for turning a
    blown-out sky grey, only penalised for blowing out more.
    """

    def __init__(self) -> None:
        super().__init__()
        self._reference: dict[str, Tensor] | None = None

    def set_reference(self, images: Tensor | None) -> None:
        """Judge clipping/garishness relative to ``images`` (``(1, 3, H, W)``); ``None`` clears."""
        if images is None:
            self._reference = None
            return
        with torch.no_grad():
            stats = natural_stats(images if images.dim() == 4 else images[None])
        self._reference = _row(stats, 0)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(0)
        return _score(natural_penalties(images, self._reference))

    def score_with_reference(self, images: Tensor, row: int) -> Tensor:
        """Scores ``(B,)`` of ``images`` ``(B, 3, H, W)`` judged against their row ``row``, which
        becomes the reference (as :meth:`set_reference` of it, then ``forward``, in one pass of the
        statistics: the learned modes' scorer check)."""
        stats = natural_stats(images)
        self._reference = _row(stats, row)
        return _score(penalties_of(stats, self._reference))

    def explain(self, images: Tensor) -> dict[str, float]:
        """Penalties of the first image, by statistic — the 'why' behind a score."""
        x = images[:1] if images.dim() == 4 else images[None]
        with torch.no_grad():
            return {k: float(v[0]) for k, v in natural_penalties(x, self._reference).items()}


def _row(stats: dict[str, Tensor], row: int) -> dict[str, Tensor]:
    """Row ``row`` of batched statistics (each ``(1,)``, detached): a reference."""
    return {k: v[row : row + 1].detach() for k, v in stats.items()}


def _score(penalties: dict[str, Tensor]) -> Tensor:
    return 10.0 / (1.0 + sum(penalties.values()))


@register_scorer(
    ScorerInfo(
        name="natural",
        description="Built-in technical quality from image statistics (exposure, range, clipping, cast, "
        "colourfulness). No weights, no download, differentiable, fast on CPU.",
        score_range=(0.0, 10.0),
        higher_is_better=True,
        differentiable=True,
        input_size=None,
        weights=(),
        license="MIT",
        tags=("builtin", "technical"),
        judges_detail=False,
        l2=3.0,
        prior=(("auto_contrast", 1.0),),
    )
)
def create_natural(device=None, dtype=None, cache_dir=None, offline=None, search_dirs=None) -> NaturalScorer:
    """The natural scorer needs no weights: ``cache_dir``/``offline``/``search_dirs`` (options shared by
    ensemble members) are accepted and ignored."""
    return NaturalScorer().to(device=device or "cpu")
