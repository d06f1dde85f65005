"""Image-adaptive tone filters: auto contrast, per-channel auto levels and histogram equalisation.

All read the photo's own histogram (what Photoshop's *Auto Contrast*, PIL's
``ImageOps.autocontrast`` and ``equalize`` do, and what NUl Image Enhancer's search leans on) and
turn it into three monotone curves, one per channel:

* **auto contrast** stretches all channels by the *same* affine map, so that the photo's darkest
  value (of any channel) lands on 0 and its brightest on 1 (at most :data:`LEVELS_MAX_GAIN` times):
  it restores range lost to under-exposure, a flat tone curve or lifted blacks without touching the
  colour balance, and is the identity on a photo that already reaches black and white. Extremes
  are read from the analysis copy below (block means: a few hot pixels do not count);
* **auto levels** stretches each channel linearly so that its :data:`LEVELS_CUTOFF` and
  ``1 - LEVELS_CUTOFF`` quantiles land on 0 and 1 (at most :data:`LEVELS_MAX_GAIN` times; a channel
  with almost no range is not blown up); like ``levels``, values beyond them leave [0, 1] and are
  clipped by the chain's final clamp (an affine map per channel: exact in the LUT);
* **equalize** maps each channel through its cumulative histogram on :data:`TABLE_KNOTS` bins
  (piecewise linear inside a bin), so each channel's values spread evenly over [0, 1].

The filter is ``x + amount · (curve(x) - x)``: 0 is the input exactly, 1 the full auto edit. The
curves come from the input image downscaled to :data:`ANALYSIS_SIDE` pixels, so a 384 px
preview and a 6000 px original get the same curves (resolution independence), and they can be
computed once (:func:`auto_tables`) and passed to every filtering of the same input, like dehaze's
transmission. Differentiable in the amounts, and in the image almost everywhere (quantiles through
sorting; the equalisation's histogram counts are piecewise constant in the pixel values).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from lib_enhancer.filters.color import ParamLike, as_param, check_image

Tensor = torch.Tensor

ANALYSIS_SIDE = 256  # long side of the copy the histogram is read from
TABLE_KNOTS = 64  # histogram bins of the equalisation = curve segments; knots on the 65³ LUT lattice
LEVELS_CUTOFF = 0.005  # share of each channel clipped at either end by auto levels
LEVELS_MAX_GAIN = 8.0  # auto levels never stretches a channel more than this


class AutoTables:
    """The auto filters' curves of a photo (or of each photo of a batch), read from its analysis
    copy: auto contrast's bounds ``(N, 1, 2)``, auto levels' bounds ``(N, 3, 2)`` and the
    equalisation curves ``(N, 3, K + 1)`` (N = 1 or the batch size).

    Indexing, unpacking and iterating give these three, in this order, like the plain tuple
    :func:`auto_tone` also takes. Each is computed on first use: auto levels' quantiles and the
    equalisation's histogram cost ~1-2 ms of the ~3 ms of a set of curves on this CPU, and most
    recipes use auto contrast alone (the ``natural`` scorer's and the learned models' start point).
    """

    __slots__ = ("_parts", "_values")

    def __init__(self, values: Tensor) -> None:
        self._values = values  # (N, 3, P): the analysis copy's pixels
        self._parts: list[Tensor | None] = [None, None, None]

    def __getitem__(self, index: int) -> Tensor:
        part = self._parts[index]
        if part is None:
            part = (contrast_bounds, levels_bounds, equalize_table)[index](self._values)
            self._parts[index] = part
        return part

    def __len__(self) -> int:
        return 3

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(3))

    def __repr__(self) -> str:
        names = ("contrast", "levels", "equalize")
        done = [name for name, part in zip(names, self._parts, strict=True) if part is not None]
        return f"AutoTables({tuple(self._values.shape)}, computed: {', '.join(done) or 'none'})"


#: what :func:`auto_tone` takes: :class:`AutoTables`, or the same three tensors as a tuple
AutoTablesLike = AutoTables | tuple[Tensor, Tensor, Tensor]


def _analysis_copy(image: Tensor) -> Tensor:
    """``(N, 3, h, w)`` downscaled so the long side is at most :data:`ANALYSIS_SIDE`, in [0, 1].

    The same resampling as :func:`lib_enhancer.render.downscale` (integer block means, then an
    antialiased bilinear resize to the exact size), so the full-resolution render, which reads the
    curves from its own downscale of the photo, gets the curves this chain computes (up to the
    8-bit rounding of an 8-bit photo's block means there).
    """
    x = image.reshape(-1, *image.shape[-3:])
    h_full, w_full = x.shape[-2:]
    scale = min(1.0, ANALYSIS_SIDE / max(h_full, w_full))
    h, w = max(1, round(h_full * scale)), max(1, round(w_full * scale))
    if (h, w) == (h_full, w_full):
        return x.clamp(0.0, 1.0)
    k = max(1, int(min(h_full / h, w_full / w) // 2))
    if k > 1:
        x = F.avg_pool2d(x[..., : (h_full // k) * k, : (w_full // k) * k], k)
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0.0, 1.0)


def _capped_bounds(lo: Tensor, hi: Tensor) -> Tensor:
    """Black and white points ``(..., 2)`` from ``lo``/``hi``, widened symmetrically (inside [0, 1])
    to at least ``1 / LEVELS_MAX_GAIN``."""
    span = (hi - lo).clamp_min(1.0 / LEVELS_MAX_GAIN)
    lo = torch.minimum(lo, 0.5 * (lo + hi) - 0.5 * span).clamp_min(0.0)
    lo = torch.minimum(lo, 1.0 - span)
    return torch.stack((lo, lo + span), dim=-1)


def levels_bounds(values: Tensor) -> Tensor:
    """Auto-levels black and white points ``(N, 3, 2)`` of per-channel pixel values ``(N, 3, P)``:
    the :data:`LEVELS_CUTOFF` quantiles (gain capped, see :func:`_capped_bounds`)."""
    q = torch.tensor([LEVELS_CUTOFF, 1.0 - LEVELS_CUTOFF], device=values.device, dtype=values.dtype)
    lo, hi = torch.quantile(values, q, dim=-1).unbind(0)  # each (N, 3)
    return _capped_bounds(lo, hi)


def contrast_bounds(values: Tensor) -> Tensor:
    """Auto-contrast black and white points ``(N, 1, 2)`` of pixel values ``(N, 3, P)``: the darkest
    and brightest value of any channel (gain capped, see :func:`_capped_bounds`)."""
    lo = values.amin(dim=(-2, -1)).unsqueeze(-1)  # (N, 1)
    hi = values.amax(dim=(-2, -1)).unsqueeze(-1)
    return _capped_bounds(lo, hi)


def equalize_table(values: Tensor) -> Tensor:
    """Equalisation curves ``(N, 3, K + 1)``: each channel's cumulative histogram on K bins."""
    bins = (values * TABLE_KNOTS).floor().clamp(0, TABLE_KNOTS - 1).long()
    counts = torch.zeros(*values.shape[:-1], TABLE_KNOTS, device=values.device, dtype=values.dtype)
    counts.scatter_add_(-1, bins, torch.ones_like(values))
    cdf = counts.cumsum(-1) / values.shape[-1]
    return torch.cat((torch.zeros_like(cdf[..., :1]), cdf), dim=-1)


def auto_tables(image: Tensor) -> AutoTables:
    """The auto curves of ``image`` ``(*, 3, H, W)``: contrast bounds ``(N, 1, 2)``, levels bounds
    ``(N, 3, 2)`` and equalisation curves ``(N, 3, K + 1)``, each computed when first used.

    Pass them to :func:`auto_tone` (or in the filter chain's params under ``pipeline.AUTO_KEY``)
    when the same input is filtered many times.
    """
    check_image(image)
    return AutoTables(_analysis_copy(image).flatten(-2))  # (N, 3, P)


def apply_table(image: Tensor, table: Tensor) -> Tensor:
    """Per-channel piecewise-linear curves ``table`` ``(N or 1, 3, K + 1)`` on ``image`` ``(N, 3, H, W)``.

    Values outside [0, 1] continue the end segments' lines, so nothing is clamped.
    """
    n, _, h, w = image.shape
    k = table.shape[-1] - 1
    pos = image.flatten(-2) * k  # (N, 3, HW)
    i0 = pos.detach().floor().clamp(0, k - 1).long()
    frac = pos - i0
    table = table.expand(n, -1, -1)
    t0 = torch.gather(table, -1, i0)
    t1 = torch.gather(table, -1, i0 + 1)
    return (t0 + (t1 - t0) * frac).reshape(n, 3, h, w)


def auto_tone(
    image: Tensor,
    contrast: ParamLike,
    levels: ParamLike,
    equalize: ParamLike,
    tables: AutoTablesLike | None = None,
) -> Tensor:
    """Auto contrast, then per-channel auto levels, then equalisation, each blended in by its amount.

    Args:
        image: ``(*, 3, H, W)`` sRGB in [0, 1]. Differentiable.
        contrast: amount of auto contrast in [0, 1] (0: none), float or ``(B,)`` tensor.
            Differentiable.
        levels: amount of per-channel auto levels in [0, 1], float or ``(B,)``. Differentiable.
        equalize: amount of equalisation in [0, 1], float or ``(B,)``. Differentiable.
        tables: :func:`auto_tables` of the photo these amounts were chosen for (default: of
            ``image``).

    Each later filter blends towards its own edit of the *input* (levels and equalisation are
    indifferent to an affine stretch done before them), so ``levels=1`` gives PIL-style per-channel
    autocontrast and ``equalize=1`` PIL-style equalisation whatever came before.

    Returns:
        The image with the auto curves blended in, shape of ``image``.
    """
    check_image(image)
    lead = tuple(image.shape[:-3])
    x = image.reshape(-1, *image.shape[-3:])
    if tables is None:
        tables = auto_tables(x)
    if len(tables) != 3:
        raise ValueError(f"auto tables must be (contrast, levels, equalize) tables, got {len(tables)} items")
    out = x
    if not _is_zero(contrast):
        out = x + as_param(contrast, x) * (_stretch(x, _table(tables, 0, x, (1, 2))) - x)
    if not _is_zero(levels):
        out = out + as_param(levels, x) * (_stretch(x, _table(tables, 1, x, (3, 2))) - out)
    if not _is_zero(equalize):
        out = out + as_param(equalize, x) * (apply_table(x, _table(tables, 2, x, (3, None))) - out)
    return out.reshape(*lead, *image.shape[-3:])


def _table(tables: AutoTablesLike, index: int, x: Tensor, shape: tuple[int, int | None]) -> Tensor:
    """Part ``index`` of ``tables`` on ``x``'s device and dtype, checked against ``(rows, *shape)``
    (rows 1 or ``x``'s batch; a ``None`` size is free)."""
    part = tables[index].to(device=x.device, dtype=x.dtype)
    if (
        part.dim() != 3
        or part.shape[0] not in (1, x.shape[0])
        or any(want is not None and got != want for got, want in zip(part.shape[1:], shape, strict=True))
    ):
        wanted = ", ".join("K + 1" if n is None else str(n) for n in shape)
        name = ("contrast bounds", "levels bounds", "equalisation curves")[index]
        raise ValueError(
            f"auto tables: {name} must be (1 or {x.shape[0]}, {wanted}), got {tuple(part.shape)}"
        )
    return part


def _is_zero(amount: ParamLike) -> bool:
    """True for a plain number 0 (its term is skipped; a tensor, even of zeros, keeps its gradient)."""
    return isinstance(amount, (int, float)) and amount == 0


def _stretch(x: Tensor, bounds: Tensor) -> Tensor:
    """``x`` ``(N, 3, H, W)`` mapped affinely so ``bounds`` ``(N, 1 or 3, 2)`` land on 0 and 1."""
    lo, hi = bounds[..., 0, None, None], bounds[..., 1, None, None]
    return (x - lo) / (hi - lo)
