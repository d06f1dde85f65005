"""NIMA (Talebi & Milanfar 2018): a VGG16 that predicts the 10-bin AVA rating distribution.

The network is torchvision's VGG16 convolutional trunk, global average pooling and a
``Linear(512, 10)`` + softmax head, exactly pyiqa's ``nima-vgg16-ava``; the score is the mean of
the distribution, ``Σ p_i · i`` over ratings 1..10.

Weights: pyiqa's retrained checkpoint ``NIMA_VGG16_ava-dc4e8265.pth`` (``{'params': state_dict}``,
built with ``timm.create_model('vgg16', features_only=True)``), mapped key by key onto the
torchvision layout by :func:`map_pyiqa_nima_vgg16` (no timm needed). **The weights are
CC-BY-NC-SA-4.0: non-commercial use only.**

Inputs are ImageNet-normalised (mean ``(0.485, 0.456, 0.406)``, std ``(0.229, 0.224, 0.225)``)
after the aspect-aware crops of :mod:`lib_enhancer.scorers.preprocess`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from lib_enhancer import models
from lib_enhancer.scorers.preprocess import (
    CropSpec,
    autocast_context,
    multi_crop,
    normalize,
    resolve_device,
    resolve_dtype,
)
from lib_enhancer.scorers.registry import ScorerInfo, register_scorer

Tensor = torch.Tensor
PathLike = str | os.PathLike[str]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NIMA_FILE = "NIMA_VGG16_ava-dc4e8265.pth"
#: Indices of the 13 convolutions in VGG16's ``features`` (torchvision and timm agree).
VGG16_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

# pyiqa: NIMA.base_model = timm FeatureListNet (flatten_sequential: `features.N` -> `features_N`),
# NIMA.classifier = Sequential(Flatten, Dropout, Linear(512, 10), Softmax).
_PYIQA_FEATURE = re.compile(r"^base_model\.features[._](\d+)\.(weight|bias)$")
_PYIQA_HEAD = re.compile(r"^classifier\.2\.(weight|bias)$")


def build_vgg16_features() -> nn.Sequential:
    """torchvision's VGG16 convolutional trunk (configuration D, no batch norm), random weights."""
    from torchvision.models import vgg

    if hasattr(vgg, "make_layers") and hasattr(vgg, "cfgs"):
        return vgg.make_layers(vgg.cfgs["D"], batch_norm=False)
    return vgg.vgg16(weights=None).features  # pragma: no cover - older/newer torchvision layouts


class NimaVGG16(nn.Module):
    """VGG16 trunk -> global average pool -> ``Linear(512, 10)`` -> softmax (rating distribution).

    Shape:
        ``(B, 3, H, W)`` ImageNet-normalised -> ``(B, 10)`` probabilities of ratings 1..10.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = build_vgg16_features()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(x).softmax(dim=-1)


def dist_to_mean(dist: Tensor) -> Tensor:
    """Mean rating ``Σ p_i · i`` of ``(..., 10)`` distributions over ratings 1..10."""
    ratings = torch.arange(1, dist.shape[-1] + 1, device=dist.device, dtype=dist.dtype)
    return (dist * ratings).sum(dim=-1)


def map_pyiqa_nima_vgg16(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a pyiqa ``NIMA(base_model_name='vgg16')`` state dict to :class:`NimaVGG16` keys.

    ``base_model.features_N.{weight,bias}`` (also ``features.N``) -> ``features.N.*``;
    ``classifier.2.*`` -> ``classifier.*``; a ``module.`` prefix is stripped.

    Raises:
        ValueError: unknown keys, or keys of :class:`NimaVGG16` left without a value.
    """
    mapped: dict[str, Tensor] = {}
    unknown: list[str] = []
    for raw_key, value in state.items():
        key = raw_key.removeprefix("module.")
        if m := _PYIQA_FEATURE.match(key):
            mapped[f"features.{m.group(1)}.{m.group(2)}"] = value
        elif m := _PYIQA_HEAD.match(key):
            mapped[f"classifier.{m.group(1)}"] = value
        else:
            unknown.append(raw_key)
    expected = {f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")}
    expected |= {"classifier.weight", "classifier.bias"}
    missing = sorted(expected - set(mapped))
    extra = sorted(set(mapped) - expected)
    if unknown or missing or extra:
        raise ValueError(
            "not a pyiqa NIMA-VGG16 checkpoint: "
            + "; ".join(
                f"{label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                for label, keys in (("unknown keys", unknown), ("missing", missing), ("unexpected", extra))
                if keys
            )
        )
    return mapped


def load_nima_vgg16(path: PathLike) -> NimaVGG16:
    """Build :class:`NimaVGG16` and load a pyiqa checkpoint (``{'params': ...}``) with ``weights_only``."""
    state = models.load_state_dict(path, key="params")
    model = NimaVGG16()
    try:
        model.load_state_dict(map_pyiqa_nima_vgg16(state), strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{path}: tensors do not fit NIMA-VGG16: {exc}") from exc
    return model


class NimaScorer(nn.Module):
    """NIMA mean rating (1-10) averaged over aspect-aware crops; differentiable w.r.t. the input."""

    def __init__(self, model: NimaVGG16, crop: CropSpec, *, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(device=device, dtype=dtype).eval()
        self.crop = crop
        self.device = device
        self.dtype = dtype

    def distribution(self, images: Tensor) -> Tensor:
        """Rating distributions ``(B, 10)`` averaged over crops."""
        x = images.to(device=self.device, dtype=torch.float32)
        crops, n = multi_crop(x, self.crop, fill=IMAGENET_MEAN)
        crops = normalize(crops, IMAGENET_MEAN, IMAGENET_STD)
        with autocast_context(self.device, self.dtype):
            dist = self.model(crops)
        return dist.float().view(images.shape[0], n, -1).mean(dim=1)

    def forward(self, images: Tensor) -> Tensor:
        """Mean ratings ``(B,)`` of ``(B, 3, H, W)`` sRGB images in [0, 1]."""
        return dist_to_mean(self.distribution(images)).to(images.device)


@register_scorer(
    ScorerInfo(
        name="nima",
        description=(
            "NIMA aesthetic rating (VGG16 retrained on AVA by pyiqa): 10-bin rating distribution -> mean, "
            "1-10. NON-COMMERCIAL: the weights are CC-BY-NC-SA-4.0 (59 MB download). "
            "~0.3 s/image forward on 2 CPU cores."
        ),
        score_range=(1.0, 10.0),
        input_size=224,
        weights=(NIMA_FILE,),
        license="CC-BY-NC-SA-4.0 (weights; non-commercial use only)",
        tags=("aesthetic", "nima", "non-commercial"),
    )
)
def create_nima(
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: PathLike | None = None,
    crop_mode: str = "cover",
    max_crops: int = 4,
    input_size: int = 224,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    weights: PathLike | None = None,
) -> NimaScorer:
    """Options: ``crop_mode``, ``max_crops``, ``input_size`` (crop side), ``offline``,
    ``search_dirs``; ``weights`` an explicit pyiqa-format checkpoint file."""
    dev = resolve_device(device)
    dt = resolve_dtype(dev, dtype)
    path = (
        Path(weights)
        if weights is not None
        else models.ensure_file(NIMA_FILE, cache_dir, offline, search_dirs=search_dirs)
    )
    model = load_nima_vgg16(path)
    model.requires_grad_(False)
    crop = CropSpec(size=input_size, mode=crop_mode, max_crops=max_crops)  # type: ignore[arg-type]
    return NimaScorer(model, crop, device=dev, dtype=dt)
