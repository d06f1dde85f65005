#!/usr/bin/env python3
"""The learned modes' scorer check on the VALIDATION photos only.

The learned modes propose one edit; with ``verify`` (the default) the built-in scorer picks among the
model's start point and the proposal taken some fractions of the way (``VERIFY_FRACTIONS[mode]``),
keeping more than the start only for a gain of at least ``VERIFY_MIN_GAIN[mode]`` (a fraction of the
scorer's range). Both rules were first chosen here and are now chosen by cross-validation over many
more photos (``bench/learned_cv.py``; these three photos are one of its folds). This script
measures the rules on the three photos that pick the training runs' best step
(:data:`lib_enhancer.learned.photos.VALIDATION`), which are never trained on and are not the quality
benchmark's held-out photos, so the benchmark's learned rows stay an unbiased test.

Same degradations and metrics as ``bench/quality.py`` (1 MP, 6 degradations + ``none`` per photo).

Run: .venv/bin/python bench/learned_verify.py [--per-photo 6] [--results bench/results/learned_verify.md]
     [--model PATH (the predict mode's weights; default: the shipped ones)] [--modes predict,...]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import quality as Q  # noqa: E402

RESULTS = REPO / "bench" / "results" / "learned_verify.md"
MODES = ("gradient", "predict", "histogram")  # the rows --modes can pick
MIN_GAINS = (0.0, 1e-5, 1e-4, 1e-3)  # fractions of the scorer's range tried for each mode
# the fractions of the way to the proposal the scorer compares, tried for predict (shipped min gain)
PREDICT_FRACTIONS = (
    (0.0, 0.5, 1.0),
    (0.0, 1.0),
    (0.0, 0.25, 0.5, 0.75, 1.0),
    (0.0, 0.5, 1.0, 1.5),
    (0.0, 1.0, 1.5, 2.0),
)


def validation_photos() -> list[tuple[str, np.ndarray]]:
    from lib_enhancer.learned import photos as P

    sources = dict(P.builtin_photos())
    missing = [n for n in P.VALIDATION if n not in sources]
    if missing:
        raise SystemExit(
            f"validation photos missing: {', '.join(missing)} (see lib_enhancer/learned/photos.py)"
        )
    return [(n, P.resize_to_megapixels(sources[n](), 1.0)) for n in P.VALIDATION]


def measure(
    run: Callable[[np.ndarray], np.ndarray], photos: list[tuple[str, np.ndarray]], cases: list[Q.Case]
) -> tuple[float, float, float, float]:
    """(mean PSNR, mean ΔE00 on the degraded cases, mean ΔE00 on ``none``, mean seconds per image)."""
    from lib_enhancer.metrics import mean_delta_e00, psnr

    degraded_psnr, degraded_de, none_de, seconds = [], [], [], []
    for case in cases:
        reference = photos[case.photo][1]
        image = Q.apply_degradation(reference, case.degradation)
        start = time.perf_counter()
        out = run(image)
        seconds.append(time.perf_counter() - start)
        if case.index == 0:
            none_de.append(mean_delta_e00(out, reference))
        else:
            degraded_psnr.append(min(Q.PSNR_CAP, psnr(out, reference)))
            degraded_de.append(mean_delta_e00(out, reference))
    return (
        float(np.mean(degraded_psnr)),
        float(np.mean(degraded_de)),
        float(np.mean(none_de)),
        float(np.mean(seconds)),
    )


def variants(
    model: str | None = None, modes: tuple[str, ...] = MODES
) -> list[tuple[str, str, str, Callable[[np.ndarray], np.ndarray]]]:
    """(label, min gain cell, fractions cell, run) for gradient, each learned mode unverified and at
    each min gain (the shipped fractions), and predict at each of :data:`PREDICT_FRACTIONS`; only
    the rows of ``modes``. ``model``: the predict mode's weights (default: the shipped ones)."""
    from lib_enhancer.api import enhance
    from lib_enhancer.learned.modes import VERIFY_FRACTIONS, VERIFY_MIN_GAIN

    def run_with(
        mode: str, verify: bool, gain: float | None = None, fractions: tuple[float, ...] | None = None
    ) -> Callable[[np.ndarray], np.ndarray]:
        def run(image: np.ndarray) -> np.ndarray:
            saved = dict(VERIFY_MIN_GAIN), dict(VERIFY_FRACTIONS)
            if gain is not None:
                VERIFY_MIN_GAIN[mode] = gain
            if fractions is not None:
                VERIFY_FRACTIONS[mode] = fractions
            weights = model if mode == "predict" else None
            try:
                result = enhance(image, scorer="natural", seed=0, mode=mode, verify=verify, model=weights)
                return np.asarray(result.image)
            finally:
                VERIFY_MIN_GAIN.update(saved[0])
                VERIFY_FRACTIONS.update(saved[1])

        return run

    def cell(fractions: tuple[float, ...], mode: str) -> str:
        text = " / ".join(f"{f:g}" for f in fractions)
        return f"{text} **(shipped)**" if fractions == VERIFY_FRACTIONS[mode] else text

    out: list[tuple[str, str, str, Callable[[np.ndarray], np.ndarray]]] = [
        ("gradient (`ours`)", "–", "–", lambda im: np.asarray(enhance(im, scorer="natural", seed=0).image))
    ]
    for mode in ("predict", "histogram"):
        if mode not in modes:
            continue
        out.append((f"{mode}, verify=False", "–", "–", run_with(mode, False)))
        for gain in MIN_GAINS:
            chosen = " **(shipped)**" if gain == VERIFY_MIN_GAIN[mode] else ""
            out.append(
                (
                    f"{mode}, verified",
                    f"{gain:g}{chosen}",
                    cell(VERIFY_FRACTIONS[mode], mode),
                    run_with(mode, True, gain),
                )
            )
    for fractions in PREDICT_FRACTIONS if "predict" in modes else ():
        if fractions != VERIFY_FRACTIONS["predict"]:  # the shipped set is a row above
            out.append(
                (
                    "predict, verified",
                    f"{VERIFY_MIN_GAIN['predict']:g}",
                    cell(fractions, "predict"),
                    run_with("predict", True, fractions=fractions),
                )
            )
    return out if "gradient" in modes else out[1:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-photo", type=int, default=6, help="degradations per photo (default 6)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(RESULTS), help="Markdown output ('' to skip)")
    ap.add_argument("--model", default=None, help="the predict mode's weights (default: the shipped ones)")
    ap.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated rows to run (default: {','.join(MODES)})"
    )
    args = ap.parse_args()
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if unknown := set(modes) - set(MODES):
        ap.error(f"--modes: unknown {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")

    import torch

    photos = validation_photos()
    cases = Q.make_cases(len(photos), args.per_photo, args.seed)
    rows = []
    for label, gain, fractions, run in variants(args.model, modes):
        run(photos[0][1][:64, :64].copy())  # load the models outside the timing
        p, de, none, sec = measure(run, photos, cases)
        rows.append([label, gain, fractions, f"{p:.2f}", f"{de:.2f}", f"{none:.2f}", f"{sec:.3f}"])
        print(" | ".join(rows[-1]), flush=True)
    n_degraded = sum(1 for c in cases if c.index)
    text = "\n".join(
        [
            "# Learned modes: the scorer check on the validation photos",
            "",
            f"_Generated by `bench/learned_verify.py`: {len(photos)} validation photos "
            f"({', '.join(n for n, _ in photos)}) at 1 MP, {n_degraded} degraded cases + "
            f"{len(photos)} undegraded (`none`), seed {args.seed}; {platform.machine()}, "
            f"{torch.get_num_threads()} torch threads. Never trained on, and not the quality benchmark's "
            "held-out photos." + (f" `predict` model: `{args.model}`." if args.model else "") + "_",
            "",
            "The scorer (built-in `natural`) picks among the model's start point and the proposal "
            "taken some fractions of the way (0 = the start point, 1 = the proposal, 1.5 = half as far "
            "again, a recipe only); more than the start is kept only for a gain ≥ min gain × the scorer's range. The "
            "shipped values are `VERIFY_MIN_GAIN` and `VERIFY_FRACTIONS` in "
            "`lib_enhancer/learned/modes.py`, chosen by cross-validation over 34 photos, these 3 "
            "among them (`bench/learned_cv.py`, `bench/results/learned_cv_*.md`).",
            "",
            Q.markdown_table(
                ["variant", "min gain", "fractions", "PSNR dB ↑", "ΔE00 ↓", "ΔE00 on `none` ↓", "s / image"],
                rows,
                "lllrrrr",
            ),
            "",
        ]
    )
    Q.publish(text, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
