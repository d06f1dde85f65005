"""The built-in scorer, the gradient optimizer and the Python API."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, synthetic_photo
from PIL import Image

from lib_enhancer import api
from lib_enhancer.filters.pipeline import apply_filters
from lib_enhancer.optimize import OptimizeConfig, default_active, optimize
from lib_enhancer.recipe import Recipe
from lib_enhancer.render import array_to_tensor, downscale
from lib_enhancer.scorers import create_scorer, get_scorer_info, list_scorers
from lib_enhancer.scorers.natural import BANDS, natural_penalties, natural_stats, srgb_to_lab


def _dull(img: np.ndarray, ev: float = -1.5, lift: float = 0.0) -> np.ndarray:
    x = img.astype(np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * 2.0**ev
    x = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.clip(lin, 0.0031308, None) ** (1 / 2.4) - 0.055)
    x = lift + (1 - lift) * x
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def natural():
    return create_scorer("natural")


# ---- registry and scorer -----------------------------------------------------------------------


def test_registry_lists_natural_with_metadata():
    info = get_scorer_info("natural")
    assert info.higher_is_better and info.differentiable and info.weights == ()
    assert info.score_range == (0.0, 10.0)
    assert "natural" in [i.name for i in list_scorers()]
    with pytest.raises(KeyError, match="Did you mean 'natural'"):
        create_scorer("natral")


def test_lab_known_values():
    white = torch.ones(1, 3, 1, 1, dtype=torch.float64)
    lab = srgb_to_lab(white)[0, :, 0, 0]
    assert lab.tolist() == pytest.approx([100.0, 0.0, 0.0], abs=1e-3)
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert srgb_to_lab(red)[0, :, 0, 0].tolist() == pytest.approx([53.24, 80.09, 67.20], abs=0.05)


def test_natural_prefers_the_original_over_degraded_versions(natural):
    img = synthetic_photo(96, 128)
    good = natural(array_to_tensor(img)).item()
    for bad in (_dull(img, -2.0), _dull(img, 1.6), _dull(img, 0.0, lift=0.35)):
        assert natural(array_to_tensor(bad)).item() < good


def test_natural_penalises_casts_and_dull_colour(natural):
    img = synthetic_photo(96, 128).astype(np.float64)
    grey_scene = img.copy()
    grey_scene[:, :64] = grey_scene[:, :64].mean(axis=2, keepdims=True)  # half the scene is neutral
    cast = np.clip(grey_scene * np.array([0.7, 1.0, 1.6]), 0, 255).astype(np.uint8)
    grey = img.mean(axis=2, keepdims=True)
    dull = (grey + 0.1 * (img - grey)).astype(np.uint8)
    stats = natural_stats(array_to_tensor(cast))
    clean = natural_stats(array_to_tensor(grey_scene.astype(np.uint8)))["neutral_cast"].item()
    assert stats["neutral_cast"].item() > clean + 5.0
    pen_cast = natural_penalties(array_to_tensor(cast))["neutral_cast"].item()
    assert pen_cast > natural_penalties(array_to_tensor(grey_scene.astype(np.uint8)))["neutral_cast"].item()
    base = natural(array_to_tensor(img.astype(np.uint8))).item()
    assert natural(array_to_tensor(dull)).item() < base


def test_natural_gradient_is_finite_and_alive(natural):
    x = array_to_tensor(_dull(synthetic_photo(), -2.0)).requires_grad_(True)
    natural(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_natural_is_batched_and_aspect_free(natural):
    a = array_to_tensor(synthetic_photo(40, 120))
    b = array_to_tensor(_dull(synthetic_photo(40, 120)))
    both = natural(torch.cat([a, b]))
    assert both.shape == (2,)
    torch.testing.assert_close(both, torch.cat([natural(a), natural(b)]))


def test_reference_makes_clipping_relative(natural):
    img = synthetic_photo(64, 64)
    img[:20] = 255  # a blown-out sky
    x = array_to_tensor(img)
    natural.set_reference(x)
    try:
        assert natural_penalties(x, natural._reference)["clipped_whites"].item() == 0.0
        brighter = array_to_tensor(_dull(img, 1.0))
        assert natural_penalties(brighter, natural._reference)["clipped_whites"].item() > 0.0
    finally:
        natural.set_reference(None)


def test_scoring_against_a_row_of_the_batch_is_set_reference_then_forward(natural):
    """The learned modes' one-pass check: the batch's statistics once, one row the reference."""
    img = synthetic_photo(48, 64, seed=5)
    img[:12] = 255  # clipping, judged relative to the reference row
    rows = [array_to_tensor(_dull(img, f)) for f in (0.6, 1.0, 1.4)]
    batch = torch.cat(rows)
    try:
        natural.set_reference(rows[1])
        expected = natural(batch)
        natural.set_reference(None)
        got = natural.score_with_reference(batch, 1)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        assert natural.explain(rows[2])["clipped_whites"] > 0.0  # the reference row stays set
        assert got[2] < natural.score_with_reference(batch, 2)[2]  # against itself: nothing added
    finally:
        natural.set_reference(None)


def test_bands_are_sane():
    for name, band in BANDS.items():
        assert band.low < band.high and band.scale > 0, name
        assert band.penalty(torch.tensor([0.5 * (band.low + band.high)])).item() == pytest.approx(
            0.0, abs=1e-9
        )


# ---- optimizer ---------------------------------------------------------------------------------


def _preview(img: np.ndarray) -> torch.Tensor:
    return downscale(img, 128)


def test_optimizer_improves_a_dark_photo_and_is_deterministic(natural):
    preview = _preview(_dull(synthetic_photo(96, 128), -1.8))
    cfg = OptimizeConfig(steps=25, seed=3, active=default_active(natural))
    a = optimize(preview, natural, cfg)
    b = optimize(preview, natural, cfg)
    assert a.params == b.params and a.score_after == b.score_after
    assert not a.identity and a.score_after > a.score_before
    assert float(apply_filters(preview, a.params).mean()) > float(preview.mean()) + 0.1  # brightened
    best = [s.best_objective for s in a.history]
    assert best == sorted(best)  # the best objective never goes down


def test_the_run_starts_from_the_prior_and_pulls_towards_it(natural):
    flat = 0.3 + 0.35 * _preview(synthetic_photo(96, 128, seed=2))  # lifted blacks, dim whites
    held = optimize(flat, natural, OptimizeConfig(steps=10, l2=100.0))  # the pull dominates
    assert held.params == {"auto_contrast": 1.0} and "kept the start point" in held.message
    out = apply_filters(flat, held.params)
    assert float(out.amin()) < 0.03 and float(out.amax()) > 0.97  # stretched to black and white
    assert held.score_after > held.score_before
    without = optimize(flat, natural, OptimizeConfig(steps=10, l2=100.0, prior={}))
    assert "auto_contrast" not in without.params
    # the webui tab's way to opt out: lock the slider at 0
    locked = optimize(flat, natural, OptimizeConfig(steps=10, l2=100.0, lock={"auto_contrast": 0.0}))
    assert "auto_contrast" not in locked.params


def test_never_worse_than_the_input(natural):
    class Contrarian(torch.nn.Module):
        """Scores every edit below the original: the optimizer must return the identity."""

        info = get_scorer_info("natural")

        def __init__(self, original):
            super().__init__()
            self.original = original

        def forward(self, images):
            return -(images - self.original).abs().mean(dim=(1, 2, 3))

    preview = 0.1 + 0.8 * _preview(synthetic_photo())  # natural's prior (auto contrast) changes it
    result = optimize(preview, Contrarian(preview), OptimizeConfig(steps=5))
    assert result.identity and result.params == {}
    assert "kept the original" in result.message


def test_budgets_locks_callback_and_strength(natural):
    preview = _preview(_dull(synthetic_photo(96, 128), -1.5))
    seen = []
    result = optimize(
        preview,
        natural,
        OptimizeConfig(steps=50, lock={"exposure": 0.0, "gamma": 1.0}, patience=100),
        callback=lambda step: seen.append(step.step) or len(seen) >= 4,
    )
    assert len(seen) == 4 == len(result.history)  # cancelled by the callback
    assert "exposure" not in result.params and "gamma" not in result.params
    timed = optimize(preview, natural, OptimizeConfig(steps=10_000, time_budget=0.5, patience=10_000))
    assert timed.history[-1].elapsed < 5.0 and len(timed.history) < 10_000
    full = optimize(preview, natural, OptimizeConfig(steps=20, seed=1))
    half = optimize(preview, natural, OptimizeConfig(steps=20, seed=1), strength=0.5)
    for name, value in half.params.items():  # params are returned unblended; the score is of the blend
        assert value == full.params[name]
    assert half.score_after <= full.score_after + 1e-6


def test_scorer_declared_pull_is_the_default_and_an_explicit_l2_wins():
    from lib_enhancer.optimize import DEFAULT_L2, default_l2

    natural = create_scorer("natural")
    assert default_l2(natural) == get_scorer_info("natural").l2 == 3.0
    assert default_l2(torch.nn.Identity()) == DEFAULT_L2  # no info: the module's default
    # optimize() itself resolves the scorer's pull, so direct callers get what enhance() gets
    preview = downscale(synthetic_photo(48, 64, seed=1), 64) * 0.4
    own = optimize(preview, natural, OptimizeConfig(steps=8))
    assert own.params == optimize(preview, natural, OptimizeConfig(steps=8, l2=3.0)).params
    assert own.params != optimize(preview, natural, OptimizeConfig(steps=8, l2=DEFAULT_L2)).params
    img = synthetic_photo(48, 64, seed=1)
    dark = (img.astype(np.float32) * 0.35).astype(np.uint8)
    default = api.enhance(dark, scorer="natural", seed=0, steps=12)
    assert (
        default.recipe.params == api.enhance(dark, scorer="natural", seed=0, steps=12, l2=3.0).recipe.params
    )
    loose = api.enhance(dark, scorer="natural", seed=0, steps=12, l2=0.05)
    assert loose.recipe.params != default.recipe.params
    assert _distance(loose.recipe.params) > _distance(default.recipe.params)  # a weaker pull edits more


def _distance(params: dict[str, float]) -> float:
    """How far ``params`` are from where the optimizer starts (natural's prior)."""
    from lib_enhancer.optimize import default_prior
    from lib_enhancer.params import NEUTRAL, PARAMS_BY_NAME

    prior = default_prior(create_scorer("natural"))
    start = {**NEUTRAL, **prior}
    return sum(
        ((params.get(n, NEUTRAL[n]) - start[n]) / PARAMS_BY_NAME[n].span) ** 2 for n in {*params, *prior}
    )


def test_config_validation():
    with pytest.raises(KeyError):
        OptimizeConfig(lock={"nope": 1.0})
    with pytest.raises(ValueError):
        OptimizeConfig(lock={"exposure": 10.0})
    with pytest.raises(ValueError):
        OptimizeConfig(restarts=0)


# ---- API ---------------------------------------------------------------------------------------


def test_enhance_returns_the_input_type():
    dark = _dull(synthetic_photo(80, 100), -1.8)
    res = api.enhance(dark, steps=15)
    assert isinstance(res.image, np.ndarray) and res.image.shape == dark.shape and res.image.dtype == np.uint8
    assert res.score_after > res.score_before and not res.recipe.is_identity
    assert res.recipe.info["scorer"] == "natural"
    pil = api.enhance(Image.fromarray(dark).convert("RGBA"), steps=15).image
    assert isinstance(pil, Image.Image) and pil.mode == "RGBA" and pil.size == (100, 80)
    tensor = api.enhance(array_to_tensor(dark)[0], steps=15).image
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (3, 80, 100)
    floats = api.enhance(dark.astype(np.float32) / 255.0, steps=15).image
    assert floats.dtype == np.float32 and floats.min() >= 0.0 and floats.max() <= 1.0


def test_enhance_never_modifies_its_input_and_strength_zero_is_identity():
    dark = _dull(synthetic_photo(), -1.8)
    before = dark.copy()
    res = api.enhance(dark, steps=10, strength=0.0)
    assert np.array_equal(dark, before)
    assert res.recipe.is_identity and np.array_equal(res.image, dark)


def test_apply_and_score_round_trip():
    img = synthetic_photo()
    recipe = Recipe({"exposure": 0.5})
    a = api.apply(recipe, img)
    assert np.array_equal(a, api.apply(recipe.to_json(), img))
    assert np.array_equal(a, api.apply({"exposure": 0.5}, img))
    assert a.mean() > img.mean()
    assert isinstance(api.score(img), float)
    with pytest.raises(TypeError):
        api.apply(recipe, "not an image")
    with pytest.raises(ValueError):
        api.apply(recipe, np.zeros((4, 4, 2), np.uint8))


def test_import_loads_no_webui_gradio_or_torch():
    code = (
        "import sys, lib_enhancer\n"
        "bad = [m for m in ('modules', 'launch', 'gradio', 'torch') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == ""


def test_enhance_leaves_the_cached_scorer_without_a_reference() -> None:
    """The API's scorers are cached and shared: an enhance must not leave its image as the reference
    that the next call's scores are judged against (clipping relative to another photo)."""
    from lib_enhancer.api import enhance, get_scorer, score

    blown = synthetic_photo(48, 64, seed=3)
    blown[:20] = 255  # a clipped sky: judged relative to itself while it is the reference
    other = synthetic_photo(48, 64, seed=4)
    fresh = score(other, "natural")
    for mode in ("gradient", "best-first", "predict"):
        enhance(blown, scorer="natural", mode=mode, steps=2, max_evals=4)
        assert get_scorer("natural")._reference is None, mode
        assert score(other, "natural") == fresh, mode
