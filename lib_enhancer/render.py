"""Apply a recipe at full resolution, fast and without float copies of the whole image.

* The **global** stage (per-pixel colour) becomes one colour map, applied strip by strip on two
  threads (PIL's C code releases the GIL): per-channel curves (PIL's ``point``, a table lookup) when
  the chain does not mix channels, else a 3-D LUT (PIL's ``Color3DLUT`` for 8-bit, a torch trilinear
  lookup for 16-bit; for 8-bit, the pixels in a narrow band of levels around an auto stretch's
  clipping point, a kink no lattice follows, are computed exactly), else — where neither is within
  1/255 of the exact chain — the exact filters.
* The **creative** stage comes last: its per-pixel colour filters fold into the same map when no
  local filter runs after the global stage (else into a second map), and the spatial ``vignette``
  is a gain applied strip by strip.
* The **local** stages (pre: dehaze; post: detail, local tone, sharpen) run on a working copy of at
  most :data:`WORK_SIDE` pixels on the long side. What they did is captured as a smooth per-pixel,
  per-channel affine transform ``out = a·in + b`` (guided-filter regression, He et al.), whose
  coefficient maps are upsampled bilinearly strip by strip and applied to the full-resolution pixels
  — the "process at low resolution, upsample the guidance" scheme of the fast guided filter and
  HDRNet. Images up to the working size are filtered directly, but for 8-bit images with only
  per-pixel filters of at least :data:`COLOUR_MAP_MIN_PIXELS`, which the colour map renders faster.

Peak extra memory is a few strips of float32 plus the working copy, whatever the image size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lib_enhancer.filters.auto import ANALYSIS_SIDE, AutoTables
from lib_enhancer.filters.creative import vignette_gain
from lib_enhancer.filters.local import box_filter
from lib_enhancer.filters.pipeline import (
    AUTO_KEY,
    SPATIAL_CREATIVE,
    apply_filters,
    auto_of,
    is_per_channel,
)
from lib_enhancer.lut import (
    DEFAULT_LUT_SIZE,
    apply_lut_pil,
    apply_lut_torch,
    build_lut,
    chain_values,
    check_colours,
    exact_colours,
    for_each_strip,
    max_level_error,
)
from lib_enhancer.params import AUTO_NAMES, Stage
from lib_enhancer.recipe import Recipe

Tensor = torch.Tensor

WORK_SIDE = 1024  # local stages run at most at this long side
STRIP_PIXELS = 1 << 21  # pixels per strip (~2 MP: 24 MB of float32 RGB)
AFFINE_EPS = 1e-4  # regulariser of the affine fit, pulling the slope towards 1 in flat areas
COARSE_LUT_SIZES = (17, 33)  # 8-bit: lattices tried before the full-size LUT (the first that passes is used)
PIL_REDUCE_MIN = 2  # block size from which 8-bit block means use PIL's reduce (means rounded to 8 bits)
QUICK_PROBES = 512  # colours tried first when telling whether a chain is separable
KINK_BANDS = (1.0, 2.0, 3.0, 5.0, 8.0)  # levels either side of an auto stretch's clipping point tried
# Lattices tried when a clipping point's band would leave more than KINK_SEARCH_PIXELS to compute
# exactly. On some size the cells happen to fall so that trilinear interpolation follows the kink
# within 1/255 with no band: one of 18-28 did for 9 of the 10 held-out `predict` recipes with a band
# (which computed a median 3 % and up to 43 % of their pixels exactly). Trying them all costs ~30 ms
# (builds of 1.7-3.3 ms plus checks), what ~100k band pixels cost on this CPU (0.1-0.4 µs each in
# the threaded render, on top of ~10 ms per MP for finding them); the band's cost grows with the
# image, the search's does not.
KINK_SEARCH_SIZES = tuple(range(18, 29))
KINK_SEARCH_PIXELS = 100_000
# An 8-bit image small enough to filter directly, with a per-pixel recipe, goes through the colour
# map from this many pixels: the exact chain costs ~0.1 µs a pixel on this CPU (~25 ms for the
# predictor's recipes on a 0.25 MP photo), planning a colour map ~5-15 ms and applying it ~1-20 ns
# a pixel.
COLOUR_MAP_MIN_PIXELS = 1 << 17


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

    Integer block means (exact integer sums strip by strip, see :func:`_block_means`; for 8-bit images
    reduced by :data:`PIL_REDUCE_MIN` or more, PIL's C ``reduce``, whose means are rounded to 8 bits),
    then an antialiased bilinear resize of the small result to the exact size.
    """
    check_array(rgb)
    h_full, w_full = rgb.shape[:2]
    h, w = fitted_size(h_full, w_full, long_side)
    if (h, w) == (h_full, w_full):
        return array_to_tensor(rgb)
    k = max(1, int(min(h_full / h, w_full / w) // 2))
    if k >= PIL_REDUCE_MIN and rgb.dtype == np.uint8:  # PIL's C box reduction, 2-15x faster
        from PIL import Image

        hb, wb = h_full // k, w_full // k
        reduced = Image.fromarray(np.ascontiguousarray(rgb), "RGB").reduce(k, box=(0, 0, wb * k, hb * k))
        small = array_to_tensor(np.asarray(reduced))
    elif k > 1:
        small = (
            torch.from_numpy(_block_means(rgb, k)).div_(_max_value(rgb.dtype)).permute(2, 0, 1).unsqueeze(0)
        )
    else:
        small = array_to_tensor(rgb)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _block_means(rgb: np.ndarray, k: int) -> np.ndarray:
    """Exact means of the ``k × k`` blocks of ``rgb`` as float32 ``(H // k, W // k, 3)``.

    Integer sums of strided row then column slices (``2k`` adds per strip, no float copy of the
    image and no reshape of it: 6-8x faster than a float reshape-mean), divided once at the end.
    """
    hb, wb = rgb.shape[0] // k, rgb.shape[1] // k
    acc_type = np.uint32 if k * k * int(_max_value(rgb.dtype)) < 2**32 else np.uint64
    out = np.empty((hb, wb, 3), dtype=np.float32)
    rows = max(1, STRIP_PIXELS // (rgb.shape[1] * k))
    for i0 in range(0, hb, rows):
        i1 = min(hb, i0 + rows)
        strip = rgb[i0 * k : i1 * k, : wb * k]
        by_rows = strip[0::k].astype(acc_type)
        for di in range(1, k):
            by_rows += strip[di::k]
        sums = by_rows[:, 0::k].copy()
        for dj in range(1, k):
            sums += by_rows[:, dj::k]
        np.multiply(sums, np.float32(1.0 / (k * k)), out=out[i0:i1], casting="unsafe")
    return out


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


def _pixel_sample(rgb: np.ndarray, count: int = 16384) -> np.ndarray | None:
    """At least about ``count`` of an 8-bit image's own colours on a regular grid (the grid step is
    rounded down: ~20k for ``count`` 16384 at 1 MP), ``(N, 3)`` (None for 16-bit).

    A strided view and one small copy (~0.05 ms at 1 MP; random gathers of as many took ~1.7 ms).
    """
    if rgb.dtype != np.uint8:
        return None
    h, w = rgb.shape[:2]
    step = max(1, int((h * w / count) ** 0.5))
    return np.ascontiguousarray(rgb[step // 2 :: step, step // 2 :: step]).reshape(-1, 3)


def _exact(x: Tensor, params: dict[str, float], stages: tuple[Stage, ...]) -> Tensor:
    return apply_filters(x, params, stages=stages)


def separable_curves(
    params: Mapping[str, float], stages: tuple[Stage, ...], sample: np.ndarray | None = None
) -> np.ndarray | None:
    """Per-channel 8-bit curves ``(3, 256)`` of a per-pixel chain, or ``None`` when it mixes channels.

    The curves are the exact chain on the grey ramp. The chain counts as separable when the curves
    reproduce it (rounded to 8 bits) within 1/255 on :func:`~lib_enhancer.lut.probe_colours` and
    ``sample`` (a few thousand of the image's own colours) — exposure, white balance, levels,
    brightness, tone curve, gamma and the per-channel creative filters are; contrast, saturation and
    friends are not. A chain that mixes channels is usually told by the first few hundred colours.
    """
    if is_per_channel(params, stages):
        return _ramp_curves(params, stages)
    curves = exact_colours(_grey_ramp(), params, stages)
    colours = check_colours(sample)
    # random colours first (the image's own, or the probes' random tail), then the rest
    for probe in (colours[-QUICK_PROBES:], colours[:-QUICK_PROBES]):
        if _curves_if_separable(curves, probe, exact_colours(probe, params, stages)) is None:
            return None
    return np.ascontiguousarray(curves.T)


def _grey_ramp() -> np.ndarray:
    return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)


def _ramp_curves(params: Mapping[str, float], stages: tuple[Stage, ...]) -> np.ndarray:
    """The chain on the grey ramp as per-channel 8-bit curves ``(3, 256)``: the whole chain, exactly,
    when every step maps each channel alone (:func:`~lib_enhancer.filters.pipeline.is_per_channel`;
    tested for each such step), so nothing needs checking."""
    return np.ascontiguousarray(exact_colours(_grey_ramp(), params, stages).T)


def _curves_if_separable(
    ramp_values: np.ndarray, colours: np.ndarray, exact: np.ndarray
) -> np.ndarray | None:
    """The chain's values on the grey ramp ``(256, 3)`` as per-channel curves ``(3, 256)`` when they
    give ``colours`` their ``exact`` values within 1/255, else ``None``."""
    via = np.stack([ramp_values[colours[:, c], c] for c in range(3)], axis=1)
    return np.ascontiguousarray(ramp_values.T) if max_level_error(via, exact) <= 1 else None


def apply_curves_pil(rgb8: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Per-channel 8-bit curves ``(3, 256)`` on an ``(H, W, 3)`` uint8 array (PIL's C ``point``)."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb8, "RGB").point(curves.reshape(-1).tolist()))


def clip_crossings(params: Mapping[str, Any], stages: tuple[Stage, ...]) -> list[tuple[int, float]]:
    """Where the photo-adaptive ``pre`` filters (auto contrast, auto levels: an affine stretch) carry
    a channel across 0 or 1: ``(channel, position in 8-bit levels)`` pairs.

    There the chain clips (e.g. the linear-light conversion clamps negative values): a kink that no
    uniform lattice puts on a node, so a LUT's trilinear interpolation cannot follow it within 1/255
    in the lattice cell around it. Empty when the chain has no such filter.
    """
    if "pre" not in stages or not any(float(params.get(n, 0.0)) for n in AUTO_NAMES):
        return []
    pre = {n: v for n, v in params.items() if n in AUTO_NAMES or n == AUTO_KEY}
    ramp = torch.arange(256, dtype=torch.float64).div_(255.0).expand(3, 256).reshape(3, 256, 1)
    with torch.no_grad():
        values = apply_filters(ramp, pre, stages=("pre",), clamp=False).reshape(3, 256).numpy()
    found = []
    for bound in (0.0, 1.0):
        side = values >= bound
        for c, k in zip(*np.nonzero(side[:, 1:] != side[:, :-1]), strict=True):  # crossing in k..k+1
            found.append((int(c), k + float((bound - values[c, k]) / (values[c, k + 1] - values[c, k]))))
    return found


def kink_levels(crossings: Sequence[tuple[int, float]], size: int, band: float) -> np.ndarray:
    """``(3, 256)`` bool: per channel, the 8-bit levels within ``band`` levels of a crossing (see
    :func:`clip_crossings`) and inside the cell of a ``size``³ lattice that holds it (the only cell
    whose interpolation spans the kink)."""
    levels = np.arange(256)
    nodes = levels * (size - 1) / 255.0  # lattice coordinate of each level
    flags = np.zeros((3, 256), dtype=bool)
    for c, at in crossings:
        cell = min(int(at * (size - 1) / 255.0), size - 2)
        in_cell = (nodes >= cell) & (nodes <= cell + 1)
        flags[c] |= in_cell & (np.abs(levels - at) <= band)
    return flags


def in_band(flags: np.ndarray, rgb8: np.ndarray) -> np.ndarray:
    """Where 8-bit colours ``rgb8`` ``(..., 3)`` have a channel whose level ``flags`` ``(3, 256)``
    marks (see :func:`kink_levels`): bool ``(...)``."""
    return (flags[0][rgb8[..., 0]] | flags[1][rgb8[..., 1]] | flags[2][rgb8[..., 2]]).astype(bool)


class _ColourMap:
    """A per-pixel colour transform (the global stage, and the creative colour filters), applied by
    the fastest path that stays within 1/255 of the exact chain: per-channel curves when the chain is
    separable (8-bit), else the 3-D LUT (8-bit: with the pixels in the narrowest band of levels around
    an auto stretch's clipping point that brings the rest within 1/255 computed exactly, see
    :func:`kink_levels` — or, where that band would hold many pixels, a lattice size that needs no
    band, see :data:`KINK_SEARCH_SIZES`), else the exact filters (slower, never wrong)."""

    def __init__(
        self,
        params: dict[str, float],
        stages: tuple[Stage, ...],
        sample: np.ndarray | None,
        lut_size: int,
        eight_bit: bool,
        pixels: int = 0,
    ) -> None:
        self.params = params
        self.stages = stages
        self.curves: np.ndarray | None = None
        self.table: np.ndarray | None = None
        self.kinks: np.ndarray | None = None  # (3, 256) uint8 flags of the levels computed exactly
        self._band_table: list[int] | None = None  # the flags as PIL point tables (band_pixels)
        # 8-bit: the coarse lattices first (17³ is 7x cheaper to build than 33³ and enough for 6 of
        # the predictor's 21 recipes on the held-out photos; applying costs the same), finer ones if
        # needed. A steep curve near black (strong gamma) or a step (posterize) can defeat trilinear
        # interpolation on any uniform lattice; then the exact chain is used.
        sizes = sorted({min(s, lut_size) for s in (*COARSE_LUT_SIZES, lut_size)} if eight_bit else {lut_size})
        if eight_bit and is_per_channel(params, stages):
            self.curves = _ramp_curves(params, stages)
            return
        colours = check_colours(sample)
        # one pass of the chain: the grey ramp (the curves, 8-bit), the check colours and the
        # first lattice
        ramp = _grey_ramp() if eight_bit else np.zeros((0, 3), np.uint8)
        values, first_table = chain_values(params, stages, np.concatenate([ramp, colours]), sizes[0])
        assert values is not None and first_table is not None
        exact = values[len(ramp) :]
        if eight_bit:
            self.curves = _curves_if_separable(values[: len(ramp)], colours, exact)
            if self.curves is not None:
                return
        crossings = clip_crossings(params, stages) if eight_bit else []

        def lattice(size: int) -> tuple[np.ndarray, np.ndarray, bool]:
            """The ``size``³ LUT, what it gives the check colours, and whether that is within 1/255."""
            table = first_table if size == sizes[0] else build_lut(params, size, stages)
            via = apply_lut_pil(colours.reshape(1, -1, 3), table).reshape(-1, 3)
            return table, via, max_level_error(via, exact) <= 1

        for size in sizes:
            table, via, fits = lattice(size)
            if fits:
                self.table = table
                break
            # an auto stretch's clipping point: the narrowest band of levels around it that,
            # computed exactly, brings the rest within 1/255 (not on the smallest lattice, whose
            # wider cells would leave more pixels to compute exactly than a finer one)
            for band in KINK_BANDS if crossings and size > COARSE_LUT_SIZES[0] else ():
                flags = kink_levels(crossings, size, band)
                exactly = in_band(flags, colours)
                if max_level_error(np.where(exactly[:, None], exact, via), exact) <= 1:
                    self.table, self.kinks = table, flags.astype(np.uint8)
                    break
            if self.table is not None:
                break
        if self.kinks is not None and sample is not None:
            flagged = in_band(self.kinks, sample).mean() * pixels  # pixels the band would compute exactly
            for size in KINK_SEARCH_SIZES if flagged > KINK_SEARCH_PIXELS else ():
                table, _, fits = lattice(size)
                if fits:
                    self.table, self.kinks = table, None
                    break

    @property
    def kind(self) -> str:
        return "curves" if self.curves is not None else "lut" if self.table is not None else "exact"

    def _lut_array(
        self, rgb8: np.ndarray, band: list[np.ndarray] | None = None, offset: int = 0
    ) -> np.ndarray:
        assert self.table is not None
        out = apply_lut_pil(rgb8, self.table)
        where = self.band_pixels(rgb8)
        if not where.size:
            return out
        if band is not None:  # left to the caller, with the other strips' (see render)
            band.append(where + offset)
            return out
        out = out.copy()
        self.fill_exact(rgb8, out, where)
        return out

    def band_pixels(self, rgb8: np.ndarray) -> np.ndarray:
        """Flat indices of the pixels of ``rgb8`` in the clipping band, which the LUT leaves to the
        exact chain (:meth:`fill_exact`); empty without a band. PIL's C code flags them: the band's
        levels map to 255 per channel and the grey conversion is non-zero wherever one is."""
        if self.kinks is None:
            return np.zeros(0, dtype=np.intp)
        from PIL import Image

        if self._band_table is None:
            self._band_table = (self.kinks.astype(np.uint8) * 255).reshape(-1).tolist()
        flags = Image.fromarray(np.ascontiguousarray(rgb8), "RGB").point(self._band_table).convert("L")
        return np.flatnonzero(np.asarray(flags))

    def fill_exact(self, rgb8: np.ndarray, out: np.ndarray, where: np.ndarray) -> None:
        """Set the pixels ``where`` (flat indices) of ``out`` to the exact chain of ``rgb8``'s."""
        out.reshape(-1, 3)[where] = exact_colours(rgb8.reshape(-1, 3)[where], self.params, self.stages)

    def array(self, rgb8: np.ndarray, band: list[np.ndarray] | None = None, offset: int = 0) -> np.ndarray:
        """8-bit ``(h, w, 3)`` in, 8-bit out. ``band``: a LUT's clipping-band pixels are not computed
        here but their flat indices (plus ``offset``) appended, for :meth:`fill_exact` later."""
        if self.curves is not None:
            return apply_curves_pil(rgb8, self.curves)
        if self.table is not None:
            return self._lut_array(rgb8, band, offset)
        return tensor_to_array(_exact(array_to_tensor(rgb8), self.params, self.stages), np.uint8)

    def tensor(self, x: Tensor, eight_bit: bool) -> Tensor:
        """Float ``(1, 3, h, w)`` in, float out (an 8-bit image goes through 8-bit values, as stored)."""
        if eight_bit and self.kind != "exact":
            return array_to_tensor(self.array(tensor_to_array(x, np.uint8)))
        if not eight_bit and self.table is not None:
            return apply_lut_torch(x, self.table)
        return _exact(x, self.params, self.stages)


def _vignette_array(rgb: np.ndarray, amount: float, rows: tuple[int, int], height: int) -> np.ndarray:
    """The vignette on rows ``rows`` of an ``height``-row integer image (new array, rounded)."""
    gain = vignette_gain(height, rgb.shape[1], amount, rows=rows).numpy()
    out = np.multiply(rgb, gain[:, :, None], dtype=np.float32)
    np.rint(out, out=out)
    np.clip(out, 0.0, _max_value(rgb.dtype), out=out)
    return out.astype(rgb.dtype)


def auto_curves(rgb: np.ndarray, work_side: int = WORK_SIDE) -> AutoTables:
    """The auto filters' per-channel curves as :func:`render` reads them from ``rgb`` (for a recipe
    without dehaze): from the whole image when it is filtered directly, else from its copy
    downscaled to ``ANALYSIS_SIDE``."""
    with torch.no_grad():
        if max(rgb.shape[:2]) <= work_side:
            return auto_of(array_to_tensor(rgb))
        return auto_of(downscale(rgb, ANALYSIS_SIDE))


class _Plan:
    """What one recipe needs at one image size: colour maps, vignette, affine maps of the local stages.

    Order (the table's): pre (affine) -> global colour -> post (affine) -> creative colour ->
    vignette. Without a post stage the global and creative colour filters fold into one map.
    """

    def __init__(self, rgb: np.ndarray, recipe: Recipe, work_side: int, lut_size: int) -> None:
        self.pre = recipe.stage_params("pre")
        self.glob: dict[str, Any] = recipe.stage_params("global")
        self.post = recipe.stage_params("post")
        glob_stages: tuple[Stage, ...] = ("global",)
        if "dehaze" not in self.pre and any(n in self.pre for n in AUTO_NAMES):
            # the auto filters alone are per-pixel curves of the photo's histogram: read the curves
            # from the whole image (as the preview did) and fold them into the colour map
            auto = {n: self.pre.pop(n) for n in AUTO_NAMES if n in self.pre}
            auto[AUTO_KEY] = auto_curves(rgb, work_side)
            self.glob = {**auto, **self.glob}
            glob_stages = ("pre", "global")
        look = recipe.stage_params("creative")
        self.vignette = look.pop(SPATIAL_CREATIVE, 0.0)
        eight_bit = rgb.dtype == np.uint8
        pixels = rgb.shape[0] * rgb.shape[1]
        sample = _pixel_sample(rgb)
        self.colour: _ColourMap | None = None
        self.look: _ColourMap | None = None
        if self.post:
            if self.glob:
                self.colour = _ColourMap(self.glob, glob_stages, sample, lut_size, eight_bit, pixels)
            if look:
                self.look = _ColourMap(look, ("creative",), sample, lut_size, eight_bit, pixels)
        elif self.glob or look:
            both = {**self.glob, **look}
            self.colour = _ColourMap(both, (*glob_stages, "creative"), sample, lut_size, eight_bit, pixels)
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
                graded = apply_filters(work, self.glob, stages=glob_stages) if self.glob else work
                filtered = apply_filters(graded, self.post, stages=("post",), clamp=False)
                self.post_maps = fit_affine(graded, filtered, radius)


def _render_strip(
    rgb: np.ndarray, plan: _Plan, y0: int, y1: int, band: list[np.ndarray] | None = None
) -> np.ndarray:
    """Rows ``y0:y1`` rendered. ``band``: where a colour-only 8-bit render without vignette leaves
    the pixels of a LUT's clipping band to the caller (their flat indices in the whole image are
    appended; :func:`render` computes them in one pass of the exact chain after the strips)."""
    height, width = rgb.shape[:2]
    part = rgb[y0:y1]
    eight_bit = rgb.dtype == np.uint8
    if plan.pre_maps is None and plan.post_maps is None and (eight_bit or plan.colour is None):
        # colour only: 8-bit in, 8-bit out, no float copy
        if plan.colour is None:
            out = part
        else:  # a vignette needs the band's pixels before it
            out = plan.colour.array(part, None if plan.vignette else band, y0 * width)
        return _vignette_array(out, plan.vignette, (y0, y1), height) if plan.vignette else out
    with torch.no_grad():
        x = array_to_tensor(part)
        if plan.pre_maps is not None:
            x = _apply_affine(x, plan.pre_maps, y0, y1, height, width).clamp_(0.0, 1.0)
        if plan.colour is not None:
            x = plan.colour.tensor(x, eight_bit)
        if plan.post_maps is not None:
            x = _apply_affine(x, plan.post_maps, y0, y1, height, width)
        if plan.look is not None:
            x = plan.look.tensor(x.clamp(0.0, 1.0), eight_bit)
        if plan.vignette:
            x = x.clamp(0.0, 1.0) * vignette_gain(height, width, plan.vignette, rows=(y0, y1), like=x)
        return tensor_to_array(x, rgb.dtype)


def _colour_map_pays(rgb: np.ndarray, recipe: Recipe) -> bool:
    """Whether an image small enough to filter directly is rendered faster, within 1/255, by the
    colour map: an 8-bit image of at least :data:`COLOUR_MAP_MIN_PIXELS` and a recipe whose filters
    are all per-pixel (no local stage; the auto filters are per-pixel curves of the whole image)."""
    if rgb.dtype != np.uint8 or rgb.shape[0] * rgb.shape[1] < COLOUR_MAP_MIN_PIXELS:
        return False
    return not recipe.stage_params("post") and set(recipe.stage_params("pre")) <= set(AUTO_NAMES)


def render(
    rgb: np.ndarray,
    recipe: Recipe,
    *,
    work_side: int = WORK_SIDE,
    lut_size: int = DEFAULT_LUT_SIZE,
    threads: int | None = None,
) -> np.ndarray:
    """Apply ``recipe`` to an ``(H, W, 3)`` uint8/uint16 array at full resolution (new array).

    Images whose long side is at most ``work_side`` are filtered directly (exact) — unless the
    colour map is faster (8-bit, at least :data:`COLOUR_MAP_MIN_PIXELS`, per-pixel filters only: then
    within 1/255 of the exact chain); larger ones use the LUT + guided-affine path described in the
    module docstring.
    """
    check_array(rgb)
    if recipe.is_identity:
        return rgb.copy()
    height, width = rgb.shape[:2]
    if max(height, width) <= work_side and not _colour_map_pays(rgb, recipe):
        with torch.no_grad():
            out = apply_filters(array_to_tensor(rgb), recipe.params)
        return tensor_to_array(out, rgb.dtype)
    plan = _Plan(rgb, recipe, work_side, lut_size)
    out = np.empty_like(rgb)
    band: list[np.ndarray] = []  # a LUT's clipping-band pixels, computed exactly after the strips

    def run(y0: int, y1: int) -> None:
        out[y0:y1] = _render_strip(rgb, plan, y0, y1, band)

    # the strips' threads run PIL's C code only; the band goes through the filters (torch) once,
    # here, rather than on every strip's thread
    for_each_strip(height, width, run, threads or min(4, os.cpu_count() or 1), STRIP_PIXELS)
    where = np.concatenate(band) if band else np.zeros(0, dtype=np.intp)
    if where.size:
        assert plan.colour is not None
        plan.colour.fill_exact(rgb, out, where)
    return out


def render_tensor(image: Tensor, recipe: Recipe) -> Tensor:
    """Apply ``recipe`` directly to a float ``(*, 3, H, W)`` tensor (exact, differentiable)."""
    return apply_filters(image, recipe.params)
