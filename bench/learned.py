"""Speed of the learned modes: a 12 MP photo end to end against JPEG decode + encode, and where the
time goes at 1 MP against the gradient mode.

Run: .venv/bin/python bench/learned.py [--megapixels 12] [--repeat 3] [--threads N] [--split-photos 7]
Prints Markdown tables and writes them to bench/results/learned_speed.md.

Targets (issue 7): a 12 MP image end to end in ``histogram`` and ``predict`` modes within 1 s on
this CPU beyond JPEG decode/encode; at most 1/10 of the gradient mode's time (the quality
benchmark's 1 MP cases). Every 12 MP cell is the best of ``--repeat`` runs in this process (models
loaded once, as in a batch); the 1 MP split is the mean over the held-out photos' benchmark cases,
the modes taking turns case by case. The machine is shared and noisy, so compare within one run.
"""

from __future__ import annotations

import argparse
import io
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "learned_speed.md"


def source_photo(megapixels: float) -> np.ndarray:
    """A real photo from the offline set, resized to ``megapixels`` (upscaled if needed)."""
    from lib_enhancer.learned.photos import builtin_photos

    sources = builtin_photos()
    if not sources:
        raise SystemExit("no photos available (apt-get install mate-backgrounds)")
    img = Image.fromarray(sources[0][1]())
    scale = math.sqrt(megapixels * 1e6 / (img.width * img.height))
    return np.asarray(
        img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    )


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class ApplyClock:
    """Times the full-resolution apply inside ``enhance()``: wraps ``api.apply`` (recipes) and
    ``lut.apply_lut_array`` (a kept ``histogram`` LUT) while in use."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._saved: list[tuple[object, str, object]] = []

    def _timed(self, fn: Callable[..., object]) -> Callable[..., object]:
        def run(*args: object, **kwargs: object) -> object:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        return run

    def __enter__(self) -> ApplyClock:
        from lib_enhancer import api, lut

        for module, name in ((api, "apply"), (lut, "apply_lut_array")):
            self._saved.append((module, name, getattr(module, name)))
            setattr(module, name, self._timed(getattr(module, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for module, name, fn in self._saved:
            setattr(module, name, fn)


SPLIT_MODES = ("gradient", "predict", "histogram")


def time_split(n_photos: int) -> tuple[list[tuple[str, float, float]], int]:
    """Mean seconds per 1 MP case (total, full-resolution apply) of each of :data:`SPLIT_MODES` on the
    quality benchmark's held-out photos (``none`` + 2 degradations each, its seeds)."""
    sys.path.insert(0, str(REPO / "bench"))
    import quality as Q

    from lib_enhancer.api import enhance

    photos = [p for p in Q.load_photos(None, None, 1.0) if p.name in Q.HELD_OUT][:n_photos]
    cases = Q.make_cases(len(photos), 2, 0)
    images = [Q.apply_degradation(photos[c.photo].image, c.degradation) for c in cases]
    for mode in SPLIT_MODES:  # models and first-call setup outside the timing
        enhance(images[0][:96, :128], mode=mode, scorer="natural", seed=0)
    total = dict.fromkeys(SPLIT_MODES, 0.0)
    applied = dict.fromkeys(SPLIT_MODES, 0.0)
    for image in images:
        for mode in SPLIT_MODES:
            with ApplyClock() as clock:
                t0 = time.perf_counter()
                enhance(image, mode=mode, scorer="natural", seed=0)
                total[mode] += time.perf_counter() - t0
            applied[mode] += clock.seconds
    n = len(images)
    return [(m, total[m] / n, applied[m] / n) for m in SPLIT_MODES], n


def split_table(rows: list[tuple[str, float, float]], n_cases: int, n_photos: int) -> list[str]:
    gradient = {m: (t, a) for m, t, a in rows}["gradient"]
    lines = [
        "## 1 MP: where the time goes",
        "",
        f"Mean over the quality benchmark's cases on {n_photos} held-out photos ({n_cases} cases: each "
        "photo undegraded + 2 degradations), scorer `natural`, the modes taking turns case by case. "
        "'deciding' is everything but the full-resolution apply: the preview, the optimizer (gradient) "
        "or the model, the scorer check and, for a kept `histogram` LUT, the recipe fitted to it.",
        "",
        "| mode | total s | full-res apply s | deciding s | total ÷ gradient | deciding ÷ gradient | "
        "target total ≤ 1/10 |",
        "| :--- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for mode, t, a in rows:
        ratio, deciding = t / gradient[0], (t - a) / (gradient[0] - gradient[1])
        mark = "–" if mode == "gradient" else ("✅" if ratio <= 0.1 else "❌")
        lines.append(
            f"| {mode} | {t:.3f} | {a:.3f} | {t - a:.3f} | {ratio:.2f} (1/{1 / ratio:.1f}) "
            f"| {deciding:.2f} (1/{1 / deciding:.1f}) | {mark} |"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--split-photos", type=int, default=7, help="held-out photos of the 1 MP split (0: skip)")
    ap.add_argument("--results", default=str(RESULTS), help="Markdown output ('' to skip)")
    args = ap.parse_args()

    import torch

    from lib_enhancer.api import enhance
    from lib_enhancer.learned.modes import histogram_edit, predict_edit
    from lib_enhancer.render import downscale

    if args.threads:
        torch.set_num_threads(args.threads)
    rgb = source_photo(args.megapixels)
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG", quality=92)
    data = jpeg.getvalue()

    def decode() -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def encode(img: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(img).save(out, "JPEG", quality=92)
        return out.getvalue()

    enhance(rgb[:64, :64], mode="predict")  # load both models once, as a batch would
    enhance(rgb[:64, :64], mode="histogram")
    t_codec = best_of(args.repeat, lambda: encode(decode()))
    t_memcpy = best_of(args.repeat, lambda: rgb.copy())
    preview = downscale(rgb, 256)
    rows = []
    for mode in ("predict", "histogram"):
        propose = (lambda: predict_edit(preview)) if mode == "predict" else (lambda: histogram_edit(preview))
        t_model = best_of(args.repeat, propose)
        for verify in (True, False):  # verified: what the scorer kept; unverified: the full proposal
            kept = enhance(rgb, mode=mode, verify=verify).recipe.info.get("fraction", 1.0)
            t_mode = best_of(args.repeat, lambda mode=mode, v=verify: enhance(rgb, mode=mode, verify=v))
            t_e2e = best_of(
                args.repeat,
                lambda mode=mode, v=verify: encode(np.asarray(enhance(decode(), mode=mode, verify=v).image)),
            )
            rows.append((mode, verify, kept, t_model, t_mode, t_e2e, t_e2e - t_codec))
    h, w = rgb.shape[:2]
    lines = [
        "# Learned modes: 12 MP end to end",
        "",
        f"_Generated by `bench/learned.py`: {w}×{h} ({w * h / 1e6:.1f} MP) real photo, JPEG q92, best of "
        f"{args.repeat}; {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}._",
        "",
        f"JPEG decode + encode of this image: **{t_codec:.3f} s**; numpy memcpy {t_memcpy * 1e3:.1f} ms.",
        "",
        "| mode | verify | proposal kept | model on the preview (s) | `enhance()` in memory (s) "
        "| decode + enhance + encode (s) | beyond decode/encode (s) | target ≤ 1 s |",
        "| :--- | :--- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for mode, verify, kept, t_model, t_mode, t_e2e, extra in rows:
        lines.append(
            f"| {mode} | {'yes' if verify else 'no'} | {kept:.0%} | {t_model:.3f} | {t_mode:.3f} | {t_e2e:.3f} "
            f"| {extra:.3f} | {'✅' if extra <= 1.0 else '❌'} |"
        )
    lines += [
        "",
        "`enhance()` includes the preview downscale, the model, the natural scorer on the preview (with "
        "`verify`, the default: the start point and the proposal at half and full strength, see "
        "`VERIFY_MIN_GAIN`), and the full-resolution apply (per-channel curves or one 3-D LUT through "
        "PIL's C code; for a kept `histogram` LUT, also the recipe fitted to it so the edit stays "
        "editable). 'proposal kept' is the fraction the scorer kept on this photo (0 %: the start "
        "point, auto contrast, which applies as per-channel curves).",
    ]
    if args.split_photos:
        split, n_cases = time_split(args.split_photos)
        lines += ["", *split_table(split, n_cases, args.split_photos)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
