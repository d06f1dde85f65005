#!/usr/bin/env python3
"""How the histogram mode's editable recipe is fitted: error and time of the fit to the LUT.

The histogram mode's edit is a LUT; :func:`lib_enhancer.learned.modes.with_fitted_recipe` fits the
closest recipe to it on the preview's colours (what the infotext, the warm start of other modes and
the user's further edits see): the model's start point (auto contrast, read from the photo) and
global parameters after it, by Levenberg–Marquardt. This script compares that at several iteration
counts with the fits used before — the global parameters alone, from the photo's own colours, by
first-order Adam (60 steps at lr 0.1) or by the same Levenberg–Marquardt — on synthetic
degradations of TRAINING photos (never the held-out or validation ones), with the shipped histogram
model's LUT for each. Besides the fit's own error (on the 512 colours it saw) it measures what a
user gets: the recipe rendered at full resolution (``lib_enhancer.apply``) against the LUT.

Run: .venv/bin/python bench/recipe_fit.py [--photos 8] [--per-photo 3] [--results bench/results/recipe_fit.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import quality as Q  # noqa: E402

RESULTS = REPO / "bench" / "results" / "recipe_fit.md"


class Case(NamedTuple):
    label: str
    image: np.ndarray  # degraded, 1 MP, uint8
    preview: Any  # float (1, 3, h, w) tensor: what the fit sees
    edit: Any  # the histogram model's LearnedEdit of the preview (no recipe yet)
    wanted: np.ndarray  # float32: the edit's LUT applied to ``image``
    curves: Any  # the auto curves the render reads from ``image`` (the API passes them to the fit)


LM_ITERATIONS = (2, 4, 8, 16)  # without the early stop
TOLERANCES = (0.001, 0.03)  # early stops tried besides the shipped FIT_TOLERANCE
RIDGES = (0.0, 0.01, 0.1)  # tried besides the shipped FIT_RIDGE with the shipped stop
ADAM_STEPS = 60


def adam_fit(table: np.ndarray, image, steps: int = ADAM_STEPS) -> tuple[dict[str, float], float]:
    """The previous fit, for comparison: Adam on the squashed parameters, mean absolute error."""
    import torch

    from lib_enhancer.adam import Adam
    from lib_enhancer.filters.pipeline import apply_filters
    from lib_enhancer.learned.modes import FIT_NAMES
    from lib_enhancer.learned.predictor import ParamSquash
    from lib_enhancer.lut import apply_lut_torch

    colours = image.reshape(3, -1)
    gen = torch.Generator().manual_seed(0)
    if colours.shape[1] > 512:
        colours = colours[:, torch.randperm(colours.shape[1], generator=gen)[:512]]
    src = colours.float().reshape(1, 3, -1, 1)
    with torch.no_grad():
        target = apply_lut_torch(src, table)
    squash = ParamSquash(FIT_NAMES)
    raw = torch.zeros(len(FIT_NAMES), requires_grad=True)
    opt = Adam(raw, lr=0.1)
    for _ in range(steps):
        out = apply_filters(src, dict(zip(FIT_NAMES, squash(raw), strict=True)), stages=("global",))
        loss = (out - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        values = squash(raw)
        out = apply_filters(src, dict(zip(FIT_NAMES, values, strict=True)), stages=("global",))
    return dict(zip(FIT_NAMES, map(float, values), strict=True)), float((out - target).abs().mean())


def training_cases(n_photos: int, per_photo: int, seed: int) -> list[Case]:
    """Degraded training photos at 1 MP with the preview ``enhance()`` gives the built-in scorer and
    the histogram model's edit of it."""
    from lib_enhancer.api import PREVIEW_SIDE_STATISTICS
    from lib_enhancer.learned import photos as P
    from lib_enhancer.learned.modes import histogram_edit
    from lib_enhancer.lut import apply_lut_array
    from lib_enhancer.render import auto_curves, downscale

    unseen = (*P.HELD_OUT, *P.VALIDATION)
    sources = P.select(P.builtin_photos(), exclude=unseen)[:n_photos]
    if not sources:
        raise SystemExit("no training photos available (apt-get install mate-backgrounds)")
    cases = [c for c in Q.make_cases(len(sources), per_photo, seed) if c.index]
    out = []
    for case in cases:
        name, load = sources[case.photo]
        image = Q.apply_degradation(P.resize_to_megapixels(load(), 1.0), case.degradation)
        preview = downscale(image, PREVIEW_SIDE_STATISTICS)
        edit = histogram_edit(preview, fit_recipe=False)
        wanted = apply_lut_array(image, edit.lut).astype(np.float32)
        label = f"{name} {case.degradation.kind}"
        out.append(Case(label, image, preview, edit, wanted, auto_curves(image)))
    return out


Fit = Callable[[Case], tuple[dict[str, float], float]]  # case -> (recipe, fit error)


def movement(recipe: dict[str, float]) -> float:
    """How far a recipe's global parameters moved: the sum of |value| as fractions of their ranges."""
    import torch

    from lib_enhancer.learned.modes import FIT_NAMES
    from lib_enhancer.learned.predictor import ParamSquash
    from lib_enhancer.params import get_param

    values = torch.tensor([recipe.get(n, get_param(n).neutral) for n in FIT_NAMES])
    return float(ParamSquash(FIT_NAMES).normalised(values).abs().sum())


def measure(fit: Fit, cases: list[Case]) -> tuple[float, float, float, float, float]:
    """(mean fit error, worst fit error, mean rendered error — all in 8-bit levels —, mean
    parameter movement, mean ms per fit)."""
    from lib_enhancer.api import apply

    errors, rendered, moved, seconds = [], [], [], []
    for case in cases:
        start = time.perf_counter()
        recipe, error = fit(case)
        seconds.append(time.perf_counter() - start)
        errors.append(error * 255.0)
        moved.append(movement(recipe))
        rendered.append(float(np.abs(np.asarray(apply(recipe, case.image), np.float32) - case.wanted).mean()))
    return (
        float(np.mean(errors)),
        float(np.max(errors)),
        float(np.mean(rendered)),
        float(np.mean(moved)),
        1000 * float(np.mean(seconds)),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=8, help="training photos (default 8)")
    ap.add_argument("--per-photo", type=int, default=3, help="degradations per photo (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(RESULTS), help="Markdown output ('' to skip)")
    args = ap.parse_args()

    import torch

    from lib_enhancer.api import PREVIEW_SIDE_STATISTICS
    from lib_enhancer.learned.modes import (
        FIT_ITERATIONS,
        FIT_RIDGE,
        FIT_TOLERANCE,
        fit_recipe_to_lut,
        with_fitted_recipe,
    )

    def shipped(n: int, ridge: float, tolerance: float = FIT_TOLERANCE, render_curves: bool = True) -> Fit:
        def fit(case: Case) -> tuple[dict[str, float], float]:
            curves = case.curves if render_curves else None
            fitted = with_fitted_recipe(case.edit, case.preview, n, ridge, tolerance, curves=curves)
            return fitted.params, fitted.info["recipe_fit_error"]

        return fit

    def lm(n: int, tolerance: float = FIT_TOLERANCE) -> str:
        if not tolerance:
            return f"Levenberg–Marquardt, {n} iterations"
        return f"Levenberg–Marquardt, ≤ {n} iterations, stopping below a {tolerance:g} gain"

    cases = training_cases(args.photos, args.per_photo, args.seed)
    global_only = "global only, from the photo"
    after_start = "start point + global"
    variants: list[tuple[str, str, float, Fit]] = [
        (global_only, f"Adam, {ADAM_STEPS} steps", 0.0, lambda c: adam_fit(c.edit.lut, c.preview)),
        (global_only, lm(FIT_ITERATIONS), 0.0, lambda c: fit_recipe_to_lut(c.edit.lut, c.preview, ridge=0)),
        (
            after_start + " (the preview's auto curves)",
            lm(FIT_ITERATIONS),
            FIT_RIDGE,
            shipped(FIT_ITERATIONS, FIT_RIDGE, render_curves=False),
        ),
        (after_start, lm(FIT_ITERATIONS) + " **(shipped)**", FIT_RIDGE, shipped(FIT_ITERATIONS, FIT_RIDGE)),
    ]
    for tolerance in TOLERANCES:
        variants.append(
            (
                after_start,
                lm(FIT_ITERATIONS, tolerance),
                FIT_RIDGE,
                shipped(FIT_ITERATIONS, FIT_RIDGE, tolerance),
            )
        )
    for n in LM_ITERATIONS:
        variants.append((after_start, lm(n, 0.0), FIT_RIDGE, shipped(n, FIT_RIDGE, 0.0)))
    for ridge in RIDGES:
        variants.append((after_start, lm(FIT_ITERATIONS), ridge, shipped(FIT_ITERATIONS, ridge)))
    rows = []
    for recipe, label, ridge, fit in variants:
        fit(cases[0])  # warm up outside the timing
        mean, worst, rendered, moved, ms = measure(fit, cases)
        cells = [f"{mean:.2f}", f"{worst:.2f}", f"{rendered:.2f}", f"{moved:.2f}", f"{ms:.0f}"]
        rows.append([recipe, label, f"{ridge:g}", *cells])
        print(" | ".join(rows[-1]), flush=True)
    headers = [
        "recipe",
        "fit",
        "ridge",
        "fit error ↓",
        "worst case",
        "rendered error ↓",
        "movement",
        "ms / fit",
    ]
    table = Q.markdown_table(headers, rows, "lllrrrrr")
    text = "\n".join(
        [
            "# Histogram mode: fitting the editable recipe to the LUT",
            "",
            f"_Generated by `bench/recipe_fit.py`: {len(cases)} degraded cases of {args.photos} training "
            f"photos (1 MP; the {PREVIEW_SIDE_STATISTICS} px preview `enhance()` gives the built-in "
            f"scorer; the shipped histogram model's LUT), seed {args.seed}; "
            f"{platform.machine()}, {torch.get_num_threads()} torch threads._",
            "",
            "Fit error: mean absolute difference between the fitted recipe and the LUT on the 512 "
            "preview colours the fit saw; rendered: the recipe applied to the 1 MP image "
            "(`lib_enhancer.apply`) against the LUT applied to it, mean over pixels and channels; "
            "both in 8-bit levels. 'start point + global' is the model's prior (auto contrast) and "
            "the fitted global parameters after it, the auto curves read from the 1 MP image as the "
            "render reads them (what `enhance()` passes; 'the preview's auto curves': read from the "
            "preview instead, as this version first shipped); 'global only' fits the whole LUT with "
            "global parameters (the fits before). Ridge: the pull towards neutral (`FIT_RIDGE`); movement: "
            "the sum over the global parameters of |value| as a fraction of its range (how much of "
            "the recipe there is to read). The shipped values are `FIT_ITERATIONS`, `FIT_TOLERANCE` and `FIT_RIDGE` in "
            "`lib_enhancer/learned/modes.py`.",
            "",
            table,
            "",
        ]
    )
    Q.publish(text, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
