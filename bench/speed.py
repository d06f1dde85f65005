"""Full-resolution speed: recipe apply vs a memcpy, and the CLI vs PIL decode+encode.

Run: .venv/bin/python bench/speed.py [--sizes 2,12,24] [--repeat 3]
Prints Markdown tables and writes them to bench/results/speed.md. Ratios are taken within one run
(the machine is shared and noisy: compare ratios, not absolute times, across runs).

Targets (issue 2): apply at 2/12/24 MP within 20x a numpy memcpy of the same image; the CLI on a
12 MP JPEG within 2x PIL's decode+encode of it.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib_enhancer.recipe import Recipe  # noqa: E402
from lib_enhancer.render import render  # noqa: E402

SOURCES = Path("/usr/share/backgrounds/mate/nature")
RECIPES = {
    "colour (LUT)": Recipe(
        {"temperature": -0.2, "exposure": 0.3, "contrast": 0.25, "highlights": -0.2, "saturation": 0.2}
    ),
    "colour + local": Recipe(
        {
            "dehaze": 0.3,
            "exposure": 0.3,
            "contrast": 0.25,
            "saturation": 0.2,
            "detail": 0.4,
            "local_tone": -0.1,
        }
    ),
    "colour, exact fallback": Recipe({"exposure": 0.4, "blacks": 0.03, "brightness": 0.2, "gamma": 1.15}),
}


def source_photo() -> np.ndarray:
    """A 3x2 mosaic of real photographs at their native resolution (~24 MP of real detail, so JPEG
    codec times are realistic; an upscaled photo is too smooth)."""
    paths = sorted(SOURCES.glob("*.jpg"))[:6]
    if len(paths) < 6:
        from skimage import data

        tiles = [data.astronaut()] * 6
    else:
        tiles = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    h = min(t.shape[0] for t in tiles)
    w = min(t.shape[1] for t in tiles)
    tiles = [t[:h, :w] for t in tiles]
    return np.concatenate([np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:], axis=1)], axis=0)


def photo_of(megapixels: float, base: np.ndarray) -> np.ndarray:
    """A crop of ``base`` with about ``megapixels`` MP and its aspect ratio (upscaled only if too small)."""
    h, w = base.shape[:2]
    scale = (megapixels * 1e6 / (h * w)) ** 0.5
    if scale > 1.0:
        return np.asarray(Image.fromarray(base).resize((round(w * scale), round(h * scale)), Image.BICUBIC))
    return np.ascontiguousarray(base[: round(h * scale), : round(w * scale)])


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def apply_table(sizes: list[float], repeat: int) -> str:
    base = source_photo()
    rows = ["| image | memcpy ms | " + " | ".join(f"{k} ms (× memcpy)" for k in RECIPES) + " |"]
    rows.append("|---|---:|" + "---:|" * len(RECIPES))
    for mp in sizes:
        img = photo_of(mp, base)
        copy_s = best_of(lambda img=img: img.copy(), max(5, repeat))
        cells = []
        for recipe in RECIPES.values():
            render(img[:64, :64], recipe)  # warm up torch kernels
            s = best_of(lambda img=img, recipe=recipe: render(img, recipe), repeat)
            cells.append(f"{s * 1e3:.0f} ({s / copy_s:.0f}×)")
        rows.append(
            f"| {img.shape[1]}×{img.shape[0]} ({mp:g} MP) | {copy_s * 1e3:.1f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(rows)


def cli_table(repeat: int) -> str:
    img = photo_of(12, source_photo())
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo12.jpg"
        Image.fromarray(img).save(src, quality=92)
        recipe_path = Path(tmp) / "look.json"
        recipe_path.write_text(RECIPES["colour (LUT)"].to_json())

        def pil_roundtrip() -> None:
            im = Image.open(src)
            im.load()
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=95)

        base_s = best_of(pil_roundtrip, repeat)
        from lib_enhancer.cli import main as cli_main

        def run_in_process(args: list[str]) -> None:
            out = Path(tmp) / "out"
            if out.exists():
                for f in out.iterdir():
                    f.unlink()
            if cli_main([*args, "-o", str(out), "-q"]) != 0:
                raise RuntimeError(f"CLI failed: {args}")

        rows = ["| command (12 MP JPEG) | seconds | × PIL decode+encode |", "|---|---:|---:|"]
        rows.append(f"| PIL decode + encode (q95) | {base_s:.2f} | 1.0 |")
        for label, args in [
            ("`apply --recipe` (in process)", ["apply", "--recipe", str(recipe_path), str(src)]),
            ("`enhance` (in process)", ["enhance", str(src)]),
        ]:
            run_in_process(args)  # warm-up
            s = best_of(lambda args=args: run_in_process(args), repeat)
            rows.append(f"| {label} | {s:.2f} | {s / base_s:.1f} |")
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lib_enhancer",
                "apply",
                "--recipe",
                str(recipe_path),
                str(src),
                "-o",
                str(Path(tmp) / "o2"),
                "-q",
            ],
            check=True,
            cwd=REPO,
        )
        s = time.perf_counter() - t
        rows.append(
            f"| `apply --recipe` (new process: Python + torch import included) | {s:.2f} | {s / base_s:.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2,12,24")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    import torch

    header = f"_`bench/speed.py` on {torch.get_num_threads()} torch threads; best of {args.repeat}._"
    parts = [
        "# Speed",
        header,
        "## Recipe apply at full resolution",
        apply_table(sizes, args.repeat),
        "## CLI end to end",
        cli_table(args.repeat),
        "Recipes: " + "; ".join(f"{k}: `{json.dumps(r.params)}`" for k, r in RECIPES.items()),
    ]
    text = "\n\n".join(parts) + "\n"
    print(text)
    out = REPO / "bench" / "results" / "speed.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
