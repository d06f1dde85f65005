"""Search engine: best-first and beam search over recipes, hybrids with the gradient optimizer, and a
faithful re-implementation of NUl Image Enhancer's loop for side-by-side measurements.

**The space.** A node is a recipe: one value per searchable parameter (the soft set — the table's
default active parameters, the per-channel levels and the photo-adaptive auto levels /
equalize —, plus the creative "hard set" — the
``creative`` stage of :mod:`lib_enhancer.params` — when ``hard=True``), snapped to the parameter's UI step so that a node is an integer grid point and the
memo (point -> score) is exact. Locked parameters are applied to every candidate and never move.

**Moves.** Every parameter has ``±`` moves at each of ``SearchConfig.scales`` (fractions of its
range: coarse 1/8, fine 1/32 by default, at least one step), in the spirit of Distort-and-Recover's
small discrete action set. When the scorer is differentiable, every scored candidate also gets its
gradient from the same batched forward/backward pass (the scores of a batch are independent, so
the gradient of their sum gives each candidate its own). A node's moves then start with a *line
search* along its gradient, preconditioned by the running RMS of the gradients seen so far (as in
Adam) at 0.5x-4x a trust radius that follows the step length that last won, followed by the
coordinate moves ranked by predicted gain (gradient times step). Without gradients, moves are
ranked by momentum (repeat the move that made the node), by how often that move direction has
paid off so far, and coarse before fine. Either way a few slots per batch are seeded random moves
(``explore``), and when several moves from one node improve it, the best child first tries the
others' moves combined (pattern search).

**Modes** (``SearchConfig.mode``):

* ``best-first`` — expand the best node with untried moves: its next ``batch`` moves are scored in
  one batched pass; on a plateau (``patience`` batches without a better node) restart from a seeded
  random kick of the best node (``restarts`` times), then stop.
* ``beam`` — keep the ``beam_width`` best nodes; every round scores ``batch`` moves of each in one
  batched pass.
* ``gradient`` — :func:`lib_enhancer.optimize.optimize` within the evaluation budget.
* ``hybrid`` — best-first for a good basin, then gradient refinement of the continuous parameters
  from the found recipe (``optimize(config=OptimizeConfig(init=...))``).
* ``hybrid-reverse`` — gradient first, then best-first refinement from its result.
* ``nulie`` — NUl Image Enhancer's stochastic tree search, one image per evaluation, with its own
  torchvision-style transforms (see :func:`apply_nulie_chain`), for comparison only.

**Guarantees** (as in the optimizer): evaluations (images scored) are counted exactly and never
exceed ``max_evals``; the best score in the history only rises; the result never scores below the
untouched input (else the identity is returned with a message); ``strength`` blends towards
neutral; the same seed gives the same result. A search stops early once it reaches the scorer's
maximum score (``info.score_range``).
"""

from __future__ import annotations

import difflib
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lib_enhancer.filters.creative import (
    CREATIVE_BY_NAME,
    CREATIVE_DIFFERENTIABLE,
    CREATIVE_NAMES,
    apply_creative,
)
from lib_enhancer.filters.pipeline import PRECOMPUTED_KEYS, apply_filters, precompute
from lib_enhancer.optimize import (
    OptimizeConfig,
    OptimizeResult,
    Step,
    as_preview,
    blend,
    default_active,
    default_prior,
    optimize,
    setup_run,
)
from lib_enhancer.params import (
    AUTO_NAMES,
    CHANNEL_LEVEL_NAMES,
    PARAM_NAMES,
    PARAMS_BY_NAME,
    Param,
    get_param,
)

Tensor = torch.Tensor

MODES: tuple[str, ...] = ("best-first", "beam", "gradient", "hybrid", "hybrid-reverse", "nulie")

#: Gradient line search: step lengths tried, as multiples of the trust radius (best first), and
#: the radius's bounds, in half-range units.
LADDER: tuple[float, ...] = (1.0, 2.0, 0.5, 4.0)
TRUST_MIN, TRUST_MAX = 1.0 / 64.0, 2.0
SCALE_FLOOR = 0.05  # parameters with a gradient RMS below 5 % of the largest move proportionally less
MOMENT_DECAY = 0.9  # of the running second moment of the gradients (Adam's beta2, short memory)

#: NUl Image Enhancer's score units: its thresholds (0.2, 0.1) and darkness penalty (6) are in
#: LAION aesthetic points (range 1-10); they are rescaled to the scorer's range.
NULIE_SCORE_SPAN = 9.0


# ---- configuration and results -------------------------------------------------------------------


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one search run (all have sensible defaults).

    Attributes:
        mode: one of :data:`MODES`.
        max_evals: budget in images scored, everything included (the untouched input, gradients).
        time_budget: seconds; ``None`` = no limit (checked between batched passes).
        beam_width: nodes kept per round in ``beam`` mode.
        batch: moves scored per expansion (``best-first``) or per beam node and round (``beam``);
            ``None`` = one per 50 evaluations of the budget, 4 to 16 (small batches advance more
            often, large ones fill a GPU).
        hard: also search the creative edits that change the look (and NUlIE's hard set in
            ``nulie`` mode). Off by default.
        seed: seeds exploration, restarts, the gradient phase and NUlIE's random choices.
        active: parameters the search may change; ``None`` = :func:`soft_set` of the scorer
            (plus every creative parameter when ``hard``).
        lock: parameters held at a value throughout (applied to every candidate).
        init: the start recipe (snapped to the parameter grid); ``None`` = the scorer's prior
            (:func:`lib_enhancer.optimize.default_prior`: ``natural`` starts from auto contrast).
        patience: batches (best-first) or rounds (beam) without a better node before a restart.
        restarts: seeded random restarts around the best node after a plateau, then stop.
        scales: move sizes as fractions of each parameter's range, coarse to fine.
        guided: rank moves by the scorer's gradient; ``None`` = when the scorer is differentiable.
        explore: share of each batch given to seeded random moves.
        min_gain: gains below this fraction of the score range keep the original.
        gradient_share: share of the budget given to the gradient phase of the hybrids.
        gradient_restarts: candidates optimised together in the gradient phase; ``None`` = one per
            50 evaluations of the phase's budget (1 to 4).
        gradient_lr: Adam step of a gradient phase from the start (normalised units); a refinement
            after a search uses half of it.
        max_batch: most images per forward pass (larger batches are chunked).
        nulie_random_iters: NUlIE iterations whose parent is a uniformly random node (CLI: 500).
        nulie_n_try: NUlIE's grid size of an "optimal" step; ``None`` = 10 (soft) / 20 (hard).
        nulie_dark_threshold: NUlIE's lighting ratio below which the darkness penalty applies.
        nulie_ops: a subset of NUlIE's transforms to use (ablations); ``None`` = its full set.
    """

    mode: str = "best-first"
    max_evals: int = 200
    time_budget: float | None = None
    beam_width: int = 4
    batch: int | None = None
    hard: bool = False
    seed: int = 0
    active: tuple[str, ...] | None = None
    lock: Mapping[str, float] = field(default_factory=dict)
    init: Mapping[str, float] | None = None
    patience: int = 4
    restarts: int = 2
    scales: tuple[float, ...] = (1.0 / 8.0, 1.0 / 32.0)
    guided: bool | None = None
    explore: float = 0.125
    min_gain: float = 1e-3
    gradient_share: float = 0.5
    gradient_restarts: int | None = None
    gradient_lr: float = 0.1
    max_batch: int = 32
    nulie_random_iters: int = 500
    nulie_n_try: int | None = None
    nulie_dark_threshold: float = 0.85
    nulie_ops: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            close = difflib.get_close_matches(self.mode, MODES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown search mode {self.mode!r}.{hint} Known: {', '.join(MODES)}")
        if self.max_evals < 1:
            raise ValueError(f"max_evals must be >= 1, got {self.max_evals}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ValueError(f"time_budget must be positive or None, got {self.time_budget}")
        for name, value in (
            ("beam_width", self.beam_width),
            ("patience", self.patience),
            ("max_batch", self.max_batch),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.gradient_restarts is not None and self.gradient_restarts < 1:
            raise ValueError(f"gradient_restarts must be >= 1 or None, got {self.gradient_restarts}")
        if self.restarts < 0 or self.nulie_random_iters < 0:
            raise ValueError("restarts and nulie_random_iters must be >= 0")
        if not self.scales or not all(0.0 < s <= 1.0 for s in self.scales):
            raise ValueError(f"scales must be fractions in (0, 1], got {self.scales}")
        if not 0.0 <= self.explore <= 1.0 or not 0.0 <= self.gradient_share <= 1.0:
            raise ValueError("explore and gradient_share must be in [0, 1]")
        if self.mode == "nulie" and (self.active is not None or self.lock or self.init):
            raise ValueError("nulie mode searches NUlIE's own ops: active, lock and init do not apply")
        if self.batch is not None and self.batch < 1:
            raise ValueError(f"batch must be >= 1 or None, got {self.batch}")
        if self.nulie_ops is not None:
            known = set(nulie_transforms(self.hard))
            unknown = [op for op in self.nulie_ops if op not in known]
            if unknown or not self.nulie_ops:
                raise ValueError(
                    f"nulie_ops must be a non-empty subset of {sorted(known)}, got {self.nulie_ops}"
                )
        if self.nulie_n_try is not None and self.nulie_n_try < 2:
            raise ValueError(f"nulie_n_try must be >= 2, got {self.nulie_n_try}")
        for name in (*(self.active or ()), *self.lock, *(self.init or {})):
            get_search_param(name)
            if name in CREATIVE_BY_NAME and not self.hard:
                raise ValueError(
                    f"{name!r} is a creative edit that changes the look; enable it with hard=True"
                )
        for mapping in (self.lock, self.init or {}):
            for name, value in mapping.items():
                param = get_search_param(name)
                v = float(value)
                if not math.isfinite(v) or not param.minimum - 1e-9 <= v <= param.maximum + 1e-9:
                    raise ValueError(
                        f"parameter {name!r}={value!r} is outside its range [{param.minimum:g}, {param.maximum:g}]"
                    )


@dataclass(frozen=True)
class SearchStep(Step):
    """An accepted step of a search: a new best recipe, for live previews and the "why" of a result.

    ``score``/``best_score`` are the scorer's raw scores of the accepted recipe; ``objective`` is
    what the search compares (the signed score; NUlIE subtracts its darkness penalty).
    """

    evaluations: int = 0  # images scored when this step was accepted
    move: str = ""  # the edit that led here, e.g. "exposure +0.75" or "gradient x0.25"
    creative: dict[str, float] = field(default_factory=dict)  # creative values of the recipe
    chain: tuple[tuple[str, dict[str, float]], ...] = ()  # nulie mode: the op chain
    objective: float = 0.0


@dataclass(frozen=True)
class SearchResult(OptimizeResult):
    """:class:`~lib_enhancer.optimize.OptimizeResult` plus what only a search produces.

    ``params`` holds the core-table parameters only; creative values (which change the look) are in
    ``creative``; ``nulie`` mode returns its op chain in ``chain`` (render it with
    :func:`apply_nulie_chain`) and no ``params``. Both are before strength, like ``params``.
    """

    creative: dict[str, float] = field(default_factory=dict)
    chain: tuple[tuple[str, dict[str, float]], ...] = ()
    mode: str = "best-first"
    elapsed: float = 0.0
    passes: int = 0  # scorer calls (a batched pass scores many images; nulie: one per evaluation)


def get_search_param(name: str) -> Param:
    """A parameter of the table (core or creative); unknown names raise with suggestions."""
    return get_param(name)


def split_params(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a mapping into (core values, creative values); unknown names raise."""
    core: dict[str, Any] = {}
    creative: dict[str, Any] = {}
    for name, value in values.items():
        if name in PRECOMPUTED_KEYS:
            core[name] = value
            continue
        get_param(name)
        (creative if name in CREATIVE_BY_NAME else core)[name] = value
    return core, creative


def render(image: Tensor, params: Mapping[str, Any], *, clamp: bool = True) -> Tensor:
    """Apply a search recipe (core and creative names mixed) to ``image`` ``(*, 3, H, W)``.

    The same as :func:`~lib_enhancer.filters.pipeline.apply_filters` (the creative stage runs last,
    on the clamped image); kept for callers of the search API. Values may be floats or ``(B,)``
    tensors.
    """
    return apply_filters(image, params, clamp=clamp)


def score_recipes(
    preview: Tensor,
    scorer: torch.nn.Module,
    recipes: Sequence[Mapping[str, float]],
    *,
    batch: int = 8,
) -> list[float]:
    """Scores of several recipes on one preview, ``batch`` images per forward pass (no gradients).

    Args:
        preview: ``(1, 3, h, w)`` float sRGB.
        scorer: a registry scorer (or any module mapping ``(B, 3, H, W)`` to ``(B,)``).
        recipes: parameter mappings, core and creative names mixed; missing names are neutral.
        batch: images per forward pass.

    Returns:
        The raw scores, in order.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    preview = as_preview(preview)
    out: list[float] = []
    for i in range(0, len(recipes), batch):
        group = recipes[i : i + batch]
        names = sorted({n for r in group for n in r})
        rows = [{n: float(r.get(n, get_search_param(n).neutral)) for n in names} for r in group]
        with torch.no_grad():
            images = _render_rows(preview, rows, names, {}, {}, ())[0]
            out.extend(scorer(images).reshape(-1).tolist())
    return out


# ---- NUl Image Enhancer's transforms (torchvision functional semantics, in torch) ----------------


def _gray(x: Tensor) -> Tensor:
    r, g, b = x.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(a: Tensor, b: Tensor, ratio: float) -> Tensor:
    return (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(-3)
    maxc, _ = x.max(dim=-3)
    minc, _ = x.min(dim=-3)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    mask = i.unsqueeze(-3) == torch.arange(6, device=i.device).view(-1, 1, 1)
    a1 = torch.stack((v, q, p, p, t, v), dim=-3)
    a2 = torch.stack((t, v, v, q, p, p), dim=-3)
    a3 = torch.stack((p, p, t, v, v, q), dim=-3)
    a4 = torch.stack((a1, a2, a3), dim=-4)
    return torch.einsum("...ijk,...xijk->...xjk", mask.to(x.dtype), a4)


def _adjust_hue(x: Tensor, hue_factor: float) -> Tensor:
    hsv = _rgb_to_hsv(x)
    hue = torch.remainder(hsv[..., :1, :, :] + hue_factor, 1.0)
    return _hsv_to_rgb(torch.cat((hue, hsv[..., 1:, :, :]), dim=-3))


def _sharpness_degenerate(x: Tensor) -> Tensor:
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(3, 1, 3, 3)
    h, w = x.shape[-2:]
    if h < 3 or w < 3:
        return x
    conv = F.conv2d(x.reshape(-1, 3, h, w), kernel, groups=3).reshape(*x.shape[:-2], h - 2, w - 2)
    out = x.clone()
    out[..., 1:-1, 1:-1] = conv
    return out


def _gaussian_blur(x: Tensor, kernel_size: int) -> Tensor:
    k = int(kernel_size)
    if k <= 1:
        return x
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    t = torch.linspace(-(k - 1) * 0.5, (k - 1) * 0.5, k, device=x.device, dtype=x.dtype)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    flat = x.reshape(-1, 3, *x.shape[-2:])
    pad = k // 2
    flat = F.pad(flat, (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, g.view(1, 1, 1, k).expand(3, 1, 1, k), groups=3)
    flat = F.conv2d(flat, g.view(1, 1, k, 1).expand(3, 1, k, 1), groups=3)
    return flat.reshape(x.shape)


def _equalize(x: Tensor) -> Tensor:
    """Histogram equalisation per channel on 8-bit values (PIL / torchvision ``equalize``)."""
    v = (x * 255.0).round().clamp(0, 255).to(torch.int64)
    out = torch.empty_like(x)
    flat_v = v.reshape(-1, *v.shape[-3:])
    flat_out = out.view(-1, *out.shape[-3:])
    for n in range(flat_v.shape[0]):
        for c in range(3):
            channel = flat_v[n, c]
            hist = torch.bincount(channel.flatten(), minlength=256)
            nonzero = hist[hist != 0]
            step = int(nonzero[:-1].sum()) // 255
            if step == 0:
                flat_out[n, c] = channel.to(x.dtype) / 255.0
                continue
            lut = (torch.cumsum(hist, 0) + step // 2) // step
            lut = torch.cat((lut.new_zeros(1), lut[:-1])).clamp(0, 255)
            flat_out[n, c] = lut[channel].to(x.dtype) / 255.0
    return out


def _autocontrast(x: Tensor) -> Tensor:
    minimum = x.amin(dim=(-2, -1), keepdim=True)
    maximum = x.amax(dim=(-2, -1), keepdim=True)
    flat = maximum == minimum
    scale = 1.0 / torch.where(flat, torch.ones_like(maximum), maximum - minimum)
    minimum = torch.where(flat, torch.zeros_like(minimum), minimum)
    return ((x - minimum) * scale).clamp(0.0, 1.0)


def _posterize8(x: Tensor, bits: int) -> Tensor:
    size = 2 ** (8 - int(bits))
    v = (x * 255.0).round()
    return torch.floor(v / size) * size / 255.0


NULIE_OPS: dict[str, Callable[..., Tensor]] = {
    "adjust_brightness": lambda x, brightness_factor: _blend(x, torch.zeros_like(x), brightness_factor),
    "adjust_contrast": lambda x, contrast_factor: _blend(
        x, _gray(x).mean(dim=(-3, -2, -1), keepdim=True), contrast_factor
    ),
    "adjust_gamma": lambda x, gamma, gain=1.0: (gain * x.clamp_min(0.0) ** gamma).clamp(0.0, 1.0),
    "adjust_saturation": lambda x, saturation_factor: _blend(x, _gray(x), saturation_factor),
    "adjust_sharpness": lambda x, sharpness_factor: _blend(x, _sharpness_degenerate(x), sharpness_factor),
    "autocontrast": _autocontrast,
    "gaussian_blur": _gaussian_blur,
    "equalize": _equalize,
    "adjust_hue": lambda x, hue_factor: _adjust_hue(x, hue_factor),
    "invert": lambda x: 1.0 - x,
    "solarize": lambda x, threshold: torch.where(x >= threshold, 1.0 - x, x),
    "posterize": _posterize8,
}

_INT = "int"  # marks an integer parameter drawn with numpy's randint(lo, hi) (hi exclusive)


def nulie_transforms(hard: bool = False) -> dict[str, dict[str, tuple[Any, ...]]]:
    """NUlIE's ``get_transform_to_params``: op -> {keyword: (lo, hi) or ("int", lo, hi)}."""
    a = 0.5 if hard else 0.9
    factor = (a, 1.0 / a)
    ops: dict[str, dict[str, tuple[Any, ...]]] = {
        "adjust_brightness": {"brightness_factor": factor},
        "adjust_contrast": {"contrast_factor": factor},
        "adjust_gamma": {"gamma": factor, "gain": (0.9, 1.1)},
    }
    if hard:
        ops["adjust_hue"] = {"hue_factor": (-0.1, 0.1)}
        ops["invert"] = {}
        ops["solarize"] = {"threshold": (0.0, 1.0)}
        ops["posterize"] = {"bits": (_INT, 0, 9)}
    ops["adjust_saturation"] = {"saturation_factor": factor}
    ops["adjust_sharpness"] = {"sharpness_factor": factor}
    ops["autocontrast"] = {}
    if not hard:
        ops["gaussian_blur"] = {"kernel_size": (_INT, 1, 3)}
    ops["equalize"] = {}
    return ops


def _nulie_op(image: Tensor, op: str, kwargs: Mapping[str, float]) -> Tensor:
    """One NUlIE op; like NUlIE's PIL images, every result is quantised to 8 bits."""
    out = NULIE_OPS[op](image, **kwargs)
    return (out * 255.0).round() / 255.0


def apply_nulie_chain(
    image: Tensor, chain: Sequence[tuple[str, Mapping[str, float]]], *, strength: float = 1.0
) -> Tensor:
    """Replay a NUlIE op chain (``SearchResult.chain``) on ``image`` ``(*, 3, H, W)``.

    Args:
        image: float sRGB in [0, 1].
        chain: ``(op name, keyword arguments)`` pairs, applied in order.
        strength: blend of the result with the input, in [0, 1].

    Returns:
        The edited image (8-bit quantised like NUlIE's PIL pipeline), same shape.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    out = image
    for op, kwargs in chain:
        if op not in NULIE_OPS:
            raise KeyError(f"unknown NUlIE op {op!r}; known: {', '.join(NULIE_OPS)}")
        out = _nulie_op(out, op, kwargs)
    if strength < 1.0 and out is not image:
        out = image + strength * (out - image)
    return out


# ---- the search space ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    name: str
    neutral: float
    step: float
    kmin: int
    kmax: int
    half: float
    moves: tuple[int, ...]  # grid units per scale, coarse to fine (deduplicated)
    creative: bool
    differentiable: bool


@dataclass(frozen=True)
class _Move:
    label: str
    deltas: tuple[tuple[int, int], ...]  # (axis index, grid units)
    scale: int = 0  # index into the scales
    alpha: float = 0.0  # gradient moves: step length in half-range units


class _Space:
    """The searchable axes as integer grids: value = neutral + k * step."""

    def __init__(self, names: Sequence[str], scales: Sequence[float]) -> None:
        axes = []
        for name in names:
            p = get_search_param(name)
            kmin = math.ceil((p.minimum - p.neutral) / p.step - 1e-9)
            kmax = math.floor((p.maximum - p.neutral) / p.step + 1e-9)
            moves: list[int] = []
            for s in scales:
                k = max(1, round(s * p.span / p.step))
                if k not in moves:
                    moves.append(k)
            creative = name in CREATIVE_BY_NAME
            axes.append(
                _Axis(
                    name,
                    p.neutral,
                    p.step,
                    kmin,
                    kmax,
                    max(p.maximum - p.neutral, p.neutral - p.minimum),
                    tuple(moves),
                    creative,
                    name in CREATIVE_DIFFERENTIABLE if creative else True,
                )
            )
        self.axes: tuple[_Axis, ...] = tuple(axes)
        self.names: tuple[str, ...] = tuple(a.name for a in axes)

    def value(self, i: int, k: int) -> float:
        a = self.axes[i]
        return round(a.neutral + k * a.step, 10)

    def values(self, point: tuple[int, ...]) -> dict[str, float]:
        return {a.name: self.value(i, k) for i, (a, k) in enumerate(zip(self.axes, point, strict=True))}

    def snap(self, values: Mapping[str, float]) -> tuple[int, ...]:
        out = []
        for a in self.axes:
            v = float(values.get(a.name, a.neutral))
            out.append(min(max(round((v - a.neutral) / a.step), a.kmin), a.kmax))
        return tuple(out)

    def move(self, point: tuple[int, ...], move: _Move) -> tuple[int, ...]:
        out = list(point)
        for i, d in move.deltas:
            a = self.axes[i]
            out[i] = min(max(out[i] + d, a.kmin), a.kmax)
        return tuple(out)


@dataclass
class _Node:
    point: tuple[int, ...]
    objective: float
    score: float
    grad: tuple[float, ...] | None  # d objective / d grid unit, per axis
    via: _Move | None = None
    parent_objective: float | None = None
    pending: list[_Move] | None = None  # untried moves, best first (built on first expansion)
    extra: list[_Move] = field(default_factory=list)  # moves to try first (sibling combinations)


@dataclass
class _Best:
    objective: float
    score: float
    core: dict[str, float]
    creative: dict[str, float]


def _render_rows(
    preview: Tensor,
    rows: Sequence[Mapping[str, float]],
    names: Sequence[str],
    fixed: Mapping[str, Any],
    haze: Mapping[str, Any],
    grad_names: Sequence[str],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Render ``len(rows)`` candidates of ``preview`` in one batch.

    A parameter equal across the batch is passed as a plain float (so neutral filters are skipped);
    ``grad_names`` are always ``(B,)`` tensors requiring gradients.
    """
    b = len(rows)
    values: dict[str, Any] = {}
    leaves: dict[str, Tensor] = {}
    for name in names:
        column = [row[name] for row in rows]
        if name in grad_names:
            leaves[name] = torch.tensor(
                column, dtype=preview.dtype, device=preview.device, requires_grad=True
            )
            values[name] = leaves[name]
        elif all(v == column[0] for v in column):
            values[name] = column[0]
        else:
            values[name] = torch.tensor(column, dtype=preview.dtype, device=preview.device)
    images = apply_filters(preview.expand(b, -1, -1, -1), {**fixed, **values, **haze})
    return images, leaves


class _Evaluator:
    """Scores candidates in batched passes, counting every image against the budget."""

    def __init__(
        self,
        preview: Tensor,
        scorer: torch.nn.Module,
        space: _Space,
        fixed: Mapping[str, float],
        sign: float,
        budget: int,
        deadline: float | None,
        max_batch: int,
    ) -> None:
        self.preview = preview
        self.scorer = scorer
        self.space = space
        self.fixed = dict(fixed)
        self.sign = sign
        self.budget = budget
        self.deadline = deadline
        self.max_batch = max_batch
        self.evals = 0
        self.passes = 0
        self.memo: dict[tuple[int, ...], _Node] = {}
        self.haze: dict[str, Any] = precompute(preview, space.names, self.fixed)

    def remaining(self) -> int:
        return self.budget - self.evals

    def expired(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def score_points(
        self, points: Sequence[tuple[int, ...]], guided: bool
    ) -> list[tuple[float, tuple[float, ...] | None]]:
        """(objective, gradient per grid unit or None) of each point; every point costs one evaluation."""
        if len(points) > self.remaining():
            raise RuntimeError(f"internal: {len(points)} candidates but {self.remaining()} evaluations left")
        out: list[tuple[float, tuple[float, ...] | None]] = []
        names = self.space.names
        grad_names = [a.name for a in self.space.axes if a.differentiable] if guided else []
        for i in range(0, len(points), self.max_batch):
            chunk = points[i : i + self.max_batch]
            rows = [self.space.values(p) for p in chunk]
            with torch.set_grad_enabled(bool(grad_names)):
                images, leaves = _render_rows(self.preview, rows, names, self.fixed, self.haze, grad_names)
                objective = self.sign * self.scorer(images).reshape(-1).to(images.dtype)
                if grad_names:
                    objective.sum().backward()
            self.evals += len(chunk)
            self.passes += 1
            values = objective.detach().tolist()
            for j, v in enumerate(values):
                if not grad_names:
                    out.append((float(v), None))
                    continue
                grad = []
                for a in self.space.axes:
                    leaf = leaves.get(a.name)
                    g = 0.0 if leaf is None or leaf.grad is None else float(leaf.grad[j])
                    grad.append(g * a.step if math.isfinite(g) else 0.0)
                out.append((float(v), tuple(grad)))
        return out

    def add(self, point: tuple[int, ...], guided: bool, via: _Move | None) -> _Node:
        """Score one point (a root or a restart) and memoise it."""
        ((objective, grad),) = self.score_points([point], guided)
        node = _Node(point, objective, objective * self.sign, grad, via, None)
        self.memo[point] = node
        return node


# ---- move ordering -------------------------------------------------------------------------------


def _coordinate_moves(space: _Space) -> list[_Move]:
    moves = []
    for i, a in enumerate(space.axes):
        for j, k in enumerate(a.moves):
            for sign in (1, -1):
                label = f"{a.name} {'+' if sign > 0 else '-'}{k * a.step:g}"
                moves.append(_Move(label, ((i, sign * k),), j))
    return moves


def _gradient_moves(
    space: _Space, grad: Sequence[float], scale: Sequence[float], alphas: Sequence[float]
) -> list[_Move]:
    """A line search along the preconditioned gradient, snapped to the grid.

    In half-range units the direction is ``g_i / scale_i`` (``scale``: the RMS of each parameter's
    gradients seen so far, Adam's second moment), normalised so that its largest component is 1:
    a step of ``alpha`` moves no parameter by more than ``alpha`` half-ranges.
    """
    gz = [g * a.half / a.step for g, a in zip(grad, space.axes, strict=True)]  # d objective / d z
    d = [g / s if s > 0 else 0.0 for g, s in zip(gz, scale, strict=True)]
    top = max((abs(v) for v in d), default=0.0)
    if top == 0.0 or not math.isfinite(top):
        return []
    moves = []
    for alpha in alphas:
        deltas = []
        for i, (v, a) in enumerate(zip(d, space.axes, strict=True)):
            k = round(alpha * v / top * a.half / a.step)
            if k:
                deltas.append((i, k))
        if deltas:
            moves.append(_Move(f"gradient step {alpha:.3g}", tuple(deltas), 0, alpha))
    return moves


def _order_moves(
    node: _Node,
    space: _Space,
    stats: Mapping[tuple[int, int], float],
    rng: random.Random,
    alphas: Sequence[float],
    scale: Sequence[float],
) -> list[_Move]:
    """A node's moves, most promising first.

    Guided (the node has a gradient): the gradient line search first, then coordinate moves by
    predicted gain (gradient times step). Unguided: momentum (the move that made the node), then the
    move directions that paid off most so far, coarse before fine; ties broken by the seeded RNG.
    """
    moves = _coordinate_moves(space)
    if node.grad is not None:
        grad = node.grad

        def predicted(m: _Move) -> float:
            return sum(grad[i] * d for i, d in m.deltas)

        keyed = [(-predicted(m), rng.random(), m) for m in moves]
        keyed.sort(key=lambda t: (t[0], t[1]))
        return _gradient_moves(space, grad, scale, alphas) + [m for *_, m in keyed]
    via = node.via
    momentum = set() if via is None or len(via.deltas) != 1 else {(via.deltas[0][0], _sgn(via.deltas[0][1]))}

    def key(m: _Move) -> tuple[int, float, int]:
        ((i, d),) = m.deltas
        direction = (i, _sgn(d))
        return (0 if direction in momentum else 1, -stats.get(direction, 0.0), m.scale)

    ranked = [(key(m), rng.random(), m) for m in moves]
    ranked.sort(key=lambda t: (t[0], t[1]))
    return [m for *_, m in ranked]


def _sgn(x: float) -> int:
    return 1 if x > 0 else -1


def _take(
    node: _Node, count: int, ev: _Evaluator, explore: float, rng: random.Random, taken: set[tuple[int, ...]]
) -> list[tuple[tuple[int, ...], _Move]]:
    """Pop up to ``count`` untried moves of ``node`` leading to new points (some random, seeded)."""
    assert node.pending is not None
    n_random = int(count * explore)
    picked: list[tuple[tuple[int, ...], _Move]] = []

    def fresh(move: _Move) -> tuple[int, ...] | None:
        point = ev.space.move(node.point, move)
        if point == node.point or point in ev.memo or point in taken:
            return None
        return point

    while node.pending and len(picked) < count - n_random:
        move = node.pending.pop(0)
        point = fresh(move)
        if point is not None:
            taken.add(point)
            picked.append((point, move))
    while node.pending and len(picked) < count:
        move = node.pending.pop(rng.randrange(len(node.pending)))
        point = fresh(move)
        if point is not None:
            taken.add(point)
            picked.append((point, move))
    return picked


# ---- the driver ----------------------------------------------------------------------------------


class _Run:
    """State shared by the phases of one search: budget, incumbent, history, cancellation."""

    def __init__(
        self,
        preview: Tensor,
        scorer: torch.nn.Module,
        cfg: SearchConfig,
        space: _Space,
        locked: dict[str, float],
        callback: Callable[[Step], bool | None] | None,
        budget: int,
        sign: float,
        span: float,
    ) -> None:
        self.preview = preview
        self.scorer = scorer
        self.cfg = cfg
        self.space = space
        self.locked = locked
        self.callback = callback
        self.sign = sign
        self.span = span
        self.start = time.perf_counter()
        deadline = None if cfg.time_budget is None else self.start + cfg.time_budget
        self.ev = _Evaluator(preview, scorer, space, locked, sign, budget, deadline, cfg.max_batch)
        self.rng = random.Random(cfg.seed)
        self.history: list[SearchStep] = []
        self.best: _Best | None = None
        self.cancelled = False
        self.stats: dict[tuple[int, int], float] = {}
        self.ceiling = _ceiling(scorer, sign)
        self.batch = cfg.batch or max(4, min(16, cfg.max_evals // 50))
        self.trust = cfg.scales[0]  # gradient line-search radius, half-range units
        self.second_moment = [0.0] * len(space.axes)  # EMA of squared gradients (half-range units)
        self.moment_weight = 0.0

    # -- bookkeeping
    def recipe(self, point: tuple[int, ...]) -> tuple[dict[str, float], dict[str, float]]:
        values = {**self.locked, **self.space.values(point)}
        core, creative = split_params(values)
        core = {n: v for n, v in core.items() if v != PARAMS_BY_NAME[n].neutral}
        creative = {n: v for n, v in creative.items() if v != 0.0}
        return core, creative

    def offer(
        self,
        objective: float,
        score: float,
        core: dict[str, float],
        creative: dict[str, float],
        move: str,
        evaluations: int | None = None,
    ) -> bool:
        """Accept a candidate if it beats the incumbent; records history and calls the callback."""
        if self.best is not None and not objective > self.best.objective:
            return False
        self.best = _Best(objective, score, dict(core), dict(creative))
        entry = SearchStep(
            step=len(self.history),
            score=score,
            best_score=score,
            params=dict(core),
            elapsed=time.perf_counter() - self.start,
            evaluations=self.ev.evals if evaluations is None else evaluations,
            move=move,
            creative=dict(creative),
            objective=objective,
        )
        self.history.append(entry)
        if self.callback is not None and self.callback(entry) is True:
            self.cancelled = True
        return True

    def offer_node(self, node: _Node) -> bool:
        core, creative = self.recipe(node.point)
        return self.offer(node.objective, node.score, core, creative, node.via.label if node.via else "start")

    def done(self) -> bool:
        return self.cancelled or self.ev.remaining() <= 0 or self.ev.expired() or self.at_ceiling()

    def at_ceiling(self) -> bool:
        """True once the best score reaches the scorer's best possible score (nothing can beat it)."""
        return self.best is not None and self.best.objective >= self.ceiling

    def learn(self, node: _Node) -> None:
        """Move-direction statistics for the unguided ordering."""
        if node.via is None or node.parent_objective is None or len(node.via.deltas) != 1:
            return
        ((i, d),) = node.via.deltas
        key = (i, _sgn(d))
        self.stats[key] = self.stats.get(key, 0.0) + (1.0 if node.objective > node.parent_objective else -0.1)

    def observe(self, nodes: Sequence[_Node]) -> None:
        """Fold the gradients of freshly scored nodes into the running second moment."""
        for node in nodes:
            if node.grad is None:
                continue
            for i, (g, a) in enumerate(zip(node.grad, self.space.axes, strict=True)):
                gz = g * a.half / a.step
                self.second_moment[i] = MOMENT_DECAY * self.second_moment[i] + (1 - MOMENT_DECAY) * gz * gz
            self.moment_weight = MOMENT_DECAY * self.moment_weight + (1 - MOMENT_DECAY)

    def grad_scale(self) -> list[float]:
        """Per-axis RMS gradient (bias-corrected), the line search's preconditioner."""
        if self.moment_weight == 0.0:
            return [1.0] * len(self.space.axes)
        rms = [math.sqrt(v / self.moment_weight) for v in self.second_moment]
        floor = SCALE_FLOOR * max(rms)
        return [max(r, floor) for r in rms]

    def adapt(self, children: Sequence[_Node]) -> None:
        """Trust-region update of the gradient line search: follow the step length that won."""
        improved = [
            c for c in children if c.parent_objective is not None and c.objective > c.parent_objective
        ]
        if not improved:
            self.trust = max(self.trust * 0.5, TRUST_MIN)
            return
        top = max(improved, key=lambda c: c.objective)
        if top.via is not None and top.via.alpha > 0:
            self.trust = min(max(top.via.alpha, TRUST_MIN), TRUST_MAX)

    # -- phases
    def root(self, values: Mapping[str, float], guided: bool) -> _Node | None:
        """The start node (scored unless memoised with what the search needs)."""
        point = self.space.snap(values)
        node = self.ev.memo.get(point)
        if node is None or (guided and node.grad is None):
            if self.done():
                return None
            node = self.ev.add(point, guided, None)
            self.observe([node])
            self.offer_node(node)
        return node

    def moves_of(self, node: _Node) -> list[_Move]:
        alphas = [self.trust * f for f in LADDER]
        return node.extra + _order_moves(node, self.space, self.stats, self.rng, alphas, self.grad_scale())

    def combine(self, picked: Sequence[tuple[_Node, _Node]]) -> None:
        """Pattern-search acceleration: when several moves from one parent improved it, the best of
        those children first tries the others' moves as well (one combined move)."""
        by_parent: dict[int, list[_Node]] = {}
        for parent, child in picked:
            if child.via is not None and child.objective > parent.objective:
                by_parent.setdefault(id(parent), []).append(child)
        for winners in by_parent.values():
            if len(winners) < 2:
                continue
            winners.sort(key=lambda c: -c.objective)
            best = winners[0]
            total: dict[int, int] = {}
            for child in winners[1:]:
                assert child.via is not None
                for i, d in child.via.deltas:
                    total[i] = total.get(i, 0) + d
            deltas = tuple((i, d) for i, d in sorted(total.items()) if d)
            if deltas:
                label = "combine " + " + ".join(c.via.label for c in winners[1:] if c.via is not None)
                best.extra.append(_Move(label, deltas))

    def kick(self, guided: bool) -> _Node | None:
        """A seeded random restart: the best node pushed by a few random coarse moves."""
        assert self.best is not None
        base = self.space.snap({**self.best.core, **self.best.creative})
        for _ in range(10):
            point = list(base)
            for i in self.rng.sample(range(len(self.space.axes)), min(3, len(self.space.axes))):
                a = self.space.axes[i]
                point[i] = min(max(point[i] + self.rng.choice((-1, 1)) * a.moves[0], a.kmin), a.kmax)
            if tuple(point) not in self.ev.memo:
                break
        else:
            return None
        if self.done():
            return None
        node = self.ev.add(tuple(point), guided, _Move("restart", ()))
        self.observe([node])
        self.offer_node(node)
        return node

    def expand(self, nodes: Sequence[_Node], per_node: int, guided: bool) -> list[_Node]:
        """Score up to ``per_node`` fresh children of each node in one batched pass."""
        taken: set[tuple[int, ...]] = set()
        picked: list[tuple[tuple[int, ...], _Move, _Node]] = []
        for node in nodes:
            if node.pending is None:
                node.pending = self.moves_of(node)
            count = min(per_node, self.ev.remaining() - len(picked))
            if count <= 0:
                break
            picked += [
                (p, m, node) for p, m in _take(node, count, self.ev, self.cfg.explore, self.rng, taken)
            ]
        if not picked:
            return []
        children = self._add_many(
            [p for p, _, _ in picked], guided, [m for _, m, _ in picked], [n for _, _, n in picked]
        )
        for child in children:
            self.learn(child)
        self.adapt(children)
        self.combine([(n, c) for (_, _, n), c in zip(picked, children, strict=True)])
        for child in sorted(children, key=lambda c: -c.objective)[:1]:
            self.offer_node(child)
        return children

    def _add_many(
        self, points: list[tuple[int, ...]], guided: bool, moves: list[_Move], parents: list[_Node]
    ) -> list[_Node]:
        scored = self.ev.score_points(points, guided)
        nodes = []
        for point, (objective, grad), move, parent in zip(points, scored, moves, parents, strict=True):
            node = _Node(point, objective, objective * self.sign, grad, move, parent.objective)
            self.ev.memo[point] = node
            nodes.append(node)
        self.observe(nodes)
        return nodes

    def best_first(self, start: Mapping[str, float], guided: bool) -> None:
        root = self.root(start, guided)
        if root is None:
            return
        frontier = [root]
        stale, restarts = 0, self.cfg.restarts
        while not self.done():
            frontier = [n for n in frontier if n.pending is None or n.pending]
            if not frontier:
                break
            node = max(frontier, key=lambda n: n.objective)
            before = self.best.objective if self.best else -math.inf
            children = self.expand([node], self.batch, guided)
            frontier += children
            stale = 0 if self.best and self.best.objective > before else stale + 1
            if stale >= self.cfg.patience:
                if restarts <= 0:
                    break
                restarts -= 1
                kicked = self.kick(guided)
                if kicked is None:
                    break
                frontier, stale = [kicked], 0

    def beam(self, start: Mapping[str, float], guided: bool) -> None:
        root = self.root(start, guided)
        if root is None:
            return
        beam = [root]
        stale, restarts = 0, self.cfg.restarts
        while not self.done():
            before = self.best.objective if self.best else -math.inf
            children = self.expand(beam, self.batch, guided)
            pool = {n.point: n for n in (*beam, *children) if n.pending is None or n.pending}
            beam = sorted(pool.values(), key=lambda n: -n.objective)[: self.cfg.beam_width]
            if not children and not beam:
                break
            stale = 0 if self.best and self.best.objective > before else stale + 1
            if stale >= self.cfg.patience or not children:
                if restarts <= 0:
                    break
                restarts -= 1
                kicked = self.kick(guided)
                if kicked is None:
                    break
                beam, stale = [kicked], 0

    def gradient(self, start: Mapping[str, float], budget: int, lr: float) -> None:
        """Optimise the continuous core parameters with :func:`optimize` within ``budget`` images."""
        wanted = self.cfg.gradient_restarts or max(1, min(4, budget // 50))
        restarts = min(wanted, max(1, budget - 3))
        steps = (budget - 3) // restarts
        core_names = tuple(n for n in self.space.names if n in PARAMS_BY_NAME and n not in CREATIVE_BY_NAME)
        if steps < 1 or not core_names or self.done():
            return
        start_core, start_creative = split_params(start)
        locked_core, locked_creative = split_params(self.locked)
        creative = {**start_creative, **locked_creative}
        scorer = _CreativeThen(self.scorer, creative) if creative else self.scorer
        remaining_time = None
        if self.ev.deadline is not None:
            remaining_time = max(1e-3, self.ev.deadline - time.perf_counter())
        offset = self.ev.evals

        def relay(step: Step) -> bool | None:
            if step.best_score * self.sign > (self.best.objective if self.best else -math.inf):
                core = {n: v for n, v in step.params.items() if v != PARAMS_BY_NAME[n].neutral}
                self.offer(
                    step.best_score * self.sign,
                    step.best_score,
                    core,
                    {n: v for n, v in creative.items() if v != 0.0},
                    f"gradient step {step.step}",
                    offset + 2 + restarts * (step.step + 1),
                )
            return self.cancelled or self.at_ceiling() or None

        config = OptimizeConfig(
            steps=steps,
            time_budget=remaining_time,
            restarts=restarts,
            lr=lr,
            l2=0.0,
            init_spread=0.15,
            patience=max(self.cfg.patience * 2, 6),
            min_gain=0.0,
            prune=0.0,
            seed=self.cfg.seed,
            active=core_names,
            lock=locked_core,
            init={n: v for n, v in start_core.items() if n not in locked_core},
            prior={},  # the search's own start point; the auto filters are in its soft set
        )
        result = optimize(self.preview, scorer, config, callback=relay)
        self.ev.evals += result.evaluations
        self.ev.passes += 3 + len(result.history)  # score before, base, steps, final
        if not result.identity:
            core = {n: v for n, v in result.params.items() if v != PARAMS_BY_NAME[n].neutral}
            self.offer(
                result.score_after * self.sign,
                result.score_after,
                core,
                {n: v for n, v in creative.items() if v != 0.0},
                "gradient result",
            )


class _CreativeThen(torch.nn.Module):
    """Scores ``apply_creative(images, creative)``: lets the core optimizer refine around fixed creative edits."""

    def __init__(self, scorer: torch.nn.Module, creative: Mapping[str, float]) -> None:
        super().__init__()
        self.inner = scorer
        self.creative = dict(creative)
        self.info = getattr(scorer, "info", None)

    def set_reference(self, images: Tensor | None) -> None:
        if hasattr(self.inner, "set_reference"):
            self.inner.set_reference(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.inner(apply_creative(images, self.creative))


def _ceiling(scorer: torch.nn.Module, sign: float) -> float:
    """The best possible objective (signed score) per the scorer's range; +inf when unknown."""
    info = getattr(scorer, "info", None)
    if info is None:
        return math.inf
    low, high = info.score_range
    return high if sign > 0 else -low


def soft_set(scorer: torch.nn.Module) -> tuple[str, ...]:
    """The photographic parameters a search moves by default, in table order: the scorer's
    :func:`~lib_enhancer.optimize.default_active` set plus the per-channel levels and the auto filters
    (auto levels, equalize: NUlIE reaches its scores with per-channel autocontrast and equalisation;
    small discrete moves and the hybrids' unregularised gradient phases make good use of them)."""
    wanted = {*default_active(scorer), *CHANNEL_LEVEL_NAMES, *AUTO_NAMES}
    return tuple(n for n in PARAM_NAMES if n in wanted)


def _search_active(scorer: torch.nn.Module, cfg: SearchConfig) -> tuple[str, ...]:
    """The parameters a search may move: ``cfg.active``, else the :func:`soft_set` of the scorer
    plus the creative hard set when ``cfg.hard``."""
    if cfg.active is not None:
        return tuple(cfg.active)
    return (*soft_set(scorer), *(CREATIVE_NAMES if cfg.hard else ()))


def search(
    preview: Tensor,
    scorer: torch.nn.Module,
    config: SearchConfig | None = None,
    *,
    strength: float = 1.0,
    callback: Callable[[Step], bool | None] | None = None,
) -> SearchResult:
    """Find the recipe that scores best on ``preview`` ``(1, 3, h, w)`` by search (see module doc).

    Args:
        preview: the downscaled image, float sRGB in [0, 1].
        scorer: a registry scorer (``info.higher_is_better`` respected), or any module mapping
            ``(B, 3, H, W)`` to ``(B,)`` scores (then higher is better and gradients are not used
            unless ``guided=True``).
        config: mode, budgets, moves, locks, seed.
        strength: blend of the found edit towards neutral, in [0, 1] (one extra evaluation when < 1).
        callback: called with a :class:`SearchStep` for every accepted step (a new best); returning
            ``True`` cancels the search (the best so far is returned).

    Returns:
        A :class:`SearchResult` (an :class:`~lib_enhancer.optimize.OptimizeResult`): the best recipe
        found, never scoring below the untouched input, the history of accepted steps and the exact
        number of images scored.

    Raises:
        ValueError: a bad preview, strength, or a gradient mode with a non-differentiable scorer.
    """
    cfg = config or SearchConfig()
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    info = getattr(scorer, "info", None)
    needs_gradients = cfg.mode in ("gradient", "hybrid", "hybrid-reverse")
    guided = (needs_gradients or bool(info and info.differentiable)) if cfg.guided is None else cfg.guided
    if guided and info is not None and not info.differentiable and not needs_gradients:
        raise ValueError(f"guided=True needs a differentiable scorer; {info.name!r} is not")
    setup = setup_run(
        preview,
        scorer,
        () if cfg.mode == "nulie" else _search_active(scorer, cfg),
        cfg.lock,
        gradients=f"mode {cfg.mode!r} needs gradients" if needs_gradients else None,
    )
    preview, sign, span, locked = setup.preview, setup.sign, setup.span, setup.locked
    reserve = 1 if strength < 1.0 else 0
    budget = cfg.max_evals - reserve
    if budget < 1:
        raise ValueError(f"max_evals={cfg.max_evals} leaves nothing to search with strength < 1")

    if cfg.mode == "nulie":
        return _nulie(preview, scorer, cfg, sign, span, budget, strength, callback)

    space = _Space(setup.names, cfg.scales)
    run = _Run(preview, scorer, cfg, space, locked, callback, budget, sign, span)
    with torch.no_grad():
        score_before = float(scorer(preview).reshape(-1)[0])
    run.ev.evals += 1
    run.ev.passes += 1
    init = default_prior(scorer) if cfg.init is None else cfg.init
    start_values = {n: float(v) for n, v in init.items() if n not in locked}

    if not locked and not any(v != get_search_param(n).neutral for n, v in start_values.items()):
        # the root is the untouched input: no need to score it again unless its gradient is wanted
        root_point = space.snap({})
        if not guided or cfg.mode in ("gradient", "hybrid-reverse"):
            run.ev.memo[root_point] = _Node(root_point, score_before * sign, score_before, None)
            run.offer(score_before * sign, score_before, {}, {}, "start")

    if cfg.mode == "best-first":
        run.best_first(start_values, guided)
    elif cfg.mode == "beam":
        run.beam(start_values, guided)
    elif cfg.mode == "gradient":
        run.gradient(start_values, run.ev.remaining(), cfg.gradient_lr)
    elif cfg.mode == "hybrid":
        search_budget = run.ev.remaining() - round(cfg.gradient_share * cfg.max_evals)
        run.ev.budget = run.ev.evals + max(1, search_budget)
        run.best_first(start_values, guided)
        run.ev.budget = budget
        if run.best is not None and not run.cancelled and not run.ev.expired():
            run.gradient({**run.best.core, **run.best.creative}, run.ev.remaining(), 0.5 * cfg.gradient_lr)
    else:  # hybrid-reverse
        share = min(run.ev.remaining(), round(cfg.gradient_share * cfg.max_evals))
        run.gradient(start_values, share, cfg.gradient_lr)
        if run.best is not None and not run.cancelled and not run.ev.expired():
            run.best_first({**run.best.core, **run.best.creative}, guided)

    return _finish(run, score_before, strength, cfg.mode)


def _finish(run: _Run, score_before: float, strength: float, mode: str) -> SearchResult:
    sign, span, cfg = run.sign, run.span, run.cfg
    best = run.best
    core = dict(best.core) if best else {}
    creative = dict(best.creative) if best else {}
    found_score = best.score if best else score_before
    score_after = found_score
    if (core or creative) and strength < 1.0:
        final = {**blend(core, strength), **{n: strength * v for n, v in creative.items()}}
        run.ev.budget += 1  # the reserved evaluation
        with torch.no_grad():
            score_after = score_recipes(run.preview, run.scorer, [final])[0]
        run.ev.evals += 1
        run.ev.passes += 1
    gain = (score_after - score_before) * sign
    elapsed = time.perf_counter() - run.start
    if not (core or creative) or gain < cfg.min_gain * span:
        if not (core or creative):
            reason = "no edit improved the score"
        elif gain < 0:
            reason = f"the edit scored below the original ({score_after:.3f} < {score_before:.3f})"
        else:
            reason = "the photo needs no edit (gain below threshold)"
        return SearchResult(
            params={},
            score_before=score_before,
            score_after=score_before,
            history=list(run.history),
            identity=True,
            message=f"kept the original: {reason}",
            evaluations=run.ev.evals,
            mode=mode,
            elapsed=elapsed,
            passes=run.ev.passes,
        )
    look = " (creative edits change the look)" if creative else ""
    message = (
        f"{mode}: score {score_before:.3f} -> {score_after:.3f} with {run.ev.evals} evaluations "
        f"in {elapsed:.1f}s{look}"
    )
    return SearchResult(
        params=core,
        score_before=score_before,
        score_after=score_after,
        history=list(run.history),
        identity=False,
        message=message,
        evaluations=run.ev.evals,
        creative=creative,
        mode=mode,
        elapsed=elapsed,
        passes=run.ev.passes,
    )


# ---- NUl Image Enhancer's loop -------------------------------------------------------------------


def _nulie(
    preview: Tensor,
    scorer: torch.nn.Module,
    cfg: SearchConfig,
    sign: float,
    span: float,
    budget: int,
    strength: float,
    callback: Callable[[Step], bool | None] | None,
) -> SearchResult:
    """NUlIE's ``enhance_image.py`` loop, faithfully, one image per evaluation.

    Deviations, all forced by the setting: the scorer is ours and scores the whole preview (NUlIE:
    a 224 centre crop, twice with a flip); scores and thresholds are rescaled from LAION points to
    the scorer's range; the "optimal" grid search starts from minus infinity rather than 0 (so
    negative scores work); the RNG is seeded; budgets are in evaluations as well as seconds; the
    loop stops once the scorer's maximum is reached.
    """
    start = time.perf_counter()
    deadline = None if cfg.time_budget is None else start + cfg.time_budget
    rng = np.random.default_rng(cfg.seed)
    ops = nulie_transforms(cfg.hard)
    if cfg.nulie_ops is not None:
        ops = {op: spec for op, spec in ops.items() if op in cfg.nulie_ops}
    names = list(ops)
    n_try = cfg.nulie_n_try or (20 if cfg.hard else 10)
    unit = span / NULIE_SCORE_SPAN
    thres_best, thres_base, dark_weight = 0.2 * unit, 0.1 * unit, 6.0 * unit
    evals = 0
    history: list[SearchStep] = []
    cancelled = False

    def raw(image: Tensor) -> float:
        nonlocal evals
        with torch.no_grad():
            value = float(scorer(image).reshape(-1)[0])
        evals += 1
        return value

    ceiling = _ceiling(scorer, sign)

    def left() -> bool:
        return (
            evals < budget
            and not cancelled
            and best_objective < ceiling
            and (deadline is None or time.perf_counter() < deadline)
        )

    light_base = float(preview.mean())
    score_before = raw(preview)
    base_objective = round(score_before * sign, 4)
    tree: list[tuple[int, tuple[str, dict[str, float]] | None]] = [(-1, None)]
    objectives = [base_objective]
    raws = [score_before]
    best_node, best_objective, last_improvement = 0, base_objective, 0
    history.append(
        SearchStep(
            step=0,
            score=score_before,
            best_score=score_before,
            params={},
            elapsed=time.perf_counter() - start,
            evaluations=evals,
            move="start",
            objective=base_objective,
        )
    )
    if callback is not None and callback(history[0]) is True:
        cancelled = True

    def chain_of(node: int) -> list[tuple[str, dict[str, float]]]:
        out = []
        while node > 0:
            parent, op = tree[node]
            assert op is not None
            out.append(op)
            node = parent
        return out[::-1]

    def draw() -> tuple[str, dict[str, float]]:
        op = names[int(rng.integers(len(names)))]
        kwargs: dict[str, float] = {}
        for key, spec in ops[op].items():
            if spec[0] == _INT:
                v = int(rng.integers(spec[1], spec[2]))
                if key == "kernel_size" and v % 2 == 0:
                    v += 1
                kwargs[key] = v
            else:
                kwargs[key] = round(float(rng.uniform(spec[0], spec[1])), 3)
        return op, kwargs

    def optimal(image: Tensor, it: int) -> tuple[str, dict[str, float]] | None:
        op = names[it % len(names)]
        best_v, best_kwargs = -math.inf, {}
        keys = list(ops[op])
        for key in keys:
            spec = ops[op][key]
            if spec[0] == _INT:
                tries: list[float] = sorted({math.floor(v) for v in np.linspace(spec[1], spec[2] - 1, n_try)})
                if key == "kernel_size":
                    tries = [v for v in tries if v % 2 != 0]
            else:
                tries = [float(v) for v in np.linspace(spec[0], spec[1], n_try)]
            for v in tries:
                if not left():
                    return None
                kwargs = {k: 1.0 for k in keys}
                kwargs[key] = v
                value = round(raw(_nulie_op(image, op, kwargs)) * sign, 4)
                if value > best_v:
                    best_v, best_kwargs = value, kwargs
        return op, best_kwargs

    it = 0
    for it in range(1, 2000):
        if not left():
            break
        do_optimal = it < last_improvement + len(names)
        if it < cfg.nulie_random_iters:
            parent = int(rng.uniform(0, max(1, len(tree))))
        elif rng.uniform(0, 1) < 0.8 and not do_optimal:
            parent = int(rng.uniform(0, len(tree)))
            if (
                objectives[parent] < best_objective - thres_best
                or objectives[parent] < base_objective - thres_base
            ):
                continue
        else:
            parent = best_node
        image = apply_nulie_chain(preview, chain_of(parent))
        if do_optimal:
            chosen = optimal(image, it)
            if chosen is None:
                break
        else:
            chosen = draw()
        if not left():
            break
        op, kwargs = chosen
        image = _nulie_op(image, op, kwargs)
        value = raw(image)
        objective = round(value * sign, 4)
        ratio = float(image.mean()) / max(light_base, 1e-12)
        if ratio < cfg.nulie_dark_threshold:
            objective -= (1.0 - ratio) * dark_weight
        tree.append((parent, (op, dict(kwargs))))
        objectives.append(objective)
        raws.append(value)
        if objective > best_objective:
            best_node, best_objective, last_improvement = len(tree) - 1, objective, it
            entry = SearchStep(
                step=len(history),
                score=value,
                best_score=value,
                params={},
                elapsed=time.perf_counter() - start,
                evaluations=evals,
                move=f"{op}({', '.join(f'{k}={v:g}' for k, v in kwargs.items())})",
                chain=tuple(chain_of(best_node)),
                objective=objective,
            )
            history.append(entry)
            if callback is not None and callback(entry) is True:
                cancelled = True

    chain = tuple(chain_of(best_node))
    score_after = raws[best_node]
    if chain and strength < 1.0:
        with torch.no_grad():
            score_after = float(scorer(apply_nulie_chain(preview, chain, strength=strength)).reshape(-1)[0])
        evals += 1
    elapsed = time.perf_counter() - start
    gain = (score_after - score_before) * sign
    if not chain or gain < cfg.min_gain * span:
        reason = (
            "no edit improved the score" if gain <= 0 else "the photo needs no edit (gain below threshold)"
        )
        return SearchResult(
            params={},
            score_before=score_before,
            score_after=score_before,
            history=history,
            identity=True,
            message=f"kept the original: {reason}",
            evaluations=evals,
            mode="nulie",
            elapsed=elapsed,
            passes=evals,
        )
    message = (
        f"nulie: score {score_before:.3f} -> {score_after:.3f} with {evals} evaluations in {elapsed:.1f}s "
        f"({len(chain)} ops; render with apply_nulie_chain)"
    )
    return SearchResult(
        params={},
        score_before=score_before,
        score_after=score_after,
        history=history,
        identity=False,
        message=message,
        evaluations=evals,
        chain=chain,
        mode="nulie",
        elapsed=elapsed,
        passes=evals,
    )
