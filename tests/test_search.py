"""Search engine: budgets, determinism, monotone history, batched == one-by-one scoring, the
never-worse guarantee, the hard set only when enabled, locks, strength, cancellation, the
gradient hybrids and the NUlIE reference loop (its ops checked against torchvision)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from lib_enhancer.filters.color import linear_to_srgb, srgb_to_linear
from lib_enhancer.filters.creative import CREATIVE_NAMES, apply_creative
from lib_enhancer.filters.pipeline import apply_filters
from lib_enhancer.optimize import OptimizeResult, Step
from lib_enhancer.scorers import create_scorer
from lib_enhancer.scorers.registry import ScorerInfo
from lib_enhancer.search import (
    MODES,
    NULIE_OPS,
    SearchConfig,
    SearchResult,
    SearchStep,
    apply_nulie_chain,
    nulie_transforms,
    render,
    score_recipes,
    search,
    split_params,
)
from tests.conftest import synthetic_photo

SEARCH_MODES = ("best-first", "beam", "hybrid", "hybrid-reverse", "gradient")


class Counting(nn.Module):
    """Wraps a scorer and counts the images and the calls it sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.info = getattr(inner, "info", None)
        self.images = 0
        self.calls = 0

    def set_reference(self, images: torch.Tensor | None) -> None:
        if hasattr(self.inner, "set_reference"):
            self.inner.set_reference(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.images += images.shape[0]
        self.calls += 1
        return self.inner(images)


class TargetScorer(nn.Module):
    """Negative mean squared distance to a target image (any size: the target is resized)."""

    def __init__(self, target: torch.Tensor, *, higher_is_better: bool = True, differentiable: bool = True):
        super().__init__()
        self.register_buffer("target", target)
        self.sign = 1.0 if higher_is_better else -1.0
        self.info = ScorerInfo(
            name="target",
            description="test scorer",
            score_range=(-1.0, 0.0) if higher_is_better else (0.0, 1.0),
            higher_is_better=higher_is_better,
            differentiable=differentiable,
            judges_detail=False,  # keeps the (slow) local Laplacian out of the searched parameters
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mse = ((images - self.target) ** 2).mean(dim=(1, 2, 3))
        return -mse if self.sign > 0 else mse


def _preview(ev: float = -1.0, seed: int = 0) -> torch.Tensor:
    img = torch.from_numpy(synthetic_photo(24, 32, seed)).permute(2, 0, 1).float().div(255).unsqueeze(0)
    return linear_to_srgb(srgb_to_linear(img) * 2.0**ev).clamp(0, 1)


@pytest.fixture(scope="module")
def natural() -> nn.Module:
    return create_scorer("natural")


# ---- configuration -----------------------------------------------------------------------------


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="Did you mean 'beam'"):
        SearchConfig(mode="beem")
    with pytest.raises(ValueError, match="max_evals"):
        SearchConfig(max_evals=0)
    with pytest.raises(ValueError, match="hard=True"):
        SearchConfig(active=("exposure", "invert"))
    with pytest.raises(ValueError, match="hard=True"):
        SearchConfig(lock={"hue": 0.1})
    SearchConfig(active=("exposure", "invert"), hard=True)
    with pytest.raises(KeyError, match="Did you mean exposure"):
        SearchConfig(active=("exposur",))
    with pytest.raises(ValueError, match=r"outside its range \[-3, 3\]"):
        SearchConfig(lock={"exposure": 5.0})
    with pytest.raises(ValueError, match="scales"):
        SearchConfig(scales=(0.0,))
    with pytest.raises(ValueError, match="nulie_ops"):
        SearchConfig(mode="nulie", nulie_ops=("invert",))  # a hard-set op without hard=True
    with pytest.raises(ValueError, match="batch"):
        SearchConfig(batch=0)
    with pytest.raises(ValueError, match="do not apply"):
        SearchConfig(mode="nulie", lock={"exposure": 0.5})
    with pytest.raises(ValueError, match="strength"):
        search(_preview(), TargetScorer(_preview()), SearchConfig(max_evals=5), strength=1.5)
    with pytest.raises(ValueError, match=r"shape \(1, 3, h, w\)"):
        search(torch.rand(2, 3, 8, 8), TargetScorer(_preview()))


# ---- budgets, counting, history ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("budget", [3, 17, 45])
def test_budget_is_never_exceeded_and_counted_exactly(mode: str, budget: int, natural: nn.Module) -> None:
    scorer = Counting(natural)
    result = search(_preview(), scorer, SearchConfig(mode=mode, max_evals=budget, seed=1))
    assert isinstance(result, SearchResult) and isinstance(result, OptimizeResult)
    assert result.evaluations == scorer.images <= budget
    assert result.passes == scorer.calls <= result.evaluations
    if mode in ("best-first", "beam") and result.evaluations > 10:
        assert result.passes < result.evaluations / 2  # children are scored in batches


@pytest.mark.parametrize("mode", MODES)
def test_budget_with_strength_reserves_the_final_evaluation(mode: str, natural: nn.Module) -> None:
    scorer = Counting(natural)
    result = search(_preview(), scorer, SearchConfig(mode=mode, max_evals=24), strength=0.5)
    assert result.evaluations == scorer.images <= 24
    if not result.identity and mode != "nulie":
        expected = score_recipes(_preview(), natural, [{**_half(result.params), **_half(result.creative)}])[0]
        assert result.score_after == pytest.approx(expected, abs=1e-4)


def _half(params: dict[str, float]) -> dict[str, float]:
    from lib_enhancer.search import get_search_param

    return {
        n: get_search_param(n).neutral + 0.5 * (v - get_search_param(n).neutral) for n, v in params.items()
    }


@pytest.mark.parametrize("mode", MODES)
def test_deterministic_with_a_seed(mode: str, natural: nn.Module) -> None:
    config = SearchConfig(mode=mode, max_evals=40, seed=3)
    a = search(_preview(), natural, config)
    b = search(_preview(), natural, config)
    assert a.params == b.params and a.creative == b.creative and a.chain == b.chain
    assert a.score_after == b.score_after and a.evaluations == b.evaluations
    assert [(s.move, s.evaluations, s.best_score) for s in a.history] == [
        (s.move, s.evaluations, s.best_score) for s in b.history
    ]


def test_seed_changes_the_random_choices(natural: nn.Module) -> None:
    runs = [search(_preview(), natural, SearchConfig(mode="nulie", max_evals=150, seed=s)) for s in range(3)]
    assert len({repr(r.chain) for r in runs}) > 1
    runs = [search(_preview(), natural, SearchConfig(max_evals=40, guided=False, seed=s)) for s in range(3)]
    assert len({tuple(s.move for s in r.history) for r in runs}) > 1


@pytest.mark.parametrize("mode", MODES)
def test_history_is_monotone_and_improves(mode: str, natural: nn.Module) -> None:
    seen: list[Step] = []
    result = search(_preview(), natural, SearchConfig(mode=mode, max_evals=60), callback=seen.append)
    assert seen == result.history and result.history
    assert all(isinstance(s, SearchStep) for s in result.history)
    objectives = [s.objective for s in result.history]  # type: ignore[attr-defined]
    assert objectives == sorted(objectives) and len(set(objectives)) == len(objectives)
    evals = [s.evaluations for s in result.history]  # type: ignore[attr-defined]
    assert evals == sorted(evals) and evals[-1] <= result.evaluations
    if mode != "nulie":  # nulie compares penalised scores; ours compare the scores themselves
        scores = [s.best_score for s in result.history]
        assert scores == sorted(scores)
    assert not result.identity, result.message
    assert result.score_after > result.score_before + 0.5  # an under-exposed photo gets fixed
    assert result.history[-1].best_score == pytest.approx(result.score_after, abs=1e-4)


def test_history_recipes_reproduce_their_scores(natural: nn.Module) -> None:
    preview = _preview()
    result = search(preview, natural, SearchConfig(mode="best-first", max_evals=40, guided=False))
    natural.set_reference(preview)
    recipes = [{**s.params, **s.creative} for s in result.history]  # type: ignore[attr-defined]
    scores = score_recipes(preview, natural, recipes)
    assert scores == pytest.approx([s.score for s in result.history], abs=1e-4)


def test_batched_and_one_by_one_scores_agree(natural: nn.Module) -> None:
    preview = _preview()
    natural.set_reference(preview)
    recipes = [
        {},
        {"exposure": 0.7},
        {"exposure": 0.3, "contrast": 0.4, "saturation": -0.2},
        {"gamma": 1.3, "temperature": 0.2, "dehaze": 0.3},
        {"shadows": 0.5, "curve_2": 0.3},
        {"invert": 1.0, "exposure": 0.2},
        {"hue": 0.2, "posterize": 3.0, "vignette": 0.5},
    ]
    batched = score_recipes(preview, natural, recipes, batch=len(recipes))
    single = score_recipes(preview, natural, recipes, batch=1)
    direct = [float(natural(render(preview, r))[0]) for r in recipes]
    assert batched == pytest.approx(single, abs=1e-5)
    assert batched == pytest.approx(direct, abs=1e-5)
    assert len(set(round(v, 4) for v in batched)) == len(recipes)  # the recipes really differ


# ---- guarantees ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_never_below_the_input(mode: str) -> None:
    preview = _preview(0.0)
    scorer = TargetScorer(preview.clone())  # the untouched input is the best possible image
    result = search(preview, scorer, SearchConfig(mode=mode, max_evals=30))
    assert result.identity and result.params == {} and result.creative == {} and result.chain == ()
    assert result.score_after == result.score_before == pytest.approx(0.0, abs=1e-7)
    assert result.message.startswith("kept the original")


def test_lower_is_better_scorer_is_minimised() -> None:
    preview = _preview(-1.0)
    target = _preview(0.0)
    scorer = TargetScorer(target, higher_is_better=False)
    for mode in ("best-first", "hybrid", "nulie"):
        result = search(preview, scorer, SearchConfig(mode=mode, max_evals=40))
        assert not result.identity
        # nulie's soft factors (0.9-1.11) move slowly; ours must at least halve the distance
        assert result.score_after < (1.0 if mode == "nulie" else 0.5) * result.score_before, mode


def test_locked_parameters_and_init(natural: nn.Module) -> None:
    preview = _preview()
    config = SearchConfig(mode="best-first", max_evals=40, lock={"exposure": 0.5}, init={"contrast": 0.2})
    result = search(preview, natural, config)
    assert result.params["exposure"] == 0.5
    for step in result.history:
        assert step.params["exposure"] == 0.5
    assert result.history[0].params.get("contrast") == 0.2  # the start node is the init recipe
    with pytest.raises(ValueError):
        search(preview, natural, SearchConfig(mode="gradient", max_evals=20, lock={"gamma": 9.0}))


def test_search_starts_from_the_scorers_prior_unless_told(natural: nn.Module) -> None:
    preview = _preview()
    default = search(preview, natural, SearchConfig(mode="best-first", max_evals=12))
    assert default.history[0].params.get("auto_contrast") == 1.0  # natural's prior is the start node
    neutral = search(preview, natural, SearchConfig(mode="best-first", max_evals=12, init={}))
    assert "auto_contrast" not in neutral.history[0].params


def test_enhance_hands_its_prior_to_a_search() -> None:
    from lib_enhancer import api

    dim = (synthetic_photo(24, 32) * 0.5).astype("uint8")
    default = api.enhance(dim, mode="best-first", max_evals=8)
    assert default.history[0].params.get("auto_contrast") == 1.0  # natural's prior
    neutral = api.enhance(dim, mode="best-first", max_evals=8, prior={})
    assert "auto_contrast" not in neutral.history[0].params
    given = api.enhance(dim, mode="best-first", max_evals=8, prior={"auto_contrast": 0.5})
    assert given.history[0].params.get("auto_contrast") == 0.5


def test_active_restricts_the_moves(natural: nn.Module) -> None:
    result = search(_preview(), natural, SearchConfig(max_evals=40, active=("exposure", "gamma")))
    assert set(result.params) <= {"exposure", "gamma"} and result.params
    for step in result.history:
        assert set(step.params) <= {"exposure", "gamma"}


def test_callback_cancels(natural: nn.Module) -> None:
    calls: list[Step] = []

    def stop_after_two(step: Step) -> bool:
        calls.append(step)
        return len(calls) >= 2

    for mode in ("best-first", "beam", "hybrid-reverse", "nulie"):
        calls.clear()
        result = search(_preview(), natural, SearchConfig(mode=mode, max_evals=200), callback=stop_after_two)
        assert len(result.history) == 2 and len(calls) == 2, mode
        assert result.evaluations < 200


def test_time_budget(natural: nn.Module) -> None:
    for mode in ("best-first", "nulie"):
        result = search(_preview(), natural, SearchConfig(mode=mode, max_evals=10_000, time_budget=0.3))
        assert result.evaluations < 10_000 and result.elapsed < 5.0


def test_stops_at_the_scorers_maximum(natural: nn.Module) -> None:
    result = search(_preview(), natural, SearchConfig(mode="best-first", max_evals=400))
    if result.score_after >= natural.info.score_range[1]:
        assert result.evaluations < 400
        assert result.history[-1].evaluations == result.evaluations


# ---- the hard set ------------------------------------------------------------------------------


def test_hard_set_only_when_enabled() -> None:
    preview = _preview(0.0)
    scorer = TargetScorer(apply_creative(preview, {"hue": 0.33}))  # only a hue rotation gets there
    soft = search(preview, scorer, SearchConfig(mode="best-first", max_evals=60))
    assert soft.creative == {} and not set(soft.params) & set(CREATIVE_NAMES)
    assert all(s.creative == {} for s in soft.history)  # type: ignore[attr-defined]
    assert "change the look" not in soft.message
    hard = search(preview, scorer, SearchConfig(mode="best-first", max_evals=60, hard=True))
    assert hard.creative.get("hue", 0.0) == pytest.approx(0.33, abs=0.03)
    assert "change the look" in hard.message
    assert hard.score_after > 0.2 * soft.score_after  # distance to the target cut by 5x at least
    image = apply_creative(apply_filters(preview, hard.params), hard.creative)
    assert float(scorer(image)[0]) == pytest.approx(hard.score_after, abs=1e-5)


def test_hard_set_with_gradients_and_hybrid() -> None:
    preview = _preview(0.0)
    scorer = TargetScorer(apply_creative(preview, {"hue": 0.33}))
    for mode in ("hybrid", "beam"):
        result = search(preview, scorer, SearchConfig(mode=mode, max_evals=60, hard=True))
        assert result.creative.get("hue", 0.0) > 0.2, mode
        assert result.score_after > 0.2 * result.score_before, mode
    # gradient first: the optimizer moves only the core table, the search then adds creative edits
    result = search(preview, scorer, SearchConfig(mode="hybrid-reverse", max_evals=60, hard=True))
    assert result.score_after > result.score_before
    assert all(n in CREATIVE_NAMES for n in result.creative)


def test_api_enhance_keeps_the_creative_edits_of_a_search() -> None:
    """api.enhance builds the recipe from {**params, **creative}: it round-trips and re-applies."""
    from lib_enhancer.api import apply, enhance
    from lib_enhancer.recipe import Recipe

    preview = _preview(0.0)
    scorer = TargetScorer(apply_creative(preview, {"hue": 0.33}))
    plain = enhance(preview, scorer=scorer, mode="best-first", max_evals=60, preview_side=32)
    assert not set(plain.recipe.params) & set(CREATIVE_NAMES)  # hard set off by default
    result = enhance(
        preview, scorer=scorer, mode="best-first", max_evals=60, preview_side=32, active=("exposure", "hue")
    )
    assert result.recipe.params.get("hue", 0.0) == pytest.approx(0.33, abs=0.03)
    again = Recipe.from_json(result.recipe.to_json())
    assert again == result.recipe
    torch.testing.assert_close(apply(again, preview), result.image)
    assert float(scorer(result.image)[0]) == pytest.approx(result.score_after, abs=1e-5)
    half = enhance(
        preview,
        scorer=scorer,
        mode="best-first",
        max_evals=60,
        preview_side=32,
        active=("exposure", "hue"),
        strength=0.5,
    )
    assert half.recipe.params["hue"] == pytest.approx(0.5 * result.recipe.params["hue"], abs=0.011)


# ---- gradients -----------------------------------------------------------------------------------


def test_gradient_modes_need_a_differentiable_scorer() -> None:
    preview = _preview()
    scorer = TargetScorer(_preview(0.0), differentiable=False)
    for mode in ("gradient", "hybrid", "hybrid-reverse"):
        with pytest.raises(ValueError, match="not differentiable"):
            search(preview, scorer, SearchConfig(mode=mode))
    with pytest.raises(ValueError, match="guided=True"):
        search(preview, scorer, SearchConfig(guided=True))
    result = search(preview, scorer, SearchConfig(mode="best-first", max_evals=40))  # unguided search
    assert not result.identity and result.score_after > result.score_before


def test_guided_search_uses_the_gradient() -> None:
    preview = _preview()
    target = apply_filters(preview, {"exposure": 0.6, "contrast": 0.3, "saturation": 0.2, "gamma": 1.1})
    scorer = TargetScorer(target)
    # batch 4 without random slots: the first expansion is exactly the gradient line search
    config = SearchConfig(mode="best-first", max_evals=30, batch=4, explore=0.0)
    guided = search(preview, scorer, replace(config, guided=True))
    moves = [s.move for s in guided.history]  # type: ignore[attr-defined]
    assert moves[0] == "start" and moves[1].startswith("gradient step"), moves
    unguided = search(preview, scorer, replace(config, guided=False))
    assert not any(s.move.startswith("gradient") for s in unguided.history)  # type: ignore[attr-defined]
    assert guided.history[1].best_score > unguided.history[1].best_score


def test_hybrid_refines_the_search_result(natural: nn.Module) -> None:
    result = search(_preview(), natural, SearchConfig(mode="hybrid", max_evals=80, batch=4))
    moves = [s.move for s in result.history]  # type: ignore[attr-defined]
    assert not result.identity
    assert any(m.startswith("gradient step") or "+" in m or "-" in m for m in moves)


def test_tiny_clip_scorer() -> None:
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(0)
    model = open_clip.model.CLIP(
        embed_dim=512,
        vision_cfg={"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 64},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
        quick_gelu=True,
    ).eval()
    scorer = Counting(create_scorer("clip-iqa", clip_model=model))
    for mode in ("best-first", "hybrid"):
        scorer.images = scorer.calls = 0
        result = search(_preview(0.0), scorer, SearchConfig(mode=mode, max_evals=20))
        assert result.evaluations == scorer.images <= 20
        assert result.score_after >= result.score_before


# ---- NUlIE reference ----------------------------------------------------------------------------


def test_nulie_transform_sets() -> None:
    soft, hard = nulie_transforms(False), nulie_transforms(True)
    assert list(soft) == [
        "adjust_brightness",
        "adjust_contrast",
        "adjust_gamma",
        "adjust_saturation",
        "adjust_sharpness",
        "autocontrast",
        "gaussian_blur",
        "equalize",
    ]
    assert soft["adjust_brightness"]["brightness_factor"] == pytest.approx((0.9, 1 / 0.9))
    assert hard["adjust_brightness"]["brightness_factor"] == pytest.approx((0.5, 2.0))
    assert {"adjust_hue", "invert", "solarize", "posterize"} <= set(hard) and "gaussian_blur" not in hard
    assert set(soft) | set(hard) == set(NULIE_OPS)


def test_nulie_result_replays(natural: nn.Module) -> None:
    preview = _preview()
    result = search(preview, natural, SearchConfig(mode="nulie", max_evals=60))
    assert result.chain and result.params == {} and not result.identity
    natural.set_reference(preview)
    replayed = float(natural(apply_nulie_chain(preview, result.chain))[0])
    assert replayed == pytest.approx(result.score_after, abs=1e-4)
    assert result.history[-1].chain == result.chain  # type: ignore[attr-defined]
    with pytest.raises(KeyError, match="unknown NUlIE op"):
        apply_nulie_chain(preview, [("sepia", {})])


def test_nulie_ops_subset(natural: nn.Module) -> None:
    ops = ("adjust_brightness", "adjust_gamma")
    result = search(_preview(), natural, SearchConfig(mode="nulie", max_evals=80, nulie_ops=ops))
    assert result.chain and {op for op, _ in result.chain} <= set(ops)


def test_nulie_darkness_penalty() -> None:
    preview = _preview(0.0)
    dark = TargetScorer(torch.zeros_like(preview))  # loves black images
    result = search(preview, dark, SearchConfig(mode="nulie", max_evals=150))
    penalised = [s for s in result.history if s.objective < s.score - 1e-6]  # type: ignore[attr-defined]
    image = apply_nulie_chain(preview, result.chain)
    assert penalised or float(image.mean()) >= 0.85 * float(preview.mean()) - 1e-6


def test_nulie_ops_match_torchvision() -> None:
    tvf = pytest.importorskip("torchvision.transforms.functional")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 12, 14, generator=g)
    cases = [
        ("adjust_brightness", {"brightness_factor": 1.07}),
        ("adjust_contrast", {"contrast_factor": 0.93}),
        ("adjust_gamma", {"gamma": 0.95, "gain": 1.04}),
        ("adjust_saturation", {"saturation_factor": 1.08}),
        ("adjust_sharpness", {"sharpness_factor": 1.1}),
        ("autocontrast", {}),
        ("gaussian_blur", {"kernel_size": 3}),
        ("adjust_hue", {"hue_factor": 0.07}),
        ("invert", {}),
        ("solarize", {"threshold": 0.6}),
    ]
    for op, kwargs in cases:
        ours = NULIE_OPS[op](x, **kwargs)
        ref = getattr(tvf, op)(x, **({"kernel_size": [3, 3]} if op == "gaussian_blur" else kwargs))
        torch.testing.assert_close(ours, ref, atol=2e-5, rtol=0, msg=op)
    u8 = (x * 255).round().to(torch.uint8)
    xq = u8.float() / 255
    torch.testing.assert_close(NULIE_OPS["equalize"](xq), tvf.equalize(u8).float() / 255)
    for bits in (1, 4, 7):
        torch.testing.assert_close(
            NULIE_OPS["posterize"](xq, bits=bits), tvf.posterize(u8, bits).float() / 255
        )


def test_split_and_render() -> None:
    core, creative = split_params({"exposure": 0.3, "invert": 1.0})
    assert core == {"exposure": 0.3} and creative == {"invert": 1.0}
    with pytest.raises(KeyError, match="Did you mean"):
        split_params({"exposre": 1.0})
    x = _preview(0.0)
    expected = apply_creative(apply_filters(x, {"exposure": 0.3}), {"invert": 1.0})
    torch.testing.assert_close(render(x, {"exposure": 0.3, "invert": 1.0}), expected)
    assert render(x, {}) is x
    assert math.isfinite(score_recipes(x, TargetScorer(x), [{"hue": 0.3}])[0])


def test_soft_set_adds_per_channel_levels_that_the_optimizer_leaves_out() -> None:
    from lib_enhancer.optimize import DEFAULT_ACTIVE, default_active
    from lib_enhancer.params import AUTO_NAMES, CHANNEL_GAMMA_NAMES, CHANNEL_LEVEL_NAMES, PARAM_NAMES
    from lib_enhancer.search import soft_set

    natural = create_scorer("natural")
    soft = soft_set(natural)
    assert not set(CHANNEL_LEVEL_NAMES) & set(DEFAULT_ACTIVE)
    assert not set(CHANNEL_GAMMA_NAMES) & (set(DEFAULT_ACTIVE) | set(soft))  # only when named in `active`
    assert not set(AUTO_NAMES) & set(DEFAULT_ACTIVE)
    assert set(soft) == set(default_active(natural)) | set(CHANNEL_LEVEL_NAMES) | set(AUTO_NAMES)
    assert list(soft) == [n for n in PARAM_NAMES if n in soft]  # table order
    assert not set(CREATIVE_NAMES) & set(soft)


def test_search_moves_per_channel_levels_to_remove_a_cast() -> None:
    """A photo given a per-channel levels cast: the default search moves per-channel points."""
    from lib_enhancer.params import CHANNEL_LEVEL_NAMES

    scorer = create_scorer("natural")
    cast = apply_filters(_preview(0.0, seed=2), {"black_b": -0.2, "white_b": -0.15, "white_r": 0.1})
    cfg = SearchConfig(mode="best-first", max_evals=60, seed=0)
    result = search(cast, scorer, cfg)
    moved = {n for n in result.params if n in CHANNEL_LEVEL_NAMES}
    assert moved, f"no per-channel level moved: {result.params}"
    assert result.score_after >= result.score_before


def test_search_moves_per_channel_gammas_to_remove_a_tone_cast() -> None:
    """A photo given a per-channel gamma cast: a search with the gammas active moves them."""
    from lib_enhancer.params import CHANNEL_GAMMA_NAMES
    from lib_enhancer.search import soft_set

    scorer = create_scorer("natural")
    cast = apply_filters(_preview(0.0, seed=2), {"gamma_b": -0.45, "gamma_r": 0.3})
    active = (*soft_set(scorer), *CHANNEL_GAMMA_NAMES)
    cfg = SearchConfig(mode="best-first", max_evals=60, seed=0, active=active)
    result = search(cast, scorer, cfg)
    moved = {n for n in result.params if n in CHANNEL_GAMMA_NAMES}
    assert moved, f"no per-channel gamma moved: {result.params}"
    assert result.score_after >= result.score_before


def test_search_reaches_for_equalize_on_a_flat_photo():
    """nulie's strongest move on a flat, dull photo is per-channel equalisation: the default search
    has it (auto levels / equalize in the soft set) and climbs with it in a handful of evaluations."""
    from lib_enhancer.params import AUTO_NAMES

    scorer = create_scorer("natural")
    flat = _preview(0.0, seed=3) * 0.35 + 0.3
    cfg = SearchConfig(mode="best-first", max_evals=20, seed=0)
    result = search(flat, scorer, cfg)
    assert {n for n in result.params if n in AUTO_NAMES}, result.params
    assert result.evaluations <= 20
    assert result.score_after > result.score_before + 1.0
