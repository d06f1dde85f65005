"""3-D LUTs: fold the global (per-pixel colour) part of a recipe into a lattice, apply it, export it.

The table is ``(N, N, N, 3)`` float32 indexed ``[b, g, r]`` — red varies fastest in memory, the order
of both PIL's ``Color3DLUT`` and the Adobe/Resolve ``.cube`` format.

Reading, writing and applying a table to 8-bit pixels need only numpy and Pillow: torch (and the
filters) are imported by the functions that evaluate the filter chain or work on tensors, so that
``lib-enhancer apply --lut look.cube`` starts without paying for torch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lib_enhancer.params import AUTO_NAMES, PARAMS_BY_NAME, SPATIAL_CREATIVE, Stage

if TYPE_CHECKING:
    import torch

DEFAULT_LUT_SIZE = 65  # PIL's maximum; trilinear error at this spacing is far below 1/255


def identity_lattice(size: int) -> np.ndarray:
    """``(size, size, size, 3)`` float64 lattice of RGB values, indexed ``[b, g, r]`` (a new array:
    a copy of one made once per size, 40x cheaper than making it)."""
    return _identity_lattice(size).copy()


@functools.lru_cache(maxsize=8)
def _identity_lattice(size: int) -> np.ndarray:
    axis = np.linspace(0.0, 1.0, size, dtype=np.float64)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    lattice = np.stack([r, g, b], axis=-1)
    lattice.flags.writeable = False
    return lattice


def blend_lut(table: np.ndarray, strength: float) -> np.ndarray:
    """The LUT moved towards the identity by ``strength`` in [0, 1] (float32)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if strength == 1.0:
        return np.asarray(table, dtype=np.float32)
    ident = identity_lattice(table.shape[0]).astype(np.float32)
    return ident + np.float32(strength) * (np.asarray(table, dtype=np.float32) - ident)


def build_lut(
    global_params: Mapping[str, float],
    size: int = DEFAULT_LUT_SIZE,
    stages: Iterable[Stage] = ("global",),
) -> np.ndarray:
    """Evaluate the global filter chain (or other per-pixel ``stages``) on the identity lattice.

    The values are *not* clamped: interpolating the smooth unclamped chain and clamping afterwards
    (both appliers below do) avoids the interpolation error of a clamp kink inside a lattice cell.
    ``stages`` may add ``creative`` (its per-pixel colour filters: everything but ``vignette``).
    Returns a float32 ``(size, size, size, 3)`` table indexed ``[b, g, r]``.
    """
    _, table = chain_values(global_params, stages, lattice_size=size)
    assert table is not None
    return table


def chain_values(
    params: Mapping[str, object],
    stages: Iterable[Stage] = ("global",),
    colours: np.ndarray | None = None,
    lattice_size: int | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The exact chain of ``stages`` on 8-bit ``colours`` ``(N, 3)`` (as :func:`exact_colours`) and
    on the ``lattice_size``³ lattice (as :func:`build_lut`), evaluated together.

    The chain is per-pixel, so each value is the one a pass of its own gives; evaluating both in one
    pass saves the chain's fixed cost (~0.7 ms of small tensor ops on this CPU), which the render's
    colour maps pay for every check. The chain's leading per-channel steps (auto tone, exposure and
    white balance, levels, per-channel gamma, brightness:
    :func:`~lib_enhancer.filters.pipeline.per_channel_head`) run on the lattice's axis (``size``
    values) instead of on its ``size³`` colours: ~40 % of building a 33³ LUT for a predicted recipe.
    Float32, as the full-resolution render's exact path computes.
    """
    import torch

    from lib_enhancer.filters.pipeline import apply_filters, per_channel_head

    if lattice_size is not None and not 2 <= lattice_size <= 65:
        raise ValueError(f"LUT size must be in [2, 65], got {lattice_size}")
    if colours is None and lattice_size is None:
        return None, None
    # with colours, one pass over them and the whole lattice (a pass more costs more than the
    # lattice's per-channel head saves); a lattice alone: the head on its axis
    head, rest = per_channel_head(params, stages) if colours is None else ({}, dict(params))
    parts = []
    if colours is not None:
        rgb = np.ascontiguousarray(colours.reshape(-1, 3).T, dtype=np.float32) / np.float32(255.0)
        parts.append(torch.from_numpy(rgb))
    with torch.no_grad():
        if lattice_size is not None:  # float32: 2.5x faster than float64 and within 1e-4 levels of it
            axis = np.linspace(0.0, 1.0, lattice_size, dtype=np.float64).astype(np.float32)
            axes = torch.from_numpy(axis).expand(3, -1).reshape(3, -1, 1)
            if head:
                axes = apply_filters(axes, head, stages=tuple(stages), clamp=False)
            parts.append(_lattice_of_axes(axes.reshape(3, -1)))
        x = torch.cat(parts, dim=1).reshape(3, -1, 1)
        out = apply_filters(x, rest, stages=tuple(stages), clamp=False).reshape(3, -1)
    count = parts[0].shape[1] if colours is not None else 0
    exact = table = None
    if colours is not None:
        exact = out[:, :count].T.clamp(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).numpy()
    if lattice_size is not None:
        size = lattice_size
        table = out[:, count:].T.reshape(size, size, size, 3).numpy()
    return exact, table


def _lattice_of_axes(axes: torch.Tensor) -> torch.Tensor:
    """``(3, S)`` per-channel axis values -> the ``(3, S³)`` lattice of their combinations, in
    :func:`identity_lattice`'s ``[b, g, r]`` order (red fastest)."""
    import torch

    size = axes.shape[1]
    full = (size, size, size)
    r, g, b = axes[0].view(1, 1, size), axes[1].view(1, size, 1), axes[2].view(size, 1, 1)
    return torch.stack([r.expand(full), g.expand(full), b.expand(full)]).reshape(3, -1)


def recipe_lut(
    params: Mapping[str, float], size: int = DEFAULT_LUT_SIZE, photo: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """The per-pixel colour part of a recipe's parameters as one LUT, and the names left out.

    That is the global stage followed by the creative colour filters; the local filters (dehaze,
    detail, local tone, sharpen) and the spatial ``vignette`` can't be expressed as a LUT. The
    photo-adaptive ones (auto contrast, auto levels, equalize) read their curves from a photo's histogram: with
    ``photo`` (an ``(H, W, 3)`` uint8/uint16 array, the photo the recipe was made for) they are baked
    in, read exactly as the full-resolution render reads them; without, they are left out.
    """
    colour: dict[str, object] = {
        n: v
        for n, v in params.items()
        if PARAMS_BY_NAME[n].stage == "global"
        or (PARAMS_BY_NAME[n].stage == "creative" and n != SPATIAL_CREATIVE)
    }
    stages: tuple[Stage, ...] = ("global", "creative")
    auto = {n: params[n] for n in AUTO_NAMES if n in params}
    if auto and photo is not None:
        from lib_enhancer.filters.auto import ANALYSIS_SIDE
        from lib_enhancer.filters.pipeline import AUTO_KEY, auto_of
        from lib_enhancer.render import downscale

        colour = {**auto, AUTO_KEY: auto_of(downscale(photo, ANALYSIS_SIDE)), **colour}
        stages = ("pre", *stages)
    left_out = [n for n in params if n not in colour]
    return build_lut(colour, size, stages), left_out


@functools.lru_cache(maxsize=4)
def probe_colours(count: int = 4096, seed: int = 0) -> np.ndarray:
    """8-bit test colours: the full grey ramp, pure-hue ramps and seeded random colours, ``(N, 3)``
    (made once per arguments, read-only)."""
    ramp = np.arange(256, dtype=np.uint8)
    zeros = np.zeros_like(ramp)
    rows = [np.stack([ramp, ramp, ramp], 1)]
    for c in range(3):
        hue = [zeros, zeros, zeros]
        hue[c] = ramp
        rows.append(np.stack(hue, 1))
    rows.append(np.random.default_rng(seed).integers(0, 256, size=(count, 3), dtype=np.uint8))
    colours = np.concatenate(rows)
    colours.flags.writeable = False
    return colours


def check_colours(extra: np.ndarray | None = None) -> np.ndarray:
    """The colours a LUT or curves are checked on: :func:`probe_colours`, then ``extra`` (``(N, 3)``
    8-bit, e.g. a sample of the image's own pixels) when given."""
    colours = probe_colours()
    if extra is None or not len(extra):
        return colours
    return np.concatenate([colours, extra.reshape(-1, 3).astype(np.uint8)])


def lut_max_error(
    table: np.ndarray,
    global_params: Mapping[str, float],
    extra_colours: np.ndarray | None = None,
    stages: Iterable[Stage] = ("global",),
) -> float:
    """Largest difference between the LUT and the exact chain of ``stages`` (0..1 units).

    Measured on :func:`probe_colours` plus ``extra_colours`` (``(N, 3)`` uint8, e.g. a sample of the
    image's own pixels).
    """
    colours = check_colours(extra_colours)
    via_lut = apply_lut_pil(colours.reshape(1, -1, 3), table)
    return max_level_error(via_lut.reshape(-1, 3), exact_colours(colours, global_params, stages)) / 255.0


def exact_colours(
    colours: np.ndarray, params: Mapping[str, object], stages: Iterable[Stage] = ("global",)
) -> np.ndarray:
    """The exact filter chain of ``stages`` on 8-bit colours ``(N, 3)``, rounded to 8 bits ``(N, 3)``.

    Float32, as the full-resolution render's exact path computes.
    """
    exact, _ = chain_values(params, stages, colours)
    assert exact is not None
    return exact


def max_level_error(a: np.ndarray, b: np.ndarray) -> int:
    """Largest difference of two 8-bit arrays, in levels."""
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(initial=0))


def apply_lut_pil(rgb8: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply a LUT to an 8-bit ``(H, W, 3)`` array with PIL's C trilinear ``Color3DLUT`` (clamps the result)."""
    from PIL import Image, ImageFilter

    size = table.shape[0]
    lut = ImageFilter.Color3DLUT(size, table.reshape(-1).astype(np.float32), channels=3)
    return np.asarray(Image.fromarray(rgb8, "RGB").filter(lut))


def strip_rows(height: int, width: int, workers: int, strip_pixels: int = 1 << 21) -> int:
    """Rows per strip of an image worked on strip by strip: at most ``strip_pixels`` pixels (2 MP:
    24 MB of float32 RGB), and at least one strip per worker."""
    return max(1, min(strip_pixels // width, -(-height // max(1, workers))))


def for_each_strip(
    height: int,
    width: int,
    work: Callable[[int, int], None],
    workers: int,
    strip_pixels: int = 1 << 21,
) -> None:
    """Call ``work(y0, y1)`` for the row strips of a ``height × width`` image (see :func:`strip_rows`),
    on ``workers`` threads when there is more than one strip (numpy, PIL and torch release the GIL).

    The threads are started per call: a process-wide pool was measured to double the gradient
    mode's time at 1 MP (0.46 -> 1.0 s, ``bench/learned.py``) — torch keeps an OpenMP team alive for
    every thread that ran a torch op, and (likely) those of idle pool threads compete with the main thread's.
    """
    rows = strip_rows(height, width, workers, strip_pixels)
    spans = [(y0, min(height, y0 + rows)) for y0 in range(0, height, rows)]
    if workers > 1 and len(spans) > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda span: work(*span), spans))
    else:
        for span in spans:
            work(*span)


def apply_lut_array(rgb: np.ndarray, table: np.ndarray, *, threads: int = 2) -> np.ndarray:
    """Apply a LUT to an ``(H, W, 3)`` uint8/uint16 array at full resolution (new array).

    8-bit: PIL's ``Color3DLUT`` strip by strip on ``threads`` threads (PIL releases the GIL), no
    float copy. 16-bit: the torch trilinear lookup, strip by strip.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image array must be (H, W, 3) uint8 or uint16, got {rgb.shape} {rgb.dtype}")
    out = np.empty_like(rgb)

    def run(y0: int, y1: int) -> None:
        part = rgb[y0:y1]
        if rgb.dtype == np.uint8:
            out[y0:y1] = apply_lut_pil(part, table)
            return
        import torch

        x = torch.from_numpy(part.astype(np.float32) / 65535.0).permute(2, 0, 1)
        with torch.no_grad():
            y = apply_lut_torch(x, table).permute(1, 2, 0).mul_(65535.0).round_()
        out[y0:y1] = y.numpy().astype(np.uint16)

    for_each_strip(*rgb.shape[:2], run, threads)
    return out


def apply_lut_torch(rgb: torch.Tensor, table: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Trilinear LUT on a float ``(*, 3, H, W)`` tensor in [0, 1] (any bit depth; differentiable in rgb)."""
    import torch
    import torch.nn.functional as F

    lut = torch.as_tensor(table, dtype=rgb.dtype, device=rgb.device)  # (B, G, R, 3)
    volume = lut.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, D=b, H=g, W=r)
    lead = rgb.shape[:-3]
    x = rgb.reshape(-1, 3, *rgb.shape[-2:])
    n, _, h, w = x.shape
    # grid_sample 3-D wants (x, y, z) = (r, g, b) in [-1, 1]
    grid = (x.permute(0, 2, 3, 1).clamp(0.0, 1.0) * 2.0 - 1.0).reshape(1, 1, n * h, w, 3)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(3, n, h, w).permute(1, 0, 2, 3).reshape(*lead, 3, h, w).clamp(0.0, 1.0)


def write_cube(path: str | os.PathLike[str], table: np.ndarray, title: str = "lib_enhancer recipe") -> Path:
    """Write a LUT as an Adobe/Resolve ``.cube`` file (red fastest), atomically."""
    size = table.shape[0]
    lines = [f'TITLE "{title}"', f"LUT_3D_SIZE {size}", "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    rows = np.clip(table.reshape(-1, 3), 0.0, 1.0)
    body = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in rows.tolist())
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text("\n".join(lines) + "\n" + body + "\n", encoding="ascii")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_cube(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a ``.cube`` 3-D LUT (domain 0..1) into a ``(N, N, N, 3)`` ``[b, g, r]`` table."""
    size = None
    values: list[list[float]] = []
    for raw in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split()[0].upper()
        if head == "LUT_3D_SIZE":
            size = int(line.split()[1])
        elif head in {"TITLE", "DOMAIN_MIN", "DOMAIN_MAX", "LUT_1D_SIZE", "LUT_3D_INPUT_RANGE"}:
            if head == "LUT_1D_SIZE":
                raise ValueError(f"{path}: 1-D .cube LUTs are not supported")
        else:
            values.append([float(v) for v in line.split()[:3]])
    if size is None or len(values) != size**3:
        raise ValueError(f"{path}: malformed .cube file (size {size}, {len(values)} entries)")
    return np.asarray(values, dtype=np.float32).reshape(size, size, size, 3)
