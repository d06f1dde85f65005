"""Inspection: compare two images (difference, SSIM, thresholded-SSIM and ΔE00 maps) and show a haze map.

Everything works on ``(H, W, 3)`` uint8 / uint16 / float arrays or PIL images; the CLI command
``compare A B -o DIR`` and the webui tab's "Error maps" use the same functions.

* :func:`compare_images` -> :class:`Comparison`: PSNR, mean SSIM and mean/95th-percentile CIEDE2000
  of the pair, plus the per-pixel maps they come from (|B - A| averaged over channels, local SSIM
  averaged over channels, ΔE00).
* Renderers turn maps into uint8 RGB pictures: :func:`difference_picture` (black-red-yellow-white
  heat map scaled to the largest difference), :func:`ssim_picture` (white = identical local
  structure), :func:`threshold_picture` (B with red where local SSIM < threshold),
  :func:`delta_e_picture` (heat map, white = ΔE00 ≥ 10 by default).
* :func:`haze_map` is the refined dark-channel transmission ``t`` the dehaze filter uses
  (:func:`lib_enhancer.filters.local.transmission`): ``t`` near 1 is clear (near), small ``t`` is
  hazy (far). ``-ln t`` is a rough relative depth proxy where there is haze; on haze-free photos it
  mostly follows dark, saturated objects (the dark-channel prior), so read it as a proxy only.

Maps are computed at most at ``max_side`` pixels on the long side (SSIM maps of a 24 MP photo would
need gigabytes of float64); the statistics are those of the same downscaled pair and say so.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lib_enhancer import metrics

#: Default long side at which maps and statistics are computed (0 or None = full resolution).
DEFAULT_MAX_SIDE = 2048
#: Long side of the working copy the transmission is estimated on (the dehaze filter's working size).
HAZE_SIDE = 1024
#: ΔE00 drawn white in :func:`delta_e_picture` ("clearly different colour").
DELTA_E_WHITE = 10.0


@dataclass
class Comparison:
    """Statistics and per-pixel maps of a pair of images (A = reference, B = candidate)."""

    psnr: float  # dB, inf for identical images
    ssim: float  # mean SSIM (per channel, 5-px border skipped, as metrics.ssim)
    delta_e00: float  # mean CIEDE2000
    delta_e00_p95: float  # 95th percentile CIEDE2000
    size: tuple[int, int]  # (width, height) at which everything was computed
    original_size: tuple[int, int]  # (width, height) of A
    difference: np.ndarray = field(repr=False)  # (H, W) mean |B - A| over channels, in [0, 1]
    ssim_map: np.ndarray = field(repr=False)  # (H, W) local SSIM averaged over channels
    delta_e_map: np.ndarray = field(repr=False)  # (H, W) CIEDE2000

    def below(self, threshold: float) -> float:
        """Fraction of pixels whose local SSIM is below ``threshold``."""
        return float((self.ssim_map < threshold).mean())

    def stats(self, threshold: float | None = None) -> dict[str, Any]:
        """JSON-ready statistics (PSNR ``inf`` becomes ``None``)."""
        out: dict[str, Any] = {
            "psnr_db": None if not math.isfinite(self.psnr) else round(self.psnr, 4),
            "ssim": round(self.ssim, 6),
            "delta_e00_mean": round(self.delta_e00, 4),
            "delta_e00_p95": round(self.delta_e00_p95, 4),
            "max_abs_difference": round(float(self.difference.max()), 6),
            "computed_at": list(self.size),
            "original_size": list(self.original_size),
        }
        if threshold is not None:
            out["ssim_threshold"] = threshold
            out["fraction_below_threshold"] = round(self.below(threshold), 6)
        return out

    def summary(self) -> str:
        """One line: ``PSNR 23.41 dB · SSIM 0.9123 · mean ΔE00 3.21 (p95 7.80)``."""
        psnr = "∞" if not math.isfinite(self.psnr) else f"{self.psnr:.2f} dB"
        return (
            f"PSNR {psnr} · SSIM {self.ssim:.4f} · mean ΔE00 {self.delta_e00:.2f} "
            f"(p95 {self.delta_e00_p95:.2f})"
        )


# ---------------------------------------------------------------------------------------------
# Inputs


def as_float_rgb(image: Any) -> np.ndarray:
    """PIL image or ``(H, W, 3|4)`` uint8/uint16/float array -> float64 ``(H, W, 3)`` in [0, 1]."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = np.asarray(image).astype(np.float64) / 65535.0
            return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(arr.astype(np.float64), 0.0, 1.0)
    raise TypeError(f"unsupported image dtype {arr.dtype}: use uint8, uint16 or float in [0, 1]")


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Antialiased resize of a float RGB image (through 16-bit PIL channels, exact enough for maps)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    from PIL import Image

    channels = []
    for c in range(3):
        band = Image.fromarray(rgb[..., c].astype(np.float32), mode="F")
        channels.append(np.asarray(band.resize((width, height), Image.LANCZOS), dtype=np.float64))
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare_pair(
    a: Any, b: Any, *, max_side: int | None = DEFAULT_MAX_SIDE, resize: bool = False
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Both images as float RGB of the same size, at most ``max_side`` on the long edge.

    Raises:
        ValueError: the sizes differ and ``resize`` is false (``resize=True`` resamples B to A).
    """
    fa, fb = as_float_rgb(a), as_float_rgb(b)
    ha, wa = fa.shape[:2]
    hb, wb = fb.shape[:2]
    if (ha, wa) != (hb, wb) and not resize:
        raise ValueError(
            f"the images differ in size ({wa}x{ha} vs {wb}x{hb}); "
            "compare images of the same size, or resize B to A (--resize)"
        )
    w, h = _fit(wa, ha, max_side)
    return _resize(fa, w, h), _resize(fb, w, h), (wa, ha)


# ---------------------------------------------------------------------------------------------
# Comparison


def compare_images(
    a: Any, b: Any, *, max_side: int | None = DEFAULT_MAX_SIDE, resize: bool = False
) -> Comparison:
    """Compare candidate ``b`` with reference ``a`` (see the module docstring).

    Args:
        a, b: PIL images or ``(H, W, 3)`` arrays (uint8, uint16 or float in [0, 1]).
        max_side: long side at which maps and statistics are computed (``None``/0 = full size).
        resize: resample ``b`` to ``a``'s size when they differ (else a ``ValueError``).
    """
    fa, fb, original = prepare_pair(a, b, max_side=max_side, resize=resize)
    smap = metrics.ssim_map(fa, fb).mean(axis=-1)
    de = metrics.ciede2000(metrics.rgb_to_lab(fa), metrics.rgb_to_lab(fb))
    return Comparison(
        psnr=metrics.psnr(fa, fb),
        ssim=metrics.ssim(fa, fb),
        delta_e00=float(de.mean()),
        delta_e00_p95=float(np.percentile(de, 95)),
        size=(fa.shape[1], fa.shape[0]),
        original_size=original,
        difference=np.abs(fb - fa).mean(axis=-1),
        ssim_map=smap,
        delta_e_map=de,
    )


def haze_map(image: Any, *, max_side: int | None = HAZE_SIDE) -> np.ndarray:
    """Dark-channel transmission ``t`` in [0, 1], ``(H, W)`` at most ``max_side`` (1 = clear/near).

    The same estimate (patch and guided-filter radius relative to the image size) that the
    ``dehaze`` filter inverts; ``-ln t`` is a rough relative depth proxy.
    """
    import torch

    from lib_enhancer.filters.local import transmission

    rgb = as_float_rgb(image)
    w, h = _fit(rgb.shape[1], rgb.shape[0], max_side)
    rgb = _resize(rgb, w, h)
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().unsqueeze(0)
    with torch.no_grad():
        t, _ = transmission(x)
    return t[0, 0].double().numpy()


def depth_proxy(t: np.ndarray, t_min: float = 0.05) -> np.ndarray:
    """``-ln t`` normalised to [0, 1] by ``-ln t_min`` (0 = near/clear, 1 = far/dense haze)."""
    return np.clip(-np.log(np.clip(t, t_min, 1.0)) / -math.log(t_min), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Pictures (uint8 RGB)


def heat(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> black, red, yellow, white (uint8 ``(H, W, 3)``)."""
    v = np.clip(values, 0.0, 1.0) * 3.0
    rgb = np.stack([np.clip(v, 0, 1), np.clip(v - 1, 0, 1), np.clip(v - 2, 0, 1)], axis=-1)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def grey(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> grey uint8 ``(H, W, 3)``."""
    g = (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def difference_picture(comparison: Comparison) -> tuple[np.ndarray, str]:
    """Heat map of |B - A| scaled so the largest difference is white, and its caption."""
    top = max(float(comparison.difference.max()), 1.0 / 255.0)
    return heat(comparison.difference / top), f"difference, white = {top * 255:.1f}/255"


def ssim_picture(comparison: Comparison) -> tuple[np.ndarray, str]:
    """Local SSIM as grey levels (white = identical structure, black = SSIM ≤ 0)."""
    return grey(comparison.ssim_map), "local SSIM, white = identical structure"


def threshold_picture(comparison: Comparison, b: Any, threshold: float = 0.9) -> tuple[np.ndarray, str]:
    """Image B (at the comparison's size) tinted red where local SSIM < ``threshold``."""
    w, h = comparison.size
    fb = _resize(as_float_rgb(b), w, h)
    mask = comparison.ssim_map < threshold
    overlay = fb.copy()
    overlay[mask] = 0.4 * overlay[mask] + 0.6 * np.array([1.0, 0.0, 0.0])
    caption = f"red: SSIM < {threshold:.2f} ({100.0 * mask.mean():.1f}% of pixels)"
    return (overlay * 255.0 + 0.5).astype(np.uint8), caption


def delta_e_picture(comparison: Comparison, white: float = DELTA_E_WHITE) -> tuple[np.ndarray, str]:
    """Heat map of ΔE00 (white = ``white`` or more)."""
    return heat(comparison.delta_e_map / white), f"ΔE00, white ≥ {white:g}"


def haze_picture(t: np.ndarray) -> tuple[np.ndarray, str]:
    """Transmission as grey levels (white = clear/near, dark = hazy/far) and a caption."""
    depth = depth_proxy(t)
    return grey(t), (
        f"haze transmission t (white = clear/near, dark = hazy/far); mean t {float(t.mean()):.3f}, "
        f"mean depth proxy -ln t {float(-np.log(np.clip(t, 0.05, 1.0)).mean()):.3f} "
        f"({100.0 * float((depth > 0.5).mean()):.1f}% of pixels past half the range)"
    )


# ---------------------------------------------------------------------------------------------
# Files (the ``compare`` command)


MAP_FILES = ("difference", "ssim", "ssim_below", "delta_e", "haze_a", "haze_b")


def _save_png(path: Path, rgb: np.ndarray, overwrite: bool) -> None:
    from lib_enhancer.imageio import save_image

    save_image(path, rgb, overwrite=overwrite)


def write_comparison(
    a_path: str | os.PathLike[str],
    b_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    threshold: float = 0.9,
    max_side: int | None = DEFAULT_MAX_SIDE,
    resize: bool = False,
    overwrite: bool = False,
    prefix: str | None = None,
) -> tuple[Comparison, dict[str, Path]]:
    """Load two image files, write every map as PNG (and ``<prefix>stats.json``) into ``out_dir``.

    File names are ``<prefix><map>.png`` with ``prefix`` defaulting to ``<stemA>_vs_<stemB>_``;
    maps: :data:`MAP_FILES`. Existing files are kept unless ``overwrite``.

    Returns:
        The comparison and ``{map name: written path}`` (``"stats"`` for the JSON).
    """
    from lib_enhancer.imageio import load_image

    a_path, b_path = Path(a_path), Path(b_path)
    a = load_image(a_path).rgb
    b = load_image(b_path).rgb
    comparison = compare_images(a, b, max_side=max_side, resize=resize)
    out = Path(out_dir)
    name = prefix if prefix is not None else f"{a_path.stem}_vs_{b_path.stem}_"
    targets = {key: out / f"{name}{key}.png" for key in MAP_FILES}
    targets["stats"] = out / f"{name}stats.json"
    if not overwrite:
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing:
            raise FileExistsError(f"{', '.join(existing)} exist (use --overwrite to replace outputs)")
    out.mkdir(parents=True, exist_ok=True)
    w, h = comparison.size
    pictures: Mapping[str, tuple[np.ndarray, str]] = {
        "difference": difference_picture(comparison),
        "ssim": ssim_picture(comparison),
        "ssim_below": threshold_picture(comparison, b, threshold),
        "delta_e": delta_e_picture(comparison),
        "haze_a": haze_picture(haze_map(a, max_side=max(w, h))),
        "haze_b": haze_picture(haze_map(b, max_side=max(w, h))),
    }
    captions = {}
    for key, (rgb, caption) in pictures.items():
        _save_png(targets[key], rgb, overwrite=True)
        captions[key] = caption
    stats = {"a": str(a_path), "b": str(b_path), **comparison.stats(threshold), "maps": captions}
    tmp = targets["stats"].with_name(f".{targets['stats'].name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, targets["stats"])
    finally:
        tmp.unlink(missing_ok=True)
    return comparison, targets
