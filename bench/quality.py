#!/usr/bin/env python3
"""Quality benchmark: blind restoration of real photos, ours against classical auto-enhance.

Each real photograph is degraded by a seeded, recorded degradation (exposure, gamma, colour cast,
saturation, contrast, haze, or a mixture), every contender gets only the degraded image, and its
output is compared with the undegraded photo (PSNR, SSIM, mean CIEDE2000 from
:mod:`lib_enhancer.metrics`). The undegraded photo itself is also fed in (case ``none``) to
measure how much each contender changes a photo that needed nothing.

The degradations are implemented here, independently, in plain numpy (none of lib_enhancer's
filters is used), so the benchmark does not favour our filter set by construction.

Usage::

    .venv/bin/python bench/quality.py            # full run (16 photos, ~1 MP, 2 degradations + none each)
    .venv/bin/python bench/quality.py --quick    # smoke run
    .venv/bin/python bench/quality.py --photos ~/Pictures --limit 10 --contenders identity,ours

Outputs (``bench/out/`` is git-ignored): ``quality.csv`` (one row per case and contender),
``quality_contact_sheet.png``, ``quality.md``, ``ours_recipes.jsonl``; the Markdown tables are also
copied to ``bench/results/quality.md`` (committed) unless ``--quick`` or ``--results ''``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lib_enhancer.learned.photos import HELD_OUT, resize_to_megapixels  # noqa: E402
from lib_enhancer.learned.photos import to_rgb_uint8 as _to_rgb_uint8  # noqa: E402
from lib_enhancer.metrics import ciede2000, mean_delta_e00, psnr, rgb_to_lab, ssim  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "out"
DEFAULT_RESULTS = BENCH_DIR / "results" / "quality.md"
BENCH_SOURCES = ("mate", "skimage", "sklearn")  # MATE nature photos, skimage.data, sklearn samples
# HELD_OUT: the photos the shipped learned models never saw (they train on the rest of the offline set)
PSNR_CAP = 100.0  # identical images have infinite PSNR; cap it when averaging

# ================================================================================================
# photos
# ================================================================================================


@dataclass
class Photo:
    name: str
    image: np.ndarray  # uint8 (H, W, 3)


def discover_photos(photos_dir: str | None = None) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """(name, loader) for every available photo; loaders return uint8 RGB at full size.

    The built-in set is lib_enhancer's offline photo list restricted to :data:`BENCH_SOURCES`.
    """
    from lib_enhancer.learned import photos

    if photos_dir:
        return photos.folder_photos(photos_dir)
    return [(n, f) for n, f in photos.builtin_photos() if n.split("/")[0] in BENCH_SOURCES]


def load_photos(photos_dir: str | None, limit: int | None, megapixels: float | None) -> list[Photo]:
    photos = []
    for name, loader in discover_photos(photos_dir):
        if limit is not None and len(photos) >= limit:
            break
        try:
            img = loader()
        except Exception as exc:  # a photo that can't be read (e.g. data not shipped) is skipped
            print(f"  skipping photo {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if img.ndim != 3 or img.shape[2] < 3:
            continue
        photos.append(Photo(name, resize_to_megapixels(np.ascontiguousarray(img[..., :3]), megapixels)))
    return photos


# ================================================================================================
# degradations (independent numpy implementations; float sRGB in [0, 1])
# ================================================================================================

_LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 / sRGB luminance weights (linear light)


def _to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def _to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055)


def op_exposure(img: np.ndarray, ev: float) -> np.ndarray:
    """Multiply linear light by ``2**ev`` and clip (over-exposure loses highlights for good)."""
    return _to_srgb(_to_linear(img) * 2.0**ev)


def op_gamma(img: np.ndarray, gamma: float) -> np.ndarray:
    """Power on the sRGB-encoded values (``gamma > 1`` darkens mid-tones)."""
    return np.clip(img, 0.0, 1.0) ** gamma


def op_color_cast(img: np.ndarray, temp: float, tint: float) -> np.ndarray:
    """White-balance error: per-channel gains in linear light, normalised to keep grey's luminance.

    ``temp`` > 0 is warm (red up, blue down, in stops), ``tint`` > 0 is green, < 0 magenta.
    """
    gains = np.array([2.0**temp, 2.0**tint, 2.0**-temp])
    gains /= float(_LUMA @ gains)
    return _to_srgb(_to_linear(img) * gains)


def op_saturation(img: np.ndarray, sat: float) -> np.ndarray:
    """Blend with luminance in linear light: ``Y + sat * (rgb - Y)`` (``< 1`` desaturates)."""
    lin = _to_linear(img)
    y = lin @ _LUMA
    return _to_srgb(y[..., None] + sat * (lin - y[..., None]))


def op_low_contrast(img: np.ndarray, contrast: float, lift: float) -> np.ndarray:
    """Flatten towards mid-grey on sRGB values, then raise the blacks by ``lift``."""
    out = 0.5 + contrast * (img - 0.5)
    return np.clip(lift + (1.0 - lift) * out, 0.0, 1.0)


def _haze_transmission(shape: tuple[int, int], t_far: float, t_near: float, tilt: float) -> np.ndarray:
    """Smooth 'depth-ish' transmission map: far (top) to near (bottom), slightly tilted sideways."""
    h, w = shape
    y = np.linspace(0.0, 1.0, h)[:, None]
    x = np.linspace(-0.5, 0.5, w)[None, :]
    d = np.clip(y + tilt * x, 0.0, 1.0)
    d = d * d * (3.0 - 2.0 * d)  # smoothstep
    return t_far + (t_near - t_far) * d


def op_haze(
    img: np.ndarray, t_far: float, t_near: float, tilt: float, airlight: float, blue: float
) -> np.ndarray:
    """Atmospheric scattering in linear light: ``I * t + A * (1 - t)``; constant when t_far == t_near."""
    lin = _to_linear(img)
    t = _haze_transmission(img.shape[:2], t_far, t_near, tilt)[..., None]
    a = airlight * np.array([1.0 - blue, 1.0, 1.0 + blue])
    return _to_srgb(lin * t + a * (1.0 - t))


OPS: dict[str, Callable[..., np.ndarray]] = {
    "exposure": op_exposure,
    "gamma": op_gamma,
    "color_cast": op_color_cast,
    "saturation": op_saturation,
    "low_contrast": op_low_contrast,
    "haze": op_haze,
}
#: the order ops are applied in a mixture: scene (haze), capture, white balance, look, tone curve.
OP_ORDER = ("haze", "exposure", "color_cast", "saturation", "gamma", "low_contrast")


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _toward(value: float, identity: float, strength: float) -> float:
    return identity + strength * (value - identity)


# Samplers: (rng, strength in (0, 1]) -> (op name, params). strength < 1 moves the magnitude
# towards "no change" (used for the components of a mixture).
def _s_under(rng, s=1.0):
    return "exposure", {"ev": s * _u(rng, -2.0, -0.7)}


def _s_over(rng, s=1.0):
    return "exposure", {"ev": s * _u(rng, 0.4, 1.2)}


def _s_gamma(rng, s=1.0):
    g = _u(rng, 1.3, 1.8) if rng.random() < 0.5 else _u(rng, 0.55, 0.77)
    return "gamma", {"gamma": math.exp(s * math.log(g))}


def _s_cast(rng, s=1.0):
    temp = _u(rng, 0.15, 0.45) * (1 if rng.random() < 0.5 else -1)
    tint = _u(rng, -0.2, 0.2)
    return "color_cast", {"temp": s * temp, "tint": s * tint}


def _s_desat(rng, s=1.0):
    return "saturation", {"sat": _toward(_u(rng, 0.25, 0.7), 1.0, s)}


def _s_oversat(rng, s=1.0):
    return "saturation", {"sat": _toward(_u(rng, 1.35, 1.9), 1.0, s)}


def _s_low_contrast(rng, s=1.0):
    return "low_contrast", {"contrast": _toward(_u(rng, 0.5, 0.8), 1.0, s), "lift": s * _u(rng, 0.0, 0.08)}


def _s_haze(rng, s=1.0):
    if rng.random() < 0.6:  # depth gradient
        t_far = _u(rng, 0.35, 0.6)
        t_near = _u(rng, min(t_far + 0.1, 0.9), 0.9)
    else:  # uniform haze
        t_far = t_near = _u(rng, 0.5, 0.8)
    return "haze", {
        "t_far": _toward(t_far, 1.0, s),
        "t_near": _toward(t_near, 1.0, s),
        "tilt": _u(rng, -0.4, 0.4),
        "airlight": _u(rng, 0.75, 0.95),
        "blue": _u(rng, 0.0, 0.06),
    }


SINGLE_SAMPLERS: dict[str, Callable[..., tuple[str, dict[str, float]]]] = {
    "under_exposure": _s_under,
    "over_exposure": _s_over,
    "gamma": _s_gamma,
    "color_cast": _s_cast,
    "desaturate": _s_desat,
    "oversaturate": _s_oversat,
    "low_contrast": _s_low_contrast,
    "haze": _s_haze,
}
#: degradation types in the benchmark (``none`` is added per photo separately)
DEGRADATION_TYPES: tuple[str, ...] = (*SINGLE_SAMPLERS, "mix")
MIX_STRENGTH = 0.75  # each component of a mixture is a bit milder than on its own


@dataclass
class Degradation:
    """A recorded degradation: its type and the ops (name, params) applied in order."""

    kind: str
    ops: list[tuple[str, dict[str, float]]] = field(default_factory=list)

    def describe(self) -> str:
        if not self.ops:
            return "none"
        parts = []
        for name, params in self.ops:
            parts.append(f"{name}(" + ",".join(f"{k}={v:g}" for k, v in params.items()) + ")")
        return "+".join(parts)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "ops": [[n, p] for n, p in self.ops]})


def _rounded(params: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in params.items()}


def sample_degradation(kind: str, rng: np.random.Generator) -> Degradation:
    """Draw the magnitudes of a degradation of type ``kind`` (see :data:`DEGRADATION_TYPES`)."""
    if kind == "none":
        return Degradation("none")
    if kind in SINGLE_SAMPLERS:
        name, params = SINGLE_SAMPLERS[kind](rng)
        return Degradation(kind, [(name, _rounded(params))])
    if kind != "mix":
        raise KeyError(f"unknown degradation type {kind!r}; known: {', '.join(DEGRADATION_TYPES)}")
    # 2-3 components, at most one per op (so never both under- and over-exposure, etc.)
    chosen: dict[str, dict[str, float]] = {}
    n = int(rng.integers(2, 4))
    for key in rng.permutation(list(SINGLE_SAMPLERS)):
        name, params = SINGLE_SAMPLERS[str(key)](rng, MIX_STRENGTH)
        if name not in chosen:
            chosen[name] = _rounded(params)
        if len(chosen) == n:
            break
    return Degradation("mix", [(name, chosen[name]) for name in OP_ORDER if name in chosen])


def apply_degradation(img: np.ndarray, deg: Degradation) -> np.ndarray:
    """Apply a recorded degradation to a uint8 RGB image; returns uint8 (8-bit like a real file)."""
    x = img.astype(np.float64) / 255.0
    for name, params in deg.ops:
        x = OPS[name](x, **params)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


@dataclass
class Case:
    photo: int  # index into the photo list
    index: int  # case number within the photo (0 = none)
    degradation: Degradation


def make_cases(n_photos: int, per_photo: int, seed: int) -> list[Case]:
    """Per photo: ``none`` plus ``per_photo`` degradations; types balanced over the whole run.

    Types are dealt from seeded shuffles of :data:`DEGRADATION_TYPES` so each appears about equally
    often; magnitudes come from ``default_rng([seed, photo, case])``, so a case does not depend on
    how many other photos or cases there are.
    """
    deal_rng = np.random.default_rng([seed, 7919])
    deck: list[str] = []
    cases = []
    for p in range(n_photos):
        cases.append(Case(p, 0, Degradation("none")))
        for j in range(1, per_photo + 1):
            if not deck:
                deck = [str(t) for t in deal_rng.permutation(list(DEGRADATION_TYPES))]
            kind = deck.pop()
            cases.append(Case(p, j, sample_degradation(kind, np.random.default_rng([seed, p, j]))))
    return cases


# ================================================================================================
# contenders
# ================================================================================================

ContenderFn = Callable[..., np.ndarray]


@dataclass
class Contender:
    name: str
    fn: ContenderFn  # (uint8 HxWx3, **kwargs) -> uint8 HxWx3
    description: str
    kind: str = "classical"  # "baseline" | "classical" | "ours"
    check: Callable[[], str | None] = lambda: None  # -> reason it can't run, or None
    kwargs: dict[str, Any] = field(default_factory=dict)
    only_photos: tuple[str, ...] = ()  # run on these photos only (learned modes: photos never trained on)

    def runs_on(self, photo: str) -> bool:
        return not self.only_photos or photo in self.only_photos

    def unavailable(self) -> str | None:
        try:
            return self.check()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    def __call__(self, img: np.ndarray) -> np.ndarray:
        out = self.fn(img, **self.kwargs)
        out = np.asarray(out)
        if out.shape != img.shape or out.dtype != np.uint8:
            raise ValueError(f"{self.name} returned {out.dtype} {out.shape}, expected uint8 {img.shape}")
        return out


def c_identity(img: np.ndarray) -> np.ndarray:
    return img.copy()


def c_autocontrast(img: np.ndarray, cutoff: float = 0.5) -> np.ndarray:
    return np.asarray(ImageOps.autocontrast(Image.fromarray(img), cutoff=cutoff))


def c_equalize(img: np.ndarray) -> np.ndarray:
    return np.asarray(ImageOps.equalize(Image.fromarray(img)))


def c_grayworld(img: np.ndarray) -> np.ndarray:
    """Gray-world white balance: equalise the channel means in linear light (keeping luminance)."""
    lin = _to_linear(img.astype(np.float64) / 255.0)
    means = lin.reshape(-1, 3).mean(axis=0)
    if np.any(means <= 1e-6):
        return img.copy()
    gains = float(_LUMA @ means) / means
    return np.round(_to_srgb(lin * gains) * 255.0).astype(np.uint8)


def _check_skimage() -> str | None:
    try:
        import skimage.exposure  # noqa: F401
    except ImportError:
        return "scikit-image not installed"
    return None


def c_clahe(img: np.ndarray, clip_limit: float = 0.01) -> np.ndarray:
    """CLAHE on the L* channel of Lab (the usual photo recipe), via skimage's equalize_adapthist."""
    from skimage import color, exposure

    lab = color.rgb2lab(img)
    lab[..., 0] = 100.0 * exposure.equalize_adapthist(
        np.clip(lab[..., 0] / 100.0, 0.0, 1.0), clip_limit=clip_limit
    )
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, as any converter would
        warnings.simplefilter("ignore")
        out = color.lab2rgb(lab)
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def _imagemagick_cmd() -> list[str] | None:
    for exe in ("magick", "convert"):
        path = shutil.which(exe)
        if not path:
            continue
        try:
            res = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        if "ImageMagick" in res.stdout:
            return [path]
    return None


def _check_imagemagick() -> str | None:
    return None if _imagemagick_cmd() else "ImageMagick (magick/convert) not installed"


def _png_roundtrip(
    img: np.ndarray, make_cmd: Callable[[str, str], list[str]], in_place: bool = False
) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="bench_q_") as tmp:
        src = os.path.join(tmp, "in.png")
        dst = src if in_place else os.path.join(tmp, "out.png")
        Image.fromarray(img).save(src, compress_level=1)
        subprocess.run(make_cmd(src, dst), check=True, capture_output=True, timeout=300)
        with Image.open(dst) as im:
            return _to_rgb_uint8(im)


def c_imagemagick(img: np.ndarray) -> np.ndarray:
    cmd = _imagemagick_cmd()
    if cmd is None:
        raise RuntimeError("ImageMagick not available")
    return _png_roundtrip(img, lambda s, d: [*cmd, s, "-auto-level", "-auto-gamma", d])


def _check_aaphoto() -> str | None:
    return None if shutil.which("aaphoto") else "aaphoto not installed (apt-get install aaphoto)"


def c_aaphoto(img: np.ndarray) -> np.ndarray:
    return _png_roundtrip(img, lambda s, d: ["aaphoto", "-a", "-s", "--overwrite", s], in_place=True)


def _lib_enhancer_attr(name: str) -> Callable[..., Any] | None:
    try:
        import lib_enhancer
    except Exception:
        return None
    fn = getattr(lib_enhancer, name, None)
    return fn if callable(fn) else None


def _check_ours() -> str | None:
    try:
        import lib_enhancer
    except Exception as exc:
        return f"lib_enhancer does not import ({type(exc).__name__}: {exc})"
    if not callable(getattr(lib_enhancer, "enhance", None)):
        return "lib_enhancer.enhance is not available yet"
    return None


#: per-case extra info from ours (scorer's own before/after, recipe); filled by c_ours
OURS_LAST: dict[str, Any] = {}


def c_ours(img: np.ndarray, scorer: str = "natural", seed: int = 0, **kwargs: Any) -> np.ndarray:
    enhance = _lib_enhancer_attr("enhance")
    if enhance is None:
        raise RuntimeError("lib_enhancer.enhance is not available")
    result = enhance(img, scorer=scorer, seed=seed, **kwargs)
    OURS_LAST.clear()
    OURS_LAST.update(
        score_before=getattr(result, "score_before", None),
        score_after=getattr(result, "score_after", None),
        recipe=getattr(result, "recipe", None),
    )
    out = np.asarray(result.image)
    if out.dtype != np.uint8:  # be lenient while the API settles
        out = np.round(np.clip(out.astype(np.float64), 0, 1) * 255).astype(np.uint8)
    return out


def build_contenders(ours_kwargs: dict[str, Any] | None = None) -> dict[str, Contender]:
    cs = [
        Contender("identity", c_identity, "input unchanged", kind="baseline"),
        Contender("autocontrast", c_autocontrast, "PIL ImageOps.autocontrast(cutoff=0.5%), per channel"),
        Contender("equalize", c_equalize, "PIL ImageOps.equalize, per channel"),
        Contender("grayworld", c_grayworld, "gray-world white balance (linear light)"),
        Contender(
            "clahe",
            c_clahe,
            "CLAHE on Lab L* (skimage equalize_adapthist, clip_limit=0.01)",
            check=_check_skimage,
        ),
        Contender(
            "imagemagick", c_imagemagick, "ImageMagick -auto-level -auto-gamma", check=_check_imagemagick
        ),
        Contender("aaphoto", c_aaphoto, "aaphoto -a (Auto Adjust Photo)", check=_check_aaphoto),
        Contender(
            "ours",
            c_ours,
            "lib_enhancer.enhance(scorer='natural', seed=0)",
            kind="ours",
            check=_check_ours,
            kwargs=dict(ours_kwargs or {}),
        ),
        *(
            Contender(
                name,
                c_ours,
                f"lib_enhancer.enhance(mode='{mode}'): {what}; held-out photos only",
                kind="learned",
                check=lambda mode=mode: _check_learned(mode),
                kwargs={"mode": mode},
                only_photos=HELD_OUT,
            )
            for name, mode, what in LEARNED_CONTENDERS
        ),
        *(
            Contender(
                name,
                c_ours,
                f"lib_enhancer.enhance(scorer='natural', mode='{name}', seed=0): {what}",
                kind="search",
                check=_check_ours,
                kwargs={"mode": name},
            )
            for name, what in SEARCH_CONTENDERS
        ),
    ]
    return {c.name: c for c in cs}


#: The search engines with the built-in scorer (issue #4's modes; the default `ours` is gradient).
SEARCH_CONTENDERS = (
    ("best-first", "best-first search over the soft set (incl. auto levels / equalize)"),
    ("hybrid-reverse", "gradient first, then best-first refinement"),
)


LEARNED_CONTENDERS = (
    ("predict", "predict", "shipped recipe predictor, one pass"),
    ("histogram", "histogram", "shipped histogram network + MKL colour transfer as a LUT, one pass"),
)


def _check_learned(mode: str) -> str | None:
    reason = _check_ours()
    if reason:
        return reason
    from lib_enhancer.learned import histogram, predictor

    weights = predictor.DEFAULT_FILE if mode == "predict" else histogram.DEFAULT_FILE
    return None if weights.is_file() else f"no shipped weights at {weights}"


# ================================================================================================
# evaluation
# ================================================================================================


def _scorer_fn() -> Callable[[np.ndarray], float] | None:
    fn = _lib_enhancer_attr("score")
    if fn is None:
        return None

    def score(img: np.ndarray) -> float:
        return float(fn(img, scorer="natural"))

    return score


@dataclass
class Row:
    photo: str
    case: int
    kind: str
    degradation: str
    contender: str
    psnr: float
    ssim: float
    de00: float
    seconds: float
    score_original: float | None = None
    score_input: float | None = None
    score_output: float | None = None
    ours_score_before: float | None = None
    ours_score_after: float | None = None
    error: str = ""


def evaluate(
    reference: np.ndarray, output: np.ndarray, reference_lab: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(PSNR dB, SSIM, mean ΔE00) of ``output`` against ``reference`` (uint8 RGB).

    ``reference_lab`` (``rgb_to_lab(reference)``) may be passed to skip recomputing it per contender.
    """
    if reference_lab is None:
        de = mean_delta_e00(reference, output)
    else:
        de = float(ciede2000(reference_lab, rgb_to_lab(output)).mean())
    return psnr(reference, output), ssim(reference, output), de


def _safe_score(
    score_fn: Callable[[np.ndarray], float] | None, img: np.ndarray, notes: list[str]
) -> float | None:
    if score_fn is None:
        return None
    try:
        return score_fn(img)
    except Exception as exc:
        msg = f"natural score failed: {type(exc).__name__}: {exc}"
        if msg not in notes:
            notes.append(msg)
        return None


def warm_up(contenders: Sequence[Contender], image: np.ndarray) -> None:
    """Run every contender once on a small crop, untimed: model loads and first-call setup are paid
    once per process (as in a batch), not charged to the first photo's time."""
    crop = np.ascontiguousarray(image[:96, :128])
    for c in contenders:
        with contextlib.suppress(Exception):  # a failing contender is reported on the real cases
            c(crop)


def run_benchmark(
    photos: Sequence[Photo],
    cases: Sequence[Case],
    contenders: Sequence[Contender],
    *,
    score: bool = True,
    sheet_cases: set[tuple[int, int]] | None = None,
    progress: bool = True,
    recipes_path: Path | None = None,
) -> tuple[list[Row], dict[tuple[int, int], dict[str, np.ndarray]], list[str]]:
    """Run every contender on every case. Returns rows, kept images for the contact sheet, notes."""
    notes: list[str] = []
    score_fn = _scorer_fn() if score else None
    if score and score_fn is None:
        notes.append("lib_enhancer.score is not available: natural-scorer columns left empty")
    kept: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    rows: list[Row] = []
    original_scores: dict[int, float | None] = {}
    ref_labs: dict[int, np.ndarray] = {}
    recipes = open(recipes_path, "w") if recipes_path else None  # noqa: SIM115
    if photos:
        warm_up(contenders, photos[0].image)
    t_start = time.perf_counter()
    try:
        for n, case in enumerate(cases):
            photo = photos[case.photo]
            ref = photo.image
            degraded = apply_degradation(ref, case.degradation)
            if case.photo not in ref_labs:
                ref_labs.clear()
                ref_labs[case.photo] = rgb_to_lab(ref)
            key = (case.photo, case.index)
            if sheet_cases is not None and key in sheet_cases:
                kept[key] = {"original": ref, "degraded": degraded}
            if case.photo not in original_scores:
                original_scores[case.photo] = _safe_score(score_fn, ref, notes)
            s_in = _safe_score(score_fn, degraded, notes)
            for c in contenders:
                if not c.runs_on(photo.name):
                    continue
                t0 = time.perf_counter()
                OURS_LAST.clear()
                try:
                    out = c(degraded)
                    err = ""
                except Exception as exc:
                    out, err = degraded, f"{type(exc).__name__}: {exc}"
                    note = f"{c.name} failed on {photo.name} [{case.degradation.kind}]: {err}"
                    notes.append(note)
                    print("  " + note, file=sys.stderr)
                secs = time.perf_counter() - t0
                p, s, d = evaluate(ref, out, ref_labs[case.photo])
                s_out = s_in if c.name == "identity" else _safe_score(score_fn, out, notes)
                rows.append(
                    Row(
                        photo=photo.name,
                        case=case.index,
                        kind=case.degradation.kind,
                        degradation=case.degradation.describe(),
                        contender=c.name,
                        psnr=p,
                        ssim=s,
                        de00=d,
                        seconds=secs,
                        score_original=original_scores[case.photo],
                        score_input=s_in,
                        score_output=s_out,
                        ours_score_before=_as_float(OURS_LAST.get("score_before")),
                        ours_score_after=_as_float(OURS_LAST.get("score_after")),
                        error=err,
                    )
                )
                if recipes is not None and c.kind == "ours" and not err:
                    recipes.write(
                        json.dumps(
                            {
                                "photo": photo.name,
                                "case": case.index,
                                "degradation": json.loads(case.degradation.to_json()),
                                "psnr": p,
                                "de00": d,
                                "recipe": _jsonable(OURS_LAST.get("recipe")),
                            }
                        )
                        + "\n"
                    )
                if key in kept:
                    kept[key][c.name] = out
            if progress:
                elapsed = time.perf_counter() - t_start
                print(
                    f"  [{n + 1}/{len(cases)}] {photo.name:24s} {case.degradation.kind:15s} ({elapsed:6.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if recipes is not None:
            recipes.close()
    return rows, kept, notes


def _as_float(x: Any) -> float | None:
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _jsonable(obj: Any) -> Any:
    for attr in ("to_dict", "as_dict", "to_json"):
        fn = getattr(obj, attr, None)
        if callable(fn):
            try:
                val = fn()
                return json.loads(val) if isinstance(val, str) else val
            except Exception:
                pass
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return repr(obj)


# ================================================================================================
# reporting
# ================================================================================================


def _mean(values: Sequence[float | None]) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else float("nan")


def _capped(p: float) -> float:
    return min(p, PSNR_CAP)


@dataclass
class Summary:
    contender: str
    kind: str
    psnr: float  # mean over degraded cases
    ssim: float
    de00: float
    de00_none: float  # mean ΔE00 on undegraded inputs
    psnr_none: float
    seconds: float
    score: float  # mean natural score of outputs on degraded cases
    n: int


def summarize(rows: Sequence[Row], contenders: Sequence[Contender]) -> list[Summary]:
    out = []
    for c in contenders:
        deg = [r for r in rows if r.contender == c.name and r.kind != "none"]
        none = [r for r in rows if r.contender == c.name and r.kind == "none"]
        if not deg and not none:
            continue
        out.append(
            Summary(
                contender=c.name,
                kind=c.kind,
                psnr=_mean([_capped(r.psnr) for r in deg]),
                ssim=_mean([r.ssim for r in deg]),
                de00=_mean([r.de00 for r in deg]),
                de00_none=_mean([r.de00 for r in none]),
                psnr_none=_mean([_capped(r.psnr) for r in none]),
                seconds=_mean([r.seconds for r in deg + none]),
                score=_mean([r.score_output for r in deg]),
                n=len(deg),
            )
        )
    return out


def _fmt(x: float, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "inf"
    return format(x, spec)


def publish(text: str, path: str | os.PathLike[str] | None) -> None:
    """Print a bench's Markdown report and write it to ``path`` (nothing written when empty)."""
    print(text)
    if path:
        Path(path).write_text(text, encoding="utf-8")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary_table(summaries: Sequence[Summary], scored: bool) -> str:
    headers = ["contender", "PSNR dB ↑", "SSIM ↑", "ΔE00 ↓", "ΔE00 undegraded ↓", "PSNR undegraded ↑"]
    if scored:
        headers.append("natural score (out)")
    headers.append("s / image")
    best_p = max((s.psnr for s in summaries if s.kind != "baseline"), default=float("nan"))
    best_d = min((s.de00 for s in summaries if s.kind != "baseline"), default=float("nan"))
    body = []
    for s in summaries:
        p = _fmt(s.psnr, ".2f")
        d = _fmt(s.de00, ".2f")
        if s.psnr == best_p:
            p = f"**{p}**"
        if s.de00 == best_d:
            d = f"**{d}**"
        row = [s.contender, p, _fmt(s.ssim, ".4f"), d, _fmt(s.de00_none, ".2f"), _fmt(s.psnr_none, ".2f")]
        if scored:
            row.append(_fmt(s.score, ".3f"))
        row.append(_fmt(s.seconds, ".2f"))
        body.append(row)
    return markdown_table(headers, body)


def per_type_table(rows: Sequence[Row], contenders: Sequence[str], metric: str, spec: str) -> str:
    kinds = [k for k in (*DEGRADATION_TYPES, "none") if any(r.kind == k for r in rows)]
    body = []
    for k in kinds:
        n = len({(r.photo, r.case) for r in rows if r.kind == k})
        cells = [f"{k} ({n})"]
        vals = {}
        for c in contenders:
            vs = [getattr(r, metric) for r in rows if r.kind == k and r.contender == c]
            vals[c] = _mean([_capped(v) if metric == "psnr" else v for v in vs])
        finite = [v for c, v in vals.items() if c != "identity" and not math.isnan(v)]
        best = (max(finite) if metric in ("psnr", "ssim") else min(finite)) if finite else None
        for c in contenders:
            txt = _fmt(vals[c], spec)
            if best is not None and vals[c] == best and k != "none":
                txt = f"**{txt}**"
            cells.append(txt)
        body.append(cells)
    return markdown_table(["degradation (n)", *contenders], body)


def scorer_sanity(rows: Sequence[Row]) -> list[str]:
    """How well the natural scorer itself tells undegraded photos from degraded ones."""
    cases: dict[tuple[str, int], Row] = {}
    for r in rows:
        if r.kind != "none" and r.score_original is not None and r.score_input is not None:
            cases.setdefault((r.photo, r.case), r)
    if not cases:
        return []
    orig = {r.photo: r.score_original for r in cases.values()}
    deg = [r.score_input for r in cases.values()]
    prefer = sum(1 for r in cases.values() if r.score_input >= r.score_original)
    return [
        f"- mean natural score of the undegraded photos {_mean(list(orig.values())):.3f}, "
        f"of the degraded inputs {_mean(deg):.3f}",
        f"- the scorer rates the degraded input at least as high as its undegraded photo in "
        f"{prefer} of {len(cases)} cases ({100 * prefer / len(cases):.0f} %)",
    ]


def target_verdict(summaries: Sequence[Summary]) -> tuple[bool | None, list[str]]:
    """Check: ours ≥ 2 dB mean PSNR over every classical contender, ≥ 30 % lower mean ΔE00 on
    degraded inputs, and mean ΔE00 ≤ 2 on undegraded photos. None if ours didn't run."""
    by = {s.contender: s for s in summaries}
    ours = by.get("ours")
    classical = [s for s in summaries if s.kind == "classical"]
    if ours is None or not classical or math.isnan(ours.psnr):
        return None, ["TARGET: not evaluated (ours did not run)."]
    best_p = max(classical, key=lambda s: s.psnr)
    best_d = min(classical, key=lambda s: s.de00)
    ok_p = ours.psnr - best_p.psnr >= 2.0
    ok_d = ours.de00 <= 0.7 * best_d.de00
    ok_n = ours.de00_none <= 2.0
    lines = [
        f"- PSNR: ours {ours.psnr:.2f} dB vs best classical {best_p.contender} {best_p.psnr:.2f} dB "
        f"→ {ours.psnr - best_p.psnr:+.2f} dB (need ≥ +2.00) {'✅' if ok_p else '❌'}",
        f"- ΔE00: ours {ours.de00:.2f} vs best classical {best_d.contender} {best_d.de00:.2f} "
        f"→ {100 * (1 - ours.de00 / best_d.de00):+.1f} % lower (need ≥ 30 %) {'✅' if ok_d else '❌'}",
        f"- undegraded photos: ours changes them by mean ΔE00 {ours.de00_none:.2f} (need ≤ 2) {'✅' if ok_n else '❌'}",
    ]
    ident = by.get("identity")
    if ident is not None:
        lines.append(
            f"- (for reference) vs doing nothing: {ours.psnr - ident.psnr:+.2f} dB PSNR, "
            f"ΔE00 {ours.de00:.2f} vs {ident.de00:.2f}"
        )
    ok = ok_p and ok_d and ok_n
    head = (
        "TARGET "
        + ("HOLDS" if ok else "DOES NOT HOLD")
        + ": ours beats every classical contender by ≥ 2 dB mean PSNR and ≥ 30 % lower mean ΔE00 "
        "on degraded inputs, and changes undegraded photos by mean ΔE00 ≤ 2"
    )
    return ok, [head, *lines]


def learned_section(
    rows: Sequence[Row], contenders: Sequence[Contender], learned: Sequence[Contender], scored: bool
) -> list[str]:
    """Every contender on the held-out photos only (those the learned models never saw) + verdict."""
    learned_rows = [r for r in rows if r.contender in {c.name for c in learned}]
    if not learned_rows:
        return []
    photos = sorted({r.photo for r in learned_rows})
    subset = [r for r in rows if r.photo in photos]
    everyone = [*contenders, *learned]
    summaries = summarize(subset, everyone)
    names = [c.name for c in everyone if any(r.contender == c.name for r in subset)]
    _, verdict = learned_verdict(summaries)
    return [
        "## Learned modes (photos never used in training)",
        "",
        f"All contenders on the {len(photos)} held-out photos ({', '.join(photos)}); the learned "
        "models were trained on the other photos of the offline set (see their model cards).",
        "",
        summary_table(summaries, scored),
        "",
        "PSNR (dB) per degradation type, held-out photos:",
        "",
        per_type_table(subset, names, "psnr", ".2f"),
        "",
        "Mean ΔE00 per degradation type, held-out photos:",
        "",
        per_type_table(subset, names, "de00", ".2f"),
        "",
        *verdict,
        "",
    ]


def learned_verdict(summaries: Sequence[Summary]) -> tuple[bool | None, list[str]]:
    """Each learned mode beats every classical contender on PSNR and ΔE00, at least matches the
    gradient mode (``ours``), in ≤ 1/10 of its time — all on the held-out photos."""
    by = {s.contender: s for s in summaries}
    classical = [s for s in summaries if s.kind == "classical"]
    gradient = by.get("ours")
    learned = [s for s in summaries if s.kind == "learned"]
    if not learned or not classical:
        return None, []
    best_p = max(classical, key=lambda s: s.psnr)
    best_d = min(classical, key=lambda s: s.de00)
    lines, all_ok = [], True
    for s in learned:
        checks = [
            (
                s.psnr > best_p.psnr,
                f"PSNR {s.psnr:.2f} vs best classical {best_p.contender} {best_p.psnr:.2f}",
            ),
            (
                s.de00 < best_d.de00,
                f"ΔE00 {s.de00:.2f} vs best classical {best_d.contender} {best_d.de00:.2f}",
            ),
        ]
        if gradient is not None:
            checks += [
                (
                    s.psnr >= gradient.psnr and s.de00 <= gradient.de00,
                    f"vs gradient mode PSNR {gradient.psnr:.2f} / ΔE00 {gradient.de00:.2f}",
                ),
                (
                    s.seconds <= gradient.seconds / 10,
                    f"time {s.seconds:.3f} s vs gradient {gradient.seconds:.2f} s (need ≤ 1/10; one pass "
                    "each, noisy: bench/learned.py times the modes in turns)",
                ),
            ]
        ok = all(c for c, _ in checks)
        all_ok = all_ok and ok
        lines.append(
            f"- `{s.contender}` {'✅' if ok else '❌'}: "
            + "; ".join(f"{t} {'✅' if c else '❌'}" for c, t in checks)
        )
    head = (
        "LEARNED-MODE TARGET "
        + ("HOLDS" if all_ok else "DOES NOT HOLD")
        + (
            ": each learned mode beats every classical contender on PSNR and ΔE00 and at least matches the "
            "gradient mode, at ≤ 1/10 of its time (held-out photos)"
        )
    )
    return all_ok, [head, *lines]


def write_csv(rows: Sequence[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(Row.__dataclass_fields__)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in rows:
            vals = []
            for n in names:
                v = getattr(r, n)
                vals.append("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v))
            w.writerow(vals)


def _thumb(img: np.ndarray, size: int) -> Image.Image:
    im = Image.fromarray(img)
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    return im


def contact_sheet(
    kept: dict[tuple[int, int], dict[str, np.ndarray]],
    labels: dict[tuple[int, int], str],
    columns: Sequence[str],
    path: Path,
    size: int = 160,
) -> None:
    """Rows = cases, columns = original, degraded, each contender; labelled with PIL's default font."""
    if not kept:
        return
    font = ImageFont.load_default()
    pad, head, foot = 4, 16, 14
    cols = ["original", "degraded", *columns]
    keys = list(kept)
    thumbs = {key: {name: _thumb(img, size) for name, img in kept[key].items()} for key in keys}
    heights = [max(t.height for t in thumbs[key].values()) for key in keys]
    cell_w = size + pad
    total_h = head + sum(h + pad + foot for h in heights)
    sheet = Image.new("RGB", (pad + len(cols) * cell_w, total_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(cols):
        draw.text((pad + j * cell_w + 2, 2), name, fill=(0, 0, 0), font=font)
    y = head
    for key, h in zip(keys, heights, strict=True):
        for j, name in enumerate(cols):
            th = thumbs[key].get(name)
            if th is None:
                continue
            x = pad + j * cell_w
            sheet.paste(th, (x + (size - th.width) // 2, y + (h - th.height) // 2))
        draw.text((pad + 2, y + h + 1), labels.get(key, ""), fill=(60, 60, 60), font=font)
        y += h + pad + foot
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def pick_sheet_cases(cases: Sequence[Case], rows: int) -> set[tuple[int, int]]:
    """One degraded case from each of the first ``rows`` photos, types varied where possible."""
    picked: set[tuple[int, int]] = set()
    seen_kinds: set[str] = set()
    photos = sorted({c.photo for c in cases})[:rows]
    for p in photos:
        options = [c for c in cases if c.photo == p and c.degradation.kind != "none"]
        if not options:
            continue
        fresh = [c for c in options if c.degradation.kind not in seen_kinds]
        c = (fresh or options)[0]
        seen_kinds.add(c.degradation.kind)
        picked.add((c.photo, c.index))
    return picked


# ================================================================================================
# CLI
# ================================================================================================


def _parse_kv(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--ours-kw expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--photos", help="folder of photos to use instead of the built-in set")
    ap.add_argument("--limit", type=int, help="use at most N photos")
    ap.add_argument(
        "--held-out",
        action="store_true",
        help="only the photos the learned models never saw (quick learned check)",
    )
    ap.add_argument(
        "--megapixels", type=float, default=1.0, help="downscale photos to about this size (default 1.0)"
    )
    ap.add_argument(
        "--per-photo", type=int, default=2, help="degraded variants per photo, besides 'none' (default 2)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--contenders", help="comma-separated subset (default: all available)")
    ap.add_argument("--ours-steps", type=int, help="passed to lib_enhancer.enhance as steps=N")
    ap.add_argument(
        "--ours-kw",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra kwarg for enhance (repeatable)",
    )
    ap.add_argument("--no-score", action="store_true", help="skip the natural scorer's before/after")
    ap.add_argument("--sheet-rows", type=int, default=6, help="photos on the contact sheet (default 6)")
    ap.add_argument("--thumb", type=int, default=160, help="contact-sheet thumbnail size in px")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default bench/out)")
    ap.add_argument(
        "--results", help="where to copy the Markdown tables (default bench/results/quality.md; '' = nowhere)"
    )
    ap.add_argument("--threads", type=int, help="torch threads for ours (default: torch's choice)")
    ap.add_argument(
        "--from-csv", metavar="CSV", help="only re-render the report from a previous run's quality.csv"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 photos, 2 degradations each, 0.25 MP")
    args = ap.parse_args(argv)
    if args.quick:
        args.limit = args.limit or 3
        args.per_photo = min(args.per_photo, 2)
        args.megapixels = min(args.megapixels, 0.25)
        args.sheet_rows = min(args.sheet_rows, 3)
    if args.results is None:
        args.results = "" if args.quick else str(DEFAULT_RESULTS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.from_csv:
        return report_from_csv(Path(args.from_csv), out_dir, args.results)
    if args.threads:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass

    ours_kwargs = _parse_kv(args.ours_kw)
    if args.ours_steps is not None:
        ours_kwargs["steps"] = args.ours_steps
    registry = build_contenders(ours_kwargs)
    wanted = [c.strip() for c in args.contenders.split(",")] if args.contenders else list(registry)
    unknown = [w for w in wanted if w not in registry]
    if unknown:
        raise SystemExit(f"unknown contenders {unknown}; known: {', '.join(registry)}")
    contenders, skipped = [], []
    for name in wanted:
        reason = registry[name].unavailable()
        if reason:
            skipped.append(f"{name}: skipped ({reason})")
        else:
            contenders.append(registry[name])

    t0 = time.perf_counter()
    photos = load_photos(args.photos, args.limit, args.megapixels)
    if args.held_out:
        photos = [p for p in photos if p.name in HELD_OUT]
    if not photos:
        raise SystemExit("no photos found (use --photos DIR)")
    cases = make_cases(len(photos), args.per_photo, args.seed)
    sheet = pick_sheet_cases(cases, args.sheet_rows)
    print(
        f"{len(photos)} photos (~{args.megapixels:g} MP), {len(cases)} cases, contenders: "
        f"{', '.join(c.name for c in contenders)}",
        file=sys.stderr,
    )
    for s in skipped:
        print("  " + s, file=sys.stderr)

    rows, kept, notes = run_benchmark(
        photos,
        cases,
        contenders,
        score=not args.no_score,
        sheet_cases=sheet,
        recipes_path=out_dir / "ours_recipes.jsonl" if "ours" in {c.name for c in contenders} else None,
    )
    total = time.perf_counter() - t0

    write_csv(rows, out_dir / "quality.csv")
    labels = {}
    for c in cases:
        if (c.photo, c.index) in kept:
            labels[(c.photo, c.index)] = f"{photos[c.photo].name}: {c.degradation.describe()}"
    contact_sheet(
        kept, labels, [c.name for c in contenders], out_dir / "quality_contact_sheet.png", args.thumb
    )

    n_deg = sum(1 for c in cases if c.degradation.kind != "none")
    settings = (
        f"{len(photos)} photos at ~{args.megapixels:g} MP, {n_deg} degraded + {len(photos)} undegraded cases, "
        f"seed {args.seed}, per-photo {args.per_photo}; {platform.machine()} CPU, {os.cpu_count()} cores; "
        f"total {total:.0f} s"
    )
    if ours_kwargs:
        settings += f"; ours kwargs {ours_kwargs}"
    meta = {"settings": settings, "skipped": skipped, "notes": list(dict.fromkeys(notes))}
    (out_dir / "quality_meta.json").write_text(json.dumps(meta, indent=1))
    return _report(rows, contenders, meta, out_dir, args.results)


def render_markdown(rows: Sequence[Row], contenders: Sequence[Contender], meta: dict[str, Any]) -> str:
    """The Markdown report: summary, per-type tables, scorer sanity, target verdict, contenders."""
    learned = [c for c in contenders if c.kind == "learned"]
    contenders = [c for c in contenders if c.kind != "learned"]
    summaries = summarize(rows, contenders)
    scored = any(r.score_output is not None for r in rows)
    names = [c.name for c in contenders]
    _, verdict = target_verdict(summaries)
    notes = meta.get("notes", [])
    md = [
        "# Quality benchmark: blind restoration of degraded real photos",
        "",
        f"_Generated by `bench/quality.py` — {meta.get('settings', '')}._",
        "",
        "Means over degraded inputs against the undegraded photo (PSNR capped at 100 dB); "
        "'undegraded' columns: the photo itself as input (how much a contender changes a photo that "
        "needed nothing). Best non-baseline value in bold.",
        "",
        summary_table(summaries, scored),
        "",
        "## PSNR (dB) per degradation type",
        "",
        per_type_table(rows, names, "psnr", ".2f"),
        "",
        "## Mean ΔE00 per degradation type",
        "",
        per_type_table(rows, names, "de00", ".2f"),
        "",
        "## Natural scorer sanity",
        "",
        *(scorer_sanity(rows) or ["- not available"]),
        "",
        "## Target",
        "",
        *verdict,
        "",
        *learned_section(rows, contenders, learned, scored),
        "## Contenders",
        "",
        *[f"- `{c.name}`: {c.description}" for c in [*contenders, *learned]],
        *[f"- {s}" for s in meta.get("skipped", [])],
    ]
    if notes:
        md += ["", "## Notes", "", *[f"- {n}" for n in notes][:30]]
    return "\n".join(md) + "\n"


def _report(
    rows: Sequence[Row], contenders: Sequence[Contender], meta: dict[str, Any], out_dir: Path, results: str
) -> int:
    text = render_markdown(rows, contenders, meta)
    print(text)
    (out_dir / "quality.md").write_text(text)
    if results:
        res = Path(results)
        res.parent.mkdir(parents=True, exist_ok=True)
        res.write_text(text)
        print(f"tables written to {res}", file=sys.stderr)
    print(f"CSV, contact sheet and recipes in {out_dir}", file=sys.stderr)
    return 0


def read_csv(path: Path) -> list[Row]:
    """Rows back from :func:`write_csv` (to re-render a report without re-running)."""
    fields = Row.__dataclass_fields__
    rows = []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            kw: dict[str, Any] = {}
            for name, value in rec.items():
                if name not in fields:
                    continue
                if name in ("photo", "kind", "degradation", "contender", "error"):
                    kw[name] = value
                elif name == "case":
                    kw[name] = int(value)
                else:
                    kw[name] = float(value) if value != "" else None
            rows.append(Row(**kw))
    return rows


def report_from_csv(path: Path, out_dir: Path, results: str) -> int:
    rows = read_csv(path)
    registry = build_contenders()
    contenders = []
    for name in dict.fromkeys(r.contender for r in rows):
        contenders.append(registry.get(name) or Contender(name, c_identity, "(from CSV)"))
    meta_path = path.parent / "quality_meta.json"
    meta = (
        json.loads(meta_path.read_text()) if meta_path.exists() else {"settings": f"re-rendered from {path}"}
    )
    return _report(rows, contenders, meta, out_dir, results)


if __name__ == "__main__":
    raise SystemExit(main())
