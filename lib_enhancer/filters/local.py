"""Local (spatial) filters: dehaze, fast local Laplacian detail/tone, sharpening.

Same conventions as :mod:`lib_enhancer.filters.color`: ``(*, 3, H, W)`` float sRGB, parameters as
floats or ``(B,)`` tensors, no in-place changes, identity at the neutral value, differentiable in
image and parameters. **Resolution independence**: every spatial size (patch, radius, pyramid
depth) is a fraction of the image size, so the same recipe gives the same look on a 384 px preview
and a 6000 px original.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lib_enhancer.filters.color import ParamLike, as_param, check_image, luminance

Tensor = torch.Tensor

# Spatial sizes as fractions of the short image side.
DEHAZE_PATCH_FRACTION = 1.0 / 40.0  # He et al.'s 15 px patch on a ~600 px image
DEHAZE_GUIDE_FRACTION = 1.0 / 20.0  # guided-filter radius refining the transmission
SHARPEN_SIGMA_FRACTION = 1.0 / 600.0  # unsharp-mask sigma (≈1 px on a 600 px image)
LLF_COARSEST_SIDE = 4  # local Laplacian pyramid stops when the short side would drop below this

DEHAZE_OMEGA = 0.95
DEHAZE_T_MIN = 0.1
LLF_LEVELS = 8  # intensity levels of the fast local Laplacian filter
LLF_SIGMA = 0.15  # detail/edge threshold sigma_r on [0, 1] luminance


def _flatten_batch(image: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    lead = tuple(image.shape[:-3])
    return image.reshape(-1, *image.shape[-3:]), lead


def _unflatten_batch(image: Tensor, lead: tuple[int, ...]) -> Tensor:
    return image.reshape(*lead, *image.shape[-3:])


def _batch_param(value: ParamLike, image4: Tensor) -> Tensor:
    """Parameter as ``(N, 1, 1, 1)`` or 0-d for a flattened ``(N, C, H, W)`` image."""
    p = as_param(value, image4)
    return p.reshape(-1, 1, 1, 1) if p.dim() > 0 else p


def scaled_radius(height: int, width: int, fraction: float, minimum: int = 1) -> int:
    """A radius in pixels as a fraction of the short image side (at least ``minimum``)."""
    return max(minimum, round(fraction * min(height, width)))


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over a ``(2r+1)²`` window via cumulative sums, normalised at the borders.

    O(1) per pixel for any radius; differentiable. Shape ``(N, C, H, W)``.
    """
    if radius <= 0:
        return x
    return _box_1d(_box_1d(x, radius, -2), radius, -1)


def _box_1d(x: Tensor, r: int, dim: int) -> Tensor:
    n = x.shape[dim]
    c = torch.cumsum(x, dim=dim)
    c = torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), c], dim=dim)
    idx = torch.arange(n, device=x.device)
    hi = (idx + r + 1).clamp(max=n)
    lo = (idx - r).clamp(min=0)
    total = c.index_select(dim, hi) - c.index_select(dim, lo)
    count = (hi - lo).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = n
    return total / count.view(shape)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """He et al.'s guided filter (grey guide ``(N,1,H,W)``, source ``(N,C,H,W)``)."""
    mean_i = box_filter(guide, radius)
    mean_p = box_filter(src, radius)
    cov_ip = box_filter(guide * src, radius) - mean_i * mean_p
    var_i = box_filter(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, radius) * guide + box_filter(b, radius)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding, ``(N, C, H, W)``."""
    if sigma <= 0:
        return x
    half = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad_h = min(half, x.shape[-2] - 1)
    pad_w = min(half, x.shape[-1] - 1)
    kh = k[half - pad_h : half + pad_h + 1]
    kw = k[half - pad_w : half + pad_w + 1]
    kh = kh / kh.sum()
    kw = kw / kw.sum()
    y = F.pad(x, (0, 0, pad_h, pad_h), mode="reflect") if pad_h > 0 else x
    y = F.conv2d(y, kh.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    y = F.pad(y, (pad_w, pad_w, 0, 0), mode="reflect") if pad_w > 0 else y
    return F.conv2d(y, kw.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


# ---------------------------------------------------------------------------------------------
# Dehaze
# ---------------------------------------------------------------------------------------------


def dark_channel(image: Tensor, patch: int) -> Tensor:
    """Min over colour, then min over a ``patch × patch`` window, ``(N, 1, H, W)``."""
    m = image.amin(dim=-3, keepdim=True)
    k = patch if patch % 2 == 1 else patch + 1
    return -F.max_pool2d(-m, kernel_size=k, stride=1, padding=k // 2)


def estimate_airlight(image: Tensor, dark: Tensor, top_fraction: float = 0.001) -> Tensor:
    """Mean colour of the pixels with the brightest ``top_fraction`` dark channel, ``(N, 3, 1, 1)``."""
    n, c, h, w = image.shape
    k = max(1, round(top_fraction * h * w))
    idx = dark.reshape(n, -1).topk(k, dim=1).indices
    pixels = image.reshape(n, c, -1).gather(2, idx.unsqueeze(1).expand(n, c, k))
    return pixels.mean(dim=2).view(n, c, 1, 1).clamp_min(0.05)


def transmission(image: Tensor) -> tuple[Tensor, Tensor]:
    """Refined dark-channel-prior transmission ``t`` (``(N,1,H,W)``) and airlight ``A`` (``(N,3,1,1)``).

    ``t`` is also a rough relative depth proxy: depth ∝ -ln t where there is haze.
    """
    h, w = image.shape[-2:]
    patch = scaled_radius(h, w, DEHAZE_PATCH_FRACTION, minimum=3)
    dark = dark_channel(image, patch)
    airlight = estimate_airlight(image, dark)
    t_raw = 1.0 - DEHAZE_OMEGA * dark_channel(image / airlight, patch)
    guide = luminance(image)
    radius = scaled_radius(h, w, DEHAZE_GUIDE_FRACTION, minimum=1)
    t = guided_filter(guide, t_raw, radius, eps=1e-3)
    return t.clamp(0.0, 1.0), airlight


def dehaze(image: Tensor, strength: ParamLike, haze: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Dark-channel-prior dehazing (He et al.) with a guided-filter transmission and a strength.

    ``t_s = 1 - |s| (1 - t)``. For ``s > 0`` the haze model is inverted,
    ``J = (I - A) / max(t_s, 0.1) + A``; for ``s < 0`` haze is added, ``J = (I - A) t_s + A``;
    ``s = 0`` returns the input exactly. Differentiable in image (a.e.) and strength.
    ``haze`` is a precomputed ``transmission(image)`` (the optimizer reuses it across steps).
    """
    check_image(image)
    x, lead = _flatten_batch(image)
    s = _batch_param(strength, x)
    t, airlight = haze if haze is not None else transmission(x)
    t_s = 1.0 - s.abs() * (1.0 - t)
    removed = (x - airlight) / t_s.clamp_min(DEHAZE_T_MIN) + airlight
    added = (x - airlight) * t_s + airlight
    out = torch.where(s >= 0, removed, added)
    return _unflatten_batch(out, lead)


# ---------------------------------------------------------------------------------------------
# Fast local Laplacian filter (Aubry et al. 2014), differentiable in alpha/beta
# ---------------------------------------------------------------------------------------------


def _pyr_down(x: Tensor) -> Tensor:
    return F.avg_pool2d(gaussian_blur(x, 1.0), kernel_size=2, stride=2, ceil_mode=True)


def _pyr_up(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def pyramid_depth(height: int, width: int) -> int:
    """Number of Laplacian levels so the coarsest level's short side is about ``LLF_COARSEST_SIDE``."""
    short = min(height, width)
    if short < 4:
        return 1
    return max(2, math.floor(math.log2(short / LLF_COARSEST_SIDE)) + 1)


def _gaussian_pyramid(x: Tensor, depth: int) -> list[Tensor]:
    levels = [x]
    for _ in range(depth - 1):
        levels.append(_pyr_down(levels[-1]))
    return levels


def _laplacian_pyramid(x: Tensor, depth: int) -> list[Tensor]:
    gauss = _gaussian_pyramid(x, depth)
    lap = [g - _pyr_up(gauss[i + 1], g.shape[-2:]) for i, g in enumerate(gauss[:-1])]
    lap.append(gauss[-1])
    return lap


def _collapse(lap: list[Tensor]) -> Tensor:
    out = lap[-1]
    for level in reversed(lap[:-1]):
        out = level + _pyr_up(out, level.shape[-2:])
    return out


def llf_remap(
    gray: Tensor, reference: Tensor, alpha: Tensor, beta: Tensor, sigma: float = LLF_SIGMA
) -> Tensor:
    """Smooth LLF remapping around ``reference``: ``g + β d + α d exp(-d² / 2σ²)``, ``d = gray - g``.

    ``α = 0, β = 1`` is the identity; ``α > 0`` boosts small-amplitude detail, ``α < 0`` smooths it;
    ``β < 1`` compresses large-scale range, ``β > 1`` expands it (Halide's smooth detail term).
    """
    d = gray - reference
    return reference + beta * d + alpha * d * torch.exp(-0.5 * (d / sigma) ** 2)


def local_laplacian(image: Tensor, detail: ParamLike, tone: ParamLike, levels: int = LLF_LEVELS) -> Tensor:
    """Fast local Laplacian filter on luminance, colour restored by the luminance ratio.

    ``levels`` intensity references (hat-weight interpolation, fully vectorised); pyramid depth from
    the image size (resolution independent). ``detail`` is α, ``tone`` is β - 1; both zero returns the
    input exactly. Differentiable in image, detail and tone.

    Args:
        image: ``(*, 3, H, W)``.
        detail: α in [-1, 1].
        tone: β - 1 in [-0.5, 0.5].
        levels: number of intensity levels K.
    """
    check_image(image)
    x, lead = _flatten_batch(image)
    alpha = _batch_param(detail, x)
    beta = 1.0 + _batch_param(tone, x)
    gray = luminance(x)  # (N,1,H,W)
    depth = pyramid_depth(*gray.shape[-2:])
    refs = torch.linspace(0.0, 1.0, levels, device=x.device, dtype=x.dtype).view(1, levels, 1, 1)
    g = gray.clamp(0.0, 1.0)
    remapped = llf_remap(g, refs, alpha, beta)  # (N,K,H,W)
    lap_remapped = _laplacian_pyramid(remapped, depth)
    gauss_input = _gaussian_pyramid(g, depth)
    out_lap = []
    for level in range(depth - 1):
        pos = gauss_input[level] * (levels - 1)  # (N,1,h,w)
        weights = torch.relu(
            1.0 - (pos - torch.arange(levels, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)).abs()
        )
        out_lap.append((weights * lap_remapped[level]).sum(dim=1, keepdim=True))
    out_lap.append(gauss_input[-1])
    new_gray = _collapse(out_lap) + (gray - g)  # keep any out-of-range part of the input untouched
    ratio = (new_gray + 0.02) / (gray + 0.02)
    return _unflatten_batch(x * ratio, lead)


# ---------------------------------------------------------------------------------------------
# Sharpening
# ---------------------------------------------------------------------------------------------


def sharpen(image: Tensor, amount: ParamLike) -> Tensor:
    """Unsharp mask on luminance, ``L + 1.5 a (L - blur(L))``, sigma relative to the image size."""
    check_image(image)
    x, lead = _flatten_batch(image)
    a = _batch_param(amount, x)
    gray = luminance(x)
    sigma = max(0.5, SHARPEN_SIGMA_FRACTION * min(x.shape[-2:]))
    high = gray - gaussian_blur(gray, sigma)
    return _unflatten_batch(x + 1.5 * a * high, lead)
