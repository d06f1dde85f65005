"""Scorer registry (pyiqa style): metadata + factory per name, lazy registration.

A scorer is a ``torch.nn.Module`` whose ``forward(images)`` takes a ``(B, 3, H, W)`` float tensor of
sRGB values in [0, 1] (any size, any aspect ratio: the scorer does its own aspect-aware
preprocessing) and returns a ``(B,)`` tensor of scores. Parameters are frozen and the module is in
``eval()`` mode. ``info.higher_is_better`` tells the optimizer which way to go.

Modules that define scorers register them with :func:`register_scorer`; they are imported on the
first registry access (never at ``import lib_enhancer``), and their factories import heavy
dependencies (open_clip, weights) only when called.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Modules imported on first registry access; each registers its scorers at import.
BUILTIN_SCORER_MODULES: list[str] = [
    "lib_enhancer.scorers.natural",
]


@dataclass(frozen=True)
class ScorerInfo:
    """What a scorer is, what it costs and what it needs."""

    name: str
    description: str
    score_range: tuple[float, float]
    higher_is_better: bool = True
    differentiable: bool = True
    input_size: int | None = None  # native square side the backbone sees; None = any size
    weights: tuple[str, ...] = ()  # model-manager file names it needs (empty = none)
    license: str = "MIT"
    tags: tuple[str, ...] = field(default_factory=tuple)


ScorerFactory = Callable[..., "torch.nn.Module"]

_REGISTRY: dict[str, tuple[ScorerInfo, ScorerFactory]] = {}
_loaded = False


def register_scorer(info: ScorerInfo) -> Callable[[ScorerFactory], ScorerFactory]:
    """Decorator registering ``factory(device=, dtype=, cache_dir=, **options) -> Module`` under ``info.name``."""

    def decorator(factory: ScorerFactory) -> ScorerFactory:
        if info.name in _REGISTRY and _REGISTRY[info.name][1] is not factory:
            raise ValueError(f"scorer {info.name!r} is already registered")
        _REGISTRY[info.name] = (info, factory)
        return factory

    return decorator


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_SCORER_MODULES:
        importlib.import_module(module)


def list_scorers() -> list[ScorerInfo]:
    """All registered scorers' metadata, in registration order."""
    _ensure_loaded()
    return [info for info, _ in _REGISTRY.values()]


def _unknown(name: str) -> KeyError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return KeyError(f"unknown scorer {name!r}.{hint} Known scorers: {', '.join(_REGISTRY)}")


def get_scorer_info(name: str) -> ScorerInfo:
    """Metadata of one registered scorer; unknown names raise with suggestions."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise _unknown(name)
    return _REGISTRY[name][0]


def create_scorer(
    name: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | None = None,
    **options: Any,
) -> torch.nn.Module:
    """Build a scorer by registry name, frozen and in eval mode, on ``device`` (default CPU)."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise _unknown(name)
    info, factory = _REGISTRY[name]
    scorer = factory(device=device, dtype=dtype, cache_dir=cache_dir, **options)
    scorer.info = info
    scorer.eval()
    for p in scorer.parameters():
        p.requires_grad_(False)
    return scorer
