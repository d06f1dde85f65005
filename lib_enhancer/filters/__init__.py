"""Exact differentiable photo filters (kornia style) and the filter chain."""

from lib_enhancer.filters.color import (
    brightness,
    channel_gamma,
    channel_levels,
    contrast,
    exposure,
    gamma,
    highlights,
    levels,
    linear_to_srgb,
    luminance,
    saturation,
    shadows,
    srgb_to_linear,
    tone_curve,
    vibrance,
    white_balance,
)
from lib_enhancer.filters.local import dehaze, local_laplacian, sharpen, transmission
from lib_enhancer.filters.pipeline import STEPS, apply_filters

__all__ = [
    "STEPS",
    "apply_filters",
    "brightness",
    "channel_gamma",
    "channel_levels",
    "contrast",
    "dehaze",
    "exposure",
    "gamma",
    "highlights",
    "levels",
    "linear_to_srgb",
    "local_laplacian",
    "luminance",
    "saturation",
    "shadows",
    "sharpen",
    "srgb_to_linear",
    "tone_curve",
    "transmission",
    "vibrance",
    "white_balance",
]
