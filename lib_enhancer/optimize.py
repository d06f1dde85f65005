"""Gradient optimizer: NICER's loop over *exact* filters, done right.

The recipe's parameters are optimised against a scorer on a small preview (aspect preserved),
with several seeded restarts evaluated as one batch per step, Adam in a normalised parameter space
(each parameter scaled by the side of its range it moves into, projected back into its bounds), an L2
pull towards neutral, budgets in steps and seconds, early stopping on a plateau and a progress
callback. Two guarantees: the returned edit never scores below the untouched input (else the
identity is returned and the message says so), and ``strength`` blends the result towards neutral.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from lib_enhancer.adam import Adam
from lib_enhancer.filters.pipeline import apply_filters, precompute
from lib_enhancer.params import (
    AUTO_NAMES,
    CHANNEL_GAMMA_NAMES,
    CHANNEL_LEVEL_NAMES,
    CORE_NAMES,
    NEUTRAL,
    PARAMS_BY_NAME,
    get_param,
    validate_params,
)

Tensor = torch.Tensor

#: Parameters optimised by default: everything but sharpening (no scorer should be trusted to judge
#: acutance on a small preview), the creative edits (they change the look; only by request), the
#: per-channel levels and gammas and the auto filters (levels measured on 6 photos x 2 exposures with
#: ``natural``: no gain in mean score for this L2-regularised optimizer, 10 % more evaluations; auto
#: levels / equalize measured on 23 calibration photos: restoration PSNR 19.50 vs 19.77 dB without;
#: the search modes move the per-channel levels and the auto filters).
DEFAULT_ACTIVE: tuple[str, ...] = tuple(
    n
    for n in CORE_NAMES
    if n != "sharpen" and n not in (*CHANNEL_LEVEL_NAMES, *CHANNEL_GAMMA_NAMES, *AUTO_NAMES)
)
DETAIL_PARAMS: frozenset[str] = frozenset({"detail", "local_tone", "sharpen"})


def default_active(scorer: torch.nn.Module) -> tuple[str, ...]:
    """The parameters worth optimising for ``scorer``: no detail filters for texture-blind scorers."""
    info = getattr(scorer, "info", None)
    if info is not None and not info.judges_detail:
        return tuple(n for n in DEFAULT_ACTIVE if n not in DETAIL_PARAMS)
    return DEFAULT_ACTIVE


DEFAULT_L2 = 0.3  # pull towards neutral for scorers that declare none (see default_l2)


def default_l2(scorer: torch.nn.Module) -> float:
    """The pull towards neutral for ``scorer``: its ``info.l2`` when it declares one, else
    :data:`DEFAULT_L2`."""
    value = getattr(getattr(scorer, "info", None), "l2", None)
    return float(value) if value is not None else DEFAULT_L2


def default_prior(scorer: torch.nn.Module) -> dict[str, float]:
    """Where the optimizer starts for ``scorer`` and what its pull pulls towards: the ``info.prior``
    it declares (``natural``: auto contrast, measured in bench/natural_restoration.py), else neutral."""
    info = getattr(scorer, "info", None)
    return dict(getattr(info, "prior", ()) or ())


@dataclass(frozen=True)
class OptimizeConfig:
    """Settings of one optimisation run (all have sensible defaults)."""

    steps: int = 40
    time_budget: float | None = None  # seconds; None = no limit
    restarts: int = 4  # candidates optimised together, one batched scorer call per step
    lr: float = 0.06  # Adam step in normalised units (1 = from neutral to the end of the range)
    # pull towards neutral: fraction of the score range per normalised unit squared; None = the
    # scorer's own (default_l2), resolved by optimize()
    l2: float | None = None
    init_spread: float = 0.15  # std of the seeded restarts around the start point (normalised)
    patience: int = 10  # stop after this many steps without progress (an objective gain > plateau_gain)
    plateau_gain: float = 1e-4  # progress, in the objective's units (a fraction of the score range)
    min_gain: float = 1e-3  # gains below this (fraction of the score range) count as "nothing to fix"
    prune: float = 2e-3  # drop parameters whose removal costs less than this (fraction of the range)
    seed: int = 0
    active: tuple[str, ...] = DEFAULT_ACTIVE
    lock: Mapping[str, float] = field(default_factory=dict)
    init: Mapping[str, float] = field(default_factory=dict)
    # the recipe the run starts from (unless ``init`` says otherwise) and the L2 pull pulls towards;
    # its parameters move even when not in ``active``. None = the scorer's own (default_prior),
    # resolved by optimize(); {} = neutral
    prior: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.steps < 0 or self.restarts < 1:
            raise ValueError("steps must be >= 0 and restarts >= 1")
        for name in (*self.active, *self.lock, *self.init, *(self.prior or {})):
            get_param(name)
        validate_params(dict(self.lock))
        validate_params(dict(self.init))
        validate_params(dict(self.prior or {}))


@dataclass(frozen=True)
class Step:
    """One optimisation step, for history, live previews and the 'why' of a result."""

    step: int
    score: float  # best score among this step's candidates
    best_score: float  # best score so far
    params: dict[str, float]  # best recipe so far
    elapsed: float
    best_objective: float = float("nan")  # score/range minus the L2 pull: what the optimizer maximises


@dataclass(frozen=True)
class OptimizeResult:
    params: dict[str, float]  # non-neutral values, before strength
    score_before: float
    score_after: float  # of the returned (strength-blended) edit on the preview
    history: list[Step]
    identity: bool
    message: str
    evaluations: int  # number of images scored


def _spans(names: Sequence[str], dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Neutral values, the spans below and above neutral, and the bounds in normalised units.

    A parameter is normalised by the side of its range it moves into, so z = -1 and z = +1 are the
    two ends of the range whatever the asymmetry (gamma 0.4..1..2.5: z = -1 is 0.4, not 0.1), and
    the L2 pull costs the same for the same share of the range in either direction.
    """
    neutral = torch.tensor([NEUTRAL[n] for n in names], dtype=dtype)
    lo = torch.tensor([PARAMS_BY_NAME[n].minimum for n in names], dtype=dtype)
    hi = torch.tensor([PARAMS_BY_NAME[n].maximum for n in names], dtype=dtype)
    below, above = neutral - lo, hi - neutral
    zlo = torch.where(below > 0, -torch.ones_like(below), torch.zeros_like(below))
    zhi = torch.where(above > 0, torch.ones_like(above), torch.zeros_like(above))
    return neutral, below, above, zlo, zhi


def _values(z: Tensor, neutral: Tensor, below: Tensor, above: Tensor) -> Tensor:
    """Normalised ``z`` -> parameter values (piecewise linear, continuous at neutral)."""
    return neutral + torch.where(z >= 0, z * above, z * below)


def _to_z(values: Tensor, neutral: Tensor, below: Tensor, above: Tensor) -> Tensor:
    delta = values - neutral
    return torch.where(delta >= 0, delta / above.clamp_min(1e-12), delta / below.clamp_min(1e-12))


def _score(scorer: torch.nn.Module, images: Tensor, sign: float) -> Tensor:
    return sign * scorer(images).reshape(-1).to(images.dtype)


def blend(params: Mapping[str, float], strength: float) -> dict[str, float]:
    """Blend parameter values towards neutral by ``strength`` in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return {n: NEUTRAL[n] + strength * (v - NEUTRAL[n]) for n, v in params.items()}


def as_preview(preview: Tensor) -> Tensor:
    """``preview`` as a float ``(1, 3, h, w)`` tensor (a ``(3, h, w)`` one gets its batch axis)."""
    if not isinstance(preview, torch.Tensor):
        raise TypeError(f"preview must be a torch.Tensor, got {type(preview).__name__}")
    if preview.dim() == 3:
        preview = preview.unsqueeze(0)
    if preview.dim() != 4 or preview.shape[0] != 1 or preview.shape[1] != 3:
        raise ValueError(f"preview must have shape (1, 3, h, w), got {tuple(preview.shape)}")
    if not preview.is_floating_point():
        raise TypeError(f"preview must be a floating point tensor, got {preview.dtype}")
    return preview


@dataclass(frozen=True)
class RunSetup:
    """What every engine (:func:`optimize`, :func:`lib_enhancer.search.search`) sets up first."""

    preview: Tensor  # (1, 3, h, w)
    sign: float  # +1 when the scorer's higher is better, else -1: objective = sign * score
    span: float  # width of the scorer's score range (1 when unknown)
    locked: dict[str, float]  # validated locks, applied to every candidate
    names: tuple[str, ...]  # the parameters that move: ``active`` minus the locked ones


def setup_run(
    preview: Tensor,
    scorer: torch.nn.Module,
    active: Sequence[str],
    lock: Mapping[str, float],
    *,
    gradients: str | None = None,
) -> RunSetup:
    """The preamble shared by the engines: check the preview, read the scorer's direction and range,
    refuse a non-differentiable scorer when ``gradients`` (the name of what needs them) is given, hand
    the preview to the scorer as its reference (``fidelity``), validate the locks, list what moves.

    Raises:
        TypeError, ValueError: a bad preview, a non-differentiable scorer where gradients are
            needed, an out-of-range lock.
        KeyError: an unknown parameter name (with suggestions).
    """
    preview = as_preview(preview)
    info = getattr(scorer, "info", None)
    if gradients is not None and info is not None and not info.differentiable:
        raise ValueError(f"scorer {info.name!r} is not differentiable; {gradients}")
    for name in active:
        get_param(name)
    locked = validate_params(dict(lock))
    if hasattr(scorer, "set_reference"):
        scorer.set_reference(preview)
    sign = score_sign(scorer)
    names = tuple(dict.fromkeys(n for n in active if n not in locked))
    return RunSetup(preview, sign, score_span(scorer), locked, names)


@contextmanager
def reference_scope(scorer: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Clear ``scorer``'s reference (see :func:`setup_run`) when the block ends, however it ends.

    The engines hand the scorer the preview they optimise as its reference; a scorer shared by calls
    (the API's cache, the webui's) must not judge the next image relative to this one.
    """
    try:
        yield scorer
    finally:
        if hasattr(scorer, "set_reference"):
            scorer.set_reference(None)


def optimize(
    preview: Tensor,
    scorer: torch.nn.Module,
    config: OptimizeConfig | None = None,
    *,
    strength: float = 1.0,
    callback: Callable[[Step], bool | None] | None = None,
) -> OptimizeResult:
    """Find filter parameters that maximise ``scorer`` on ``preview`` ``(1, 3, h, w)``.

    Args:
        preview: the downscaled image, float sRGB in [0, 1].
        scorer: a registry scorer (``info.higher_is_better`` respected); must be differentiable.
        config: budgets, restarts, locks, seed.
        strength: blend of the found edit towards neutral, in [0, 1].
        callback: called after every step with a :class:`Step`; returning ``True`` cancels.

    Returns:
        The best parameters found (never scoring below the input) and the run's history.
    """
    cfg = config or OptimizeConfig()
    if cfg.l2 is None:
        cfg = replace(cfg, l2=default_l2(scorer))
    if cfg.prior is None:
        cfg = replace(cfg, prior=default_prior(scorer))
    setup = setup_run(
        preview, scorer, (*cfg.active, *cfg.prior), cfg.lock, gradients="use a search mode instead"
    )
    preview, sign, span, locked, names = (
        setup.preview,
        setup.sign,
        setup.span,
        setup.locked,
        list(setup.names),
    )
    dtype = preview.dtype
    # where a run with a prior starts (the prior under the locks): clipping and garishness are judged
    # relative to it, and it is kept when nothing scores higher and it is not worse than the input
    start_point: dict[str, float] = {}
    if any(v != NEUTRAL[n] for n, v in cfg.prior.items()):
        start_point = {
            n: v for n, v in validate_params({**cfg.prior, **locked}, clamp=True).items() if v != NEUTRAL[n]
        }
    if start_point and hasattr(scorer, "set_reference"):
        with torch.no_grad():
            scorer.set_reference(apply_filters(preview, start_point))
    start = time.perf_counter()
    with torch.no_grad():
        base = apply_filters(preview, locked) if locked else preview
        score_before = float(_score(scorer, preview, sign)[0]) * sign
        base_objective = float(_score(scorer, base, sign)[0])
    evaluations = 2
    history: list[Step] = []
    best = {"objective": base_objective / span, "z": None, "score": base_objective * sign}

    if names and cfg.steps > 0:
        neutral, below, above, zlo, zhi = _spans(names, dtype)
        prior = _to_z(
            torch.tensor([cfg.prior.get(n, NEUTRAL[n]) for n in names], dtype=dtype), neutral, below, above
        )
        init = _to_z(
            torch.tensor([cfg.init.get(n, cfg.prior.get(n, NEUTRAL[n])) for n in names], dtype=dtype),
            neutral,
            below,
            above,
        )
        gen = torch.Generator().manual_seed(cfg.seed)
        z0 = init.expand(cfg.restarts, -1).clone()
        if cfg.restarts > 1:
            z0[1:] += cfg.init_spread * torch.randn(cfg.restarts - 1, len(names), generator=gen, dtype=dtype)
        z = torch.max(torch.min(z0, zhi), zlo).requires_grad_(True)
        adam = Adam(z, lr=cfg.lr)
        batch = preview.expand(cfg.restarts, -1, -1, -1)
        haze = precompute(preview, names, locked)
        stale = 0
        for step in range(cfg.steps):
            values = _values(z, neutral, below, above)
            params = {**locked, **haze, **{n: values[:, i] for i, n in enumerate(names)}}
            scores = _score(scorer, apply_filters(batch, params), sign)
            evaluations += cfg.restarts
            objective = scores / span - cfg.l2 * ((z - prior) ** 2).sum(dim=1)
            top = int(objective.argmax())
            gain = float(objective[top].detach()) - best["objective"]
            if gain > 1e-6:
                best = {
                    "objective": float(objective[top].detach()),
                    "z": z[top].detach().clone(),
                    "score": float(scores[top].detach()) * sign,
                }
            stale = 0 if gain > cfg.plateau_gain else stale + 1
            adam.zero_grad()
            (-objective.sum()).backward()
            adam.step()
            with torch.no_grad():
                z.copy_(torch.max(torch.min(z, zhi), zlo))
            entry = Step(
                step=step,
                score=float(scores[top].detach()) * sign,
                best_score=best["score"],
                params=_params_from_z(best["z"], names, neutral, below, above, locked),
                elapsed=time.perf_counter() - start,
                best_objective=best["objective"],
            )
            history.append(entry)
            if callback is not None and callback(entry) is True:
                break
            if stale >= cfg.patience:
                break
            if cfg.time_budget is not None and entry.elapsed >= cfg.time_budget:
                break
        found = _params_from_z(best["z"], names, neutral, below, above, locked)
    else:
        found = dict(locked)

    found = {n: v for n, v in validate_params(found, clamp=True).items() if v != NEUTRAL[n]}
    if found and cfg.prune > 0:
        found, pruned_evals = _prune(preview, scorer, sign, found, locked, cfg, cfg.prune)
        evaluations += pruned_evals
    final = blend(found, strength)
    with torch.no_grad():
        score_after = float(_score(scorer, apply_filters(preview, final), sign)[0]) * sign
    evaluations += 1
    threshold = cfg.min_gain * span
    if start_point and found != start_point:
        with torch.no_grad():
            score_start = (
                float(_score(scorer, apply_filters(preview, blend(start_point, strength)), sign)[0]) * sign
            )
        evaluations += 1
        if (score_after - score_start) * sign < threshold:  # nothing better than where the run started
            found, score_after = start_point, score_start
    gain = (score_after - score_before) * sign
    # a real gain, or the start point (prior, locks) unless it scores below the input (a tie keeps
    # it: the prior is the measured better default where the scorer cannot tell)
    if not found or (gain < threshold if found != start_point else gain < 0):
        reason = (
            "no edit improved the score" if gain <= 0 else "the photo needs no edit (gain below threshold)"
        )
        if found and gain < 0:
            reason = f"the edit scored below the original ({score_after:.3f} < {score_before:.3f})"
        return OptimizeResult(
            {}, score_before, score_before, history, True, f"kept the original: {reason}", evaluations
        )
    message = f"score {score_before:.3f} -> {score_after:.3f} in {len(history)} steps"
    if found == start_point:
        message += f" (kept the start point {', '.join(sorted(start_point))}: no edit scored higher)"
    return OptimizeResult(found, score_before, score_after, history, False, message, evaluations)


def score_sign(scorer: torch.nn.Module) -> float:
    """``1`` for a higher-is-better scorer (or one without ``info``), ``-1`` for lower-is-better."""
    info = getattr(scorer, "info", None)
    return -1.0 if info is not None and not info.higher_is_better else 1.0


def score_span(scorer: torch.nn.Module) -> float:
    """Width of the scorer's declared score range (1 when unknown)."""
    info = getattr(scorer, "info", None)
    if info is None:
        return 1.0
    low, high = info.score_range
    return float(high - low) if high > low else 1.0


def _objective(
    preview: Tensor,
    scorer: torch.nn.Module,
    sign: float,
    candidates: list[dict[str, float]],
    cfg: OptimizeConfig,
    chunk: int,
    span: float,
) -> list[float]:
    """Objective (signed score minus the L2 pull towards ``cfg.prior``) of each candidate parameter
    set, scored in chunks."""
    out: list[float] = []
    for i in range(0, len(candidates), chunk):
        group = candidates[i : i + chunk]
        params = {
            n: torch.tensor([c.get(n, NEUTRAL[n]) for c in group], dtype=preview.dtype)
            for n in {k for c in group for k in c}
        }
        with torch.no_grad():
            scores = _score(scorer, apply_filters(preview.expand(len(group), -1, -1, -1), params), sign)
        for c, value in zip(group, scores.tolist(), strict=True):
            out.append(value / span - cfg.l2 * _pull(c, cfg.prior))
    return out


def _z_of(name: str, value: float) -> float:
    """``value`` of parameter ``name`` in normalised units (see :func:`_spans`)."""
    p = PARAMS_BY_NAME[name]
    side = p.maximum - p.neutral if value >= p.neutral else p.neutral - p.minimum
    return (value - p.neutral) / side if side > 0 else 0.0


def _pull(params: Mapping[str, float], prior: Mapping[str, float]) -> float:
    """Squared normalised distance of ``params`` from ``prior`` (both sparse: absent = neutral)."""
    return sum(
        (_z_of(n, params.get(n, NEUTRAL[n])) - _z_of(n, prior.get(n, NEUTRAL[n]))) ** 2
        for n in {*params, *prior}
    )


def _prune(
    preview: Tensor,
    scorer: torch.nn.Module,
    sign: float,
    found: dict[str, float],
    locked: Mapping[str, float],
    cfg: OptimizeConfig,
    tolerance: float,
) -> tuple[dict[str, float], int]:
    """Reset to neutral every parameter whose removal costs less than ``tolerance`` (small recipes).

    Each single removal is scored in one batch; the cheap ones are dropped together if that is
    still within tolerance, else one by one, cheapest first.
    """
    free = [n for n in found if n not in locked]
    if not free:
        return found, 0
    chunk = max(cfg.restarts, 4)
    candidates = [found] + [{k: v for k, v in found.items() if k != n} for n in free]
    values = _objective(preview, scorer, sign, candidates, cfg, chunk, score_span(scorer))
    evaluations = len(candidates)
    base = values[0]
    losses = {n: base - v for n, v in zip(free, values[1:], strict=True)}
    cheap = sorted((n for n in free if losses[n] < tolerance), key=losses.get)
    if not cheap:
        return found, evaluations
    together = {k: v for k, v in found.items() if k not in cheap}
    if base - _objective(preview, scorer, sign, [together], cfg, chunk, score_span(scorer))[0] < tolerance:
        return together, evaluations + 1
    current = dict(found)
    for name in cheap:
        trial = {k: v for k, v in current.items() if k != name}
        evaluations += 1
        if base - _objective(preview, scorer, sign, [trial], cfg, chunk, score_span(scorer))[0] < tolerance:
            current = trial
    return current, evaluations


def _params_from_z(
    z: Tensor | None,
    names: Sequence[str],
    neutral: Tensor,
    below: Tensor,
    above: Tensor,
    locked: Mapping[str, float],
) -> dict[str, float]:
    if z is None:
        return dict(locked)
    values = _values(z, neutral, below, above).tolist()
    return {**locked, **{n: float(v) for n, v in zip(names, values, strict=True)}}
