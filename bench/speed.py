"""Full-resolution speed: recipe apply vs a memcpy, and the CLI vs PIL decode+encode.

Run: .venv/bin/python bench/speed.py [--sizes 2,12,24] [--repeat 3] [--baseline DIR]
Prints Markdown tables and writes them to bench/results/speed.md. Ratios are taken within one run
(the machine is shared and noisy: compare ratios, not absolute times, across runs).

``--baseline DIR`` measures an earlier version side by side (e.g. ``mkdir /tmp/base && git archive
HEAD | tar -x -C /tmp/base``): every apply cell is timed in a fresh process per version, the
versions alternating, best of two rounds, so "before" and "after" share the machine's load.

Targets (issue 2): apply at 2/12/24 MP within 20x a numpy memcpy of the same image; the CLI on a
12 MP JPEG within 2x PIL's decode+encode of it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: torch's intra-op threads. One: on the shared 2-core machine this runs on, other jobs keep the
#: second core busy and torch's OpenMP pool then stalls on every op (a division of 63k numbers
#: took 8 ms on two threads, 0.02 ms on one). render()'s own strip threads are Python threads
#: around PIL's C code (which releases the GIL) and are not affected.
THREADS = 1

SOURCES = Path("/usr/share/backgrounds/mate/nature")
RECIPE_PARAMS: dict[str, dict[str, float]] = {
    "colour (LUT)": {
        "temperature": -0.2,
        "exposure": 0.3,
        "contrast": 0.25,
        "highlights": -0.2,
        "saturation": 0.2,
    },
    "colour + local": {
        "dehaze": 0.3,
        "exposure": 0.3,
        "contrast": 0.25,
        "saturation": 0.2,
        "detail": 0.4,
        "local_tone": -0.1,
    },
    # a steep curve near black: trilinear interpolation can't follow it (the exact filters used
    # to run here); the chain is per-channel, so it is three 256-entry curves now
    "colour, steep, separable": {"exposure": 0.4, "blacks": 0.03, "brightness": 0.2, "gamma": 1.15},
    # photo-adaptive: per-channel curves read from the photo's own histogram (downscaled first)
    "auto levels + equalize": {"auto_levels": 0.6, "equalize": 0.3, "exposure": 0.2},
    "creative look + vignette": {
        "exposure": 0.2,
        "contrast": 0.2,
        "hue": 0.05,
        "split_tone": 0.4,
        "vignette": 0.5,
    },
}


def _recipes() -> dict[str, Any]:
    """The recipes the imported version of the library knows (older ones lack creative parameters)."""
    from lib_enhancer.recipe import Recipe

    out = {}
    for label, params in RECIPE_PARAMS.items():
        with contextlib.suppress(KeyError):  # an unknown parameter: an older version
            out[label] = Recipe(params)
    return out


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


def worker(root: str, megapixels: float, repeat: int) -> dict[str, Any]:
    """One version (``root``), one size: memcpy and every recipe it knows, best of ``repeat``."""
    sys.path.insert(0, root)
    import torch

    import lib_enhancer
    from lib_enhancer.render import render

    torch.set_num_threads(THREADS)

    assert Path(lib_enhancer.__file__).resolve().is_relative_to(Path(root).resolve()), lib_enhancer.__file__
    img = photo_of(megapixels, source_photo())
    out: dict[str, Any] = {
        "shape": list(img.shape[:2]),
        "memcpy": best_of(lambda: img.copy(), max(10, repeat)),
    }
    for label, recipe in _recipes().items():
        render(img[:64, :64], recipe)  # warm up torch kernels
        out[label] = best_of(lambda recipe=recipe: render(img, recipe), repeat)
    return out


def _run_worker(root: Path, megapixels: float, repeat: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", str(root), str(megapixels), str(repeat)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def apply_table(sizes: list[float], repeat: int, roots: dict[str, Path]) -> str:
    """Apply time per size and recipe for each version in ``roots`` (label -> checkout)."""
    labels = list(RECIPE_PARAMS)
    before = len(roots) > 1
    head = "| image | version | memcpy ms | " if before else "| image | memcpy ms | "
    rows = [head + " | ".join(f"{k} ms (× memcpy)" for k in labels) + " |"]
    rows.append("|---|" + ("---|" if before else "") + "---:|" + "---:|" * len(labels))
    for mp in sizes:
        best: dict[str, dict[str, Any]] = {}
        for _round in range(2 if before else 1):
            for name, root in roots.items():
                got = _run_worker(root, mp, repeat)
                keep = best.setdefault(name, got)
                for k, v in got.items():
                    if k != "shape":
                        keep[k] = min(keep[k], v)
        for name, got in best.items():
            h, w = got["shape"]
            copy_s = got["memcpy"]
            cells = [f"{got[k] * 1e3:.0f} ({got[k] / copy_s:.0f}×)" if k in got else "n/a" for k in labels]
            version = f" {name} |" if before else ""
            rows.append(f"| {w}×{h} ({mp:g} MP) |{version} {copy_s * 1e3:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def new_process(args: list[str], repeat: int, cwd: Path) -> float | None:
    """Best wall time of ``python <args>`` in a fresh interpreter run in ``cwd`` (imports
    included); ``None`` when that version refuses the command (an option it does not have)."""

    def once() -> None:
        subprocess.run([sys.executable, *args], check=True, cwd=cwd, capture_output=True)

    try:
        return best_of(once, repeat)
    except subprocess.CalledProcessError:
        return None


def cli_table(repeat: int, roots: dict[str, Path]) -> str:
    """The CLI on a 12 MP JPEG: in process (this checkout) and in a new process (every version)."""
    from lib_enhancer.cli import main as cli_main
    from lib_enhancer.lut import build_lut, write_cube

    recipes = _recipes()
    img = photo_of(12, source_photo())
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo12.jpg"
        Image.fromarray(img).save(src, quality=92)
        recipe_path = Path(tmp) / "look.json"
        recipe_path.write_text(recipes["colour (LUT)"].to_json())
        separable_path = Path(tmp) / "separable.json"
        separable_path.write_text(recipes["colour, steep, separable"].to_json())
        cube_path = Path(tmp) / "look.cube"
        write_cube(cube_path, build_lut(recipes["colour (LUT)"].stage_params("global"), 33).clip(0.0, 1.0))

        def pil_roundtrip() -> None:
            im = Image.open(src)
            im.load()
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=95)

        base_s = best_of(pil_roundtrip, max(5, repeat))

        def run_in_process(args: list[str]) -> None:
            out = Path(tmp) / "out"
            if out.exists():
                for f in out.iterdir():
                    f.unlink()
            if cli_main([*args, "-o", str(out), "-q"]) != 0:
                raise RuntimeError(f"CLI failed: {args}")

        rows = ["| command (12 MP JPEG) | seconds | × PIL decode+encode |", "|---|---:|---:|"]
        rows.append(f"| PIL decode + encode (q95), in process | {base_s:.2f} | 1.0 |")
        in_process = [
            ("`apply --recipe` colour (LUT)", ["apply", "--recipe", str(recipe_path), str(src)]),
            ("`apply --recipe` colour, separable", ["apply", "--recipe", str(separable_path), str(src)]),
            ("`apply --lut look.cube`", ["apply", "--lut", str(cube_path), str(src)]),
            ("`enhance`", ["enhance", str(src)]),
        ]
        for label, args in in_process:
            run_in_process(args)  # warm-up
            s = best_of(lambda args=args: run_in_process(args), repeat)
            rows.append(f"| {label}, in process | {s:.2f} | {s / base_s:.1f} |")
        out2 = str(Path(tmp) / "o2")
        floor = [
            "-c",
            f"from PIL import Image; import numpy; Image.open({str(src)!r}).save({out2 + '.jpg'!r}, quality=95)",
        ]
        s = new_process(floor, repeat, REPO)
        assert s is not None
        rows.append(
            f"| Python + `import numpy, PIL` + PIL decode/encode, new process (the floor) | {s:.2f} | {s / base_s:.1f} |"
        )
        fresh = [
            ("`apply --lut look.cube`", ["apply", "--lut", str(cube_path), str(src)]),
            ("`apply --recipe` colour, separable", ["apply", "--recipe", str(separable_path), str(src)]),
            ("`apply --recipe` colour (LUT)", ["apply", "--recipe", str(recipe_path), str(src)]),
        ]
        for label, args in fresh:
            for name, root in roots.items():
                version = f" ({name})" if len(roots) > 1 else ""
                s = new_process(["-m", "lib_enhancer", *args, "-o", out2, "-q", "--overwrite"], repeat, root)
                cell = "n/a | n/a" if s is None else f"{s:.2f} | {s / base_s:.1f}"
                rows.append(f"| {label}, new process{version} | {cell} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2,12,24")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None, help="an earlier checkout to compare with")
    parser.add_argument("--worker", nargs=3, metavar=("ROOT", "MP", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        root, mp, repeat = args.worker
        print(json.dumps(worker(root, float(mp), int(repeat))))
        return
    sys.path.insert(0, str(REPO))
    sizes = [float(s) for s in args.sizes.split(",")]
    roots = {"after": REPO} if args.baseline is None else {"before": args.baseline.resolve(), "after": REPO}
    import torch

    torch.set_num_threads(THREADS)
    header = (
        f"_`bench/speed.py`: {torch.get_num_threads()} torch thread (see `THREADS`), render's strips on "
        f"2 Python threads; best of {args.repeat}._"
    )
    if args.baseline is not None:
        header += (
            " _before_ = the previous version of the library, _after_ = this one, measured in the same "
            "run, alternating (see the script's docstring)."
        )
    parts = [
        "# Speed",
        header,
        "## Recipe apply at full resolution",
        apply_table(sizes, args.repeat, roots),
        "## CLI end to end",
        cli_table(args.repeat, roots),
        "Recipes: " + "; ".join(f"{k}: `{json.dumps(p)}`" for k, p in RECIPE_PARAMS.items()),
    ]
    text = "\n\n".join(parts) + "\n"
    print(text)
    out = REPO / "bench" / "results" / "speed.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
