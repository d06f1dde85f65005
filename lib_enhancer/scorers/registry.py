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
import os
from collections.abc import Callable, Hashable
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
    "lib_enhancer.taste",
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
    # The gradient optimizer's pull towards neutral this scorer is tuned for (None: OptimizeConfig's).
    l2: float | None = None
    # Where the gradient optimizer starts and what its pull pulls towards, as (name, value) pairs
    # (empty: neutral), e.g. ``natural``'s auto contrast; see optimize.default_prior.
    prior: tuple[tuple[str, float], ...] = ()


ScorerFactory = Callable[..., "torch.nn.Module"]

_REGISTRY: dict[str, tuple[ScorerInfo, ScorerFactory]] = {}
_loaded = False


@dataclass(frozen=True)
class ScorerFamily:
    """Scorers named ``<prefix>:<member>`` that exist as files, not code (``taste:<name>``).

    ``resolve(member, cache_dir)`` returns the member's ``(info, factory)`` or ``None`` when there is
    no such member in ``cache_dir`` (``None``: the default model cache); ``members()`` lists the
    available ones (read when listing scorers, never at import). ``token(member, cache_dir)``, when
    given, returns a cheap hashable fingerprint of the member's files (e.g. their mtimes and sizes):
    it changes when the member is retrained, so caches of built scorers notice (see
    :func:`scorer_cache_token`).
    """

    prefix: str
    resolve: Callable[[str, str | None], tuple[ScorerInfo, ScorerFactory] | None]
    members: Callable[[], list[ScorerInfo]]
    factory: ScorerFactory  # every member's factory has this one's keyword options
    hint: str = ""  # how to create a member, for the unknown-name error
    token: Callable[[str, str | None], Hashable] | None = None


_FAMILIES: dict[str, ScorerFamily] = {}


def register_scorer_family(family: ScorerFamily) -> ScorerFamily:
    """Register a family of file-backed scorers resolved by name prefix."""
    if family.prefix in _FAMILIES and _FAMILIES[family.prefix] is not family:
        raise ValueError(f"scorer family {family.prefix!r} is already registered")
    _FAMILIES[family.prefix] = family
    return family


def _lookup(name: str, cache_dir: str | None = None) -> tuple[ScorerInfo, ScorerFactory]:
    """A registered scorer, or a member of a family (``taste:<name>``); unknown names raise."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    prefix, sep, member = name.partition(":")
    family = _FAMILIES.get(prefix) if sep else None
    if family is not None:
        found = family.resolve(member, cache_dir)
        if found is not None:
            return found
        known = [i.name for i in family.members()]
        listing = f" Available: {', '.join(known)}." if known else ""
        raise KeyError(f"unknown scorer {name!r}: no such {prefix} model.{listing} {family.hint}".rstrip())
    raise _unknown(name)


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
    """All registered scorers' metadata, in registration order, then the members of scorer families."""
    _ensure_loaded()
    infos = [info for info, _ in _REGISTRY.values()]
    for family in _FAMILIES.values():
        infos.extend(family.members())
    return infos


def _unknown(name: str) -> KeyError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return KeyError(f"unknown scorer {name!r}.{hint} Known scorers: {', '.join(_REGISTRY)}")


def get_scorer_info(name: str) -> ScorerInfo:
    """Metadata of one registered scorer; unknown names raise with suggestions."""
    _ensure_loaded()
    return _lookup(name)[0]


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
    prefix, sep, _ = name.partition(":")
    if sep and name not in _REGISTRY and prefix in _FAMILIES:
        factory = _FAMILIES[prefix].factory  # the member may live in a cache_dir given later
    else:
        factory = _lookup(name)[1]
    params = inspect.signature(factory).parameters
    return option in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def scorer_cache_token(spec: str, cache_dir: str | os.PathLike[str] | None = None) -> tuple[Hashable, ...]:
    """Fingerprint of the files behind scorer ``spec`` (a name or an ensemble spec), for caches.

    Built-in scorers give ``()``; members of a scorer family with a ``token`` (``taste:<name>``)
    give their token, which changes when the model file is rewritten, so a cache keyed on
    ``(spec, ..., scorer_cache_token(spec, cache_dir))`` rebuilds a retrained model. Cheap (a few
    ``stat`` calls); never raises for malformed or unknown specs (building them raises instead).
    """
    _ensure_loaded()
    try:
        names = [n for n, _ in parse_scorer_spec(spec)] if is_ensemble_spec(spec) else [spec]
    except ValueError:
        return ()
    folder = None if cache_dir is None else str(cache_dir)
    tokens: list[Hashable] = []
    for name in names:
        prefix, sep, member = name.partition(":")
        family = _FAMILIES.get(prefix) if sep and name not in _REGISTRY else None
        if family is not None and family.token is not None:
            tokens.append((name, family.token(member, folder)))
    return tuple(tokens)


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
        info, factory = _lookup(name, None if cache_dir is None else str(cache_dir))
        scorer = factory(device=device, dtype=dtype, cache_dir=cache_dir, **options)
        scorer.info = info
    scorer.eval()
    for p in scorer.parameters():
        p.requires_grad_(False)
    return scorer
