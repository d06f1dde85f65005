"""Creative (hard-set) filters, kornia's vocabulary: smoke, shapes, bad input, hand-checked values,
identity at neutral, float64 gradcheck w.r.t. image and parameter at interior points, live gradients,
and their rows in the one parameter table."""

from __future__ import annotations

import math

import pytest
import torch

from lib_enhancer import params as table
from lib_enhancer.filters import creative
from lib_enhancer.filters.creative import (
    CREATIVE_BY_NAME,
    CREATIVE_DIFFERENTIABLE,
    CREATIVE_FILTERS,
    CREATIVE_NAMES,
    CREATIVE_NEUTRAL,
    CREATIVE_PARAMS,
    apply_creative,
    validate_creative,
)
from lib_enhancer.optimize import DEFAULT_ACTIVE
from lib_enhancer.params import CORE_NAMES, PARAMS

# name -> an interior value (away from kinks and clamps) used for gradcheck and smoke tests
INTERIOR = {
    "hue": 0.13,
    "channel_mix": 0.4,
    "black_white": 0.6,
    "split_tone": -0.5,
    "strong_curve": 0.7,
    "vignette": 0.5,
    "solarize": 0.5,
    "posterize": 3.0,
    "invert": 0.3,
}


def _image(batch: int | None = 2, h: int = 10, w: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (3, h, w) if batch is None else (batch, 3, h, w)
    return torch.rand(shape, generator=g, dtype=torch.float64) * 0.8 + 0.1


def test_creative_rows_live_in_the_one_table() -> None:
    assert set(INTERIOR) == set(CREATIVE_NAMES) == set(CREATIVE_FILTERS)
    assert tuple(p for p in PARAMS if p.stage == "creative") == CREATIVE_PARAMS
    assert CREATIVE_NAMES == table.CREATIVE_NAMES == tuple(CREATIVE_FILTERS)
    # applied last, after every core row; the spatial vignette is the very last
    assert PARAMS[-len(CREATIVE_NAMES) :] == CREATIVE_PARAMS and PARAMS[-1].name == "vignette"
    assert not set(CREATIVE_NAMES) & set(CORE_NAMES)
    assert not set(CREATIVE_NAMES) & set(DEFAULT_ACTIVE), "the hard set is never optimised by default"
    assert all(table.is_creative(n) for n in CREATIVE_NAMES) and not table.is_creative("exposure")
    for p in CREATIVE_PARAMS:
        assert p.stage == "creative" and p.group == "creative"
        assert p.help.startswith("Changes the look"), p.name
        assert p.minimum <= p.neutral == 0.0 <= p.maximum and p.step > 0
        assert p.minimum < INTERIOR[p.name] < p.maximum or p.name == "posterize"


@pytest.mark.parametrize("name", CREATIVE_NAMES)
def test_smoke_and_shapes(name: str) -> None:
    fn = CREATIVE_FILTERS[name]
    for batch in (None, 1, 3):
        x = _image(batch)
        y = fn(x, INTERIOR[name])
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
        assert not torch.equal(y, x), f"{name} changed nothing"


@pytest.mark.parametrize("name", CREATIVE_NAMES)
def test_identity_at_neutral(name: str) -> None:
    fn = CREATIVE_FILTERS[name]
    x = _image(2)
    assert torch.equal(fn(x, 0.0), x)
    assert torch.equal(fn(x, torch.zeros(2, dtype=x.dtype)), x)
    assert apply_creative(x, {}) is x
    assert apply_creative(x, {name: 0.0}) is x
    assert torch.equal(apply_creative(x, {name: torch.zeros(2, dtype=x.dtype)}), x)


@pytest.mark.parametrize("name", CREATIVE_NAMES)
def test_batched_parameters_match_single(name: str) -> None:
    fn = CREATIVE_FILTERS[name]
    x = _image(2)
    y = fn(x, torch.tensor([INTERIOR[name], 0.0], dtype=x.dtype))
    torch.testing.assert_close(y[0], fn(x[:1], INTERIOR[name])[0])
    torch.testing.assert_close(y[1], x[1])


@pytest.mark.parametrize("name", CREATIVE_NAMES)
def test_input_not_modified_and_bad_input(name: str) -> None:
    fn = CREATIVE_FILTERS[name]
    x = _image(2)
    before = x.clone()
    fn(x, INTERIOR[name])
    assert torch.equal(x, before)
    with pytest.raises(ValueError, match="shape"):
        fn(torch.rand(2, 4, 8, 8), INTERIOR[name])
    with pytest.raises(TypeError, match="floating"):
        fn(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), INTERIOR[name])
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        fn([[0.5]], INTERIOR[name])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch"):
        fn(torch.rand(2, 3, 8, 8), torch.zeros(3))


@pytest.mark.parametrize("name", sorted(CREATIVE_DIFFERENTIABLE))
def test_gradcheck_image_and_param(name: str) -> None:
    fn = CREATIVE_FILTERS[name]
    # keep pixels away from the solarize threshold's ramp ends and the clamp at 0 / 1
    x = _image(1, 6, 7, seed=1).requires_grad_(True)
    p = torch.tensor([INTERIOR[name]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, p), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(CREATIVE_DIFFERENTIABLE))
def test_gradients_are_alive(name: str) -> None:
    fn = CREATIVE_FILTERS[name]
    x = _image(1, 16, 16).requires_grad_(True)
    p = torch.tensor([INTERIOR[name]], dtype=torch.float64, requires_grad=True)
    y = fn(x, p)
    (y * torch.linspace(0.5, 1.5, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert p.grad is not None and p.grad.abs().item() > 1e-8, f"{name}: dead parameter gradient"


def test_posterize_is_straight_through() -> None:
    x = _image(1).requires_grad_(True)
    bits = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    creative.posterize(x, bits).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert bits.grad is None


# ---- hand-checked values ------------------------------------------------------------------------


def _pixel(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float64).view(1, 3, 1, 1)


def test_hue_rotation_values() -> None:
    red = _pixel(1.0, 0.0, 0.0)
    torch.testing.assert_close(creative.hue_rotate(red, 1 / 3), _pixel(0.0, 1.0, 0.0))
    torch.testing.assert_close(creative.hue_rotate(red, -1 / 3), _pixel(0.0, 0.0, 1.0))
    grey = _pixel(0.4, 0.4, 0.4)
    torch.testing.assert_close(creative.hue_rotate(grey, 0.27), grey)
    x = _image(1)
    torch.testing.assert_close(creative.hue_rotate(x, 0.5).mean(1), x.mean(1))  # channel mean kept
    torch.testing.assert_close(creative.hue_rotate(creative.hue_rotate(x, 0.2), -0.2), x)


def test_channel_mix_values() -> None:
    px = _pixel(0.1, 0.5, 0.9)
    torch.testing.assert_close(creative.channel_mix(px, 1.0), _pixel(0.5, 0.9, 0.1))
    torch.testing.assert_close(creative.channel_mix(px, -1.0), _pixel(0.9, 0.1, 0.5))
    torch.testing.assert_close(creative.channel_mix(px, 0.5), _pixel(0.3, 0.7, 0.5))


def test_black_white_invert_solarize_posterize_values() -> None:
    px = _pixel(0.2, 0.6, 1.0)
    lum = 0.2126 * 0.2 + 0.7152 * 0.6 + 0.0722 * 1.0
    torch.testing.assert_close(creative.black_white(px, 1.0), _pixel(lum, lum, lum))
    torch.testing.assert_close(creative.invert(px, 1.0), _pixel(0.8, 0.4, 0.0))
    torch.testing.assert_close(creative.invert(px, 0.5), _pixel(0.5, 0.5, 0.5))
    # amount 1: threshold 0.25 -> 0.2 untouched, 0.6 and 1.0 inverted
    torch.testing.assert_close(creative.solarize(px, 1.0), _pixel(0.2, 0.4, 0.0))
    levels = torch.tensor([0, 63, 64, 200, 255], dtype=torch.float64) / 255.0
    img = levels.view(1, 1, 1, 5).expand(1, 3, 1, 5)
    out = creative.posterize(img, 6.0)[0, 0, 0] * 255.0
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 64.0, 192.0, 192.0], dtype=torch.float64))


def test_strong_curve_and_split_tone_values() -> None:
    img = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    s = creative.strong_curve(img, 1.0)[0, 0, 0]
    torch.testing.assert_close(s, torch.tensor([0.0, 0.15625, 0.5, 0.84375, 1.0], dtype=torch.float64))
    assert (creative.strong_curve(img, -1.0)[0, 0, 0, 1:4] - img[0, 0, 0, 1:4]).abs().max() > 0.05
    black, white = _pixel(0.0, 0.0, 0.0), _pixel(1.0, 1.0, 1.0)
    torch.testing.assert_close(creative.split_tone(black, 1.0), _pixel(*creative.SPLIT_COOL))
    warm = [1.0 + v for v in creative.SPLIT_WARM]
    torch.testing.assert_close(creative.split_tone(white, 1.0), _pixel(*warm))
    torch.testing.assert_close(creative.split_tone(black, -1.0), _pixel(*creative.SPLIT_WARM))


def test_vignette_values() -> None:
    img = torch.full((1, 3, 5, 9), 0.5, dtype=torch.float64)
    out = creative.vignette(img, 1.0)
    assert out[0, 0, 2, 4] == pytest.approx(0.5)  # centre untouched
    assert out[0, 0, 0, 0] == pytest.approx(0.5 * (1 - creative.VIGNETTE_DEPTH))  # corner
    assert creative.vignette(img, -1.0)[0, 0, 0, 0] == pytest.approx(0.5 * (1 + creative.VIGNETTE_DEPTH))
    # resolution independent: the same relative point gets the same factor
    small = creative.vignette(torch.full((1, 3, 5, 5), 0.5, dtype=torch.float64), 1.0)
    big = creative.vignette(torch.full((1, 3, 9, 9), 0.5, dtype=torch.float64), 1.0)
    assert big[0, 0, 0, 0] == pytest.approx(small[0, 0, 0, 0])
    assert big[0, 0, 4, 0] == pytest.approx(small[0, 0, 2, 0])
    assert big[0, 0, 2, 2] == pytest.approx(small[0, 0, 1, 1])


# ---- the chain and the table --------------------------------------------------------------------


def test_apply_creative_order_clamp_and_errors() -> None:
    x = _image(2)
    params = {"invert": 1.0, "black_white": 1.0}
    manual = creative.invert(creative.black_white(x, 1.0), 1.0).clamp(0, 1)
    torch.testing.assert_close(apply_creative(x, params), manual)
    loud = apply_creative(x, {"strong_curve": 1.0, "vignette": -1.0}, clamp=False)
    assert loud.max() > 1.0
    assert apply_creative(x, {"strong_curve": 1.0, "vignette": -1.0}).max() <= 1.0
    with pytest.raises(KeyError, match="Did you mean invert"):
        apply_creative(x, {"invrt": 1.0})
    with pytest.raises(KeyError, match="unknown creative parameter 'exposure'"):
        apply_creative(x, {"exposure": 1.0})


def test_validate_creative() -> None:
    assert validate_creative({"hue": 0.2}) == {"hue": 0.2}
    assert validate_creative({"posterize": 9}, clamp=True) == {"posterize": 6.0}
    with pytest.raises(ValueError, match=r"outside its range \[0, 6\]"):
        validate_creative({"posterize": 9})
    with pytest.raises(ValueError, match="finite"):
        validate_creative({"hue": math.nan})
    with pytest.raises(KeyError):
        validate_creative({"sepia": 1.0})
    assert {n: 0.0 for n in CREATIVE_NAMES} == CREATIVE_NEUTRAL
    assert CREATIVE_BY_NAME["posterize"].step == 1.0
