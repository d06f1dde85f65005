"""Blind restoration with the `natural` scorer on *calibration* photos the quality benchmark never uses.

The quality benchmark (bench/quality.py) scores the MATE, skimage and sklearn photos; this script
uses the Lomiri and Plasma wallpaper photographs (lib_enhancer.learned.photos) with the same seeded
degradations, so the scorer's bands and the optimizer's pull can be chosen here without tuning on
the benchmark. It prints, per degradation type, the mean PSNR / CIEDE2000 of the gradient optimizer's
result against the undegraded photo (and of the input, for reference), how much it changes photos
that needed nothing, and how often the scorer ranks the original above its degraded copy.

Run: .venv/bin/python bench/natural_restoration.py [--l2 X] [--mode M] [--megapixels 0.25]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quality import apply_degradation, make_cases
from lib_enhancer import enhance
from lib_enhancer.learned import photos as offline_photos
from lib_enhancer.metrics import mean_delta_e00, psnr
from lib_enhancer.render import array_to_tensor
from lib_enhancer.scorers.registry import create_scorer

CALIBRATION_SOURCES = ("lomiri", "plasma")
PSNR_CAP = 100.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megapixels", type=float, default=0.25)
    ap.add_argument(
        "--per-photo", type=int, default=2, help="degraded cases per photo (plus the photo itself)"
    )
    ap.add_argument("--l2", type=float, default=None, help="optimizer pull (default: the scorer's own)")
    ap.add_argument("--mode", default="gradient")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    sources = [(n, f) for n, f in offline_photos.builtin_photos() if n.split("/")[0] in CALIBRATION_SOURCES]
    if not sources:
        print(
            "no calibration photos: apt-get install lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 "
            "plasma-workspace-wallpapers",
            file=sys.stderr,
        )
        return 1
    images = [offline_photos.resize_to_megapixels(load()[..., :3], args.megapixels) for _, load in sources]
    scorer = create_scorer("natural")
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    ranked, pairs = 0, 0
    original_scores: dict[int, float] = {}
    for case in make_cases(len(images), args.per_photo, 0):
        original = images[case.photo]
        degraded = apply_degradation(original, case.degradation)
        with torch.no_grad():
            if case.photo not in original_scores:
                original_scores[case.photo] = float(scorer(array_to_tensor(original)))
            if case.degradation.kind != "none":
                pairs += 1
                ranked += original_scores[case.photo] > float(scorer(array_to_tensor(degraded)))
        kwargs = {} if args.l2 is None else {"l2": args.l2}
        out = np.asarray(enhance(degraded, scorer="natural", seed=0, mode=args.mode, **kwargs).image)
        rows.setdefault(case.degradation.kind, []).append(
            (
                min(psnr(out, original), PSNR_CAP),
                mean_delta_e00(out, original),
                min(psnr(degraded, original), PSNR_CAP),
                mean_delta_e00(degraded, original),
            )
        )
    print(
        f"# natural restoration on {len(images)} calibration photos ({', '.join(CALIBRATION_SOURCES)}), "
        f"mode {args.mode}, l2 {args.l2 if args.l2 is not None else 'scorer default'}\n"
    )
    print("| degradation (n) | PSNR dB in → out | ΔE00 in → out |\n|---|---:|---:|")
    degraded_psnr, degraded_de = [], []
    for kind, values in sorted(rows.items()):
        v = np.array(values)
        print(
            f"| {kind} ({len(v)}) | {v[:, 2].mean():.2f} → {v[:, 0].mean():.2f} | {v[:, 3].mean():.2f} → {v[:, 1].mean():.2f} |"
        )
        if kind != "none":
            degraded_psnr += list(v[:, 0])
            degraded_de += list(v[:, 1])
    none_de = statistics.fmean(r[1] for r in rows.get("none", [(0, 0.0, 0, 0)]))
    print(
        f"\nDegraded inputs: mean PSNR {statistics.fmean(degraded_psnr):.2f} dB, mean ΔE00 "
        f"{statistics.fmean(degraded_de):.2f}; undegraded photos changed by mean ΔE00 {none_de:.2f}; "
        f"scorer ranks the original above its degraded copy in {ranked}/{pairs}; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
