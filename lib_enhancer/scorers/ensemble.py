"""Ensembles of scorers, and the SSIM fidelity term.

``create_scorer("laion:0.7,natural:0.3")`` builds an :class:`EnsembleScorer`. Each member's score is
mapped to a common [0, 1] scale with its ``info.score_range`` (flipped when lower is better), and
the ensemble returns the weighted mean ``Σ w_i s_i / Σ w_i``. The mapping is not clamped, so a
member that leaves its nominal range keeps its gradient.

``fidelity`` is an ordinary member (``"laion:1,fidelity:0.5"``, or ``create_scorer("laion",
fidelity=0.5)``): the SSIM between the candidate and the reference image the optimizer passes to
``set_reference`` once before optimizing. It holds an edit close to the original.

Members running on the same CLIP backbone (``laion`` + ``clip-iqa`` on ViT-L/14) share one image
pass per batch: the ensemble evaluates its members inside :func:`lib_enhancer.scorers.clip.shared_pass`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lib_enhancer.scorers.clip import shared_pass
from lib_enhancer.scorers.preprocess import resize
from lib_enhancer.scorers.registry import (
    ScorerInfo,
    create_scorer,
    is_ensemble_spec,
    parse_scorer_spec,
    register_scorer,
    scorer_accepts_option,
)

Tensor = torch.Tensor
Channels = Literal["luma", "rgb"]

#: Rec. 709 luma weights applied to the sRGB values.
_LUMA = (0.2126, 0.7152, 0.0722)


# ---------------------------------------------------------------------------------------------
# SSIM


def _gaussian_kernel(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Separable Gaussian filter, ``valid`` borders, per channel."""
    c = x.shape[1]
    k = kernel.numel()
    x = F.conv2d(x, kernel.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, kernel.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(
    x: Tensor,
    y: Tensor,
    *,
    channels: Channels = "luma",
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
) -> Tensor:
    """Mean structural similarity (Wang et al. 2004, Gaussian window), differentiable.

    Args:
        x: ``(B, 3, H, W)`` images.
        y: reference, ``(B, 3, H, W)`` or ``(1, 3, H, W)`` (broadcast).
        channels: ``"luma"`` compares Rec. 709 luma; ``"rgb"`` averages the three channels.
        window_size: Gaussian window side, shrunk (kept odd) for images smaller than it.
        sigma: Gaussian standard deviation in pixels.
        data_range: value range of the inputs.

    Returns:
        ``(B,)`` SSIM, 1 for identical images.
    """
    if x.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"SSIM needs equal image sizes, got {tuple(x.shape)} and {tuple(y.shape)}")
    if channels == "luma":
        w = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        x = (x * w).sum(dim=1, keepdim=True)
        y = (y.to(x.dtype) * w).sum(dim=1, keepdim=True)
    elif channels != "rgb":
        raise ValueError(f"channels must be 'luma' or 'rgb', got {channels!r}")
    y = y.to(x.dtype).expand_as(x)
    size = min(window_size, *x.shape[-2:])
    size -= 1 - size % 2  # keep it odd
    kernel = _gaussian_kernel(size, sigma, x.device, x.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _blur(x, kernel), _blur(y, kernel)
    var_x = _blur(x * x, kernel) - mu_x**2
    var_y = _blur(y * y, kernel) - mu_y**2
    cov = _blur(x * y, kernel) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(1, 2, 3))


class FidelityScorer(nn.Module):
    """SSIM of the input to the reference set with :meth:`set_reference` (1 = unchanged)."""

    def __init__(self, *, channels: Channels = "luma", window_size: int = 11) -> None:
        super().__init__()
        if channels not in ("luma", "rgb"):
            raise ValueError(f"channels must be 'luma' or 'rgb', got {channels!r}")
        self.channels: Channels = channels
        self.window_size = window_size
        self._reference: Tensor | None = None
        self._resized: dict[tuple[int, int], Tensor] = {}

    def set_reference(self, images: Tensor | None) -> None:
        """Remember the untouched image ``(1 or B, 3, H, W)`` (detached); ``None`` forgets it."""
        self._resized = {}
        if images is None:
            self._reference = None
            return
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"reference must be (B, 3, H, W), got shape {tuple(images.shape)}")
        self._reference = images.detach()

    def _reference_for(self, images: Tensor) -> Tensor:
        if self._reference is None:
            raise RuntimeError("the fidelity scorer has no reference: call set_reference(original) first")
        ref = self._reference
        size = (int(images.shape[-2]), int(images.shape[-1]))
        if tuple(ref.shape[-2:]) != size:
            if size not in self._resized:
                self._resized[size] = resize(ref.float(), *size).clamp(0, 1)
            ref = self._resized[size]
        return ref.to(device=images.device, dtype=images.dtype)

    def forward(self, images: Tensor) -> Tensor:
        """SSIM ``(B,)`` of each image against the reference."""
        return ssim(images, self._reference_for(images), channels=self.channels, window_size=self.window_size)


@register_scorer(
    ScorerInfo(
        name="fidelity",
        description=(
            "Fidelity: SSIM (Gaussian window, luma or per-channel) to the untouched image given to "
            "set_reference(); 1 = unchanged. Use as an ensemble term (fidelity=0.5) to keep edits close."
        ),
        score_range=(0.0, 1.0),
        tags=("fidelity", "reference"),
    )
)
def create_fidelity(
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | None = None,
    channels: Channels = "luma",
    window_size: int = 11,
) -> FidelityScorer:
    """Options: ``channels`` (``"luma"`` or ``"rgb"``), ``window_size``. Follows its inputs' device."""
    del device, dtype, cache_dir  # no weights; computed where the inputs are
    return FidelityScorer(channels=channels, window_size=window_size)


# ---------------------------------------------------------------------------------------------
# Ensemble


class EnsembleScorer(nn.Module):
    """Weighted mean of member scores, each mapped to [0, 1] by its ``info.score_range``.

    Args:
        members: registry scorers (each with an ``info``).
        names: a label per member.
        weights: non-negative weights, at least one positive.
    """

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str], weights: Sequence[float]) -> None:
        super().__init__()
        if not (len(members) == len(names) == len(weights)) or not members:
            raise ValueError("an ensemble needs as many names and weights as members, and at least one")
        for n, w in zip(names, weights, strict=True):
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"ensemble weight of {n!r} must be finite and >= 0, got {w}")
        if sum(weights) <= 0:
            raise ValueError("ensemble weights must not all be zero")
        self.members = nn.ModuleList(members)
        self.names = tuple(names)
        self.weights = tuple(float(w) for w in weights)
        self.ranges: tuple[tuple[float, float, bool], ...] = tuple(
            (float(m.info.score_range[0]), float(m.info.score_range[1]), bool(m.info.higher_is_better))
            for m in members
        )
        for n, (lo, hi, _) in zip(names, self.ranges, strict=True):
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"member {n!r} has no usable score range ({lo}, {hi}) to normalise by")

    def normalise(self, index: int, scores: Tensor) -> Tensor:
        """Map member ``index``'s raw scores to [0, 1], higher is better."""
        lo, hi, higher = self.ranges[index]
        unit = (scores - lo) / (hi - lo)
        return unit if higher else 1.0 - unit

    def member_scores(self, images: Tensor) -> dict[str, Tensor]:
        """Raw ``(B,)`` score of every member (one shared backbone pass), keyed by name."""
        with shared_pass():
            return {n: m(images).reshape(-1) for n, m in zip(self.names, self.members, strict=True)}

    def forward(self, images: Tensor) -> Tensor:
        """``(B,)`` weighted mean of the normalised member scores."""
        total: Tensor | None = None
        with shared_pass():
            for i, (member, weight) in enumerate(zip(self.members, self.weights, strict=True)):
                if weight == 0:
                    continue
                term = weight * self.normalise(i, member(images).reshape(-1).float().to(images.device))
                total = term if total is None else total + term
        assert total is not None  # at least one positive weight, checked in __init__
        return total / sum(self.weights)

    def set_reference(self, images: Tensor | None) -> None:
        """Pass the untouched image (``None``: clear) to every member that takes one (the fidelity term)."""
        for member in self.members:
            if hasattr(member, "set_reference"):
                member.set_reference(images)


def _normalised_spec(items: Sequence[tuple[str, float]]) -> str:
    return ",".join(f"{n}:{w:g}" for n, w in items)


def create_ensemble(
    spec: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | None = None,
    fidelity: float | None = None,
    fidelity_channels: Channels = "luma",
    member_options: Mapping[str, Mapping[str, Any]] | None = None,
    **common: Any,
) -> EnsembleScorer:
    """Build an ensemble from ``"name[:weight],..."`` (see :func:`~lib_enhancer.scorers.registry.parse_scorer_spec`).

    Args:
        spec: members and weights, e.g. ``"laion:0.7,natural:0.3"`` or ``"laion,fidelity:0.5"``.
        device, dtype, cache_dir: passed to every member.
        fidelity: weight of an SSIM-to-reference member added to the spec.
        fidelity_channels: ``"luma"`` or ``"rgb"`` for that member.
        member_options: per-member factory options, ``{"clip-iqa": {"backbone": "ViT-B-32"}}``.
        **common: options given to every member whose factory accepts them (e.g. ``offline``,
            ``search_dirs``, ``crop_mode``, ``clip_model``); an option no member accepts is an error.

    Raises:
        ValueError: bad weights, a duplicated member, or a nested ensemble spec.
        TypeError: an option that no member takes.
    """
    items = parse_scorer_spec(spec)
    if fidelity:
        items.append(("fidelity", float(fidelity)))
    names = [n for n, _ in items]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"scorer spec {spec!r} names {', '.join(duplicated)} more than once")
    options_by_member = {n: dict(o) for n, o in (member_options or {}).items()}
    stray = sorted(set(options_by_member) - set(names))
    if stray:
        raise ValueError(f"member_options for {', '.join(stray)}, which are not in the ensemble {spec!r}")
    if "fidelity" in names:
        options_by_member.setdefault("fidelity", {}).setdefault("channels", fidelity_channels)
    for option in common:
        if not any(scorer_accepts_option(n, option) for n in names):
            raise TypeError(f"no member of the ensemble {spec!r} accepts the option {option!r}")
    members = []
    for name, _ in items:
        if is_ensemble_spec(name):
            raise ValueError(f"nested ensemble spec {name!r} is not supported")
        opts = {k: v for k, v in common.items() if scorer_accepts_option(name, k)}
        opts.update(options_by_member.get(name, {}))
        members.append(create_scorer(name, device=device, dtype=dtype, cache_dir=cache_dir, **opts))
    ensemble = EnsembleScorer(members, names, [w for _, w in items])
    infos = [m.info for m in members]
    licenses = list(dict.fromkeys(i.license for i in infos))
    ensemble.info = ScorerInfo(
        name=_normalised_spec(items),
        description="Weighted mean of "
        + ", ".join(f"{n} ({w:g})" for n, w in items)
        + ", each mapped to [0, 1].",
        score_range=(0.0, 1.0),
        higher_is_better=True,
        differentiable=all(i.differentiable for i in infos),
        input_size=None,
        weights=tuple(dict.fromkeys(w for i in infos for w in i.weights)),
        license="; ".join(licenses),
        tags=("ensemble",),
        judges_detail=any(getattr(i, "judges_detail", True) for i in infos),
    )
    return ensemble
