"""Recipes (JSON, validation, strength), LUT folding, .cube export, full-resolution rendering."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import real_photos, synthetic_photo
from PIL import Image

from lib_enhancer import lut, render
from lib_enhancer.filters.pipeline import apply_filters
from lib_enhancer.params import NEUTRAL
from lib_enhancer.recipe import RECIPE_VERSION, Recipe

TYPICAL = {
    "temperature": 0.2,
    "tint": -0.1,
    "exposure": 0.4,
    "blacks": 0.03,
    "brightness": 0.2,
    "contrast": 0.3,
    "shadows": 0.25,
    "highlights": -0.3,
    "curve_2": 0.2,
    "gamma": 1.15,
    "saturation": 0.2,
    "vibrance": 0.3,
}
LOCAL = {"dehaze": 0.4, "detail": 0.5, "local_tone": -0.2, "sharpen": 0.3}


# ---- recipes -----------------------------------------------------------------------------------


def test_recipe_json_round_trip_keeps_order_and_info():
    r = Recipe({**TYPICAL, **LOCAL}, {"scorer": "natural", "score_before": 3.2})
    again = Recipe.from_json(r.to_json())
    assert again == r
    assert list(again.params) == [n for n in NEUTRAL if n in again.params]  # table order
    data = json.loads(r.to_json())
    assert data["format"] == "lib_enhancer.recipe" and data["version"] == RECIPE_VERSION


def test_recipe_drops_neutral_values_and_accepts_bare_mappings():
    r = Recipe({"exposure": 0.0, "gamma": 1.0, "contrast": 0.5})
    assert r.params == {"contrast": 0.5}
    assert Recipe.from_dict({"contrast": 0.5}) == r
    assert Recipe.identity().is_identity


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"params": {"exposur": 1}}', "Did you mean exposure"),
        ('{"params": {"exposure": 99}}', "outside its range"),
        ('{"params": {}, "version": 99}', "newer"),
        ('{"params": {}, "format": "other"}', "not a lib_enhancer recipe"),
        ('{"params": {}, "extra": 1}', "unknown recipe fields"),
        ("[1, 2]", "must be an object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_recipe_rejects_bad_json(text, message):
    with pytest.raises((ValueError, KeyError), match=message):
        Recipe.from_json(text)


def test_strength_blends_towards_neutral():
    r = Recipe({"exposure": 1.0, "gamma": 2.0})
    half = r.with_strength(0.5)
    assert half.params == {"exposure": 0.5, "gamma": 1.5}
    assert r.with_strength(0.0).is_identity
    with pytest.raises(ValueError):
        r.with_strength(1.5)


def test_stage_params():
    r = Recipe({**TYPICAL, **LOCAL})
    assert set(r.stage_params("pre")) == {"dehaze"}
    assert set(r.stage_params("post")) == {"detail", "local_tone", "sharpen"}
    assert set(r.stage_params("global")) == set(TYPICAL)


# ---- LUT ---------------------------------------------------------------------------------------


def test_identity_lut_is_exact():
    table = lut.build_lut({}, 17)
    torch.testing.assert_close(torch.from_numpy(table), torch.from_numpy(lut.identity_lattice(17)).float())
    img = synthetic_photo()
    assert np.array_equal(lut.apply_lut_pil(img, lut.build_lut({}, 65)), img)


SMOOTH = {
    "temperature": -0.2,
    "exposure": 0.3,
    "contrast": 0.25,
    "highlights": -0.2,
    "saturation": 0.2,
    "vibrance": 0.2,
}


def test_lut_apply_equals_direct_apply_on_real_photos():
    """The LUT (what full-resolution images use) matches the exact filters within 1/255."""
    for name, img in real_photos(limit=4, long_side=384):
        table = lut.build_lut(SMOOTH)
        via_lut = lut.apply_lut_pil(img, table).astype(int)
        direct = render.tensor_to_array(apply_filters(render.array_to_tensor(img), SMOOTH), np.uint8).astype(
            int
        )
        assert np.abs(via_lut - direct).max() <= 1, name


def test_full_resolution_render_equals_direct_apply_on_real_photos():
    """Whatever the recipe, the full-resolution path stays within 1/255 of the exact filters: where
    trilinear interpolation can't follow the curve (kinks near black), it computes exactly."""
    for name, img in real_photos(limit=3, long_side=1400):
        for params in (SMOOTH, TYPICAL):
            direct = render.tensor_to_array(apply_filters(render.array_to_tensor(img), params), np.uint8)
            out = render.render(img, Recipe(params), work_side=600)
            assert np.abs(out.astype(int) - direct.astype(int)).max() <= 1, (name, params)


def test_torch_lut_matches_pil_lut():
    img = synthetic_photo(40, 50)
    table = lut.build_lut(TYPICAL, 33)
    a = lut.apply_lut_pil(img, table).astype(int)
    b = render.tensor_to_array(lut.apply_lut_torch(render.array_to_tensor(img), table), np.uint8).astype(int)
    assert np.abs(a - b).max() <= 1


def test_steep_curve_falls_back_to_exact_filters():
    steep = {"gamma": 2.5, "contrast": 0.3}  # mixes channels: no per-channel curves
    assert lut.lut_max_error(lut.build_lut(steep), steep) > 1.5 / 255  # trilinear can't follow x^0.4 near 0
    assert render._ColourMap(steep, ("global",), None, lut.DEFAULT_LUT_SIZE, True).kind == "exact"
    img = synthetic_photo(300, 2100)  # wider than the working size: the strip path is used
    rec = Recipe(steep)
    direct = render.tensor_to_array(apply_filters(render.array_to_tensor(img), steep), np.uint8).astype(int)
    assert np.abs(render.render(img, rec).astype(int) - direct).max() <= 1


def test_cube_round_trip(tmp_path):
    table = np.clip(lut.build_lut(TYPICAL, 9), 0.0, 1.0)  # .cube values are in the 0..1 domain
    path = lut.write_cube(tmp_path / "look.cube", table)
    text = path.read_text()
    assert "LUT_3D_SIZE 9" in text
    first = text.splitlines()[4].split()
    assert [float(v) for v in first] == pytest.approx(table[0, 0, 0].tolist(), abs=1e-6)
    np.testing.assert_allclose(lut.read_cube(path), table, atol=1e-6)
    # red varies fastest: the second entry is (r=1/8, g=0, b=0)
    np.testing.assert_allclose(lut.read_cube(path)[0, 0, 1], table[0, 0, 1], atol=1e-6)


def test_read_cube_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 3\n0 0 0\n")
    with pytest.raises(ValueError, match="malformed"):
        lut.read_cube(bad)


# ---- rendering ---------------------------------------------------------------------------------


def test_identity_recipe_returns_a_copy():
    img = synthetic_photo()
    out = render.render(img, Recipe.identity())
    assert np.array_equal(out, img) and out is not img


def test_small_images_are_rendered_exactly():
    img = synthetic_photo(60, 80)
    rec = Recipe({**TYPICAL, **LOCAL})
    expected = render.tensor_to_array(apply_filters(render.array_to_tensor(img), rec.params), np.uint8)
    assert np.array_equal(render.render(img, rec), expected)


def test_strip_upsampling_equals_whole_image_interpolation():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(1, 6, 7, 9, generator=g)
    full = F.interpolate(maps, size=(50, 61), mode="bilinear", align_corners=False)
    parts = [render._upsample_rows(maps, y0, min(50, y0 + 13), 50, 61) for y0 in range(0, 50, 13)]
    torch.testing.assert_close(torch.cat(parts, dim=2), full, atol=1e-6, rtol=0)


def test_global_only_large_render_matches_direct_within_one_level():
    img = synthetic_photo(240, 1400)
    rec = Recipe(TYPICAL)
    direct = render.tensor_to_array(apply_filters(render.array_to_tensor(img), rec.params), np.uint8).astype(
        int
    )
    out = render.render(img, rec, work_side=512).astype(int)
    assert np.abs(out - direct).max() <= 1


AUTO = {"auto_contrast": 0.6, "auto_levels": 0.8, "equalize": 0.3}


def _exact_downscale(img: np.ndarray, side: int) -> np.ndarray:
    """8-bit ``img`` downscaled through the exact 16-bit block means (not PIL's rounded ones), so
    the measurement below does not round twice."""
    return render.tensor_to_array(render.downscale(img.astype(np.uint16) * 257, side), np.uint8)


@pytest.mark.parametrize(
    "params",
    [
        LOCAL,
        {**TYPICAL, **LOCAL},
        {"dehaze": 0.6},
        {"detail": 0.7, "local_tone": -0.3},
        AUTO,
        {**AUTO, "dehaze": 0.3, "contrast": 0.2},
    ],
)
def test_resolution_independence(params):
    """A recipe applied at 4x the size and downscaled looks like the recipe applied at preview size."""
    for name, photo in real_photos(limit=5, long_side=1600)[-2:]:
        if max(photo.shape[:2]) < 1600:  # only small photos here: upscale one 4x (smooth, but real content)
            photo = np.asarray(
                Image.fromarray(photo).resize((photo.shape[1] * 4, photo.shape[0] * 4), Image.BICUBIC)
            )
            photo = _exact_downscale(photo, 1600)
        small = _exact_downscale(photo, 400)
        rec = Recipe(params)
        at_preview = render.render(small, rec).astype(float)
        big = render.render(photo, rec, work_side=800)
        down = _exact_downscale(big, 400).astype(float)
        effect = np.abs(at_preview - small.astype(float)).mean()
        error = np.abs(down - at_preview)
        assert error.mean() < max(0.25 * effect, 1.0), (name, error.mean(), effect)
        assert np.percentile(error, 99) <= 12, name


def test_sixteen_bit_render_keeps_precision():
    img8 = synthetic_photo(64, 1200)
    img16 = img8.astype(np.uint16) * 257 + 100
    rec = Recipe({"exposure": 0.3, "contrast": 0.2, "detail": 0.3})
    out = render.render(img16, rec, work_side=400)
    assert out.dtype == np.uint16 and out.shape == img16.shape
    assert len(np.unique(out[..., 1])) > 256  # not quantised to 8 bits
    out8 = render.render(img8, rec, work_side=400).astype(float)
    assert np.abs(out.astype(float) / 257.0 - out8).mean() < 1.5


def test_render_rejects_bad_arrays():
    with pytest.raises(ValueError):
        render.render(np.zeros((4, 4), np.uint8), Recipe({"exposure": 1.0}))
    with pytest.raises(TypeError):
        render.render(np.zeros((4, 4, 3), np.float32), Recipe({"exposure": 1.0}))


def test_render_never_touches_its_input():
    img = synthetic_photo(64, 1200)
    before = img.copy()
    render.render(img, Recipe({**TYPICAL, **LOCAL}), work_side=400)
    assert np.array_equal(img, before)


def test_downscale_keeps_aspect_and_mean():
    img = synthetic_photo(300, 900)
    small = render.downscale(img, 120)
    assert tuple(small.shape[-2:]) == (40, 120)
    assert abs(small.mean().item() - img.mean() / 255.0) < 0.01


def test_downscale_pil_reduction_matches_the_exact_block_means():
    """Large 8-bit reductions use PIL's C reduce (rounded 8-bit block means); the same photo as
    16-bit takes the exact numpy path: they agree within the rounding."""
    img = synthetic_photo(900, 1300)
    assert min(900 / 90, 1300 / 130) // 2 >= render.PIL_REDUCE_MIN  # this reduction takes the PIL path
    fast = render.downscale(img, 130)
    exact = render.downscale(img.astype(np.uint16) * 257, 130)
    assert fast.shape == exact.shape == (1, 3, 90, 130)
    assert float((fast - exact).abs().max()) <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_block_means_are_exact_across_strips(monkeypatch, dtype, k):
    rng = np.random.default_rng(k)
    img = rng.integers(0, np.iinfo(dtype).max + 1, size=(53, 47, 3), dtype=dtype)  # ragged edges
    monkeypatch.setattr(render, "STRIP_PIXELS", 47 * k * 3)  # several strips, the last one short
    hb, wb = 53 // k, 47 // k
    expected = img[: hb * k, : wb * k].astype(np.float64).reshape(hb, k, wb, k, 3).mean(axis=(1, 3))
    got = render._block_means(img, k)
    assert got.shape == (hb, wb, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)


# ---- creative (hard-set) parameters: rows of the one table, applied last ------------------------

CREATIVE_LOOK = {"hue": 0.1, "split_tone": 0.4, "strong_curve": 0.5, "invert": 0.2}
SEPARABLE = {"temperature": 0.2, "exposure": 0.4, "blacks": 0.03, "brightness": 0.2, "gamma": 1.15}


def _direct(img: np.ndarray, params: dict) -> np.ndarray:
    return render.tensor_to_array(apply_filters(render.array_to_tensor(img), params), img.dtype)


def test_creative_recipe_round_trips_through_json_and_blends():
    r = Recipe({"exposure": 0.3, **CREATIVE_LOOK, "posterize": 3.0, "vignette": 0.5}, {"mode": "beam"})
    again = Recipe.from_json(r.to_json())
    assert again == r and again.params["posterize"] == 3.0
    assert list(again.params) == [n for n in NEUTRAL if n in again.params]  # creative rows come last
    assert set(r.stage_params("creative")) == {*CREATIVE_LOOK, "posterize", "vignette"}
    assert r.with_strength(0.5).params["invert"] == pytest.approx(0.1)
    assert Recipe({"hue": 0.0, "vignette": 0.0}).is_identity  # neutral creative values drop out
    with pytest.raises(ValueError, match="outside its range"):
        Recipe({"posterize": 9})


def test_neutral_creative_values_are_the_identity():
    img = synthetic_photo(40, 1200)
    neutral = {n: NEUTRAL[n] for n in ("hue", "posterize", "vignette", "invert")}
    x = render.array_to_tensor(img)
    assert apply_filters(x, neutral) is x
    assert np.array_equal(render.render(img, Recipe(neutral)), img)
    base = Recipe({"exposure": 0.3})
    assert np.array_equal(render.render(img, base), render.render(img, base.replace(**neutral)))


@pytest.mark.parametrize(
    "params",
    [
        CREATIVE_LOOK,
        {**SMOOTH, **CREATIVE_LOOK},
        {**SMOOTH, "vignette": 0.6},
        {"exposure": 0.4, "black_white": 0.7, "vignette": -0.5},
        {**SEPARABLE, "posterize": 3.0, "solarize": 0.4},  # steps: exact fallback
        {**SMOOTH, "detail": 0.4, **CREATIVE_LOOK, "vignette": 0.4},  # post stage between
    ],
)
def test_render_with_creative_equals_apply_filters(params, monkeypatch):
    """Small images are rendered exactly; large ones (colour map + strip vignette) within 1-2 levels,
    and so are images up to the working size from COLOUR_MAP_MIN_PIXELS when all filters are per-pixel."""
    small = synthetic_photo(60, 80)
    assert small.shape[0] * small.shape[1] < render.COLOUR_MAP_MIN_PIXELS
    assert np.array_equal(render.render(small, Recipe(params)), _direct(small, params))
    img = synthetic_photo(200, 1300)
    local = any(n in params for n in LOCAL)
    direct = _direct(img, params).astype(int)
    unsplit = render.render(img, Recipe(params), work_side=1300).astype(int)
    if local:  # filtered directly
        assert np.array_equal(unsplit, direct)
    else:  # 260k pixels: through the colour map, as a larger image
        assert np.abs(unsplit - direct).max() <= 2, params
        monkeypatch.setattr(render, "COLOUR_MAP_MIN_PIXELS", img.shape[0] * img.shape[1] + 1)
        assert np.array_equal(render.render(img, Recipe(params), work_side=1300), direct)
    big = render.render(img, Recipe(params), work_side=512).astype(int)
    err = np.abs(big - direct)
    if not local:
        assert err.max() <= 2, params  # colour map within 1/255, the vignette's rounding within 1
    else:
        assert err.mean() < 2.0, params  # the local stages are approximated (guided affine)


def test_vignette_strips_equal_the_whole_image_gain():
    from lib_enhancer.filters.creative import vignette, vignette_gain

    x = torch.full((1, 3, 37, 53), 0.5, dtype=torch.float64)
    whole = vignette(x, 0.8)[0, 0] / 0.5
    parts = torch.cat([vignette_gain(37, 53, 0.8, rows=(y, min(37, y + 10))) for y in range(0, 37, 10)])
    torch.testing.assert_close(parts.double(), whole, atol=1e-6, rtol=0)


def test_separable_chains_use_per_channel_curves():
    img = synthetic_photo(120, 1400)
    assert render.separable_curves(SEPARABLE, ("global",)) is not None
    assert (
        render.separable_curves({**SEPARABLE, "posterize": 2.0, "invert": 0.3}, ("global", "creative"))
        is not None
    )
    assert render.separable_curves(SMOOTH, ("global",)) is None  # contrast and saturation mix channels
    per_channel = {**SEPARABLE, "black_r": 0.04, "black_b": -0.03, "white_g": 0.05, "white_b": -0.06}
    assert render.separable_curves(per_channel, ("global",)) is not None  # per-channel levels
    out = render.render(img, Recipe(per_channel), work_side=512)
    assert np.abs(out.astype(int) - _direct(img, per_channel).astype(int)).max() <= 1
    assert render._Plan(img, Recipe(per_channel), 512, 65).colour.kind == "curves"
    gammas = {**per_channel, "gamma_r": 0.3, "gamma_g": -0.45, "gamma_b": 0.12}
    assert render.separable_curves(gammas, ("global",)) is not None  # per-channel gammas
    out = render.render(img, Recipe(gammas), work_side=512)
    assert np.abs(out.astype(int) - _direct(img, gammas).astype(int)).max() <= 1
    assert render._Plan(img, Recipe(gammas), 512, 65).colour.kind == "curves"
    assert render.separable_curves({"hue": 0.2}, ("creative",)) is None
    out = render.render(img, Recipe(SEPARABLE), work_side=512)
    assert np.abs(out.astype(int) - _direct(img, SEPARABLE).astype(int)).max() <= 1
    plan = render._Plan(img, Recipe({**SEPARABLE, "strong_curve": 0.4}), 512, 65)
    assert plan.colour is not None and plan.colour.kind == "curves"
    plan = render._Plan(img, Recipe(SMOOTH), 512, 65)
    assert plan.colour is not None and plan.colour.kind == "lut"


def test_auto_filters_render_at_full_resolution_through_the_colour_map():
    """Auto levels / equalize read the photo's histogram: the full-resolution render reads it from the
    whole image and folds the curves into the colour map (per-channel curves: nothing else mixes
    channels), matching the exact chain on the full image up to the histogram's sampling."""
    img = synthetic_photo(150, 1400)
    img = (img.astype(np.float32) * 0.55 + 60).astype(np.uint8)  # flat: something for auto to fix
    # (a strong stretch under contrast is steeper than a 65³ LUT can follow within 1/255: exact strips)
    for params, kinds in (
        (AUTO, {"curves"}),
        ({**AUTO, "contrast": 0.3, "saturation": 0.2}, {"lut", "exact"}),
    ):
        plan = render._Plan(img, Recipe(params), 512, 65)
        assert plan.colour is not None and plan.colour.kind in kinds and plan.pre_maps is None
        out = render.render(img, Recipe(params), work_side=512).astype(int)
        diff = np.abs(out - _direct(img, params).astype(int))
        assert diff.mean() < 0.5 and diff.max() <= 3, (params, diff.mean(), diff.max())
        assert out.std() > 1.3 * img.std()  # it did stretch the flat photo
    # with dehaze the whole pre stage (auto first, then dehaze) goes through the guided affine maps
    plan = render._Plan(img, Recipe({**AUTO, "dehaze": 0.3}), 512, 65)
    assert plan.pre_maps is not None and plan.colour is None


def test_auto_curves_are_the_ones_the_render_reads():
    """render.auto_curves gives the auto filters' curves a render of the image uses: the whole image
    when it is filtered directly, its ANALYSIS_SIDE copy when it is larger than work_side."""
    from lib_enhancer.filters.auto import ANALYSIS_SIDE
    from lib_enhancer.filters.pipeline import AUTO_KEY, auto_of

    big = (synthetic_photo(171, 1400).astype(np.float32) * 0.6 + 50).astype(np.uint8)
    plan = render._Plan(big, Recipe({"auto_contrast": 1.0, "saturation": 0.2}), 512, 65)
    from_plan = plan.colour.params[AUTO_KEY]
    expected = auto_of(render.downscale(big, ANALYSIS_SIDE))
    for a, b, c in zip(render.auto_curves(big, 512), from_plan, expected, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    small = big[:200, :300]
    for a, b in zip(render.auto_curves(small, 512), auto_of(render.array_to_tensor(small)), strict=True):
        assert torch.equal(a, b)


def test_auto_stretch_clip_points_are_computed_exactly_and_the_rest_by_the_lut():
    """Auto contrast on a flat photo moves its darkest value to 0, where the chain clips (the
    linear-light conversion clamps negatives): the 33³ and 65³ lattices do not interpolate that kink
    within 1/255, so the render used to compute the whole image exactly. Now only the pixels with a level in the
    clipping point's lattice cell are computed exactly; the rest go through the LUT."""
    from lib_enhancer.filters.pipeline import AUTO_KEY, auto_of

    img = synthetic_photo(160, 1400)
    img = (img.astype(np.float32) * 0.6 + 47).astype(np.uint8)  # levels 47..200: lifted blacks
    params = {"auto_contrast": 1.0, "exposure": -0.1, "contrast": -0.09, "saturation": 0.05, "gamma": 0.95}
    plan = render._Plan(img, Recipe(params), 512, 65)
    colour = plan.colour
    assert colour is not None and colour.kind == "lut" and colour.kinks is not None
    # the levels computed exactly are a narrow band around the stretch's black point, in every channel
    low = float(colour.params[AUTO_KEY][0][0, 0, 0]) * 255  # the black point, in levels
    crossings = render.clip_crossings(colour.params, colour.stages)
    assert sorted(c for c, _ in crossings if abs(_ - low) < 0.5) == [0, 1, 2], (low, crossings)
    flagged = [np.flatnonzero(colour.kinks[c]) for c in range(3)]
    assert all(0 < len(f) <= 2 * max(render.KINK_BANDS) + 1 for f in flagged), flagged
    assert all(f.min() - 1 <= low <= f.max() + 1 for f in flagged), (low, flagged)
    assert not render.kink_levels(crossings, 33, 1.0)[:, : int(low) - 2].any()
    no_auto = {k: v for k, v in colour.params.items() if k != "auto_contrast"}
    assert render.clip_crossings(no_auto, colour.stages) == []
    # the patched LUT is within 1/255 of the exact chain on the full image, and so is the render
    out = render.render(img, Recipe(params), work_side=512).astype(int)
    exact = render.tensor_to_array(
        apply_filters(render.array_to_tensor(img), {**params, AUTO_KEY: auto_of(render.downscale(img, 256))}),
        np.uint8,
    )
    assert np.abs(out - exact.astype(int)).max() <= 1
    # without the exact cells the LUT alone is off by more near the black point
    unpatched = lut.apply_lut_pil(img, colour.table).astype(int)
    assert np.abs(unpatched - exact.astype(int)).max() > 1
    # PIL's flags of the band are the levels' flags; the band is computed after the strips (one
    # pass of the chain) or within a strip (before a vignette): the same image
    where = colour.band_pixels(img)
    assert where.size and np.array_equal(where, np.flatnonzero(render.in_band(colour.kinks, img)))
    assert np.array_equal(colour.array(img), render.render(img, Recipe(params), work_side=512))


def test_a_wide_clipping_band_gives_way_to_a_lattice_that_needs_none(monkeypatch):
    """Tones piled up at the auto stretch's white point put 40 % of the pixels in its band. Rather
    than compute them all exactly, the render looks for a lattice size on which trilinear
    interpolation follows the kink within 1/255 (here one of 29³..44³; sizes are searched only when the band
    would hold more than KINK_SEARCH_PIXELS). Both ways the image is within 1/255 of the exact chain."""
    from lib_enhancer.filters.pipeline import AUTO_KEY

    rng = np.random.default_rng(0)
    img = rng.integers(20, 196, size=(700, 1100, 3)).astype(np.uint8)
    img[:350] = np.clip(rng.normal(188, 4, size=(350, 1100, 3)), 0, 195).astype(np.uint8)
    recipe = Recipe({"auto_contrast": 1.0, "saturation": -0.2, "highlights": -0.3, "temperature": 0.1})
    exact = render.tensor_to_array(
        apply_filters(render.array_to_tensor(img), {**recipe.params, AUTO_KEY: render.auto_curves(img)}),
        np.uint8,
    ).astype(int)
    monkeypatch.setattr(render, "KINK_SEARCH_SIZES", tuple(range(29, 45)))
    for search_above, searched in ((img.size, False), (render.KINK_SEARCH_PIXELS, True)):
        monkeypatch.setattr(render, "KINK_SEARCH_PIXELS", search_above)
        colour = render._Plan(img, recipe, render.WORK_SIDE, lut.DEFAULT_LUT_SIZE).colour
        assert colour is not None and colour.kind == "lut"
        if searched:
            assert colour.kinks is None and colour.table.shape[0] in render.KINK_SEARCH_SIZES
        else:
            assert colour.kinks is not None and colour.table.shape[0] == 33
            assert render.in_band(colour.kinks, img).mean() > 0.3  # the band this avoids
        assert np.abs(render.render(img, recipe).astype(int) - exact).max() <= 1


def test_chain_values_in_one_pass_equal_the_separate_passes():
    """The render evaluates the check colours and a lattice in one pass of the chain: the same
    values as exact_colours and build_lut give alone (the chain is per-pixel)."""
    colours = lut.check_colours(synthetic_photo(40, 50).reshape(-1, 3))
    params = dict(TYPICAL)
    exact, table = lut.chain_values(params, ("global",), colours, 17)
    assert np.array_equal(exact, lut.exact_colours(colours, params))
    np.testing.assert_allclose(table, lut.build_lut(params, 17), atol=1e-6, rtol=0)
    assert lut.chain_values(params, ("global",), colours)[1] is None
    assert lut.chain_values(params, ("global",), None, 9)[0] is None
    with pytest.raises(ValueError, match="LUT size"):
        lut.chain_values(params, ("global",), colours, 70)


def test_pixel_sample_is_a_grid_of_the_image_own_colours():
    img = synthetic_photo(300, 500)
    sample = render._pixel_sample(img, 4096)
    assert sample is not None and sample.shape[1] == 3 and 3000 <= len(sample) <= 6000
    step = int((300 * 500 / 4096) ** 0.5)
    assert np.array_equal(sample, img[step // 2 :: step, step // 2 :: step].reshape(-1, 3))
    assert np.array_equal(
        render._pixel_sample(img[:, ::-1], 4096), render._pixel_sample(img[:, ::-1].copy(), 4096)
    )
    assert render._pixel_sample(img.astype(np.uint16), 4096) is None


def test_colour_map_for_small_images_only_when_all_filters_are_per_pixel():
    img = synthetic_photo(400, 400)  # 160k pixels: above COLOUR_MAP_MIN_PIXELS
    assert render._colour_map_pays(img, Recipe(SMOOTH))
    assert render._colour_map_pays(img, Recipe({**SMOOTH, "auto_contrast": 1.0}))
    assert not render._colour_map_pays(img, Recipe({**SMOOTH, "detail": 0.3}))
    assert not render._colour_map_pays(img, Recipe({**SMOOTH, "dehaze": 0.3}))
    assert not render._colour_map_pays(img.astype(np.uint16) * 257, Recipe(SMOOTH))
    assert not render._colour_map_pays(img[:100], Recipe(SMOOTH))
    out = render.render(img, Recipe({**SMOOTH, "auto_contrast": 1.0})).astype(int)
    assert np.abs(out - _direct(img, {**SMOOTH, "auto_contrast": 1.0}).astype(int)).max() <= 1
