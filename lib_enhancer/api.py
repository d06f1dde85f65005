"""The Python API: ``enhance``, ``score``, ``apply`` on PIL images, numpy arrays and tensors.

Every function returns the image in the type it was given: a PIL image (mode kept, alpha kept), an
``(H, W, 3|4)`` uint8/uint16/float array, or a float ``(3, H, W)`` / ``(B, 3, H, W)`` tensor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lib_enhancer.filters.auto import AutoTables
from lib_enhancer.modes import LEARNED_MODES, MODES, SEARCH_MODES
from lib_enhancer.optimize import (
    OptimizeConfig,
    Step,
    blend,
    default_active,
    optimize,
    reference_scope,
    score_sign,
    score_span,
)
from lib_enhancer.recipe import Recipe
from lib_enhancer.render import auto_curves, downscale, render, render_tensor

DEFAULT_SCORER = "natural"
PREVIEW_SIDE = 256  # long side of the preview the optimizer works on
PREVIEW_SIDE_STATISTICS = 160  # enough for scorers blind to texture (they look at 160 px themselves)


@dataclass
class Result:
    """What :func:`enhance` returns."""

    image: Any  # same type as the input
    recipe: Recipe
    score_before: float
    score_after: float
    history: list[Step] = field(default_factory=list)
    identity: bool = False
    message: str = ""
    lut: np.ndarray | None = None  # ``histogram`` mode: the exact edit (the recipe approximates it)

    @property
    def scores(self) -> dict[str, float]:
        return {"before": self.score_before, "after": self.score_after}


# ---------------------------------------------------------------------------------------------
# Image type adapters
# ---------------------------------------------------------------------------------------------


@dataclass
class _Adapted:
    rgb: np.ndarray | None  # (H, W, 3) uint8/uint16 for array-like inputs
    tensor: torch.Tensor | None  # float (*, 3, H, W) for tensor inputs
    restore: Callable[[np.ndarray | torch.Tensor], Any]


def _adapt(image: Any) -> _Adapted:
    """Split an input image into RGB pixels and a function that rebuilds the caller's type."""
    if isinstance(image, torch.Tensor):
        if image.dim() not in (3, 4) or image.shape[-3] != 3 or not image.is_floating_point():
            raise ValueError(
                f"tensor images must be float (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}"
            )
        return _Adapted(None, image, lambda out: out)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(image, Image.Image):
        return _adapt_pil(image)
    if isinstance(image, np.ndarray):
        return _adapt_array(image)
    raise TypeError(f"unsupported image type {type(image).__name__}: pass a PIL image, numpy array or tensor")


def _adapt_pil(image: Any) -> _Adapted:
    from PIL import Image

    mode = image.mode
    alpha = image.getchannel("A") if "A" in image.getbands() else None
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image, dtype=np.uint16 if mode.startswith("I;16") else np.int32)
        rgb = np.repeat(np.clip(grey, 0, 65535).astype(np.uint16)[..., None], 3, axis=2)
        return _Adapted(rgb, None, lambda out: Image.fromarray(out[..., 0].astype(np.uint16)))
    rgb = np.asarray(image.convert("RGB"))

    def restore(out: np.ndarray) -> Any:
        result = Image.fromarray(out, "RGB")
        if alpha is not None:
            result.putalpha(alpha)
        elif mode in ("L", "LA"):
            result = result.convert("L")
        for key, value in image.info.items():
            if isinstance(key, str) and key in ("icc_profile", "exif", "dpi"):
                result.info[key] = value
        return result

    return _Adapted(rgb, None, restore)


def _adapt_array(image: np.ndarray) -> _Adapted:
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"array images must be (H, W, 3) or (H, W, 4), got {image.shape}")
    alpha = image[..., 3:] if image.shape[2] == 4 else None
    rgb = image[..., :3]
    if image.dtype in (np.uint8, np.uint16):

        def restore(out: np.ndarray) -> np.ndarray:
            return np.concatenate([out, alpha], axis=2) if alpha is not None else out

        return _Adapted(np.ascontiguousarray(rgb), None, restore)
    if np.issubdtype(image.dtype, np.floating):
        as16 = (np.clip(rgb, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)

        def restore_float(out: np.ndarray) -> np.ndarray:
            f = out.astype(image.dtype) / 65535.0
            return np.concatenate([f, alpha], axis=2) if alpha is not None else f

        return _Adapted(as16, None, restore_float)
    raise TypeError(f"unsupported array dtype {image.dtype}: use uint8, uint16 or float in [0, 1]")


# ---------------------------------------------------------------------------------------------
# Scorers, cached per (name, device, options, files behind the scorer)
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _cached_scorer(
    name: str, device: str | None, options: tuple[tuple[str, Any], ...], token: tuple[Any, ...] = ()
) -> torch.nn.Module:
    """``token`` (:func:`~lib_enhancer.scorers.registry.scorer_cache_token`) only keys the cache."""
    from lib_enhancer.scorers import create_scorer

    return create_scorer(name, device=device, **dict(options))


def get_scorer(
    scorer: str | torch.nn.Module = DEFAULT_SCORER, device: str | torch.device | None = None, **options: Any
) -> torch.nn.Module:
    """A scorer instance: pass-through for modules, cached registry construction for names.

    A scorer built from a file (``taste:<name>``) is rebuilt once that file changes (retrained).
    """
    if isinstance(scorer, torch.nn.Module):
        return scorer
    from lib_enhancer.scorers.registry import scorer_cache_token

    token = scorer_cache_token(scorer, options.get("cache_dir"))
    return _cached_scorer(
        scorer, str(device) if device is not None else None, tuple(sorted(options.items())), token
    )


def _first_image(tensor: torch.Tensor) -> torch.Tensor:
    """The first image of a ``(3, H, W)`` or ``(B, 3, H, W)`` tensor input, as ``(1, 3, H, W)``."""
    return (tensor if tensor.dim() == 4 else tensor.unsqueeze(0))[:1]


def _preview(adapted: _Adapted, side: int, device: str | torch.device | None) -> torch.Tensor:
    if adapted.tensor is not None:
        x = _first_image(adapted.tensor)
        h, w = x.shape[-2:]
        scale = min(1.0, side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = torch.nn.functional.interpolate(
                x, size=size, mode="bilinear", antialias=True, align_corners=False
            )
        return x.detach().float().to(device or "cpu")
    assert adapted.rgb is not None
    return downscale(adapted.rgb, side).to(device or "cpu")


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------


def score(
    image: Any,
    scorer: str | torch.nn.Module = DEFAULT_SCORER,
    *,
    device: str | torch.device | None = None,
    preview_side: int = 512,
    **scorer_options: Any,
) -> float:
    """Score one image with a registry scorer (higher is better unless the scorer says otherwise)."""
    module = get_scorer(scorer, device, **scorer_options)
    with torch.no_grad():
        return float(module(_preview(_adapt(image), preview_side, device)).reshape(-1)[0])


def apply(recipe: Recipe | Mapping[str, Any] | str, image: Any) -> Any:
    """Apply a recipe (object, dict or JSON string) to an image at full resolution."""
    rec = _as_recipe(recipe)
    adapted = _adapt(image)
    if adapted.tensor is not None:
        with torch.no_grad():
            return adapted.restore(render_tensor(adapted.tensor, rec))
    assert adapted.rgb is not None
    return adapted.restore(render(adapted.rgb, rec))


def _as_recipe(recipe: Recipe | Mapping[str, Any] | str) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        return Recipe.from_json(recipe)
    return Recipe.from_dict(recipe)


def _search(
    preview: torch.Tensor,
    module: torch.nn.Module,
    mode: str,
    max_evals: int,
    options: dict[str, Any],
    strength: float,
    callback: Callable[[Step], bool | None] | None,
) -> Any:
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    from lib_enhancer.params import CREATIVE_NAMES
    from lib_enhancer.search import SearchConfig, search

    named = (*options["active"], *options["lock"], *options["init"])
    config = SearchConfig(
        mode=mode,
        max_evals=max_evals,
        time_budget=options["time_budget"],
        seed=options["seed"],
        active=options["active"],
        lock=options["lock"],
        # no warm start: start from the given prior, else the scorer's own ({} = neutral)
        init=options["init"] or options.get("prior"),
        hard=any(n in CREATIVE_NAMES for n in named),  # creative edits only when asked for by name
    )
    return search(preview, module, config, strength=strength, callback=callback)


def enhance(
    image: Any,
    *,
    scorer: str | torch.nn.Module = DEFAULT_SCORER,
    mode: str = "gradient",
    steps: int = 40,
    max_evals: int | None = None,
    time_budget: float | None = None,
    strength: float = 1.0,
    seed: int = 0,
    restarts: int = 4,
    l2: float | None = None,
    lock: Mapping[str, float] | None = None,
    active: tuple[str, ...] | None = None,
    init: Recipe | Mapping[str, float] | str | None = None,
    prior: Mapping[str, float] | None = None,
    preview_side: int | None = None,
    device: str | torch.device | None = None,
    callback: Callable[[Step], bool | None] | None = None,
    scorer_options: Mapping[str, Any] | None = None,
    model: str | None = None,
    verify: bool = True,
) -> Result:
    """Enhance an image: optimise a recipe on a preview against ``scorer``, apply it at full size.

    Args:
        image: PIL image, ``(H, W, 3|4)`` array (uint8, uint16 or float) or float tensor.
        scorer: registry name (``natural`` needs no download) or a scorer module.
        mode: ``gradient`` (the optimizer, default), a search mode of :mod:`lib_enhancer.search`
            (``best-first``, ``beam``, ``hybrid``, ``hybrid-reverse``; ``nulie`` is a reference
            re-implementation for benchmarks and is not offered here), or a learned feed-forward
            mode (``predict``: the recipe predictor; ``histogram``: the histogram network's LUT).
            Learned modes run no scorer loop: the model proposes one edit and, with ``verify``,
            the scorer picks among the model's start point (its prior, e.g. auto contrast) and
            the proposal (``predict``: whole; ``histogram``: at half strength;
            :data:`~lib_enhancer.learned.modes.VERIFY_FRACTIONS`).
        steps, time_budget: budgets in optimizer steps and seconds.
        max_evals: budget in scored images for the search modes (default ``steps × restarts``).
        strength: blend of the found edit towards neutral, in [0, 1].
        seed: makes the run reproducible.
        restarts: candidates optimised together (one batched scorer call per step).
        l2: pull towards neutral (larger = more conservative edits); default: the scorer's own
            (:func:`~lib_enhancer.optimize.default_l2`; ``natural`` declares 3.0, others 0.3).
        lock: parameters held at fixed values.
        active: parameters the optimizer may change (default: the scorer's
            :func:`~lib_enhancer.optimize.default_active` set — all but sharpen, the per-channel levels
            and gammas, the auto filters and the creative edits —; the search modes'
            :func:`~lib_enhancer.search.soft_set` adds the per-channel levels and the auto filters).
        init: warm start (a recipe, a parameter mapping, or ``"predict"`` / ``"histogram"`` to
            start from a learned mode's proposal).
        prior: the recipe the optimizer starts from and pulls towards, and a search's start node
            when no ``init`` is given (default: the scorer's own,
            :func:`~lib_enhancer.optimize.default_prior`: ``natural`` starts from
            ``auto_contrast=1``; ``{}``: neutral). The optimizer keeps it when no edit scores higher
            and it does not score below the input.
        preview_side: long side of the optimisation preview (default 256 px; 160 px for scorers
            that judge image statistics only, such as ``natural``).
        device: where the scorer and the preview live (default CPU).
        callback: called with each :class:`~lib_enhancer.optimize.Step`; return True to cancel.
        model: weights file for the learned modes (default: the shipped ones).
        verify: learned modes: let the scorer choose how much of the proposal to keep (the start
            point unless more gains at least ``VERIFY_MIN_GAIN[mode]`` of the score range, see
            :mod:`lib_enhancer.learned.modes`); ``False``: the model's proposal as it is.

    Returns:
        A :class:`Result` whose ``image`` has the input's type; in the optimizing modes never
        worse than the input by the scorer's judgement (else the original comes back with
        ``identity=True``).
    """
    adapted = _adapt(image)
    module = get_scorer(scorer, device, **dict(scorer_options or {}))
    with reference_scope(module):  # the cached scorer must not carry this image's reference on
        if preview_side is None:
            info = getattr(module, "info", None)
            preview_side = (
                PREVIEW_SIDE_STATISTICS if info is not None and not info.judges_detail else PREVIEW_SIDE
            )
        preview = _preview(adapted, preview_side, device)
        if mode in LEARNED_MODES:
            return _enhance_learned(
                image, adapted, preview, module, scorer, mode, strength, seed, lock, model, verify
            )
        if isinstance(init, str):
            init_params = _learned_edit(init, preview, lock, model).params
        else:
            init_params = init.params if isinstance(init, Recipe) else dict(init or {})
        config_kwargs: dict[str, Any] = {
            "steps": steps,
            "time_budget": time_budget,
            "restarts": restarts,
            "seed": seed,
            "lock": dict(lock or {}),
            "init": init_params,
        }
        if l2 is not None:
            config_kwargs["l2"] = l2
        if prior is not None:
            config_kwargs["prior"] = dict(prior)
        if active is not None:
            config_kwargs["active"] = tuple(active)
        elif mode == "gradient":
            config_kwargs["active"] = default_active(module)
        else:  # the search modes' soft set adds the per-channel levels and the auto filters
            from lib_enhancer.search import soft_set

            config_kwargs["active"] = soft_set(module)
        if mode == "gradient":
            run = optimize(
                preview, module, OptimizeConfig(**config_kwargs), strength=strength, callback=callback
            )
        else:
            run = _search(
                preview, module, mode, max_evals or steps * restarts, config_kwargs, strength, callback
            )
        found = {**run.params, **getattr(run, "creative", {})}  # a search keeps creative edits apart
        final = blend(found, strength)
        recipe = Recipe(
            final,
            {
                "scorer": _scorer_name(scorer, module),
                "score_before": round(run.score_before, 4),
                "score_after": round(run.score_after, 4),
                "seed": seed,
                "strength": strength,
                "steps": len(run.history),
                "mode": mode,
            },
        )
        if recipe.is_identity:
            out_image = image.copy() if hasattr(image, "copy") else image.clone()
        else:
            out_image = apply(recipe, image)
        return Result(
            out_image, recipe, run.score_before, run.score_after, run.history, run.identity, run.message
        )


def _learned_edit(
    mode: str,
    preview: torch.Tensor,
    lock: Mapping[str, float] | None,
    model: str | None,
    strength: float = 1.0,
    fit_recipe: bool = True,
) -> Any:
    from lib_enhancer.learned import modes

    if mode == "predict":
        return modes.predict_edit(preview, model=model, lock=lock)
    if mode == "histogram":
        return modes.histogram_edit(preview, model=model, strength=strength, fit_recipe=fit_recipe)
    raise ValueError(f"unknown learned mode {mode!r}; choose one of {', '.join(LEARNED_MODES)}")


def _render_curves(adapted: _Adapted) -> AutoTables:
    """The auto filters' curves of the full image as :func:`apply` reads them."""
    from lib_enhancer.filters.pipeline import auto_of

    if adapted.tensor is not None:
        return auto_of(_first_image(adapted.tensor).detach().float().cpu())
    assert adapted.rgb is not None
    return auto_curves(adapted.rgb)


def _scorer_name(scorer: str | torch.nn.Module, module: torch.nn.Module) -> str:
    if isinstance(scorer, str):
        return scorer
    return getattr(getattr(module, "info", None), "name", type(module).__name__)


def _enhance_learned(
    image: Any,
    adapted: _Adapted,
    preview: torch.Tensor,
    module: torch.nn.Module,
    scorer: str | torch.nn.Module,
    mode: str,
    strength: float,
    seed: int,
    lock: Mapping[str, float] | None,
    model: str | None,
    verify: bool,
) -> Result:
    """One forward pass of a learned model on the preview (optionally verified by the scorer, see
    :func:`~lib_enhancer.learned.modes.verified_edit`), applied once at full resolution."""
    import time

    from lib_enhancer.filters.pipeline import filtered_batch, precompute
    from lib_enhancer.learned.modes import (
        VERIFY_FRACTIONS,
        VERIFY_MIN_GAIN,
        verified_edit,
        verify_candidates,
        with_fitted_recipe,
    )
    from lib_enhancer.lut import apply_lut_array, apply_lut_torch

    start = time.perf_counter()
    edit = _learned_edit(mode, preview, lock, model, strength, fit_recipe=False)  # fitted once chosen
    sign = score_sign(module)

    def final_params(e: Any) -> dict[str, float]:  # a LUT edit carries the strength in its LUT
        return e.params if e.lut is not None else blend(e.params, strength)

    reused = precompute(preview, [*edit.params, *edit.start])  # the auto curves, read once

    def on_preview(batch: list[Any]) -> list[torch.Tensor]:
        """The previews of candidates sharing their parameter names, in one pass of the filters."""
        if batch[0].lut is not None:
            return [apply_lut_torch(preview, e.lut) for e in batch]
        return filtered_batch(preview, [Recipe(final_params(e)).params for e in batch], reused)

    # the start point is always scored (it is the scorer's reference); without verify the proposal
    # is kept whatever its score
    candidates = verify_candidates(edit, VERIFY_FRACTIONS[mode] if verify else (0.0, 1.0))
    with torch.no_grad():  # the start point, then the proposal's fractions
        images = [*on_preview(candidates[:1]), *on_preview(candidates[1:])]
        # the input and every candidate in one batched scorer call; clipping is judged relative to
        # the start point (as in gradient)
        batch = torch.cat([preview, *images])
        if hasattr(module, "score_with_reference"):  # the statistics once (natural)
            scores = module.score_with_reference(batch, 1).reshape(-1).tolist()
        else:
            if hasattr(module, "set_reference"):
                module.set_reference(images[0])
            scores = module(batch).reshape(-1).tolist()
    before, after = scores[0], scores[-1]
    if verify:
        threshold = VERIFY_MIN_GAIN[mode] * score_span(module)
        edit, signed_after = verified_edit(candidates, [sign * v for v in scores[1:]], threshold)
        after = sign * signed_after
    if edit.lut is not None:  # its recipe's start point uses the curves the render will read
        edit = with_fitted_recipe(edit, preview, curves=_render_curves(adapted) if edit.start else None)
    params = final_params(edit)
    info = {
        "scorer": _scorer_name(scorer, module),
        "score_before": round(before, 4),
        "score_after": round(after, 4),
    }
    info.update({"seed": seed, "strength": strength, "mode": mode, **edit.info})
    recipe = Recipe(params, info)
    if edit.lut is None:
        out_image = apply(recipe, image)
    elif adapted.tensor is not None:
        with torch.no_grad():
            out_image = adapted.restore(apply_lut_torch(adapted.tensor, edit.lut))
    else:
        assert adapted.rgb is not None
        out_image = adapted.restore(apply_lut_array(adapted.rgb, edit.lut))
    message = f"{mode}: one pass in {time.perf_counter() - start:.2f} s"
    if verify:
        fraction = edit.info["fraction"]
        if not fraction:
            message += "; the scorer kept the model's start point (nothing more scored higher)"
        elif fraction > 1.0:
            message += f"; the scorer took the proposal further ({fraction:.0%} of the way)"
        else:
            message += f"; the scorer kept {fraction:.0%} of the proposal"
    return Result(out_image, recipe, before, after, [], False, message, edit.lut)
