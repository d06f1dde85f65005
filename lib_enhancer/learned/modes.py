"""The learned modes as the API uses them: ``predict`` (recipe in one pass) and ``histogram`` (LUT).

Both look at a small preview only; the full-resolution work is one LUT (or recipe) apply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from lib_enhancer.filters.auto import AutoTables
from lib_enhancer.filters.pipeline import AUTO_KEY, apply_filters, auto_of
from lib_enhancer.learned.common import apply_prior, thumbnail
from lib_enhancer.learned.histogram import (
    LUT_SIZE,
    affine_lut,
    load_histogram_net,
    mkl_map,
    soft_histogram,
    transfer_lut,
)
from lib_enhancer.learned.predictor import PREDICTED, ParamSquash, load_predictor
from lib_enhancer.lut import apply_lut_torch, blend_lut, build_lut, identity_lattice
from lib_enhancer.params import CHANNEL_GAMMA_NAMES, CHANNEL_LEVEL_NAMES, get_param

Tensor = torch.Tensor
LEARNED_MODES = ("predict", "histogram")
DEFAULT_TRANSFER = "mkl"  # the histogram mode's transport: "mkl" (linear, smooth) or "idt"
# Levenberg–Marquardt iterations of the recipe fit to a histogram LUT (bench/recipe_fit.py, 24
# degraded training-photo cases, after the start point, on the built-in scorer's 160 px preview): 8
# iterations reach 2.76 levels mean error, 16 reach 2.75 in twice the time; the fit before (Adam, 60
# steps, global parameters only over the whole LUT) reached 4.59, 4-6x slower.
FIT_ITERATIONS = 8
# The fit also stops once an iteration lowers the cost by less than this fraction: on the same 24
# cases 0.01 left the error of the re-applied recipe where it was (2.93 vs 2.92 levels) in ~20
# instead of ~30 ms.
FIT_TOLERANCE = 0.01
# The fit's pull towards neutral (times the squared raw parameters, against the squared colour
# errors of 512 colours). Many global parameters can trade off against each other; on the same 24
# cases 0.03 left the error where it was (2.76 vs 2.75 levels) and moved the parameters 36 % less
# (mean sum of |normalised value| 2.87 vs 4.49); 0.1 cost 0.14 level more.
FIT_RIDGE = 0.03
# A fit after the start point that leaves more than this mean error (0..1 units; 10 levels) is
# retried on the whole LUT from the photo's own colours, and the closer recipe kept: on the 24 cases
# of bench/recipe_fit.py the start point's fit was the closer one or within 0.4 levels (worst 8.3
# levels), but from a drastic LUT it can stop in a poor local minimum.
FIT_FALLBACK_ERROR = 10 / 255
_LM_STEP = 1e-4  # forward-difference step on the raw (squashed) parameters
_LM_DAMPING = 1e-2  # initial damping; ÷3 after a step that lowers the error, ×4 after one that does not
_LM_TRIES = 6  # damping increases tried per iteration before the fit stops
# The parameters of the recipe fitted to a histogram LUT: the predictor's, without the per-channel
# levels and gammas — measured on 24 synthetic cases of training photos, the fit is as close without
# them (mean error 3.12 vs 3.12 levels) and 20 % faster, and the recipe is easier to read.
FIT_NAMES = tuple(n for n in PREDICTED if n not in (*CHANNEL_LEVEL_NAMES, *CHANNEL_GAMMA_NAMES))
# The fractions of the way from the model's start point to its proposal that the scorer compares,
# and the gain (fraction of the scorer's range) a fraction above 0 must show over the start point
# to be kept. Both modes' rules were chosen by cross-validation over the 31 training photos (5 folds,
# each restored by a model trained by the shipped command without it) and the 3 validation photos
# (the shipped model): 204 degraded + 34 undegraded cases, every rule replayed from the scores the
# shipped enhance() recorded (bench/learned_cv.py; bench/results/learned_cv_predict.md and
# learned_cv_histogram.md), a rule replacing the one before only if better on PSNR and on ΔE00.
# predict: the start point or the whole proposal, kept for a gain of 1e-5 (ties go to the start
# point): 26.10 dB, ΔE00 6.03 against 25.95 / 6.08 for the rule before (0 / 0.5 / 1, ties to the
# proposal), which the 3 validation photos alone had picked (bench/learned_verify.py). A step beyond
# the proposal (1.5, a recipe only) did worse (25.87 dB), as on the held-out photos.
# histogram: the start point or HALF the LUT's edit, kept for the gradient mode's gain of 1e-3:
# 24.89 dB, ΔE00 6.39 against 24.13 / 6.95 with the whole edit also offered (the rule before): the
# network's full correction overshoots more often than the scorer catches. A LUT is never
# extrapolated.
VERIFY_FRACTIONS = {"predict": (0.0, 1.0), "histogram": (0.0, 0.5)}
MAX_FRACTION = 2.0  # how far partial_edit extrapolates a recipe beyond the proposal
VERIFY_MIN_GAIN = {"predict": 1e-5, "histogram": 1e-3}


@dataclass
class LearnedEdit:
    """What a learned mode proposes for one image."""

    params: dict[str, float]  # recipe parameters (for ``histogram``: the closest editable recipe)
    lut: np.ndarray | None = None  # ``histogram`` only: the exact edit, ``(33, 33, 33, 3)`` [b, g, r]
    info: dict[str, Any] = field(default_factory=dict)
    # where the model's edit starts (its prior and the locks): what :func:`partial_edit` moves from
    start: dict[str, float] = field(default_factory=dict)
    start_lut: np.ndarray | None = None  # ``histogram`` only: the start point as a LUT


def partial_edit(edit: LearnedEdit, fraction: float) -> LearnedEdit:
    """``edit`` taken ``fraction`` of the way from its start point to the model's proposal.

    At 0 the result is the start point itself as an exact recipe (no LUT); a LUT edit's in-between
    LUTs (``fraction`` in [0, 1]) are the linear blend of the start and proposal LUTs (its recipe, an
    approximation anyway, is blended like a predicted one). A recipe edit may also go beyond the
    proposal (up to :data:`MAX_FRACTION`), each parameter held inside its range.
    """
    limit = 1.0 if edit.lut is not None else MAX_FRACTION
    if not 0.0 <= fraction <= limit:
        raise ValueError(f"fraction must be in [0, {limit:g}], got {fraction}")
    if fraction == 1.0:
        return edit
    info = {**edit.info, "fraction": fraction}
    if edit.lut is not None and fraction == 0.0:
        return LearnedEdit(dict(edit.start), None, info, dict(edit.start))
    base = {n: edit.start.get(n, get_param(n).neutral) for n in edit.params}
    params = {**edit.start}
    for name, value in edit.params.items():
        spec = get_param(name)
        params[name] = min(spec.maximum, max(spec.minimum, base[name] + fraction * (value - base[name])))
    lut = None
    if edit.lut is not None:
        assert edit.start_lut is not None
        lut = edit.start_lut + np.float32(fraction) * (edit.lut - edit.start_lut)
    return replace(edit, params=params, lut=lut, info=info)


def verify_candidates(edit: LearnedEdit, fractions: Sequence[float] = (0.0, 0.5, 1.0)) -> list[LearnedEdit]:
    """``edit`` at ``fractions`` of the way from its start point, what the scorer picks among (see
    :func:`verified_edit`; the API passes the mode's :data:`VERIFY_FRACTIONS`; the first must be 0)."""
    if not fractions or fractions[0] != 0.0:
        raise ValueError(f"fractions must start at 0 (the start point), got {tuple(fractions)}")
    return [partial_edit(edit, f) for f in fractions]


def verified_edit(
    candidates: Sequence[LearnedEdit], scores: Sequence[float], threshold: float
) -> tuple[LearnedEdit, float]:
    """The scorer's pick among :func:`verify_candidates` given their ``scores`` (higher is better).

    The model proposes, the scorer disposes: the start point (the first candidate, the model's
    prior) is kept unless a later one scores at least ``threshold`` higher (0: ties go to the
    proposal), so a photo the model would over-correct keeps the measured default. Returns the
    chosen edit (``info["fraction"]`` set) and its score.
    """
    if len(candidates) != len(scores) or len(candidates) < 2:
        raise ValueError(
            f"need a score for each of at least 2 candidates, got {len(candidates)}/{len(scores)}"
        )
    best = max(range(1, len(candidates)), key=lambda i: scores[i])
    pick = best if scores[best] - scores[0] >= threshold else 0
    chosen = candidates[pick]
    info = {**chosen.info, "fraction": chosen.info.get("fraction", 1.0)}  # the proposal itself has none
    return replace(chosen, info=info), float(scores[pick])


def predict_edit(
    preview: Tensor, *, model: str | os.PathLike[str] | None = None, lock: Mapping[str, float] | None = None
) -> LearnedEdit:
    """Recipe parameters for float ``(1, 3, H, W)`` ``preview`` from the recipe predictor."""
    predictor = load_predictor(model)
    params = predictor.predict(preview.cpu())[0]
    locks = {n: float(v) for n, v in (lock or {}).items()}
    params.update(locks)
    start = {**predictor.prior, **locks}
    return LearnedEdit(params, None, {"model": str(model or "recipe_predictor (shipped)")}, start)


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
    # mkl: the affine map itself (composed after the prior without a lookup); idt: its LUT
    transport = (
        mkl_map(source[0], target[0]) if transfer == "mkl" else transfer_lut(source[0], target[0], transfer)
    )
    if net.prior:  # one LUT for the whole edit: the prior, then the transport
        table, start_lut = _after_prior(transport, net.prior, tables)
    else:
        table = transport if isinstance(transport, np.ndarray) else affine_lut(*transport)
        start_lut = identity_lattice(table.shape[0]).astype(np.float32)
    table = blend_lut(table, strength)
    start_lut = blend_lut(start_lut, strength)
    info: dict[str, Any] = {"model": str(model or "histogram_net (shipped)"), "transfer": transfer}
    edit = LearnedEdit({}, table, info, dict(net.prior), start_lut)
    return with_fitted_recipe(edit, x) if fit_recipe else edit


def with_fitted_recipe(
    edit: LearnedEdit,
    preview: Tensor,
    iterations: int = FIT_ITERATIONS,
    ridge: float = FIT_RIDGE,
    tolerance: float = FIT_TOLERANCE,
    *,
    curves: AutoTables | None = None,
) -> LearnedEdit:
    """A LUT ``edit`` with the closest recipe fitted to its LUT on ``preview``'s colours.

    The recipe is the edit's start point (the model's prior, e.g. auto contrast, read from the
    photo as the render will) followed by the fitted global parameters, so it renders the edit
    through the ordinary filters; where that fit stays more than :data:`FIT_FALLBACK_ERROR` off and
    fitting the whole LUT with global parameters alone comes closer, the latter. ``curves``: the
    photo's auto curves as its render reads them (:func:`lib_enhancer.render.auto_curves`; the API
    passes them), so the recipe re-applied at full size starts where the fit did; default: the
    preview's. The fit (~20 ms on this CPU, ``bench/recipe_fit.py``) is what makes a LUT edit
    editable; the API runs it only for the LUT it keeps.
    """
    if edit.lut is None:
        return edit
    x = preview.detach().float().cpu()
    params: dict[str, float] = {}
    error = float("inf")
    if edit.start:
        params_at_start = {**edit.start, AUTO_KEY: curves if curves is not None else auto_of(x)}
        with torch.no_grad():  # unclamped: the render goes on from the pre stage without a clamp
            start = apply_filters(x, params_at_start, stages=("pre",), clamp=False)
        fitted, error = fit_recipe_to_lut(
            edit.lut, x, iterations, start=start, ridge=ridge, tolerance=tolerance
        )
        params = {**edit.start, **fitted}
    if error > FIT_FALLBACK_ERROR:
        whole, whole_error = fit_recipe_to_lut(edit.lut, x, iterations, ridge=ridge, tolerance=tolerance)
        if whole_error < error:
            params, error = whole, whole_error
    info = {**edit.info, "recipe_fit_error": round(error, 5)}
    return replace(edit, params=params, info=info)


def _after_prior(
    transport: np.ndarray | tuple[Tensor, Tensor],
    prior: Mapping[str, float],
    tables: Any,
    size: int = LUT_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """The LUT ``(S, S, S, 3)`` of ``transport`` composed after ``prior`` (with the photo's auto
    curves ``tables``), and the prior alone as a LUT (clamped to [0, 1], as the LUT appliers clamp).

    The prior's lattice is built as the render builds one (its per-channel filters on the
    lattice's axis, :func:`~lib_enhancer.lut.build_lut`). ``transport``: a LUT (looked up at the
    prior's colours; its size is the result's), or the affine map ``(A, b)`` of the ``mkl`` transfer
    (:func:`~lib_enhancer.learned.histogram.mkl_map`), applied to the prior's colours directly —
    exactly what a LUT of it would give (trilinear interpolation of an affine map is the map)
    without building and looking up that LUT.
    """
    if isinstance(transport, np.ndarray):
        size = transport.shape[0]
    start = build_lut({**prior, AUTO_KEY: tables}, size, ("pre",)).clip(0.0, 1.0)
    if not isinstance(transport, np.ndarray):
        a, b = (t.numpy().astype(np.float32) for t in transport)
        return np.clip(start @ a.T + b, 0.0, 1.0), start
    colours = torch.from_numpy(start.reshape(1, -1, 1, 3)).permute(0, 3, 1, 2)  # (1, 3, S³, 1)
    mapped = apply_lut_torch(colours, transport).permute(0, 2, 3, 1)
    return mapped.reshape(start.shape).numpy().astype(np.float32), start


def fit_recipe_to_lut(
    table: np.ndarray,
    image: Tensor,
    iterations: int = FIT_ITERATIONS,
    sample: int = 512,
    names: tuple[str, ...] = FIT_NAMES,
    *,
    start: Tensor | None = None,
    ridge: float = FIT_RIDGE,
    tolerance: float = FIT_TOLERANCE,
) -> tuple[dict[str, float], float]:
    """Global recipe parameters ``names`` whose filter chain best matches ``table`` on ``image``'s colours.

    ``start``: ``image`` with the recipe's start point applied (what the global filters will be
    applied to; default ``image`` itself). Returns ``(params, mean absolute error)``.
    Levenberg–Marquardt on range-squashed parameters (least squares, float64, plus ``ridge`` times
    the squared raw parameters, a pull towards neutral), the Jacobian by forward differences in one
    batched filter pass, at most ``iterations``, stopping early once one lowers the cost by less
    than ``tolerance`` of it; ``sample`` colours drawn with a fixed seed.
    """
    colours = image.reshape(3, -1)
    inputs = colours if start is None else start.reshape(3, -1)
    if inputs.shape != colours.shape:
        raise ValueError(f"start must have image's shape {tuple(image.shape)}, got {tuple(start.shape)}")
    gen = torch.Generator().manual_seed(0)
    if colours.shape[1] > sample:
        chosen = torch.randperm(colours.shape[1], generator=gen)[:sample]
        colours, inputs = colours[:, chosen], inputs[:, chosen]
    src = inputs.double().reshape(1, 3, -1, 1)
    with torch.no_grad():
        target = apply_lut_torch(colours.float().reshape(1, 3, -1, 1), table).double()
        squash = ParamSquash(names).double()

        def residuals(raw: Tensor) -> Tensor:
            """``(B, K)`` raw parameter sets -> ``(B, 3·sample)`` residuals of their filter chains."""
            values = squash(raw)
            params = {n: values[:, i] for i, n in enumerate(names)}
            out = apply_filters(src.expand(raw.shape[0], -1, -1, -1), params, stages=("global",))
            return (out - target).reshape(raw.shape[0], -1)

        def pulled(raw: Tensor) -> Tensor:
            """The residuals with the pull towards neutral appended: what the fit minimises."""
            return torch.cat([residuals(raw), ridge**0.5 * raw], dim=1)

        raw = torch.zeros(len(names), dtype=torch.float64)
        r = pulled(raw[None])[0]  # the residuals at ``raw``, kept up to date
        eye = torch.eye(len(names), dtype=torch.float64)
        damping = _LM_DAMPING
        for _ in range(iterations):
            jac = (pulled(raw + _LM_STEP * eye) - r).T / _LM_STEP  # (3·sample + K, K)
            normal, grad = jac.T @ jac, jac.T @ r
            cost = float(r @ r)
            for _ in range(_LM_TRIES):
                system = normal + damping * torch.diag(normal.diagonal() + 1e-12)
                trial = raw - torch.linalg.solve(system, grad)
                trial_r = pulled(trial[None])[0]
                trial_cost = float(trial_r @ trial_r)
                if trial_cost < cost:
                    raw, r, damping = trial, trial_r, damping / 3.0
                    break
                damping *= 4.0
            else:
                break  # no step lowers the error: converged
            if cost - trial_cost < tolerance * cost:
                break  # the last step gained too little to go on
        values = squash(raw[None])[0]
        error = float(r[: -len(names)].abs().mean())  # the colours' part, without the pull
    return {n: round(float(v), 4) for n, v in zip(names, values, strict=True)}, error
