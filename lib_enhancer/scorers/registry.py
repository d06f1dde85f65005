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
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Modules imported on first registry access; each registers its scorers at import.
BUILTIN_SCORER_MODULES: list[str] = [
    "lib_enhancer.scorers.natural",
    "lib_enhancer.scorers.clip",
    "lib_enhancer.scorers.nima",
    "lib_enhancer.scorers.ensemble",
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
    # False for scorers blind to fine texture (image statistics): the optimizer then leaves the
    # local detail parameters alone instead of letting them drift at no cost.
    judges_detail: bool = True


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
    for module in BUILTIN_SCORER_MODULES:
        importlib.import_module(module)
    _loaded = True  # only once every module imported: a failed import is retried, not hidden


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


def _split_weight(item: str) -> tuple[str, float | None]:
    """``"laion:0.7"`` -> ``("laion", 0.7)``; ``"taste:mine"`` -> ``("taste:mine", None)``."""
    head, sep, tail = item.rpartition(":")
    if not sep:
        return item, None
    try:
        weight = float(tail)
    except ValueError:
        return item, None
    if not head.strip():
        raise ValueError(f"scorer spec item {item!r} has a weight but no scorer name")
    return head.strip(), weight


def is_ensemble_spec(spec: str) -> bool:
    """True for ensemble specs such as ``"laion:0.7,natural:0.3"`` or ``"laion:1"``."""
    return "," in spec or _split_weight(spec.strip())[1] is not None


def parse_scorer_spec(spec: str) -> list[tuple[str, float]]:
    """Parse ``"name[:weight],name[:weight],..."`` into ``[(name, weight), ...]`` (weight default 1).

    A trailing ``:<number>`` is a weight; any other colon is part of the name (``taste:<name>``).

    Raises:
        ValueError: an empty item or a weight without a name.
    """
    items = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"empty member in scorer spec {spec!r}")
        name, weight = _split_weight(item)
        items.append((name, 1.0 if weight is None else weight))
    return items


def scorer_accepts_option(name: str, option: str) -> bool:
    """Whether the factory of registered scorer ``name`` takes keyword option ``option``."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise _unknown(name)
    params = inspect.signature(_REGISTRY[name][1]).parameters
    return option in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def create_scorer(
    name: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | None = None,
    **options: Any,
) -> torch.nn.Module:
    """Build a scorer by registry name, frozen and in eval mode, on ``device`` (default CPU).

    ``name`` may also be an ensemble spec, ``"laion:0.7,natural:0.3"``, and ``fidelity=<weight>``
    adds an SSIM-to-the-reference term; both build an
    :class:`~lib_enhancer.scorers.ensemble.EnsembleScorer` whose score is the weighted mean of the
    members' scores mapped to [0, 1] (see :func:`lib_enhancer.scorers.ensemble.create_ensemble`).
    """
    _ensure_loaded()
    fidelity = options.pop("fidelity", None)
    if fidelity or is_ensemble_spec(name):
        from lib_enhancer.scorers.ensemble import create_ensemble

        scorer = create_ensemble(
            name, device=device, dtype=dtype, cache_dir=cache_dir, fidelity=fidelity, **options
        )
    else:
        if name not in _REGISTRY:
            raise _unknown(name)
        info, factory = _REGISTRY[name]
        scorer = factory(device=device, dtype=dtype, cache_dir=cache_dir, **options)
        scorer.info = info
    scorer.eval()
    for p in scorer.parameters():
        p.requires_grad_(False)
    return scorer
