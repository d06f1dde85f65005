"""Filter tests, kornia's vocabulary: smoke, shapes, bad input, hand-checked values, identity at the
neutral value, float64 gradcheck w.r.t. image *and* parameters at interior points, live gradients."""

from __future__ import annotations

import math

import pytest
import torch

from lib_enhancer.filters import auto, color, local
from lib_enhancer.filters.pipeline import STEPS, apply_filters
from lib_enhancer.params import NEUTRAL, PARAMS, PARAMS_BY_NAME, validate_params


def _channel_levels(image, br, bg, bb, wr, wg, wb):
    """:func:`color.channel_levels` with flat parameters, for the shared per-op tests below."""
    return color.channel_levels(image, (br, bg, bb), (wr, wg, wb))


def _channel_gamma(image, gr, gg, gb):
    """:func:`color.channel_gamma` with flat parameters, for the shared per-op tests below."""
    return color.channel_gamma(image, (gr, gg, gb))


# name -> (function(image, *params), interior parameter values used for gradcheck)
FILTERS = {
    "auto_tone": (auto.auto_tone, (0.5, 0.6, 0.4)),
    "white_balance": (color.white_balance, (0.3, -0.2)),
    "exposure": (color.exposure, (0.4,)),
    "linear_light": (color.linear_light, (0.2, 0.1, -0.3)),
    "levels": (color.levels, (0.05, 0.08)),
    "channel_levels": (_channel_levels, (0.05, -0.04, 0.1, 0.08, -0.06, 0.03)),
    "channel_gamma": (_channel_gamma, (0.3, -0.2, 0.45)),
    "brightness": (color.brightness, (0.4,)),
    "contrast": (color.contrast, (0.5,)),
    "shadows": (color.shadows, (0.4,)),
    "highlights": (color.highlights, (-0.4,)),
    "gamma": (color.gamma, (1.4,)),
    "saturation": (color.saturation, (0.3,)),
    "vibrance": (color.vibrance, (0.5,)),
    "dehaze": (local.dehaze, (0.6,)),
    "dehaze_negative": (local.dehaze, (-0.4,)),
    "local_laplacian": (local.local_laplacian, (0.5, -0.2)),
    "sharpen": (local.sharpen, (0.5,)),
}
NEUTRALS = {
    "auto_tone": (0.0, 0.0, 0.0),
    "white_balance": (0.0, 0.0),
    "exposure": (0.0,),
    "linear_light": (0.0, 0.0, 0.0),
    "levels": (0.0, 0.0),
    "channel_levels": (0.0,) * 6,
    "channel_gamma": (0.0,) * 3,
    "brightness": (0.0,),
    "contrast": (0.0,),
    "shadows": (0.0,),
    "highlights": (0.0,),
    "gamma": (1.0,),
    "saturation": (0.0,),
    "vibrance": (0.0,),
    "dehaze": (0.0,),
    "dehaze_negative": (0.0,),
    "local_laplacian": (0.0, 0.0),
    "sharpen": (0.0,),
}


def _image(batch: int | None = 2, h: int = 12, w: int = 14, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (3, h, w) if batch is None else (batch, 3, h, w)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 0.8 + 0.1).contiguous()


@pytest.mark.parametrize("name", FILTERS)
def test_smoke_and_shapes(name):
    fn, values = FILTERS[name]
    for batch in (None, 1, 3):
        x = _image(batch)
        y = fn(x, *values)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert torch.isfinite(y).all()
        assert not torch.equal(y, x), f"{name} changed nothing at {values}"


@pytest.mark.parametrize("name", FILTERS)
def test_batched_parameters_match_single(name):
    fn, values = FILTERS[name]
    x = _image(2)
    batched = [torch.tensor([v, n], dtype=x.dtype) for v, n in zip(values, NEUTRALS[name], strict=True)]
    y = fn(x, *batched)
    torch.testing.assert_close(y[0], fn(x[:1], *values)[0])
    torch.testing.assert_close(y[1], fn(x[1:], *NEUTRALS[name])[0], atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", FILTERS)
def test_identity_at_neutral(name):
    fn, _ = FILTERS[name]
    x = _image(2)
    torch.testing.assert_close(fn(x, *NEUTRALS[name]), x, atol=2e-6, rtol=0)
    tensors = [torch.tensor(v, dtype=x.dtype) for v in NEUTRALS[name]]
    torch.testing.assert_close(fn(x, *tensors), x, atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", FILTERS)
def test_input_not_modified(name):
    fn, values = FILTERS[name]
    x = _image(2)
    before = x.clone()
    fn(x, *values)
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", FILTERS)
def test_bad_input(name):
    fn, values = FILTERS[name]
    with pytest.raises(ValueError):
        fn(torch.rand(2, 4, 8, 8), *values)
    with pytest.raises(TypeError):
        fn(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), *values)
    with pytest.raises(TypeError):
        fn([[0.5]], *values)
    with pytest.raises(ValueError):
        fn(torch.rand(2, 3, 8, 8), *[torch.zeros(3) for _ in values])  # 3 values for a batch of 2


@pytest.mark.parametrize("name", FILTERS)
def test_gradcheck_image_and_params(name):
    fn, values = FILTERS[name]
    x = _image(1, 10, 12).requires_grad_(True)
    params = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in values]
    assert torch.autograd.gradcheck(lambda img, *p: fn(img, *p), (x, *params), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("name", FILTERS)
def test_gradients_are_alive(name):
    """The gradient w.r.t. every parameter and the image is not identically zero (gradcheck alone
    passes on a function whose output is clamped flat)."""
    fn, values = FILTERS[name]
    x = _image(1, 16, 16).requires_grad_(True)
    params = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in values]
    y = fn(x, *params)
    (y * torch.linspace(0.5, 1.5, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    assert x.grad.abs().sum() > 0
    for p in params:
        assert p.grad is not None and p.grad.abs().item() > 1e-8, f"{name}: dead parameter gradient"


# ---- hand-checked values -----------------------------------------------------------------------


def _grey(v: float, h: int = 4, w: int = 4) -> torch.Tensor:
    return torch.full((1, 3, h, w), v, dtype=torch.float64)


def _srgb_to_lin(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _lin_to_srgb(v: float) -> float:
    return 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def test_srgb_round_trip_and_known_value():
    x = torch.linspace(0, 1, 101, dtype=torch.float64).view(1, 1, 101).expand(3, 1, 101)
    torch.testing.assert_close(color.linear_to_srgb(color.srgb_to_linear(x)), x)
    assert color.srgb_to_linear(_grey(0.5))[0, 0, 0, 0].item() == pytest.approx(0.214041, abs=1e-6)


def test_exposure_one_stop_doubles_linear_light():
    out = color.exposure(_grey(0.5), 1.0)[0, 0, 0, 0].item()
    assert out == pytest.approx(_lin_to_srgb(2 * _srgb_to_lin(0.5)), abs=1e-9)
    assert out == pytest.approx(0.686, abs=1e-3)


def test_levels_value():
    assert color.levels(_grey(0.5), 0.1, 0.0)[0, 0, 0, 0].item() == pytest.approx(0.4 / 0.9)
    assert color.levels(_grey(0.5), 0.0, 0.2)[0, 0, 0, 0].item() == pytest.approx(0.625)


def test_channel_levels_values():
    x = torch.tensor([0.5, 0.5, 0.2], dtype=torch.float64).view(1, 3, 1, 1)
    out = color.channel_levels(x, (0.1, 0.0, -0.1), (0.0, 0.2, -0.1))[0, :, 0, 0]
    # red: (0.5 - 0.1) / 0.9; green: 0.5 / 0.8; blue: (0.2 + 0.1) / (1 + 0.1 + 0.1)
    torch.testing.assert_close(out, torch.tensor([0.4 / 0.9, 0.625, 0.25], dtype=torch.float64))
    # equal points on every channel are the global levels
    y = _image(2)
    torch.testing.assert_close(color.channel_levels(y, (0.07,) * 3, (0.05,) * 3), color.levels(y, 0.07, 0.05))
    with pytest.raises(ValueError):
        color.channel_levels(y, (0.1, 0.1), (0.0, 0.0, 0.0))


def test_channel_levels_gradient_is_per_channel_and_hand_checked():
    """d/db_c and d/dw_c of ``(x_c - b_c) / (1 - w_c - b_c)``, and no leak into other channels."""
    x = _image(1, 5, 6)
    b = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.05, -0.04, 0.1)]
    w = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.08, -0.06, 0.03)]
    out = color.channel_levels(x, b, w)
    for c in range(3):
        gb, gw = torch.autograd.grad(out[:, c].sum(), (b[c], w[c]), retain_graph=True)
        d = 1.0 - w[c].item() - b[c].item()
        xc = x[:, c]
        assert gb.item() == pytest.approx(((xc - 1.0 + w[c].item()) / d**2).sum().item(), rel=1e-12)
        assert gw.item() == pytest.approx(((xc - b[c].item()) / d**2).sum().item(), rel=1e-12)
        others = [p for k, p in enumerate(b + w) if k % 3 != c]
        leaked = torch.autograd.grad(out[:, c].sum(), others, retain_graph=True, allow_unused=True)
        assert all(g is None or g.abs().item() == 0.0 for g in leaked)


# One-parameter views of filters whose gradcheck is shown not to be vacuous below.
ONE_PARAMETER = {
    "channel_levels": (lambda image, v: color.channel_levels(image, (v, 0.0, 0.0), (0.0, 0.0, 0.0)), 0.05),
    "channel_gamma": (lambda image, v: color.channel_gamma(image, (v, 0.0, 0.0)), 0.3),
    "auto_tone": (lambda image, v: auto.auto_tone(image, 0.0, v, 0.3), 0.6),
}


@pytest.mark.parametrize("name", ONE_PARAMETER)
def test_gradcheck_can_fail(name):
    """The float64 gradchecks are not vacuous: a wrong backward of the same forward fails them."""
    fn, value = ONE_PARAMETER[name]

    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, image, v):
            return fn(image, v)

        @staticmethod
        def backward(ctx, grad):
            return grad, grad[:, 0].sum().reshape(1) * 0.5  # identity for the image: wrong on both

    x = _image(1, 4, 5).requires_grad_(True)
    v = torch.tensor([value], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, v), eps=1e-6, atol=1e-5)
    assert not torch.autograd.gradcheck(
        WrongBackward.apply, (x, v), eps=1e-6, atol=1e-5, raise_exception=False
    )


def test_channel_levels_in_the_pipeline_follow_global_levels():
    """The pipeline step runs right after ``levels``: its points are offsets on the levelled image."""
    x = _image(2)
    params = {"blacks": 0.05, "whites": 0.04, "black_b": 0.06, "white_r": -0.03}
    expected = color.channel_levels(color.levels(x, 0.05, 0.04), (0.0, 0.0, 0.06), (-0.03, 0.0, 0.0))
    torch.testing.assert_close(apply_filters(x, params, clamp=False), expected)
    names = [n for names, _ in STEPS for n in names]
    assert names[names.index("whites") + 1 : names.index("whites") + 7] == [
        "black_r", "black_g", "black_b", "white_r", "white_g", "white_b"
    ]  # fmt: skip
    batch = {"black_g": torch.tensor([0.1, 0.0], dtype=x.dtype)}
    out = apply_filters(x, batch, clamp=False)
    torch.testing.assert_close(out[1], x[1])
    torch.testing.assert_close(out[0], apply_filters(x[:1], {"black_g": 0.1}, clamp=False)[0])


def test_channel_gamma_values():
    t = color.GAMMA_TOE
    # pixel 0: (0.25, 0.25, 0.81); pixel 1: (T/2, -0.01, 1), below the toe on red and green
    x = torch.tensor([[0.25, t / 2], [0.25, -0.01], [0.81, 1.0]], dtype=torch.float64).view(1, 3, 2, 1)
    out = color.channel_gamma(x, (1.0 / 2.0, -1.0, 0.0))  # exponents 2^-0.5, 2, 1 (hand values)
    e = 2.0**-0.5
    expected = torch.tensor(
        [[0.25**e, t / 2 * t ** (e - 1.0)], [0.0625, -0.01 * t], [0.81, 1.0]], dtype=torch.float64
    ).view(1, 3, 2, 1)
    torch.testing.assert_close(out, expected)
    # equal values on every channel are the global gamma with gamma = 2^g
    y = _image(2)
    torch.testing.assert_close(color.channel_gamma(y, (0.3,) * 3), color.gamma(y, 2.0**0.3))
    # +g and -g are inverse maps above the toe
    torch.testing.assert_close(
        color.channel_gamma(color.channel_gamma(y, (0.4, -0.2, 0.1)), (-0.4, 0.2, -0.1)), y
    )
    with pytest.raises(ValueError):
        color.channel_gamma(y, (0.1, 0.1))


def test_channel_gamma_gradient_is_per_channel_finite_and_hand_checked():
    """d/dg_c of ``x_c^(2^-g_c)`` is ``-ln2 e ln(x_c) x_c^e``; finite through the toe; no leak."""
    x = torch.cat([_image(1, 5, 6), torch.full((1, 3, 1, 6), color.GAMMA_TOE / 3, dtype=torch.float64)], -2)
    x[:, :, -1, 0] = 0.0
    g = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.3, -0.2, 0.45)]
    out = color.channel_gamma(x, g)
    for c in range(3):
        (gg,) = torch.autograd.grad(out[:, c].sum(), (g[c],), retain_graph=True)
        e = 2.0 ** -g[c].item()
        xc = x[:, c]
        t = color.GAMMA_TOE
        above = xc >= t
        d = torch.where(above, -math.log(2) * e * xc.clamp_min(t).log() * xc.clamp_min(t) ** e, 0.0)
        d = d + torch.where(above, 0.0, -math.log(2) * e * math.log(t) * xc * t ** (e - 1.0))
        assert gg.item() == pytest.approx(d.sum().item(), rel=1e-10)
        others = [p for k, p in enumerate(g) if k != c]
        leaked = torch.autograd.grad(out[:, c].sum(), others, retain_graph=True, allow_unused=True)
        assert all(v is None or v.abs().item() == 0.0 for v in leaked)
    xi = x.clone().requires_grad_(True)
    color.channel_gamma(xi, (0.5, 0.5, -0.5)).sum().backward()
    assert torch.isfinite(xi.grad).all() and xi.grad.abs().max() < 100.0
    # gradcheck through the toe (the kink at T itself is avoided: no pixel sits on it)
    xt = torch.tensor([0.002, 0.01, 0.03, 0.5, -0.02, 0.2], dtype=torch.float64).view(1, 3, 2, 1)
    xt.requires_grad_(True)
    gt = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda img, a: color.channel_gamma(img, (a, -a, 0.5 * a)), (xt, gt), eps=1e-7, atol=1e-5
    )


def test_channel_gamma_in_the_pipeline_follows_channel_levels():
    """The pipeline step runs right after the per-channel levels, before brightness."""
    x = _image(2)
    params = {"blacks": 0.05, "black_b": 0.06, "gamma_r": 0.2, "gamma_b": -0.3}
    levelled = color.channel_levels(color.levels(x, 0.05, 0.0), (0.0, 0.0, 0.06), (0.0, 0.0, 0.0))
    expected = color.channel_gamma(levelled, (0.2, 0.0, -0.3))
    torch.testing.assert_close(apply_filters(x, params, clamp=False), expected)
    names = [n for names, _ in STEPS for n in names]
    assert names[names.index("white_b") + 1 : names.index("white_b") + 5] == [
        "gamma_r", "gamma_g", "gamma_b", "brightness"
    ]  # fmt: skip
    batch = {"gamma_g": torch.tensor([0.0, -0.4], dtype=x.dtype)}
    out = apply_filters(x, batch, clamp=False)
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1], apply_filters(x[1:], {"gamma_g": -0.4}, clamp=False)[0])


def _ramp_image(lo: float, hi: float, h: int = 20, w: int = 30) -> torch.Tensor:
    """Each channel a shuffled uniform ramp over [lo, hi] (channel c shuffled with seed c)."""
    n = h * w
    ramp = torch.linspace(lo, hi, n, dtype=torch.float64)
    chans = [ramp[torch.randperm(n, generator=torch.Generator().manual_seed(c))] for c in range(3)]
    return torch.stack(chans).reshape(1, 3, h, w)


def test_auto_levels_stretches_each_channel_to_black_and_white():
    x = _ramp_image(0.2, 0.6)
    out = auto.auto_tone(x, 0.0, 1.0, 0.0)
    # the 0.5 % / 99.5 % quantiles of a uniform ramp over [0.2, 0.6] are 0.202 / 0.598
    lo, hi = 0.2 + 0.005 * 0.4, 0.6 - 0.005 * 0.4
    torch.testing.assert_close(out, (x - lo) / (hi - lo), atol=2e-6, rtol=0)
    half = auto.auto_tone(x, 0.0, 0.5, 0.0)
    torch.testing.assert_close(half, 0.5 * (x + out), atol=1e-12, rtol=0)
    # a channel with (almost) no range is stretched at most LEVELS_MAX_GAIN times, around its centre
    flat = x.clone()
    flat[:, 1] = 0.5 + 0.01 * (flat[:, 1] - 0.4)
    g = auto.auto_tone(flat, 0.0, 1.0, 0.0)[:, 1]
    spread = float(g.max() - g.min()) / float(flat[:, 1].max() - flat[:, 1].min())
    assert spread == pytest.approx(auto.LEVELS_MAX_GAIN, rel=1e-3)
    assert 0.4 < float(g.mean()) < 0.6


def test_auto_contrast_stretches_all_channels_alike_to_black_and_white():
    x = _ramp_image(0.2, 0.6)
    x[:, 2] = 0.1 + 0.5 * (x[:, 2] - 0.2)  # blue spans [0.1, 0.3]: the darkest value of any channel
    out = auto.auto_tone(x, 1.0, 0.0, 0.0)
    torch.testing.assert_close(out, (x - 0.1) / (0.6 - 0.1), atol=1e-12, rtol=0)  # one map for all
    torch.testing.assert_close(auto.auto_tone(x, 0.25, 0.0, 0.0), x + 0.25 * (out - x), atol=1e-12, rtol=0)
    # a photo that already reaches black and white is left alone
    full = _ramp_image(0.0, 1.0)
    torch.testing.assert_close(auto.auto_tone(full, 1.0, 0.0, 0.0), full, atol=1e-12, rtol=0)
    # a nearly flat photo is stretched at most LEVELS_MAX_GAIN times
    flat = 0.5 + 0.01 * (x - 0.4)
    g = auto.auto_tone(flat, 1.0, 0.0, 0.0)
    assert float(g.amax() - g.amin()) / float(flat.amax() - flat.amin()) == pytest.approx(
        auto.LEVELS_MAX_GAIN
    )
    # per-channel levels after auto contrast still give the photo's own levels
    torch.testing.assert_close(
        auto.auto_tone(x, 1.0, 1.0, 0.0), auto.auto_tone(x, 0.0, 1.0, 0.0), atol=1e-12, rtol=0
    )


def test_equalize_spreads_each_channel_evenly_and_keeps_the_order():
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(1, 3, 40, 50, generator=g, dtype=torch.float64) ** 2) * 0.6 + 0.1  # dark, skewed, flat
    out = auto.auto_tone(x, 0.0, 0.0, 1.0)
    for c in range(3):
        q = torch.quantile(out[0, c].flatten(), torch.tensor([0.1, 0.5, 0.9], dtype=out.dtype))
        torch.testing.assert_close(q, torch.tensor([0.1, 0.5, 0.9], dtype=out.dtype), atol=0.02, rtol=0)
        order = x[0, c].flatten().argsort()
        assert bool((out[0, c].flatten()[order].diff() >= -1e-12).all()), "equalisation must be monotone"
    # equalising after a levels stretch gives the photo's equalisation (see auto_tone's docstring)
    torch.testing.assert_close(auto.auto_tone(x, 0.0, 1.0, 1.0), out, atol=1e-12, rtol=0)


def test_auto_tables_are_resolution_independent_and_reusable():
    smooth = torch.nn.functional.interpolate  # photo-like: smooth at the analysis size and above
    x = smooth(_image(1, 8, 10, seed=4), size=(300, 360), mode="bicubic", align_corners=False).clamp(0, 1)
    big = smooth(x, scale_factor=4, mode="bilinear", align_corners=False)
    small_t, big_t = auto.auto_tables(x), auto.auto_tables(big)
    assert [tuple(t.shape) for t in small_t] == [(1, 1, 2), (1, 3, 2), (1, 3, auto.TABLE_KNOTS + 1)]
    for a, b in zip(small_t, big_t, strict=True):  # same photo at 4x: about the same curves
        assert float((a - b).abs().max()) < 0.03
    # precomputed curves give the same result as computing them inline; a batch reuses one photo's
    torch.testing.assert_close(auto.auto_tone(x, 0.4, 0.7, 0.3, small_t), auto.auto_tone(x, 0.4, 0.7, 0.3))
    batch = x.expand(3, -1, -1, -1)
    amounts = torch.tensor([0.0, 0.5, 1.0], dtype=x.dtype)
    out = auto.auto_tone(batch, amounts, amounts, amounts.flip(0), small_t)
    torch.testing.assert_close(out[1], auto.auto_tone(x, 0.5, 0.5, 0.5)[0])
    with pytest.raises(ValueError, match="auto tables"):
        auto.auto_tone(x, 0.0, 0.5, 0.5, (small_t[0], small_t[1][..., :1], small_t[2]))


def test_auto_filters_read_the_untouched_photo_first_in_the_chain():
    from lib_enhancer.filters.pipeline import AUTO_KEY, auto_of

    x = _image(1, 30, 40, seed=5) * 0.5 + 0.2
    params = {"auto_levels": 0.8, "equalize": 0.3, "exposure": 0.4}
    expected = color.linear_light(auto.auto_tone(x, 0.0, 0.8, 0.3), 0.0, 0.0, 0.4).clamp(0, 1)
    torch.testing.assert_close(apply_filters(x, params), expected)
    torch.testing.assert_close(apply_filters(x, {**params, AUTO_KEY: auto_of(x)}), expected)


def test_precompute_covers_moving_and_locked_filters_only():
    from lib_enhancer.filters.pipeline import AUTO_KEY, HAZE_KEY, precompute

    x = _image(1, 20, 24)
    assert precompute(x, ["exposure"]) == {}
    assert set(precompute(x, ["dehaze", "equalize"])) == {HAZE_KEY, AUTO_KEY}
    assert set(precompute(x, ["exposure"], {"auto_levels": 0.4, "dehaze": 0.0, "_haze": None})) == {AUTO_KEY}


def test_brightness_and_contrast_values():
    assert color.brightness(_grey(0.5), 1.0)[0, 0, 0, 0].item() == pytest.approx(0.625)
    assert color.brightness(_grey(0.0), 1.0).abs().max().item() == 0.0
    expected = 0.5 - 0.5 * math.cos(math.pi * 0.25)
    assert color.contrast(_grey(0.25), 1.0)[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-5)


def test_shadows_highlights_values():
    assert color.shadows(_grey(0.5), 1.0)[0, 0, 0, 0].item() == pytest.approx(0.5 * 1.125)
    assert color.highlights(_grey(0.5), 1.0)[0, 0, 0, 0].item() == pytest.approx(0.5 * 1.125)
    assert color.shadows(_grey(1.0), 1.0)[0, 0, 0, 0].item() == pytest.approx(1.0)  # white untouched
    assert color.highlights(_grey(0.0), 1.0).abs().max().item() == 0.0  # black untouched


def test_tone_curve_values_and_monotone():
    # slopes 2,1,1,1 normalised by 5/4: x=0.125 -> 0.125*2/1.25 = 0.2; ends fixed
    out = color.tone_curve(
        torch.tensor([0.0, 0.125, 1.0], dtype=torch.float64).view(1, 1, 3).expand(3, 1, 3), [1.0, 0, 0, 0]
    )
    torch.testing.assert_close(out[0, 0], torch.tensor([0.0, 0.2, 1.0], dtype=torch.float64))
    ramp = torch.linspace(0, 1, 257, dtype=torch.float64).view(1, 1, -1).expand(3, 1, -1)
    curved = color.tone_curve(ramp, [-1.0, 1.0, -1.0, 1.0])
    assert (curved[0, 0, 1:] - curved[0, 0, :-1] >= 0).all()


def test_gamma_value():
    assert color.gamma(_grey(0.25), 2.0)[0, 0, 0, 0].item() == pytest.approx(0.5)
    assert color.gamma(_grey(0.0), 2.0).abs().max().item() == 0.0
    toe = color.GAMMA_TOE
    assert color.gamma(_grey(toe / 2), 2.0)[0, 0, 0, 0].item() == pytest.approx(0.5 * toe**0.5)  # linear toe


def test_saturation_and_vibrance_values():
    x = torch.tensor([0.8, 0.4, 0.2], dtype=torch.float64).view(1, 3, 1, 1)
    lum = color.luminance(x)
    torch.testing.assert_close(color.saturation(x, -1.0), lum.expand_as(x))
    torch.testing.assert_close(color.saturation(x, 1.0), lum + 2 * (x - lum))
    grey = _grey(0.4)
    torch.testing.assert_close(color.vibrance(grey, 1.0), grey)  # no chroma, nothing to boost
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(color.vibrance(red, 1.0), red)  # fully saturated is spared


def test_white_balance_preserves_grey_luminance():
    out = color.white_balance(_grey(0.5), 0.7, -0.4)
    lin = color.srgb_to_linear(out)[0, :, 0, 0]
    y = sum(w * c for w, c in zip(color.LUMA_WEIGHTS, lin.tolist(), strict=True))
    assert y == pytest.approx(_srgb_to_lin(0.5), rel=1e-9)
    assert lin[0] > lin[2]  # warmer: red above blue


def test_dehaze_inverts_the_haze_model():
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(1, 3, 64, 64, generator=g, dtype=torch.float64) * 0.6
    dark = torch.randint(0, 3, (64, 64), generator=g)
    clean.view(3, 64, 64)[dark, torch.arange(64)[:, None], torch.arange(64)] = (
        0.02  # dark-channel prior holds
    )
    clean[..., :6, :] = 1.0  # a white sky
    airlight = 0.9
    hazy = clean * 0.6 + airlight * 0.4
    restored = local.dehaze(hazy, 1.0)
    assert (restored - clean).abs().mean() < (hazy - clean).abs().mean() * 0.6
    added = local.dehaze(clean, -1.0)
    assert added.mean() > clean.mean()  # adding haze moves towards the bright airlight


def test_local_laplacian_detail_and_tone():
    g = torch.Generator().manual_seed(2)
    step = torch.zeros(1, 3, 64, 64, dtype=torch.float64)
    step[..., :, 32:] = 0.6
    texture = step + 0.2 + 0.03 * torch.randn(1, 1, 64, 64, generator=g, dtype=torch.float64)

    def fine(x: torch.Tensor) -> float:
        return (x - local.gaussian_blur(x, 1.0)).std().item()

    assert fine(local.local_laplacian(texture, 0.8, 0.0)) > 1.2 * fine(texture)
    assert fine(local.local_laplacian(texture, -0.8, 0.0)) < 0.9 * fine(texture)

    def edge_jump(x: torch.Tensor) -> float:
        return (x[..., 33:37].mean() - x[..., 27:31].mean()).item()

    assert edge_jump(local.local_laplacian(texture, 0.0, -0.4)) < 0.9 * edge_jump(texture)
    assert edge_jump(local.local_laplacian(texture, 0.0, 0.4)) > 1.1 * edge_jump(texture)


def test_sharpen_boosts_fine_detail_only():
    flat = _grey(0.5, 32, 32)
    torch.testing.assert_close(local.sharpen(flat, 1.0), flat)
    g = torch.Generator().manual_seed(3)
    x = 0.5 + 0.05 * torch.randn(1, 3, 32, 32, generator=g, dtype=torch.float64)
    assert local.sharpen(x, 1.0).std() > x.std()


def test_box_filter_matches_naive_mean():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 9, 11, generator=g, dtype=torch.float64)
    r = 2
    out = local.box_filter(x, r)
    for i, j in [(0, 0), (4, 5), (8, 10), (3, 0)]:
        window = x[0, 0, max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1]
        assert out[0, 0, i, j].item() == pytest.approx(window.mean().item())


def test_local_sizes_scale_with_the_image():
    assert local.scaled_radius(400, 600, 0.05) == 20
    assert local.scaled_radius(1600, 2400, 0.05) == 80
    assert local.pyramid_depth(1600, 2400) == local.pyramid_depth(400, 600) + 2


# ---- the chain ---------------------------------------------------------------------------------


def test_every_parameter_has_exactly_one_step_and_a_valid_range():
    names = [n for step_names, _ in STEPS for n in step_names]
    assert sorted(names) == sorted(NEUTRAL)
    for p in PARAMS:
        assert p.minimum <= p.neutral <= p.maximum and p.minimum < p.maximum
        assert p.help and p.label


def test_chain_neutral_is_exact_identity_and_unknown_names_raise():
    x = _image(2).float()
    assert torch.equal(apply_filters(x, dict(NEUTRAL)), x)
    with pytest.raises(KeyError, match="unknown filter parameters"):
        apply_filters(x, {"exposur": 0.1})


def test_chain_stages_compose():
    x = _image(1, 24, 24).float()
    p = {"dehaze": 0.3, "exposure": 0.5, "saturation": 0.2, "detail": 0.4}
    step = apply_filters(x, p, stages=("pre",), clamp=False)
    step = apply_filters(step, p, stages=("global",), clamp=False)
    step = apply_filters(step, p, stages=("post",))
    torch.testing.assert_close(step, apply_filters(x, p), atol=1e-5, rtol=0)


def test_validate_params_messages():
    with pytest.raises(KeyError, match="Did you mean exposure"):
        validate_params({"exposre": 0.1})
    with pytest.raises(ValueError, match="outside its range"):
        validate_params({"exposure": 9.0})
    with pytest.raises(ValueError, match="finite"):
        validate_params({"exposure": float("nan")})
    assert validate_params({"exposure": 9.0}, clamp=True)["exposure"] == PARAMS_BY_NAME["exposure"].maximum


def test_auto_tables_compute_each_part_when_first_used():
    """Auto contrast alone reads only its bounds: the levels quantiles and the equalisation
    histogram are computed when a recipe uses them, and then equal the eager values."""
    x = _image(1, 40, 50, seed=3)
    tables = auto.auto_tables(x)
    assert tables._parts == [None, None, None]
    out = auto.auto_tone(x, 1.0, 0.0, 0.0, tables)
    assert tables._parts[0] is not None and tables._parts[1] is None and tables._parts[2] is None
    values = auto._analysis_copy(x).flatten(-2)
    eager = (auto.contrast_bounds(values), auto.levels_bounds(values), auto.equalize_table(values))
    torch.testing.assert_close(out, auto.auto_tone(x, 1.0, 0.0, 0.0, eager), atol=0, rtol=0)
    for lazy, want in zip(tables, eager, strict=True):  # iterating computes the rest
        assert torch.equal(lazy, want)
    assert len(tables) == 3 and "levels" in repr(tables)
    a, b, c = auto.auto_tables(x)
    assert torch.equal(a, eager[0])
    assert torch.equal(b, eager[1]) and torch.equal(c, eager[2])


def test_per_channel_steps_map_each_channel_alone_and_the_head_splits_the_chain():
    """Every step PER_CHANNEL_STEPS names gives each channel the value that channel's level alone
    gives it (so it can run on a LUT's axis); a mixing step does not; and the chain's per-channel
    head followed by the rest is the whole chain."""
    from lib_enhancer.filters.pipeline import PER_CHANNEL_STEPS, STEPS, per_channel_head

    gen = torch.Generator().manual_seed(7)
    colours = torch.rand(3, 512, 1, generator=gen)
    values = {"auto_contrast": 0.7, "temperature": 0.3, "tint": -0.2, "exposure": 0.4, "blacks": 0.05}
    values |= {"whites": -0.03, "black_g": 0.02, "white_b": 0.04, "gamma_r": 0.3, "brightness": 0.4}
    values |= {"curve_1": 0.4, "curve_3": -0.3, "gamma": 1.3, "contrast": 0.4, "shadows": 0.3}
    values |= {"highlights": -0.3, "saturation": 0.5, "vibrance": 0.4}
    tables = auto.auto_tables(torch.rand(1, 3, 30, 40, generator=gen) * 0.6 + 0.2)
    tested = set()
    for names, _ in STEPS:
        step = {n: values[n] for n in names if n in values}
        if not step:
            continue
        step["_auto"] = tables
        out = apply_filters(colours, step, clamp=False)
        # each channel's output from a grey image of that channel's levels
        alone = torch.stack(
            [apply_filters(colours[c].expand(3, -1, -1), step, clamp=False)[c] for c in range(3)]
        )
        per_channel = torch.allclose(out, alone, atol=1e-6, rtol=0)
        assert per_channel == (names[0] in PER_CHANNEL_STEPS), names
        tested.add(names[0])
    assert tested >= PER_CHANNEL_STEPS
    head, rest = per_channel_head({**values, "_auto": tables}, ("pre", "global"))
    assert set(head) == {"auto_contrast", "temperature", "tint", "exposure", "blacks", "whites"} | {
        "black_g",
        "white_b",
        "gamma_r",
        "brightness",
        "_auto",
    }
    assert "contrast" in rest and "gamma" in rest and "_auto" not in rest
    stages = ("pre", "global")
    whole = apply_filters(colours, {**values, "_auto": tables}, stages=stages, clamp=False)
    split = apply_filters(
        apply_filters(colours, head, stages=stages, clamp=False), rest, stages=stages, clamp=False
    )
    torch.testing.assert_close(split, whole, atol=1e-6, rtol=0)
    # without the mixing steps the per-channel tone curve and gamma join the head; never a creative step
    smooth = {n: v for n, v in values.items() if n not in ("contrast", "shadows", "highlights")}
    head, rest = per_channel_head({**smooth, "invert": 0.5}, ("global", "creative"))
    assert {"curve_1", "gamma"} <= set(head) and "saturation" in rest and "invert" in rest


def test_filtered_batch_gives_each_param_set_its_own_pass():
    """The learned modes' scorer check filters the proposal's fractions in one batched pass: each
    result is what its own pass gives, a value all sets share stays a number (a step neutral in all
    of them is skipped), and sets naming other parameters are filtered one by one."""
    from lib_enhancer.filters.pipeline import filtered_batch, precompute

    x = _image(1, 24, 30, seed=5)
    full = {"auto_contrast": 1.0, "exposure": 0.3, "tint": -0.2, "contrast": 0.25, "saturation": 0.4}
    full |= {"gamma": 1.2, "curve_2": -0.3, "vibrance": 0.0}
    half = {n: (v if n == "auto_contrast" else v / 2) for n, v in full.items()}
    reused = precompute(x, full)
    got = filtered_batch(x, [half, full], reused)
    for out, params in zip(got, (half, full), strict=True):
        assert out.shape == x.shape
        torch.testing.assert_close(out, apply_filters(x, {**params, **reused}), atol=1e-6, rtol=0)
    start = filtered_batch(x, [{"auto_contrast": 1.0}, full], reused)
    torch.testing.assert_close(start[0], apply_filters(x, {"auto_contrast": 1.0, **reused}), atol=0, rtol=0)
    assert len(filtered_batch(x, [full], reused)) == 1


def test_a_chain_of_per_channel_steps_is_told_without_evaluating_it():
    from lib_enhancer.filters.pipeline import is_per_channel

    assert is_per_channel({"auto_contrast": 1.0, "exposure": 0.3, "gamma_g": 0.2}, ("pre", "global"))
    assert is_per_channel({"exposure": 0.3, "curve_2": 0.4, "gamma": 1.3}, ("global",))
    assert is_per_channel({"exposure": 0.3, "contrast": 0.0}, ("global",))  # neutral: skipped
    assert not is_per_channel({"exposure": 0.3, "contrast": 0.2}, ("global",))
    assert not is_per_channel({"exposure": 0.3, "invert": 0.5}, ("global", "creative"))  # after a clamp
    assert is_per_channel({"exposure": 0.3, "detail": 0.5}, ("global",))  # a stage that does not run
