#!/usr/bin/env python3
"""Unpaired enhancer benchmark: train on two unrelated folders, restore held-out photos.

For each degradation family (one "camera defect", as WESPE's phone-vs-DSLR setting):

* **source** folder: degraded copies of some real photos (``--per-photo`` seeded degradations of
  the family each, from ``bench/quality.py``'s independent numpy degradations);
* **target** folder: the *original* versions of a *disjoint* set of photos (the model never sees a
  degraded/clean pair);
* **test**: the held-out photos of :data:`lib_enhancer.learned.photos.HELD_OUT` (never used in
  training), degraded with fresh seeds of the same family, plus each undegraded (case ``none``).

The trained model predicts a recipe per test image (``apply --model unpaired:NAME``); it is compared
with the undegraded photo (PSNR, SSIM, mean ΔE00, ``lib_enhancer.metrics``) next to doing nothing,
two classical one-click tools and ``ours`` (the weight-free ``natural`` scorer's optimizer).
An ablation trains the same family with the adversarial terms only / the distribution term only.

Usage::

    .venv/bin/python bench/unpaired.py                      # ~25 min on 2 shared cores
    .venv/bin/python bench/unpaired.py --quick               # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import quality as q  # noqa: E402  (bench/quality.py: degradations, contenders, metrics)

from lib_enhancer.learned import photos as photo_sources  # noqa: E402
from lib_enhancer.render import render  # noqa: E402
from lib_enhancer.unpaired import (  # noqa: E402
    LossWeights,
    UnpairedConfig,
    UnpairedModel,
    as_tensor,
    plot_curves,
    train_unpaired,
)

FAMILIES = ("under_exposure", "low_contrast", "color_cast", "mix")
ABLATION_FAMILY = "mix"
ABLATIONS = {
    "adversarial only": LossWeights(color=1.0, texture=0.5, distribution=0.0),
    "distribution only": LossWeights(color=0.0, texture=0.0),
}


def degrade_all(photos: list[np.ndarray], family: str, per_photo: int, seed: int) -> list[np.ndarray]:
    out = []
    for i, img in enumerate(photos):
        for j in range(per_photo):
            deg = q.sample_degradation(family, np.random.default_rng([seed, i, j]))
            out.append(q.apply_degradation(img, deg))
    return out


def run_family(
    family: str,
    train_src: list[np.ndarray],
    targets: list[np.ndarray],
    test: list[tuple[str, np.ndarray]],
    args,
    weights: LossWeights | None = None,
    label: str = "",
) -> dict:
    seed = args.seed
    source = degrade_all(train_src, family, args.per_photo, seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(source))
    held = [as_tensor(source[i]) for i in order[: args.val]]
    train = [as_tensor(source[i]) for i in order[args.val :]]
    tgt = [as_tensor(t) for t in targets]
    cfg = UnpairedConfig(steps=args.steps, seed=seed, eval_every=args.eval_every, time_budget=args.time)
    if weights is not None:
        cfg = replace(cfg, weights=weights)
    t0 = time.perf_counter()
    result = train_unpaired(train, tgt, cfg, evaluate_on=held)
    train_s = time.perf_counter() - t0
    model = UnpairedModel(result.generator, {"name": f"bench-{family}"})
    curves = args.out / f"unpaired_{family}{'_' + label.replace(' ', '_') if label else ''}_curves.png"
    plot_curves(result.history, curves, f"unpaired, family {family} {label}".strip())
    rows = []
    test_rng_seed = seed + 1000
    for k, (name, clean) in enumerate(test):
        cases = [("none", clean)]
        for j in range(args.test_per_photo):
            deg = q.sample_degradation(family, np.random.default_rng([test_rng_seed, k, j]))
            cases.append((deg.describe(), q.apply_degradation(clean, deg)))
        ref_lab = q.rgb_to_lab(clean)
        for desc, img in cases:
            outputs = {"identity": img}
            t = time.perf_counter()
            recipe = model.predict_recipe(img)
            outputs["unpaired"] = render(img, recipe)
            times = {"unpaired": time.perf_counter() - t}
            if not label:  # contenders only once per family
                for cname, fn in (
                    ("autocontrast", q.c_autocontrast),
                    ("grayworld", q.c_grayworld),
                    ("ours", q.c_ours),
                ):
                    t = time.perf_counter()
                    outputs[cname] = fn(img)
                    times[cname] = time.perf_counter() - t
            for cname, out in outputs.items():
                p, s, de = q.evaluate(clean, out, ref_lab)
                rows.append(
                    {
                        "photo": name,
                        "case": "none" if desc == "none" else "degraded",
                        "degradation": desc,
                        "contender": cname,
                        "psnr": min(p, q.PSNR_CAP),
                        "ssim": s,
                        "de00": de,
                        "seconds": times.get(cname, 0.0),
                    }
                )
            if desc != "none" and k < args.sheet_rows and not label:
                sheet_row = [img, outputs["unpaired"], outputs["ours"], clean]
                args.sheet.append((family, name, sheet_row))
    return {
        "family": family,
        "label": label or "default",
        "train_seconds": train_s,
        "steps": result.steps,
        "kept_step": result.evaluation.get("kept_step"),
        "val_distance_before": result.evaluation.get("distance_before"),
        "val_distance_after": result.evaluation.get("distance_after"),
        "train_images": len(train),
        "target_images": len(tgt),
        "rows": rows,
        "curves": str(curves),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| family | variant | contender | PSNR dB ↑ (degraded) | SSIM ↑ | ΔE00 ↓ | ΔE00 on undegraded ↓ | s / image |",
        "| :--- | :--- | :--- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        contenders = list(dict.fromkeys(r["contender"] for r in res["rows"]))
        for c in contenders:
            deg = [r for r in res["rows"] if r["contender"] == c and r["case"] == "degraded"]
            none = [r for r in res["rows"] if r["contender"] == c and r["case"] == "none"]
            lines.append(
                f"| {res['family']} | {res['label']} | {c} | {np.mean([r['psnr'] for r in deg]):.2f} | "
                f"{np.mean([r['ssim'] for r in deg]):.4f} | {np.mean([r['de00'] for r in deg]):.2f} | "
                f"{np.mean([r['de00'] for r in none]):.2f} | {np.mean([r['seconds'] for r in deg + none]):.2f} |"
            )
    return "\n".join(lines)


def training_table(results: list[dict]) -> str:
    lines = [
        "| family | variant | source images (train) | target images | steps | kept step | train s | held-out distance before → after |",
        "| :--- | :--- | ---: | ---: | ---: | ---: | ---: | :--- |",
    ]
    for r in results:
        lines.append(
            f"| {r['family']} | {r['label']} | {r['train_images']} | {r['target_images']} | {r['steps']} | "
            f"{r['kept_step']} | {r['train_seconds']:.0f} | {r['val_distance_before']:.3f} → {r['val_distance_after']:.3f} |"
        )
    return "\n".join(lines)


def contact_sheet(sheet: list, path: Path, size: int = 200) -> None:
    cols = 4
    rows = len(sheet)
    if not rows:
        return
    canvas = Image.new("RGB", (cols * size, rows * size + 24), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    for c, label in enumerate(("input (degraded)", "unpaired model", "ours (natural)", "original")):
        draw.text((c * size + 6, 6), label, fill=(0, 0, 0))
    for r, (family, _name, images) in enumerate(sheet):
        for c, img in enumerate(images):
            im = Image.fromarray(img)
            im.thumbnail((size, size))
            canvas.paste(im, (c * size + (size - im.width) // 2, 24 + r * size + (size - im.height) // 2))
        draw.text((4, 24 + r * size + 4), family, fill=(255, 255, 255))
    canvas.save(path, quality=88)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--time", type=float, default=None, help="training time budget per model (s)")
    ap.add_argument("--per-photo", type=int, default=4, help="degraded copies per source photo")
    ap.add_argument("--val", type=int, default=4, help="source images held out for early stopping")
    ap.add_argument("--test-per-photo", type=int, default=2)
    ap.add_argument("--megapixels", type=float, default=0.5, help="test photo size")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--no-ablation", action="store_true")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sheet-rows", type=int, default=1)
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "out")
    ap.add_argument("--results", default=str(BENCH_DIR / "results" / "unpaired.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.steps, args.per_photo, args.test_per_photo, args.no_ablation = 60, 2, 1, True
        args.families = "under_exposure"
    args.out.mkdir(parents=True, exist_ok=True)
    args.sheet = []
    sources = photo_sources.builtin_photos()
    held_names = set(photo_sources.HELD_OUT)
    pool = [(n, ld) for n, ld in sources if n not in held_names]
    test_src = [(n, ld) for n, ld in sources if n in held_names]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(pool))
    half = len(pool) // 2
    src_photos = photo_sources.load_photos([pool[i] for i in order[:half]], 384)
    tgt_photos = photo_sources.load_photos([pool[i] for i in order[half:]], 384)
    test = [
        (p.name, q.resize_to_megapixels(p.image, args.megapixels))
        for p in photo_sources.load_photos(test_src)
    ]
    print(
        f"source photos {[p.name for p in src_photos]}\ntarget photos {[p.name for p in tgt_photos]}\ntest photos {[n for n, _ in test]}",
        file=sys.stderr,
    )
    results = []
    for family in args.families.split(","):
        print(f"training {family} ...", file=sys.stderr)
        results.append(
            run_family(family, [p.image for p in src_photos], [p.image for p in tgt_photos], test, args)
        )
        print(training_table(results[-1:]), file=sys.stderr)
    if not args.no_ablation:
        for label, weights in ABLATIONS.items():
            print(f"ablation {label} ...", file=sys.stderr)
            results.append(
                run_family(
                    ABLATION_FAMILY,
                    [p.image for p in src_photos],
                    [p.image for p in tgt_photos],
                    test,
                    args,
                    weights,
                    label,
                )
            )
    contact_sheet(args.sheet, args.out / "unpaired_contact_sheet.jpg")
    md = [
        "# Unpaired enhancer benchmark",
        "",
        f"Source photos (degraded, {args.per_photo} copies each): {', '.join(p.name for p in src_photos)}. "
        f"Target photos (originals, disjoint): {', '.join(p.name for p in tgt_photos)}. "
        f"Test photos (held out, {args.megapixels} MP, {args.test_per_photo} fresh degradations each + undegraded): "
        f"{', '.join(n for n, _ in test)}.",
        "",
        "## Training",
        "",
        training_table(results),
        "",
        "Held-out distance: mean |difference| of colour/tone statistics between the held-out source "
        "images and the target set, in units of the target set's spread (lower = more target-like).",
        "",
        "## Restoration of the test photos (reference = the undegraded photo)",
        "",
        table(results),
        "",
    ]
    text = "\n".join(md)
    (args.out / "unpaired.md").write_text(text, encoding="utf-8")
    (args.out / "unpaired_rows.json").write_text(
        json.dumps([r for res in results for r in res["rows"]], indent=1)
    )
    if args.results and not args.quick:
        Path(args.results).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
