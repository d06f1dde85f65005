"""Creative edits — the "hard set": filters that **change the look**, not just fix the photo.

NUl Image Enhancer had a hard transform set (hue shift, invert, solarize, posterize…) but never
exposed it; here it is, off by default, labelled, and searchable by :mod:`lib_enhancer.search` when
``hard=True``. The parameters are rows of the one table, :data:`lib_enhancer.params.PARAMS`, with
the stage ``"creative"`` (applied after ``post``, to the clamped photo); this module derives its
views (:data:`CREATIVE_PARAMS`, :data:`CREATIVE_NAMES`...) from that table. Every filter here is
per-pixel colour (full-resolution renders fold it into a colour map) except :func:`vignette`,
which is spatial and comes last.

Conventions are those of :mod:`lib_enhancer.filters.color` (kornia style): ``image`` is a float
``(*, 3, H, W)`` sRGB tensor nominally in [0, 1]; parameters are floats or ``(B,)`` tensors (one
value per image of a ``(B, 3, H, W)`` batch); the input is never modified; constants follow the
image's device and dtype; nothing clamps except :func:`apply_creative` at the very end (optional);
and every filter returns its input exactly at the neutral value 0.

Differentiability (image *and* parameter) holds for every filter except :func:`posterize`, whose
quantisation has no useful gradient: it passes the image gradient straight through (a
straight-through estimator) and has none for its parameter. See :data:`CREATIVE_DIFFERENTIABLE`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from lib_enhancer.filters.color import ParamLike, as_param, check_image, luminance
from lib_enhancer.params import PARAMS, Param, checked_value

Tensor = torch.Tensor

CREATIVE_STAGE = "creative"

# Split toning colours (sRGB offsets at full strength): a warm orange and a cool teal.
SPLIT_WARM = (0.10, 0.03, -0.10)
SPLIT_COOL = (-0.10, 0.02, 0.10)
SOLARIZE_RAMP = 0.05  # width of the smooth step at the solarize threshold
SOLARIZE_REACH = 0.75  # amount 1 solarizes everything above 1 - 0.75 = 0.25
VIGNETTE_DEPTH = 0.7  # amount 1 darkens the corners by 70 %

#: The creative rows of the parameter table, in application order. Every neutral value is 0.
CREATIVE_PARAMS: tuple[Param, ...] = tuple(p for p in PARAMS if p.stage == CREATIVE_STAGE)
CREATIVE_BY_NAME: dict[str, Param] = {p.name: p for p in CREATIVE_PARAMS}
CREATIVE_NAMES: tuple[str, ...] = tuple(p.name for p in CREATIVE_PARAMS)
CREATIVE_NEUTRAL: dict[str, float] = {p.name: p.neutral for p in CREATIVE_PARAMS}
#: Creative parameters with a useful gradient (image and parameter).
CREATIVE_DIFFERENTIABLE: frozenset[str] = frozenset(n for n in CREATIVE_NAMES if n != "posterize")


def get_creative_param(name: str) -> Param:
    """Look up a creative parameter; unknown names raise with close-match suggestions."""
    try:
        return CREATIVE_BY_NAME[name]
    except KeyError:
        close = difflib.get_close_matches(name, CREATIVE_NAMES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown creative parameter {name!r}.{hint} Known: {', '.join(CREATIVE_NAMES)}"
        ) from None


def validate_creative(values: Mapping[str, float], *, clamp: bool = False) -> dict[str, float]:
    """Check names and ranges of creative values; returns a new ``{name: float}`` dict.

    Args:
        values: creative parameter values by name (a subset is fine).
        clamp: clamp out-of-range values instead of raising.

    Raises:
        KeyError: an unknown name.
        ValueError: a non-finite or out-of-range value (when ``clamp`` is false).
    """
    return {
        name: checked_value(get_creative_param(name), value, clamp=clamp, kind="creative parameter")
        for name, value in values.items()
    }


# ---- the filters ---------------------------------------------------------------------------------


def hue_rotate(image: Tensor, turns: ParamLike) -> Tensor:
    """Rotate colours about the grey axis by ``turns`` full turns (Rodrigues' rotation in RGB).

    The channel mean is preserved; ``+1/3`` maps pure red to pure green. Identity at 0 exactly.

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        turns: rotation in turns (differentiable).

    Returns:
        The rotated image, same shape.
    """
    check_image(image)
    theta = 2.0 * math.pi * as_param(turns, image)
    c, s = torch.cos(theta), torch.sin(theta)
    r, g, b = image.unbind(-3)
    cross = torch.stack((b - g, r - b, g - r), dim=-3) / math.sqrt(3.0)
    mean = image.mean(dim=-3, keepdim=True)
    return c * image + s * cross + (1.0 - c) * mean


def channel_mix(image: Tensor, amount: ParamLike) -> Tensor:
    """Blend each channel with its neighbour: ``+1`` gives ``(G, B, R)``, ``-1`` gives ``(B, R, G)``.

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        amount: in [-1, 1] (differentiable away from 0).

    Returns:
        The mixed image, same shape.
    """
    check_image(image)
    a = as_param(amount, image)
    forward = torch.roll(image, shifts=-1, dims=-3)  # R<-G, G<-B, B<-R
    backward = torch.roll(image, shifts=1, dims=-3)  # R<-B, G<-R, B<-G
    return image + torch.relu(a) * (forward - image) + torch.relu(-a) * (backward - image)


def black_white(image: Tensor, amount: ParamLike) -> Tensor:
    """Fade towards the Rec. 709 luminance print: ``x + a (L - x)``.

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        amount: in [0, 1] (differentiable).

    Returns:
        The faded image, same shape.
    """
    check_image(image)
    a = as_param(amount, image)
    return image + a * (luminance(image) - image)


def split_tone(image: Tensor, amount: ParamLike) -> Tensor:
    """Tint shadows and highlights with opposite colours, weighted by luminance.

    ``+a`` adds teal to the shadows and orange to the highlights; ``-a`` the reverse.

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        amount: in [-1, 1] (differentiable away from 0).

    Returns:
        The toned image, same shape.
    """
    check_image(image)
    a = as_param(amount, image)
    warm = torch.tensor(SPLIT_WARM, device=image.device, dtype=image.dtype).view(3, 1, 1)
    cool = torch.tensor(SPLIT_COOL, device=image.device, dtype=image.dtype).view(3, 1, 1)
    high = luminance(image).clamp(0.0, 1.0)
    low = 1.0 - high
    teal_orange = low * cool + high * warm
    orange_teal = low * warm + high * cool
    return image + torch.relu(a) * teal_orange + torch.relu(-a) * orange_teal


def strong_curve(image: Tensor, amount: ParamLike) -> Tensor:
    """Per-channel blend towards the smoothstep S-curve ``y² (3 - 2y)``: ``x + a (S(x) - x)``.

    Monotone for ``|a| <= 1``; 0 and 1 stay fixed. Negative amounts give the inverse (faded) curve.

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        amount: in [-1, 1] (differentiable).

    Returns:
        The curved image, same shape.
    """
    check_image(image)
    a = as_param(amount, image)
    y = image.clamp(0.0, 1.0)
    return image + a * (y * y * (3.0 - 2.0 * y) - y)


def vignette_gain(
    height: int,
    width: int,
    amount: ParamLike,
    *,
    rows: tuple[int, int] | None = None,
    like: Tensor | None = None,
) -> Tensor:
    """The vignette's multiplicative gain ``1 - 0.7 a r⁴`` of an ``height x width`` image.

    Args:
        height, width: the size of the *whole* image (``r`` is relative to its half diagonal).
        amount: as :func:`vignette`.
        rows: only rows ``y0:y1`` (a strip of a large image); default all.
        like: a tensor whose device and dtype the gain follows (default float32, CPU).

    Returns:
        ``(rows, width)`` for a float amount, ``(B, 1, rows, width)`` for a ``(B,)`` amount.
    """
    ref = like if like is not None else torch.empty(0)
    a = as_param(amount, ref)
    if a.dim() == 1:  # one value per image of a batch
        a = a.view(-1, 1, 1, 1)
    y0, y1 = rows if rows is not None else (0, height)
    diag = math.hypot(height, width)
    # linspace(-1, 1, n)[i] = -1 + 2 i / (n - 1) (0 when n == 1), computed for the wanted rows only
    ys = torch.arange(y0, y1, device=ref.device, dtype=ref.dtype)
    ys = (2.0 * ys / (height - 1) - 1.0) if height > 1 else torch.full_like(ys, -1.0)
    xs = torch.linspace(-1.0, 1.0, width, device=ref.device, dtype=ref.dtype)
    r2 = (ys * (height / diag)).view(-1, 1) ** 2 + (xs * (width / diag)).view(1, -1) ** 2
    return 1.0 - VIGNETTE_DEPTH * a * r2 * r2


def vignette(image: Tensor, amount: ParamLike) -> Tensor:
    """Scale by ``1 - 0.7 a r⁴``, ``r`` the distance from the centre (1 at the corners).

    Resolution independent (``r`` is relative to the half diagonal). Spatial, so it does not fold
    into a LUT; it is the last creative filter (full-resolution renders apply it strip by strip
    with :func:`vignette_gain`).

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        amount: in [-1, 1]; positive darkens, negative lightens the corners (differentiable).

    Returns:
        The vignetted image, same shape.
    """
    check_image(image)
    h, w = image.shape[-2:]
    return image * vignette_gain(h, w, amount, like=image)


def solarize(image: Tensor, amount: ParamLike) -> Tensor:
    """Invert tones above ``t = 1 - 0.75 a`` with a smooth 0.05-wide step (differentiable).

    The whole effect also fades in over ``a`` in [0, 0.05], so ``a = 0`` is the identity for any
    input, in range or not.

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        amount: in [0, 1] (differentiable).

    Returns:
        The solarized image, same shape.
    """
    check_image(image)
    a = as_param(amount, image)
    threshold = 1.0 - SOLARIZE_REACH * a
    weight = ((image - threshold) / SOLARIZE_RAMP).clamp(0.0, 1.0) * (a / SOLARIZE_RAMP).clamp(0.0, 1.0)
    return image + weight * (1.0 - 2.0 * image)


def posterize(image: Tensor, bits: ParamLike) -> Tensor:
    """Drop ``round(bits)`` low bits of each 8-bit channel value (torchvision's ``posterize``).

    Not differentiable: the image gradient passes straight through the quantisation (a
    straight-through estimator) and there is none for ``bits``. Identity at 0 exactly.

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        bits: bits removed, in [0, 6]; rounded to an integer.

    Returns:
        The posterized image, same shape.
    """
    check_image(image)
    n = torch.round(as_param(bits, image).detach()).clamp(0.0, 7.0)
    size = torch.exp2(n)
    levels = torch.floor(image.detach().clamp(0.0, 1.0) * 255.0 / size + 1e-6) * size / 255.0
    quantised = image + (levels - image).detach()
    return torch.where(n == 0, image, quantised)


def invert(image: Tensor, amount: ParamLike) -> Tensor:
    """Fade towards the negative: ``x + a (1 - 2x)``.

    Args:
        image: ``(*, 3, H, W)`` float sRGB.
        amount: in [0, 1] (differentiable).

    Returns:
        The inverted image, same shape.
    """
    check_image(image)
    a = as_param(amount, image)
    return image + a * (1.0 - 2.0 * image)


#: Name -> filter, in application order (the table's order).
CREATIVE_FILTERS: dict[str, Callable[[Tensor, ParamLike], Tensor]] = {
    "hue": hue_rotate,
    "channel_mix": channel_mix,
    "black_white": black_white,
    "split_tone": split_tone,
    "strong_curve": strong_curve,
    "solarize": solarize,
    "posterize": posterize,
    "invert": invert,
    "vignette": vignette,
}
assert tuple(CREATIVE_FILTERS) == CREATIVE_NAMES, "one creative filter per table row, in table order"


def is_creative_identity(params: Mapping[str, Any]) -> bool:
    """True when every given creative value is a plain number equal to its neutral value."""
    return all(not isinstance(v, torch.Tensor) and float(v) == CREATIVE_NEUTRAL[n] for n, v in params.items())


def apply_creative(image: Tensor, params: Mapping[str, ParamLike], *, clamp: bool = True) -> Tensor:
    """Apply the creative filters to ``image`` ``(*, 3, H, W)`` in table order.

    The creative stage of :func:`~lib_enhancer.filters.pipeline.apply_filters` (same clamps: the
    input, and the image before ``vignette``, are clamped to [0, 1]).

    Args:
        image: float sRGB in [0, 1].
        params: creative values by name (floats, or ``(B,)`` tensors for a batch); missing names are
            neutral. Filters whose value is a neutral number are skipped, so ``{}`` returns the
            input itself.
        clamp: clamp the result to [0, 1] (a clamp kills gradients outside the range).

    Returns:
        The edited image, same shape.

    Raises:
        KeyError: an unknown parameter name (with suggestions).
    """
    from lib_enhancer.filters.pipeline import apply_filters

    check_image(image)
    for name in params:
        get_creative_param(name)
    return apply_filters(image, params, stages=(CREATIVE_STAGE,), clamp=clamp)
