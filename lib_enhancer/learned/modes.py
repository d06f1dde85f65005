"""The learned modes as the API uses them: ``predict`` (recipe in one pass) and ``histogram`` (LUT).

Both look at a small preview only; the full-resolution work is one LUT (or recipe) apply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lib_enhancer.filters.pipeline import apply_filters, auto_of
from lib_enhancer.learned.common import apply_prior, thumbnail
from lib_enhancer.learned.histogram import load_histogram_net, soft_histogram, transfer_lut
from lib_enhancer.learned.predictor import PREDICTED, ParamSquash, load_predictor
from lib_enhancer.lut import apply_lut_torch, blend_lut

Tensor = torch.Tensor
LEARNED_MODES = ("predict", "histogram")
DEFAULT_TRANSFER = "mkl"  # the histogram mode's transport: "mkl" (linear, smooth) or "idt"
FIT_STEPS = 60


@dataclass
class LearnedEdit:
    """What a learned mode proposes for one image."""

    params: dict[str, float]  # recipe parameters (for ``histogram``: the closest editable recipe)
    lut: np.ndarray | None = None  # ``histogram`` only: the exact edit, ``(33, 33, 33, 3)`` [b, g, r]
    info: dict[str, Any] = field(default_factory=dict)


def predict_edit(
    preview: Tensor, *, model: str | os.PathLike[str] | None = None, lock: Mapping[str, float] | None = None
) -> LearnedEdit:
    """Recipe parameters for float ``(1, 3, H, W)`` ``preview`` from the recipe predictor."""
    predictor = load_predictor(model)
    params = predictor.predict(preview.cpu())[0]
    params.update({n: float(v) for n, v in (lock or {}).items()})
    return LearnedEdit(params, None, {"model": str(model or "recipe_predictor (shipped)")})


def histogram_edit(
    preview: Tensor,
    *,
    model: str | os.PathLike[str] | None = None,
    transfer: str = DEFAULT_TRANSFER,
    strength: float = 1.0,
    fit_recipe: bool = True,
) -> LearnedEdit:
    """Predicted histogram of ``preview`` transported into a LUT (blended by ``strength``).

    With ``fit_recipe`` the closest global recipe is fitted to the LUT on the preview's own colours
    (so the edit stays editable, warm-starts other modes and goes into infotext); its mean error is
    reported in ``info["recipe_fit_error"]`` (0..1 units).
    """
    net = load_histogram_net(model)
    x = preview.detach().float().cpu()
    tables = auto_of(x) if net.prior else None
    start = apply_prior(x, net.prior, tables)
    source = soft_histogram(thumbnail(start, net.side), net.bins)
    target = net.predict(source)
    table = transfer_lut(source[0], target[0], transfer)
    if net.prior:  # one LUT for the whole edit: the prior, then the transport
        table = _after_prior(table, net.prior, tables)
    table = blend_lut(table, strength)
    info: dict[str, Any] = {"model": str(model or "histogram_net (shipped)"), "transfer": transfer}
    params: dict[str, float] = {}
    if fit_recipe:
        params, error = fit_recipe_to_lut(table, x)
        info["recipe_fit_error"] = round(error, 5)
    return LearnedEdit(params, table, info)


def _after_prior(table: np.ndarray, prior: Mapping[str, float], tables: Any) -> np.ndarray:
    """``table`` ``(S, S, S, 3)`` composed after ``prior`` (with the photo's auto curves ``tables``)."""
    from lib_enhancer.lut import identity_lattice

    lattice = identity_lattice(table.shape[0])
    colours = torch.from_numpy(lattice.reshape(1, -1, 1, 3)).permute(0, 3, 1, 2)  # (1, 3, S³, 1)
    mapped = apply_lut_torch(apply_prior(colours, prior, tables).clamp(0.0, 1.0), table)
    return mapped.permute(0, 2, 3, 1).reshape(lattice.shape).numpy()


def fit_recipe_to_lut(
    table: np.ndarray, image: Tensor, steps: int = FIT_STEPS, sample: int = 512
) -> tuple[dict[str, float], float]:
    """Global recipe parameters whose filter chain best matches ``table`` on ``image``'s colours.

    Returns ``(params, mean absolute error)``; Adam on range-squashed parameters, seeded sample.
    """
    colours = image.reshape(3, -1)
    gen = torch.Generator().manual_seed(0)
    if colours.shape[1] > sample:
        colours = colours[:, torch.randperm(colours.shape[1], generator=gen)[:sample]]
    src = colours.float().reshape(1, 3, -1, 1)
    with torch.no_grad():
        target = apply_lut_torch(src, table)
    squash = ParamSquash(PREDICTED)
    raw = torch.zeros(len(PREDICTED), requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.1)
    for _ in range(steps):
        values = squash(raw)
        out = apply_filters(src, dict(zip(PREDICTED, values, strict=False)), stages=("global",))
        loss = (out - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        values = squash(raw)
        error = float(
            (apply_filters(src, dict(zip(PREDICTED, values, strict=False)), stages=("global",)) - target)
            .abs()
            .mean()
        )
    return {n: round(float(v), 4) for n, v in zip(PREDICTED, values, strict=False)}, error
