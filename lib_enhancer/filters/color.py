"""Global (per-pixel) colour and tone filters, kornia style.

Every function takes ``image`` of shape ``(*, 3, H, W)``: float sRGB values, nominally in [0, 1],
and one or more parameters given as a Python float or a tensor of shape ``(B,)`` (one value per
image of a batch ``(B, 3, H, W)``) or any shape broadcastable to ``image[..., :1, :1, :1]``.
The image is never modified in place; constants follow the image's device and dtype; nothing
clamps the output (the pipeline clamps once at the end), so gradients stay alive. At the neutral
value (see :mod:`lib_enhancer.params`) each filter returns its input exactly. Every function is
differentiable with respect to the image and its parameters (piecewise for the tone curve).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor
ParamLike = float | Tensor

# Rec. 709 / sRGB luma weights.
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)


def check_image(image: Tensor) -> None:
    """Raise a clear error unless ``image`` is a floating ``(*, 3, H, W)`` tensor."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"image must have shape (*, 3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a floating point tensor, got {image.dtype}")


def as_param(value: ParamLike, image: Tensor) -> Tensor:
    """A parameter as a tensor broadcastable against ``image`` ``(*, 3, H, W)``.

    Floats become 0-d tensors; a ``(B,)`` tensor becomes ``(B, 1, 1, 1)`` to match a batch.
    """
    if not isinstance(value, torch.Tensor):
        return torch.as_tensor(float(value), device=image.device, dtype=image.dtype)
    value = value.to(device=image.device, dtype=image.dtype)
    if value.dim() == 1 and image.dim() >= 4:
        if value.shape[0] not in (1, image.shape[-4]):
            raise ValueError(f"parameter has {value.shape[0]} values for a batch of {image.shape[-4]} images")
        return value.view(-1, 1, 1, 1)
    return value


def luminance(image: Tensor) -> Tensor:
    """Rec. 709 luma of gamma-encoded RGB, shape ``(*, 1, H, W)``."""
    r, g, b = image.unbind(-3)
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    return y.unsqueeze(-3)


def srgb_to_linear(image: Tensor) -> Tensor:
    """sRGB transfer function inverse (IEC 61966-2-1), extended to x > 1 by the power law."""
    x = image.clamp_min(0.0)
    low = x / 12.92
    high = ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(x <= 0.04045, low, high)


def linear_to_srgb(image: Tensor) -> Tensor:
    """sRGB transfer function (IEC 61966-2-1), extended to x > 1 by the power law."""
    x = image.clamp_min(0.0)
    low = x * 12.92
    high = 1.055 * x.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055
    return torch.where(x <= 0.0031308, low, high)


def white_balance_gains(temperature: ParamLike, tint: ParamLike, image: Tensor) -> Tensor:
    """Per-channel linear-light gains of :func:`white_balance`, ``(3, 1, 1)`` or ``(B, 3, 1, 1)``.

    log2 gains are ``R: +0.3 t + 0.15 m``, ``G: -0.3 m``, ``B: -0.3 t + 0.15 m``, normalised to unit
    luminance (Exposure's ImprovedWhiteBalance idea).
    """
    t = as_param(temperature, image)
    m = as_param(tint, image)
    gains = _channel_stack(
        torch.exp2(0.3 * t + 0.15 * m), torch.exp2(-0.3 * m + 0.0 * t), torch.exp2(-0.3 * t + 0.15 * m)
    )
    gr, gg, gb = gains.unbind(-3)
    norm = LUMA_WEIGHTS[0] * gr + LUMA_WEIGHTS[1] * gg + LUMA_WEIGHTS[2] * gb
    return gains / norm.unsqueeze(-3)


def _channel_stack(r: Tensor, g: Tensor, b: Tensor) -> Tensor:
    """Stack per-channel factors (0-d or ``(B, 1, 1, 1)``) into a ``(3, 1, 1)`` or ``(B, 3, 1, 1)`` tensor."""
    r, g, b = torch.broadcast_tensors(r, g, b)
    if r.dim() == 0:
        return torch.stack((r, g, b)).view(3, 1, 1)
    return torch.cat((r, g, b), dim=-3)


def white_balance(image: Tensor, temperature: ParamLike, tint: ParamLike) -> Tensor:
    """Luminance-preserving white balance in linear light (temperature and tint in [-1, 1])."""
    check_image(image)
    return linear_light(image, temperature, tint, 0.0)


def exposure(image: Tensor, ev: ParamLike) -> Tensor:
    """Multiply linear light by ``2**ev`` (EV stops). Differentiable in image and ev."""
    check_image(image)
    return linear_light(image, 0.0, 0.0, ev)


def linear_light(image: Tensor, temperature: ParamLike, tint: ParamLike, ev: ParamLike) -> Tensor:
    """White balance and exposure together, in one trip through linear light."""
    check_image(image)
    gains = white_balance_gains(temperature, tint, image) * torch.exp2(as_param(ev, image))
    return linear_to_srgb(srgb_to_linear(image) * gains)


def levels(image: Tensor, blacks: ParamLike, whites: ParamLike) -> Tensor:
    """Black and white point: ``(x - blacks) / (1 - whites - blacks)`` per channel."""
    check_image(image)
    b = as_param(blacks, image)
    w = as_param(whites, image)
    return (image - b) / (1.0 - w - b)


def channel_levels(
    image: Tensor,
    blacks: Sequence[ParamLike],
    whites: Sequence[ParamLike],
) -> Tensor:
    """Per-channel black and white points (per-channel levels; autocontrast's degrees of freedom).

    Channel ``c`` becomes ``(x_c - b_c) / (1 - w_c - b_c)``: :func:`levels` with a point per channel.
    In the pipeline it runs right after :func:`levels`, so its points are offsets on top of the
    global ``blacks`` / ``whites`` (all zeros is the identity). Nothing is clamped.

    Args:
        image: ``(*, 3, H, W)`` sRGB, nominally in [0, 1]. Differentiable.
        blacks: ``(b_r, b_g, b_b)``, each a float or a ``(B,)`` tensor; positive deepens the
            channel's shadows, negative lifts them. Differentiable.
        whites: ``(w_r, w_g, w_b)``, same forms; positive brightens the channel's highlights,
            negative dims them. Differentiable. ``b_c + w_c`` must stay below 1.

    Returns:
        The image with each channel's levels set, shape of ``image``.

    Shape:
        ``(*, 3, H, W)`` -> ``(*, 3, H, W)``; ``(B,)`` parameters need ``image`` ``(B, 3, H, W)``.
    """
    check_image(image)
    if len(blacks) != 3 or len(whites) != 3:
        raise ValueError(f"channel_levels needs 3 blacks and 3 whites, got {len(blacks)} and {len(whites)}")
    b = _channel_stack(*(as_param(v, image) for v in blacks))
    w = _channel_stack(*(as_param(v, image) for v in whites))
    return (image - b) / (1.0 - w - b)


def brightness(image: Tensor, amount: ParamLike) -> Tensor:
    """Midtone brightness ``x + 0.5 a x (1 - x)`` (monotone for ``|a| <= 1``; 0 and 1 fixed)."""
    check_image(image)
    a = as_param(amount, image)
    return image + 0.5 * a * image * (1.0 - image)


def contrast(image: Tensor, amount: ParamLike) -> Tensor:
    """Exposure's contrast: lerp towards an S-curve ``½ - ½cos(πL)`` on luminance, hue preserving.

    Negative amounts extrapolate the other way (flatter). Gradient w.r.t. the image is cut where
    luminance leaves [0, 1].
    """
    check_image(image)
    p = as_param(amount, image)
    lum = luminance(image).clamp(0.0, 1.0)
    curved = 0.5 - 0.5 * torch.cos(torch.pi * lum)
    ratio = curved / (lum + 1e-6)
    return image + p * (image * ratio - image)


def shadows(image: Tensor, amount: ParamLike) -> Tensor:
    """Scale RGB by ``1 + a (1 - L)^3``: lifts (+) or deepens (-) the shadows, hue preserving."""
    check_image(image)
    a = as_param(amount, image)
    lum = luminance(image).clamp(0.0, 1.0)
    return image * (1.0 + a * (1.0 - lum) ** 3)


def highlights(image: Tensor, amount: ParamLike) -> Tensor:
    """Scale RGB by ``1 + a L² (1 - L)``: brightens (+) or recovers (-) highlights, hue preserving."""
    check_image(image)
    a = as_param(amount, image)
    lum = luminance(image).clamp(0.0, 1.0)
    return image * (1.0 + a * lum**2 * (1.0 - lum))


def tone_curve(image: Tensor, slopes: list[ParamLike] | tuple[ParamLike, ...]) -> Tensor:
    """Monotone piecewise-linear tone curve per channel (Exposure's curve, ends fixed).

    Args:
        image: ``(*, 3, H, W)``.
        slopes: ``n`` log2 slopes of ``n`` equal segments of [0, 1]; all zeros is the identity.
            The curve is normalised so that 0 -> 0 and 1 -> 1; beyond 1 it continues with the last
            slope. Differentiable (piecewise) in image and slopes.
    """
    check_image(image)
    n = len(slopes)
    if n < 1:
        raise ValueError("tone_curve needs at least one slope")
    s = [torch.exp2(as_param(v, image)) for v in slopes]
    total = sum(s) / n
    out = torch.zeros_like(image)
    for i, si in enumerate(s):
        lo = i / n
        seg = image - lo
        seg = seg.clamp_min(0.0) if i == n - 1 else seg.clamp(0.0, 1.0 / n)
        out = out + seg * si
    return out / total


GAMMA_TOE = 1.0 / 64.0  # below this, gamma continues as a straight line (finite slope, LUT-exact)


def gamma(image: Tensor, value: ParamLike) -> Tensor:
    """Gamma correction ``x^(1/gamma)`` with a linear toe below ``GAMMA_TOE``.

    The toe (as in the sRGB curve) keeps the slope finite near black, so the gradient stays finite
    and a 65-point LUT reproduces the curve to within 1/255. ``gamma = 1`` is the identity.
    """
    check_image(image)
    inv = 1.0 / as_param(value, image)
    above = image >= GAMMA_TOE
    safe = torch.where(above, image, torch.ones_like(image))
    return torch.where(above, safe**inv, image * GAMMA_TOE ** (inv - 1.0))


def channel_gamma(image: Tensor, values: Sequence[ParamLike]) -> Tensor:
    """Per-channel gamma: channel ``c`` becomes ``x_c^(2^-g_c)``, with :func:`gamma`'s linear toe.

    ``g_c`` is the log2 of the channel's gamma (``gamma = 2^g_c``), so the parametrisation is
    symmetric (``+g`` and ``-g`` are inverse exponents) and well conditioned around the neutral 0, which
    is the identity exactly. Below ``GAMMA_TOE`` the curve continues as the straight line
    ``x T^(e - 1)`` (``e = 2^-g_c``, continuous at ``T``), so the slope and the gradients stay finite
    near black and for negative inputs; nothing is clamped. In the pipeline it runs right after
    :func:`channel_levels`: a non-linear tone per channel (the smooth part of a per-channel equalisation).

    Args:
        image: ``(*, 3, H, W)`` sRGB, nominally in [0, 1]. Differentiable.
        values: ``(g_r, g_g, g_b)``, each a float or a ``(B,)`` tensor; positive brightens the
            channel's midtones, negative darkens them (0 and 1 stay fixed). Differentiable.

    Returns:
        The image with each channel's gamma applied, shape of ``image``.

    Shape:
        ``(*, 3, H, W)`` -> ``(*, 3, H, W)``; ``(B,)`` parameters need ``image`` ``(B, 3, H, W)``.
    """
    check_image(image)
    if len(values) != 3:
        raise ValueError(f"channel_gamma needs 3 values, got {len(values)}")
    e = torch.exp2(-_channel_stack(*(as_param(v, image) for v in values)))
    above = image >= GAMMA_TOE
    safe = torch.where(above, image, torch.ones_like(image))
    return torch.where(above, safe**e, image * GAMMA_TOE ** (e - 1.0))


def saturation(image: Tensor, amount: ParamLike) -> Tensor:
    """Scale chroma about luminance by ``1 + amount`` (-1 gives black and white)."""
    check_image(image)
    a = as_param(amount, image)
    lum = luminance(image)
    return lum + (1.0 + a) * (image - lum)


def vibrance(image: Tensor, amount: ParamLike) -> Tensor:
    """Saturation weighted by dullness: scale chroma by ``1 + a (1 - C)``, C = max(RGB) - min(RGB)."""
    check_image(image)
    a = as_param(amount, image)
    lum = luminance(image)
    chroma = (image.amax(dim=-3, keepdim=True) - image.amin(dim=-3, keepdim=True)).clamp(0.0, 1.0)
    return lum + (1.0 + a * (1.0 - chroma)) * (image - lum)
