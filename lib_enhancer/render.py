"""Apply a recipe at full resolution, fast and without float copies of the whole image.

* The **global** stage is folded into a 3-D LUT (PIL's C ``Color3DLUT`` for 8-bit, a torch
  trilinear lookup for 16-bit), applied strip by strip on two threads.
* The **local** stages (pre: dehaze; post: detail, local tone, sharpen) run on a working copy of at
  most :data:`WORK_SIDE` pixels on the long side. What they did is captured as a smooth per-pixel,
  per-channel affine transform ``out = a·in + b`` (guided-filter regression, He et al.), whose
  coefficient maps are upsampled bilinearly strip by strip and applied to the full-resolution pixels
  — the "process at low resolution, upsample the guidance" scheme of the fast guided filter and
  HDRNet. Images up to the working size are filtered directly.

Peak extra memory is a few strips of float32 plus the working copy, whatever the image size.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from lib_enhancer.filters.local import box_filter
from lib_enhancer.filters.pipeline import apply_filters
from lib_enhancer.lut import DEFAULT_LUT_SIZE, apply_lut_pil, apply_lut_torch, build_lut, lut_max_error
from lib_enhancer.recipe import Recipe

Tensor = torch.Tensor

WORK_SIDE = 1024  # local stages run at most at this long side
STRIP_PIXELS = 1 << 21  # pixels per strip (~2 MP: 24 MB of float32 RGB)
AFFINE_EPS = 1e-4  # regulariser of the affine fit, pulling the slope towards 1 in flat areas


def _max_value(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    raise TypeError(f"image array must be uint8 or uint16, got {dtype}")


def check_array(rgb: np.ndarray) -> None:
    """Raise unless ``rgb`` is an ``(H, W, 3)`` uint8/uint16 array."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise ValueError(f"image array must have shape (H, W, 3), got {shape}")
    _max_value(rgb.dtype)
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"image is empty: {rgb.shape}")


def array_to_tensor(rgb: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(H, W, 3)`` uint8/uint16 -> ``(1, 3, H, W)`` float in [0, 1]."""
    scale = _max_value(rgb.dtype)
    arr = np.ascontiguousarray(rgb)
    if not arr.flags.writeable:  # torch.from_numpy wants a writable buffer; it is only read here
        arr = arr.copy()
    return torch.from_numpy(arr).to(dtype).div_(scale).permute(2, 0, 1).unsqueeze(0)


def tensor_to_array(image: Tensor, dtype: np.dtype) -> np.ndarray:
    """``(1, 3, H, W)`` or ``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8/uint16 (rounded)."""
    scale = _max_value(np.dtype(dtype))
    x = image.detach().reshape(3, *image.shape[-2:]).permute(1, 2, 0)
    return x.clamp(0.0, 1.0).mul(scale).round_().to(torch.int32).numpy().astype(dtype)


def fitted_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """Size with the same aspect ratio and a long side of at most ``long_side``."""
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def downscale(rgb: np.ndarray, long_side: int) -> Tensor:
    """Antialiased downscale of an ``(H, W, 3)`` array to a ``(1, 3, h, w)`` float tensor.

    Integer block means strip by strip (no float copy of the whole image), then an antialiased
    bilinear resize of the small result to the exact size.
    """
    check_array(rgb)
    h_full, w_full = rgb.shape[:2]
    h, w = fitted_size(h_full, w_full, long_side)
    if (h, w) == (h_full, w_full):
        return array_to_tensor(rgb)
    k = max(1, int(min(h_full / h, w_full / w) // 2))
    if k > 1:
        hb, wb = h_full // k, w_full // k
        blocks = np.empty((hb, wb, 3), dtype=np.float32)
        rows = max(1, STRIP_PIXELS // (w_full * k))
        for i0 in range(0, hb, rows):
            i1 = min(hb, i0 + rows)
            part = rgb[i0 * k : i1 * k, : wb * k].astype(np.float32)
            blocks[i0:i1] = part.reshape(i1 - i0, k, wb, k, 3).mean(axis=(1, 3))
        small = torch.from_numpy(blocks).div_(_max_value(rgb.dtype)).permute(2, 0, 1).unsqueeze(0)
    else:
        small = array_to_tensor(rgb)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def fit_affine(src: Tensor, dst: Tensor, radius: int, eps: float = AFFINE_EPS) -> Tensor:
    """Per-channel local affine model ``dst ≈ a·src + b`` (guided-filter regression).

    The slope is regularised towards 1 (not 0), so texture finer than the working resolution is
    kept as it is in flat areas. Returns ``(1, 6, h, w)``: ``a`` (3 channels) then ``b``.
    """
    mean_s = box_filter(src, radius)
    mean_d = box_filter(dst, radius)
    cov = box_filter(src * dst, radius) - mean_s * mean_d
    var = box_filter(src * src, radius) - mean_s * mean_s
    a = (cov + eps) / (var + eps)
    b = mean_d - a * mean_s
    return torch.cat([box_filter(a, radius), box_filter(b, radius)], dim=1)


def _upsample_rows(maps: Tensor, y0: int, y1: int, height: int, width: int) -> Tensor:
    """Rows ``y0:y1`` of ``F.interpolate(maps, (height, width), bilinear)``, computed for that strip only."""
    h = maps.shape[-2]
    ys = (torch.arange(y0, y1, dtype=torch.float64) + 0.5) * (h / height) - 0.5
    ys = ys.clamp(0.0, h - 1)
    i0 = ys.floor().long()
    i1 = (i0 + 1).clamp(max=h - 1)
    wy = (ys - i0).to(maps.dtype).view(1, 1, -1, 1)
    rows = maps[:, :, i0] * (1 - wy) + maps[:, :, i1] * wy
    return F.interpolate(rows, size=(y1 - y0, width), mode="bilinear", align_corners=False)


def _apply_affine(strip: Tensor, maps: Tensor, y0: int, y1: int, height: int, width: int) -> Tensor:
    up = _upsample_rows(maps, y0, y1, height, width)
    return strip * up[:, :3] + up[:, 3:]


def _affine_radius(height: int, width: int) -> int:
    return max(1, round(min(height, width) / 512))


def _pixel_sample(rgb: np.ndarray, count: int = 16384, seed: int = 0) -> np.ndarray | None:
    """A seeded sample of an 8-bit image's own colours, ``(count, 3)`` (None for 16-bit images)."""
    if rgb.dtype != np.uint8:
        return None
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, rgb.shape[0], count)
    xs = rng.integers(0, rgb.shape[1], count)
    return rgb[ys, xs]


class _Plan:
    """What one recipe needs at one image size: LUT, affine maps of the local stages."""

    def __init__(self, rgb: np.ndarray, recipe: Recipe, work_side: int, lut_size: int) -> None:
        self.pre = recipe.stage_params("pre")
        self.glob = recipe.stage_params("global")
        self.post = recipe.stage_params("post")
        self.table = build_lut(self.glob, lut_size) if self.glob else None
        # A steep curve near black (strong gamma) can defeat trilinear interpolation on a uniform
        # lattice; then the global stage is computed exactly instead (slower, never wrong).
        self.lut_exact = self.table is None or (
            lut_max_error(self.table, self.glob, _pixel_sample(rgb)) <= 1.0 / 255.0 + 1e-9
        )
        self.pre_maps: Tensor | None = None
        self.post_maps: Tensor | None = None
        if not (self.pre or self.post):
            return
        with torch.no_grad():
            work = downscale(rgb, work_side)
            radius = _affine_radius(*work.shape[-2:])
            if self.pre:
                filtered = apply_filters(work, self.pre, stages=("pre",), clamp=False)
                self.pre_maps = fit_affine(work, filtered, radius)
                work = filtered.clamp(0.0, 1.0)
            if self.post:
                graded = apply_filters(work, self.glob, stages=("global",)) if self.glob else work
                filtered = apply_filters(graded, self.post, stages=("post",), clamp=False)
                self.post_maps = fit_affine(graded, filtered, radius)


def _render_strip(rgb: np.ndarray, plan: _Plan, y0: int, y1: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    part = rgb[y0:y1]
    eight_bit = rgb.dtype == np.uint8
    if (
        plan.pre_maps is None
        and plan.post_maps is None
        and eight_bit
        and plan.table is not None
        and plan.lut_exact
    ):
        return apply_lut_pil(part, plan.table)
    with torch.no_grad():
        x = array_to_tensor(part)
        if plan.pre_maps is not None:
            x = _apply_affine(x, plan.pre_maps, y0, y1, height, width).clamp_(0.0, 1.0)
        if plan.table is not None and not plan.lut_exact:
            x = apply_filters(x, plan.glob, stages=("global",))
        elif plan.table is not None:
            if eight_bit:
                x = array_to_tensor(apply_lut_pil(tensor_to_array(x, np.uint8), plan.table))
            else:
                x = apply_lut_torch(x, plan.table)
        if plan.post_maps is not None:
            x = _apply_affine(x, plan.post_maps, y0, y1, height, width)
        return tensor_to_array(x, rgb.dtype)


def render(
    rgb: np.ndarray,
    recipe: Recipe,
    *,
    work_side: int = WORK_SIDE,
    lut_size: int = DEFAULT_LUT_SIZE,
    threads: int | None = None,
) -> np.ndarray:
    """Apply ``recipe`` to an ``(H, W, 3)`` uint8/uint16 array at full resolution (new array).

    Images whose long side is at most ``work_side`` are filtered directly (exact); larger ones use
    the LUT + guided-affine path described in the module docstring.
    """
    check_array(rgb)
    if recipe.is_identity:
        return rgb.copy()
    height, width = rgb.shape[:2]
    if max(height, width) <= work_side:
        with torch.no_grad():
            out = apply_filters(array_to_tensor(rgb), recipe.params)
        return tensor_to_array(out, rgb.dtype)
    plan = _Plan(rgb, recipe, work_side, lut_size)
    out = np.empty_like(rgb)
    rows = max(1, STRIP_PIXELS // width)
    bounds = [(y0, min(height, y0 + rows)) for y0 in range(0, height, rows)]
    workers = threads or min(4, os.cpu_count() or 1)

    def run(span: tuple[int, int]) -> None:
        out[span[0] : span[1]] = _render_strip(rgb, plan, *span)

    if workers > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, bounds))
    else:
        for span in bounds:
            run(span)
    return out


def render_tensor(image: Tensor, recipe: Recipe) -> Tensor:
    """Apply ``recipe`` directly to a float ``(*, 3, H, W)`` tensor (exact, differentiable)."""
    return apply_filters(image, recipe.params)
