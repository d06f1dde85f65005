"""Aspect-aware, differentiable preprocessing shared by the neural scorers.

Scorer backbones see fixed-size squares (224 px for CLIP and NIMA). Squashing an image into that
square, or scoring only its centre crop, biases the score against wide images and ignores their
edges. The crop modes here never squash:

* ``cover`` (default): resize the short side to ``size`` and take ``N = ceil(long / size)`` evenly
  spaced, overlapping square crops along the long side, so together they cover every pixel row
  and column. Scores are averaged over the crops. ``max_crops`` bounds ``N`` for panoramas: the
  image is then shrunk until ``max_crops`` crops cover it, and the short side is padded.
* ``five_crop``: the four corners and the centre at native resolution (WESPE's Flickr protocol);
  an image smaller than ``size`` is first enlarged.
* ``pad``: resize the long side to ``size`` and pad the short side (letterbox).
* ``center``: resize the short side and take the centre square (CLIP's default; edges ignored;
  for comparison only).

Everything is plain tensor arithmetic (antialiased bicubic resize, slicing, padding), so scores
are differentiable with respect to the input pixels.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

CropMode = Literal["cover", "five_crop", "pad", "center"]
CROP_MODES: tuple[str, ...] = ("cover", "five_crop", "pad", "center")


@dataclass(frozen=True)
class CropSpec:
    """How a scorer turns an image of any shape into fixed-size squares.

    Attributes:
        size: side of the squares the backbone sees.
        mode: one of :data:`CROP_MODES`.
        max_crops: upper bound on the number of crops in ``cover`` mode.
    """

    size: int
    mode: CropMode = "cover"
    max_crops: int = 4

    def __post_init__(self) -> None:
        if self.mode not in CROP_MODES:
            raise ValueError(f"unknown crop mode {self.mode!r}; choose one of {', '.join(CROP_MODES)}")
        if self.size < 1 or self.max_crops < 1:
            raise ValueError(f"size and max_crops must be positive, got {self.size} and {self.max_crops}")


def resize(images: torch.Tensor, height: int, width: int, *, antialias: bool = True) -> torch.Tensor:
    """Differentiable bicubic resize with antialiasing (like PIL/torchvision), no clamping.

    Shape:
        ``(B, C, H, W) -> (B, C, height, width)``. Returns the input itself when the size matches.
    """
    if images.shape[-2:] == (height, width):
        return images
    return F.interpolate(
        images, size=(height, width), mode="bicubic", align_corners=False, antialias=antialias
    )


def resize_short_side(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the shorter side equals ``size``, keeping the aspect ratio."""
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    return resize(images, max(size, round(h * scale)), max(size, round(w * scale)))


def crop_offsets(length: int, size: int, count: int) -> list[int]:
    """Start offsets of ``count`` crops of ``size`` evenly spread over ``length`` (first at 0, last at the end)."""
    if count == 1 or length <= size:
        return [max(0, (length - size) // 2)] * count
    return [round(i * (length - size) / (count - 1)) for i in range(count)]


def _pad_to(images: torch.Tensor, height: int, width: int, fill: Sequence[float] | None) -> torch.Tensor:
    """Pad symmetrically up to at least ``height x width`` with the per-channel colour ``fill`` (default 0)."""
    h, w = images.shape[-2:]
    ph, pw = max(0, height - h), max(0, width - w)
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if fill is None:
        return F.pad(images, pad)
    colour = torch.tensor(fill, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return F.pad(images - colour, pad) + colour


def multi_crop(
    images: torch.Tensor, spec: CropSpec, *, fill: Sequence[float] | None = None
) -> tuple[torch.Tensor, int]:
    """Cut a batch into square crops according to ``spec``.

    Args:
        images: ``(B, 3, H, W)`` floats, any size and aspect ratio.
        spec: crop size and mode.
        fill: per-channel padding colour for ``pad`` mode and capped ``cover`` mode (use the
            backbone's normalisation mean so padding is zero after normalisation); default 0.

    Returns:
        ``(crops, n)``: ``crops`` is ``(B * n, 3, size, size)`` ordered image-major (the ``n``
        crops of image 0 first), so per-crop scores reshape with ``.view(B, n)``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
    size = spec.size
    b = images.shape[0]
    if spec.mode == "pad":
        h, w = images.shape[-2:]
        scale = size / max(h, w)
        x = resize(images, max(1, round(h * scale)), max(1, round(w * scale)))
        return _pad_to(x, size, size, fill), 1
    if spec.mode == "five_crop":
        x = images if min(images.shape[-2:]) >= size else resize_short_side(images, size)
        h, w = x.shape[-2:]
        corners = [
            (0, 0),
            (0, w - size),
            (h - size, 0),
            (h - size, w - size),
            ((h - size) // 2, (w - size) // 2),
        ]
        crops = [x[..., top : top + size, left : left + size] for top, left in corners]
        return torch.stack(crops, dim=1).reshape(b * 5, 3, size, size), 5
    x = resize_short_side(images, size)
    h, w = x.shape[-2:]
    if spec.mode == "center":
        top, left = (h - size) // 2, (w - size) // 2
        return x[..., top : top + size, left : left + size], 1
    long_side = max(h, w)
    n = math.ceil(long_side / size)
    if n > spec.max_crops:
        # shrink until max_crops squares cover the long side; pad the now too short side
        n = spec.max_crops
        scale = n * size / long_side
        x = resize(images, max(1, round(h * scale)), max(1, round(w * scale)))
        h, w = x.shape[-2:]
        if h < size or w < size:
            x = _pad_to(x, size, size, fill)
            h, w = x.shape[-2:]
    if w >= h:
        crops = [x[..., :size, o : o + size] for o in crop_offsets(w, size, n)]
    else:
        crops = [x[..., o : o + size, :size] for o in crop_offsets(h, size, n)]
    return torch.stack(crops, dim=1).reshape(b * n, 3, size, size), n


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel, constants on the input's device and dtype."""
    m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - m) / s


# ---------------------------------------------------------------------------------------------
# Device and precision


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``None`` means CPU; nothing is ever chosen behind the caller's back."""
    return torch.device("cpu") if device is None else torch.device(device)


def resolve_dtype(device: torch.device, dtype: torch.dtype | None) -> torch.dtype:
    """Weight dtype: the given one, else float16 on CUDA and float32 elsewhere.

    Raises:
        ValueError: float16 on CPU (use bfloat16 or float32 there).
    """
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"unsupported scorer dtype {dtype}; use float32, float16 or bfloat16")
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("float16 weights are not supported on CPU; use bfloat16 or float32")
    return dtype


def autocast_context(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[object]:
    """Mixed-precision autocast for half/bfloat16 weights, a no-op for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
