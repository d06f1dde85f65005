"""The filter chain: parameters by name -> one differentiable image transform, in table order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from lib_enhancer.filters import color, local
from lib_enhancer.filters.color import ParamLike
from lib_enhancer.params import NEUTRAL, PARAMS, Stage

Tensor = torch.Tensor

CURVE_NAMES = ("curve_1", "curve_2", "curve_3", "curve_4")
HAZE_KEY = "_haze"  # optional precomputed (transmission, airlight) of the input, see with_haze()


def _curve(image: Tensor, p: Mapping[str, ParamLike]) -> Tensor:
    return color.tone_curve(image, [p[name] for name in CURVE_NAMES])


# Each step: (parameter names it reads, function(image, params) -> image). Table order.
STEPS: tuple[tuple[tuple[str, ...], Callable[[Tensor, Mapping[str, ParamLike]], Tensor]], ...] = (
    (("dehaze",), lambda x, p: local.dehaze(x, p["dehaze"], p.get(HAZE_KEY))),
    (
        ("temperature", "tint", "exposure"),
        lambda x, p: color.linear_light(x, p["temperature"], p["tint"], p["exposure"]),
    ),
    (("blacks", "whites"), lambda x, p: color.levels(x, p["blacks"], p["whites"])),
    (("brightness",), lambda x, p: color.brightness(x, p["brightness"])),
    (("contrast",), lambda x, p: color.contrast(x, p["contrast"])),
    (("shadows",), lambda x, p: color.shadows(x, p["shadows"])),
    (("highlights",), lambda x, p: color.highlights(x, p["highlights"])),
    (CURVE_NAMES, _curve),
    (("gamma",), lambda x, p: color.gamma(x, p["gamma"])),
    (("saturation",), lambda x, p: color.saturation(x, p["saturation"])),
    (("vibrance",), lambda x, p: color.vibrance(x, p["vibrance"])),
    (("detail", "local_tone"), lambda x, p: local.local_laplacian(x, p["detail"], p["local_tone"])),
    (("sharpen",), lambda x, p: local.sharpen(x, p["sharpen"])),
)

_STAGE_OF = {p.name: p.stage for p in PARAMS}
_covered = sorted(name for names, _ in STEPS for name in names)
assert _covered == sorted(NEUTRAL), "every parameter of the table needs exactly one filter step"


def haze_of(image: Tensor) -> tuple[Tensor, Tensor]:
    """Precompute the dehaze filter's (transmission, airlight) of ``image`` (``(N, 3, H, W)``).

    Pass it in ``params`` under :data:`HAZE_KEY` when the same input is filtered many times with
    different parameters (the optimizer): dehaze then skips its most expensive part.
    """
    with torch.no_grad():
        return local.transmission(image)


def _is_neutral(names: Iterable[str], params: Mapping[str, ParamLike]) -> bool:
    """True when every named value is a plain number equal to its neutral (tensors never are)."""
    for name in names:
        v = params.get(name, NEUTRAL[name])
        if isinstance(v, torch.Tensor) or float(v) != NEUTRAL[name]:
            return False
    return True


def apply_filters(
    image: Tensor,
    params: Mapping[str, ParamLike],
    *,
    stages: Iterable[Stage] = ("pre", "global", "post"),
    clamp: bool = True,
) -> Tensor:
    """Apply the filter chain to ``image`` ``(*, 3, H, W)`` in table order.

    Args:
        image: float sRGB in [0, 1].
        params: values by name (floats, or ``(B,)`` tensors for a batch); missing names are neutral.
            Steps whose values are all neutral numbers are skipped, so the neutral recipe returns
            the input exactly.
        stages: which stages to run (``pre``, ``global``, ``post``).
        clamp: clamp the result to [0, 1] (a clamp kills gradients outside the range).

    Returns:
        The filtered image, same shape.
    """
    color.check_image(image)
    unknown = set(params) - set(NEUTRAL) - {HAZE_KEY}
    if unknown:
        raise KeyError(f"unknown filter parameters: {', '.join(sorted(unknown))}")
    wanted = set(stages)
    full: dict[str, Any] = {**NEUTRAL, **params}
    out = image
    for names, fn in STEPS:
        if _STAGE_OF[names[0]] not in wanted or _is_neutral(names, full):
            continue
        out = fn(out, full)
    if clamp and out is not image:
        out = out.clamp(0.0, 1.0)
    return out
