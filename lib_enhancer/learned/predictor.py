"""Recipe predictor: a thumbnail in, the core's global recipe parameters out, in one pass.

Distort-and-Recover / Exposure style, but trained end to end *through the exact filters*: the loss
compares ``apply_filters(degraded, predicted)`` with the undegraded photo, so the network learns the
edit that restores the photo, expressed as an editable, explainable recipe. Outputs are squashed
into each parameter's range (``tanh``; 0 = neutral), so they never leave it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib_enhancer.filters.color import luminance
from lib_enhancer.learned.common import WEIGHTS_DIR, apply_prior, checked_prior, load_model, thumbnail
from lib_enhancer.params import PARAMS, get_param

Tensor = torch.Tensor

DEFAULT_FILE = WEIGHTS_DIR / "recipe_predictor.safetensors"
PREDICTED = tuple(p.name for p in PARAMS if p.stage == "global")  # every per-pixel colour parameter
HIST_BINS = 16


def histogram_features(thumb: Tensor, bins: int = HIST_BINS) -> Tensor:
    """Histograms of R, G, B, luma and chroma (max - min), and the luma CDF: ``(N, 6 * bins)``."""
    n = thumb.shape[0]
    chroma = thumb.amax(1, keepdim=True) - thumb.amin(1, keepdim=True)
    chans = torch.cat([thumb, luminance(thumb), chroma], 1).reshape(n, 5, -1).clamp(0.0, 1.0)
    idx = (chans * bins).long().clamp_max(bins - 1)
    hist = torch.zeros(n, 5, bins, dtype=thumb.dtype, device=thumb.device)
    hist.scatter_add_(2, idx, torch.ones_like(chans))
    hist = hist / chans.shape[-1]
    cdf = hist[:, 3].cumsum(-1)
    return torch.cat([hist.reshape(n, -1) * bins**0.5, cdf], 1)


class ParamSquash(nn.Module):
    """Unbounded values -> parameters inside their ranges: ``tanh``, 0 maps to neutral, ±1 to the ends."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        params = [get_param(n) for n in names]
        self.register_buffer("neutral", torch.tensor([p.neutral for p in params]), persistent=False)
        self.register_buffer("up", torch.tensor([p.maximum - p.neutral for p in params]), persistent=False)
        self.register_buffer("down", torch.tensor([p.neutral - p.minimum for p in params]), persistent=False)

    def forward(self, raw: Tensor) -> Tensor:
        u = torch.tanh(raw)
        return self.neutral + torch.where(u >= 0, u * self.up, u * self.down)

    def normalised(self, values: Tensor) -> Tensor:
        """Values as fractions of their side of the range (-1..1, 0 = neutral)."""
        return (values - self.neutral) / torch.where(values >= self.neutral, self.up, self.down)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(4, cout), nn.GELU())


class RecipePredictor(nn.Module):
    """Thumbnail ``(N, 3, side, side)`` -> parameter values ``(N, len(names))`` inside their ranges.

    With a ``prior`` (photo-adaptive ``pre`` filters, e.g. ``{"auto_contrast": 1.0}``, the start point
    the ``natural`` scorer's optimizer uses) the network sees, and its recipe continues from, the
    image with the prior applied (:meth:`prepare`); :meth:`predict` returns the prior with the
    predicted values.
    """

    def __init__(
        self,
        names: Sequence[str] = PREDICTED,
        side: int = 96,
        width: int = 32,
        hidden: int = 128,
        prior: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.names = tuple(names)
        self.side = side
        self.width = width
        self.hidden = hidden
        self.prior = checked_prior(prior)
        self.squash = ParamSquash(self.names)
        w = width
        self.features = nn.Sequential(_conv(3, w), _conv(w, 2 * w), _conv(2 * w, 4 * w), _conv(4 * w, 4 * w))
        self.head = nn.Sequential(
            nn.Dropout(0.1),
            nn.Linear(8 * w + 6 * HIST_BINS, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
        )
        self.out = nn.Linear(hidden, len(self.names))
        nn.init.zeros_(self.out.weight)  # start at the identity recipe
        nn.init.zeros_(self.out.bias)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": "recipe",
            "names": list(self.names),
            "side": self.side,
            "width": self.width,
            "hidden": self.hidden,
            "prior": dict(self.prior),
        }

    def prepare(self, images: Tensor) -> Tensor:
        """``images`` with the prior applied: what the network sees and its recipe continues from."""
        return apply_prior(images, self.prior)

    def forward(self, thumb: Tensor) -> Tensor:
        f = self.features(thumb * 2.0 - 1.0)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], 1)
        return self.squash(self.out(self.head(torch.cat([pooled, histogram_features(thumb)], 1))))

    def as_params(self, values: Tensor) -> dict[str, Tensor]:
        """Columns of ``forward``'s output by parameter name (``(N,)`` tensors, for ``apply_filters``)."""
        return {name: values[:, i] for i, name in enumerate(self.names)}

    @torch.no_grad()
    def predict(self, image: Tensor) -> list[dict[str, float]]:
        """Recipe parameters for each image of float ``(*, 3, H, W)`` in [0, 1].

        The mean of the predictions for the thumbnail and its mirror image (a global edit should not
        depend on left and right; averaging halves some of the model's variance).
        """
        was = self.training
        if was:  # (switching modes walks every submodule: ~0.3 ms each way)
            self.eval()
        try:
            thumb = thumbnail(self.prepare(image), self.side).to(self.squash.neutral.device)
            both = self(torch.cat([thumb, thumb.flip(-1)]))  # one batch: ~0.4 ms less than two
            values = ((both[: len(thumb)] + both[len(thumb) :]) / 2).double().cpu()
        finally:
            if was:
                self.train()
        return [
            {**self.prior, **{n: round(float(v), 4) for n, v in zip(self.names, row, strict=False)}}
            for row in values
        ]


def load_predictor(path: str | os.PathLike[str] | None = None) -> RecipePredictor:
    """Load a predictor written by ``train recipe`` (default: the shipped weights)."""
    return load_model(str(Path(path) if path else DEFAULT_FILE), "recipe", _build)


def _build(config: dict[str, Any]) -> RecipePredictor:
    return RecipePredictor(
        config["names"], config["side"], config["width"], config["hidden"], config.get("prior")
    )


def predict_params(image: Tensor, path: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """The shipped (or given) predictor's recipe parameters for one float ``(3, H, W)`` image."""
    return load_predictor(path).predict(image)[0]


def blend(params: Mapping[str, float], strength: float) -> dict[str, float]:
    """Parameters moved towards neutral by ``strength`` in [0, 1]."""
    return {n: get_param(n).neutral + strength * (v - get_param(n).neutral) for n, v in params.items()}
