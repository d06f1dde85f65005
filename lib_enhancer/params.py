"""The one parameter table.

Every filter parameter the enhancer knows is declared here exactly once: its name, the label used
in infotext and UI, its neutral value (the value at which the filter returns its input unchanged),
its bounded range, a UI step and a one-line help. The filters, recipes, optimizer, CLI, webui
controls, infotext and API schemas all read this table; nothing else lists parameters.

Stages decide how a recipe is applied at full resolution:

* ``pre``   — filters that read the whole photo, applied before the colour transform: the
  image-adaptive auto levels / equalisation (per-channel curves from the photo's histogram) and
  dehaze (local).
* ``global`` — per-pixel colour filters; the whole chain folds into one 3-D LUT.
* ``post``  — local filters applied after the colour transform (detail, sharpening).
* ``creative`` — the "hard set": edits that **change the look** (hue rotation, channel mixing,
  black & white, split toning, strong curve, solarize, posterize, invert, vignette). Applied last,
  to the finished [0, 1] photo. Neutral (off) by default: the optimizer never moves them unless
  asked to by name, and a search only when ``hard=True``. All but ``vignette`` are per-pixel colour
  (they fold into a LUT); ``vignette`` is spatial and always applied last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Stage = Literal["pre", "global", "post", "creative"]

#: Prefix of every creative parameter's help (and the UI group title): these edits change the look.
LOOK = "Changes the look: "
CREATIVE_GROUP = "creative"
#: The one creative filter that is spatial (not a per-pixel colour map); it is the table's last row.
SPATIAL_CREATIVE = "vignette"


@dataclass(frozen=True)
class Param:
    """One bounded, named filter parameter."""

    name: str
    label: str
    neutral: float
    minimum: float
    maximum: float
    step: float
    stage: Stage
    group: str
    help: str

    def clamp(self, value: float) -> float:
        """Clamp ``value`` into the parameter's range."""
        return min(max(float(value), self.minimum), self.maximum)

    @property
    def span(self) -> float:
        return self.maximum - self.minimum


PARAMS: tuple[Param, ...] = (
    # ---- pre: read the whole photo, before colour ----------------------------------------------
    Param(
        "auto_contrast",
        "Auto contrast",
        0.0,
        0.0,
        1.0,
        0.05,
        "pre",
        "auto",
        "Blend towards auto contrast: all channels stretched alike so the photo's darkest value reaches "
        "black and its brightest white (restores under-exposed or flat photos, keeps the colour "
        "balance; no change on a photo that already spans the range).",
    ),
    Param(
        "auto_levels",
        "Auto levels",
        0.0,
        0.0,
        1.0,
        0.05,
        "pre",
        "auto",
        "Blend towards per-channel auto levels: each channel stretched so its 0.5 % and 99.5 % "
        "quantiles reach black and white (removes haze-grey blacks and casts; adapts to the photo).",
    ),
    Param(
        "equalize",
        "Equalize",
        0.0,
        0.0,
        1.0,
        0.05,
        "pre",
        "auto",
        "Blend towards per-channel histogram equalisation of the photo (spreads each channel's tones "
        "evenly; strong, adapts to the photo).",
    ),
    Param(
        "dehaze",
        "Dehaze",
        0.0,
        -0.5,
        1.0,
        0.01,
        "pre",
        "local",
        "Dark-channel-prior haze removal strength; negative values add haze (softer, airier look).",
    ),
    # ---- global: per-pixel colour, folded into one 3-D LUT -------------------------------------
    Param(
        "temperature",
        "Temperature",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "colour",
        "White balance blue (-) to amber (+), in linear light, luminance preserving.",
    ),
    Param(
        "tint",
        "Tint",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "colour",
        "White balance green (-) to magenta (+), in linear light, luminance preserving.",
    ),
    Param(
        "exposure",
        "Exposure",
        0.0,
        -3.0,
        3.0,
        0.01,
        "global",
        "light",
        "Exposure in EV stops: multiplies linear light by 2^EV.",
    ),
    Param(
        "blacks",
        "Blacks",
        0.0,
        -0.25,
        0.25,
        0.005,
        "global",
        "light",
        "Black point: positive deepens blacks (restores washed-out shadows), negative lifts them.",
    ),
    Param(
        "whites",
        "Whites",
        0.0,
        -0.25,
        0.25,
        0.005,
        "global",
        "light",
        "White point: positive brightens whites up to clipping, negative dims them.",
    ),
    Param(
        "black_r",
        "Black point red",
        0.0,
        -0.3,
        0.3,
        0.005,
        "global",
        "colour",
        "Red black point on top of Blacks: + deepens red in the shadows, - lifts it.",
    ),
    Param(
        "black_g",
        "Black point green",
        0.0,
        -0.3,
        0.3,
        0.005,
        "global",
        "colour",
        "Green black point on top of Blacks: + deepens green in the shadows, - lifts it.",
    ),
    Param(
        "black_b",
        "Black point blue",
        0.0,
        -0.3,
        0.3,
        0.005,
        "global",
        "colour",
        "Blue black point on top of Blacks: + deepens blue in the shadows, - lifts it.",
    ),
    Param(
        "white_r",
        "White point red",
        0.0,
        -0.3,
        0.3,
        0.005,
        "global",
        "colour",
        "Red white point on top of Whites: + brightens red in the highlights, - dims it.",
    ),
    Param(
        "white_g",
        "White point green",
        0.0,
        -0.3,
        0.3,
        0.005,
        "global",
        "colour",
        "Green white point on top of Whites: + brightens green in the highlights, - dims it.",
    ),
    Param(
        "white_b",
        "White point blue",
        0.0,
        -0.3,
        0.3,
        0.005,
        "global",
        "colour",
        "Blue white point on top of Whites: + brightens blue in the highlights, - dims it.",
    ),
    Param(
        "gamma_r",
        "Gamma red",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "colour",
        "Red gamma after the levels, as log2 (out = in^(2^-value)): + brightens red midtones, - darkens them.",
    ),
    Param(
        "gamma_g",
        "Gamma green",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "colour",
        "Green gamma after the levels, as log2 (out = in^(2^-value)): + brightens green midtones, - darkens them.",
    ),
    Param(
        "gamma_b",
        "Gamma blue",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "colour",
        "Blue gamma after the levels, as log2 (out = in^(2^-value)): + brightens blue midtones, - darkens them.",
    ),
    Param(
        "brightness",
        "Brightness",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "light",
        "Midtone brightness (a smooth lift that keeps black and white fixed).",
    ),
    Param(
        "contrast",
        "Contrast",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "light",
        "Global S-curve contrast on luminance (Exposure's definition), hue preserving.",
    ),
    Param(
        "shadows",
        "Shadows",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "light",
        "Lift (+) or deepen (-) the shadows, hue preserving.",
    ),
    Param(
        "highlights",
        "Highlights",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "light",
        "Brighten (+) or recover (-) the highlights, hue preserving.",
    ),
    Param(
        "curve_1",
        "Curve shadows",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "curve",
        "Tone curve, slope of the darkest quarter (log2 units); the curve is monotone, ends fixed.",
    ),
    Param(
        "curve_2",
        "Curve darks",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "curve",
        "Tone curve, slope of the second quarter (log2 units).",
    ),
    Param(
        "curve_3",
        "Curve lights",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "curve",
        "Tone curve, slope of the third quarter (log2 units).",
    ),
    Param(
        "curve_4",
        "Curve highlights",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "curve",
        "Tone curve, slope of the brightest quarter (log2 units).",
    ),
    Param(
        "gamma",
        "Gamma",
        1.0,
        0.4,
        2.5,
        0.01,
        "global",
        "light",
        "Gamma correction out = in^(1/gamma): above 1 brightens midtones, below 1 darkens.",
    ),
    Param(
        "saturation",
        "Saturation",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "colour",
        "Saturation: -1 is black and white, +1 doubles the chroma.",
    ),
    Param(
        "vibrance",
        "Vibrance",
        0.0,
        -1.0,
        1.0,
        0.01,
        "global",
        "colour",
        "Saturation that favours dull colours and spares already saturated ones.",
    ),
    # ---- post: local, after colour ---------------------------------------------------------
    Param(
        "detail",
        "Detail",
        0.0,
        -1.0,
        1.0,
        0.01,
        "post",
        "local",
        "Local Laplacian detail (alpha): boosts (+) or smooths (-) small-amplitude texture.",
    ),
    Param(
        "local_tone",
        "Local tone",
        0.0,
        -0.5,
        0.5,
        0.01,
        "post",
        "local",
        "Local Laplacian tone (beta - 1): expands (+) or compresses (-) large-scale range, edge aware.",
    ),
    Param(
        "sharpen",
        "Sharpen",
        0.0,
        0.0,
        1.0,
        0.01,
        "post",
        "local",
        "Unsharp-mask sharpening with a radius relative to the image size.",
    ),
    # ---- creative: the "hard set", changes the look; applied last, off by default ------------
    Param(
        "hue",
        "Hue rotation",
        0.0,
        -0.5,
        0.5,
        0.01,
        "creative",
        CREATIVE_GROUP,
        LOOK + "rotates every hue around the colour wheel, in turns (+1/3 turns red into green).",
    ),
    Param(
        "channel_mix",
        "Channel mix",
        0.0,
        -1.0,
        1.0,
        0.01,
        "creative",
        CREATIVE_GROUP,
        LOOK + "mixes each RGB channel with its neighbour (+1: R<-G, G<-B, B<-R; -1 the other way).",
    ),
    Param(
        "black_white",
        "Black & white",
        0.0,
        0.0,
        1.0,
        0.01,
        "creative",
        CREATIVE_GROUP,
        LOOK + "fades to a luminance black-and-white print (1 is fully monochrome).",
    ),
    Param(
        "split_tone",
        "Split toning",
        0.0,
        -1.0,
        1.0,
        0.01,
        "creative",
        CREATIVE_GROUP,
        LOOK + "tints shadows and highlights apart: + teal shadows / orange highlights, - the reverse.",
    ),
    Param(
        "strong_curve",
        "Strong curve",
        0.0,
        -1.0,
        1.0,
        0.01,
        "creative",
        CREATIVE_GROUP,
        LOOK + "a strong per-channel S-curve (+, punchy) or inverse S-curve (-, faded), ends fixed.",
    ),
    Param(
        "solarize",
        "Solarize",
        0.0,
        0.0,
        1.0,
        0.01,
        "creative",
        CREATIVE_GROUP,
        LOOK + "inverts tones above a threshold that falls from 1 to 0.25 as the amount grows.",
    ),
    Param(
        "posterize",
        "Posterize",
        0.0,
        0.0,
        6.0,
        1.0,
        "creative",
        CREATIVE_GROUP,
        LOOK + "removes this many bits per channel (fewer, flat tone levels). Not differentiable.",
    ),
    Param(
        "invert",
        "Invert",
        0.0,
        0.0,
        1.0,
        0.01,
        "creative",
        CREATIVE_GROUP,
        LOOK + "fades to the negative image (1 is fully inverted).",
    ),
    Param(
        "vignette",
        "Vignette",
        0.0,
        -1.0,
        1.0,
        0.01,
        "creative",
        CREATIVE_GROUP,
        LOOK + "darkens (+) or lightens (-) the corners with a smooth radial falloff (applied last).",
    ),
)

PARAMS_BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
PARAM_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS)
NEUTRAL: dict[str, float] = {p.name: p.neutral for p in PARAMS}
#: The creative ("hard set") parameters, in application order, and the rest of the table.
CREATIVE_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS if p.stage == "creative")
CORE_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS if p.stage != "creative")
#: Per-channel levels (a black and a white point per channel, on top of ``blacks`` / ``whites``), in
#: table order: the degrees of freedom of NUlIE's per-channel autocontrast. The search modes move them
#: (soft set); the gradient optimizer leaves them alone unless named in ``active``.
CHANNEL_LEVEL_NAMES: tuple[str, ...] = tuple(f"{kind}_{c}" for kind in ("black", "white") for c in "rgb")
assert all(PARAMS_BY_NAME[n].stage == "global" for n in CHANNEL_LEVEL_NAMES)
#: Per-channel gammas (log2 of each channel's gamma, right after the per-channel levels), in table
#: order: a non-linear tone per channel. Moved only when named in ``active`` (measured in the search
#: soft set, they cost more evaluations than they won).
CHANNEL_GAMMA_NAMES: tuple[str, ...] = tuple(f"gamma_{c}" for c in "rgb")
assert all(PARAMS_BY_NAME[n].stage == "global" for n in CHANNEL_GAMMA_NAMES)


#: Image-adaptive parameters: their curves are read from the photo's own histogram (see
#: :mod:`lib_enhancer.filters.auto`), so the same values give a photo-specific edit.
AUTO_NAMES: tuple[str, ...] = ("auto_contrast", "auto_levels", "equalize")
assert PARAM_NAMES[: len(AUTO_NAMES)] == AUTO_NAMES, (
    "the auto filters read the untouched photo: first in the table"
)


def is_creative(name: str) -> bool:
    """True for a parameter of the ``creative`` stage (an edit that changes the look)."""
    return PARAMS_BY_NAME[name].stage == "creative"


def names_in_stage(stage: Stage) -> tuple[str, ...]:
    """Names of the parameters of one stage, in table order."""
    return tuple(p.name for p in PARAMS if p.stage == stage)


def get_param(name: str) -> Param:
    """Look up a parameter; unknown names raise with close-match suggestions."""
    try:
        return PARAMS_BY_NAME[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, PARAM_NAMES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown filter parameter {name!r}.{hint} Known: {', '.join(PARAM_NAMES)}") from None


def validate_params(values: dict[str, float], *, clamp: bool = False) -> dict[str, float]:
    """Check names and ranges of a parameter mapping; returns a new ``{name: float}`` dict.

    Args:
        values: parameter values by name (a subset is fine).
        clamp: clamp out-of-range values instead of raising.

    Raises:
        KeyError: an unknown name.
        ValueError: a non-finite or out-of-range value (when ``clamp`` is false).
    """
    return {name: checked_value(get_param(name), value, clamp=clamp) for name, value in values.items()}


def checked_value(param: Param, value: float, *, clamp: bool = False, kind: str = "parameter") -> float:
    """One value checked against ``param``: finite, in range (or clamped when ``clamp``)."""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{kind} {param.name!r} must be finite, got {value!r}")
    if not clamp and not (param.minimum - 1e-9 <= v <= param.maximum + 1e-9):
        raise ValueError(
            f"{kind} {param.name!r}={v:g} is outside its range [{param.minimum:g}, {param.maximum:g}]"
        )
    return param.clamp(v)
