"""Full-reference image quality metrics in plain numpy: PSNR, SSIM, CIE Lab and CIEDE2000.

Images are float arrays of sRGB values in ``[0, 1]`` shaped ``(..., H, W, 3)`` (or ``(H, W)`` for a
single channel) unless a function says otherwise; ``uint8`` arrays are accepted wherever an RGB image
is and are divided by 255. Everything is computed in float64.

Conventions
-----------
* :func:`ssim` follows Wang et al. (2004): an 11-tap Gaussian window with ``sigma = 1.5``,
  ``K1 = 0.01``, ``K2 = 0.03``, population (not sample) covariance. For colour images SSIM is
  computed **on each RGB channel separately and averaged** (not on luminance), and the mean skips a
  5-pixel border (the window radius), so the result matches
  ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, channel_axis=-1, data_range=1)``.
* :func:`rgb_to_lab` uses the IEC 61966-2-1 sRGB transfer curve, the sRGB primaries with a D65
  white point and the CIE 1976 ``L*a*b*`` formulas (reference white ``Y = 1``).
* :func:`ciede2000` implements Sharma, Wu & Dalal (2005) with ``kL = kC = kH = 1``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ciede2000",
    "lab_to_xyz",
    "linear_to_srgb",
    "mean_delta_e00",
    "psnr",
    "rgb_to_lab",
    "rgb_to_xyz",
    "srgb_to_linear",
    "ssim",
    "ssim_map",
]

# sRGB (linear) -> CIE XYZ, D65, IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
#: D65 reference white in XYZ (Y = 1), the row sums of the matrix above.
D65_WHITE = _RGB_TO_XYZ.sum(axis=1)

_EPS = 216.0 / 24389.0  # (6/29)^3
_KAPPA = 24389.0 / 27.0  # (29/3)^3


def _as_float(x: np.ndarray) -> np.ndarray:
    """uint8 -> [0, 1] float64; other arrays -> float64 unchanged in value."""
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64, copy=False)


# ---------------------------------------------------------------------------------------------
# colour spaces
# ---------------------------------------------------------------------------------------------


def _decode(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


_UINT8_TO_LINEAR = _decode(np.arange(256, dtype=np.float64) / 255.0)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] (or uint8) -> linear light (IEC 61966-2-1 piecewise curve)."""
    arr = np.asarray(x)
    if arr.dtype == np.uint8:  # exact same values through a 256-entry table, much faster
        return _UINT8_TO_LINEAR[arr]
    return _decode(arr.astype(np.float64, copy=False))


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values (inverse of :func:`srgb_to_linear`)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0.0031308) ** (1.0 / 2.4) - 0.055)


def rgb_to_xyz(rgb01: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (last axis = channels) -> CIE XYZ (D65, Y of white = 1)."""
    return srgb_to_linear(rgb01) @ _RGB_TO_XYZ.T


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _EPS, np.cbrt(t), (_KAPPA * t + 16.0) / 116.0)


def rgb_to_lab(rgb01: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], shape ``(..., 3)`` -> CIE ``L*a*b*`` (D65), shape ``(..., 3)``.

    White maps to ``(100, 0, 0)``; pure sRGB red to about ``(53.24, 80.09, 67.20)``.
    """
    xyz = rgb_to_xyz(rgb01) / D65_WHITE
    fx, fy, fz = _f(xyz[..., 0]), _f(xyz[..., 1]), _f(xyz[..., 2])
    lab = np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)
    return lab


def lab_to_xyz(lab: np.ndarray) -> np.ndarray:
    """CIE ``L*a*b*`` (D65) -> XYZ (Y of white = 1); inverse of the Lab step of :func:`rgb_to_lab`."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0

    def finv(f: np.ndarray) -> np.ndarray:
        return np.where(f**3 > _EPS, f**3, (116.0 * f - 16.0) / _KAPPA)

    y = np.where(lab[..., 0] > _KAPPA * _EPS, fy**3, lab[..., 0] / _KAPPA)
    return np.stack([finv(fx), y, finv(fz)], axis=-1) * D65_WHITE


# ---------------------------------------------------------------------------------------------
# PSNR
# ---------------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all elements; ``inf`` for identical inputs.

    ``uint8`` inputs are scaled to [0, 1] first, so keep ``data_range=1`` for them.
    """
    a, b = _as_float(a), _as_float(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)  # 5 -> 11 taps, as scipy.ndimage / skimage
_K1, _K2 = 0.01, 0.03


def _gaussian_taps(sigma: float = _SSIM_SIGMA, radius: int = _SSIM_RADIUS) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _filter_axis(x: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """Correlate along ``axis`` with a symmetric odd-length kernel.

    Boundaries use symmetric reflection (``d c b a | a b c d``), which is what
    ``scipy.ndimage`` calls mode ``"reflect"``.
    """
    r = (len(taps) - 1) // 2
    n = x.shape[axis]
    # np.pad 'symmetric' reflects at most the array's own size at a time; repeat for tiny inputs.
    xp = x
    remaining = r
    while remaining > 0:
        step = min(remaining, xp.shape[axis])
        widths = [(0, 0)] * x.ndim
        widths[axis] = (step, step)
        xp = np.pad(xp, widths, mode="symmetric")
        remaining -= step

    def shifted(k: int) -> np.ndarray:
        sl = [slice(None)] * x.ndim
        sl[axis] = slice(k, k + n)
        return xp[tuple(sl)]

    out = taps[r] * shifted(r)
    tmp = np.empty_like(out)
    for k in range(r):  # the kernel is symmetric: pair tap k with tap 2r - k
        np.add(shifted(k), shifted(2 * r - k), out=tmp)
        tmp *= taps[k]
        out += tmp
    return out


def _gauss2d(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur over the last two axes."""
    taps = _gaussian_taps()
    return _filter_axis(_filter_axis(x, taps, x.ndim - 2), taps, x.ndim - 1)


def _prepare_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_float(a), _as_float(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.ndim < 2:
        raise ValueError("expected an (H, W) or (..., H, W, C) image")
    return a, b


def ssim_map(
    a: np.ndarray, b: np.ndarray, data_range: float = 1.0, channel_axis: int | None = -1
) -> np.ndarray:
    """Per-pixel SSIM map, same shape as the inputs (one map per channel).

    ``channel_axis=-1`` (default) treats the last axis as channels (each filtered independently);
    ``channel_axis=None`` treats the input as single-channel ``(..., H, W)``. Borders use
    symmetric reflection, like ``scipy.ndimage.gaussian_filter(mode="reflect")``.
    """
    a, b = _prepare_pair(a, b)
    if channel_axis is not None:
        a = np.moveaxis(a, channel_axis, 0)
        b = np.moveaxis(b, channel_axis, 0)
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    ux, uy, uxx, uyy, uxy = _gauss2d(np.stack([a, b, a * a, b * b, a * b]))
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    if channel_axis is not None:
        s = np.moveaxis(s, 0, channel_axis)
    return s


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, channel_axis: int | None = -1) -> float:
    """Mean SSIM (Wang et al. 2004), per channel then averaged; skips a 5-pixel border like skimage.

    For ``(H, W)`` input pass ``channel_axis=None``; a 2-D array with the default is also treated as
    single-channel.
    """
    a, b = _prepare_pair(a, b)
    if a.ndim == 2:
        channel_axis = None
    s = ssim_map(a, b, data_range=data_range, channel_axis=channel_axis)
    if channel_axis is not None:
        s = np.moveaxis(s, channel_axis, 0)
    r = _SSIM_RADIUS
    h, w = s.shape[-2], s.shape[-1]
    if h > 2 * r and w > 2 * r:
        s = s[..., r : h - r, r : w - r]
    return float(s.mean())


# ---------------------------------------------------------------------------------------------
# CIEDE2000
# ---------------------------------------------------------------------------------------------


def ciede2000(
    lab1: np.ndarray, lab2: np.ndarray, kL: float = 1.0, kC: float = 1.0, kH: float = 1.0
) -> np.ndarray:
    """CIEDE2000 colour difference ΔE00 between Lab arrays ``(..., 3)`` (broadcasting), vectorised.

    Follows Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula: implementation notes,
    supplementary test data, and mathematical observations" (2005), including their hue conventions
    for achromatic colours and the mean-hue rule for hues more than 180° apart.
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]

    c1 = np.hypot(a1, b1)
    c2 = np.hypot(a2, b2)
    cbar7 = ((c1 + c2) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(cbar7 / (cbar7 + 25.0**7)))
    a1p = (1.0 + g) * a1
    a2p = (1.0 + g) * a2
    c1p = np.hypot(a1p, b1)
    c2p = np.hypot(a2p, b2)
    # atan2(0, 0) == 0 already gives Sharma's h' = 0 for achromatic colours.
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0

    dLp = L2 - L1
    dCp = c2p - c1p
    cprod = c1p * c2p
    chromatic = cprod != 0.0
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(chromatic, dh, 0.0)
    dHp = 2.0 * np.sqrt(cprod) * np.sin(np.radians(dh) / 2.0)

    Lbar = (L1 + L2) / 2.0
    Cbar = (c1p + c2p) / 2.0
    hsum = h1p + h2p
    hbar = np.where(
        np.abs(h1p - h2p) <= 180.0,
        hsum / 2.0,
        np.where(hsum < 360.0, (hsum + 360.0) / 2.0, (hsum - 360.0) / 2.0),
    )
    hbar = np.where(chromatic, hbar, hsum)

    t = (
        1.0
        - 0.17 * np.cos(np.radians(hbar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * hbar))
        + 0.32 * np.cos(np.radians(3.0 * hbar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * hbar - 63.0))
    )
    dtheta = 30.0 * np.exp(-(((hbar - 275.0) / 25.0) ** 2))
    cbar7p = Cbar**7
    rc = 2.0 * np.sqrt(cbar7p / (cbar7p + 25.0**7))
    lb = (Lbar - 50.0) ** 2
    sl = 1.0 + 0.015 * lb / np.sqrt(20.0 + lb)
    sc = 1.0 + 0.045 * Cbar
    sh = 1.0 + 0.015 * Cbar * t
    rt = -np.sin(np.radians(2.0 * dtheta)) * rc

    tl = dLp / (kL * sl)
    tc = dCp / (kC * sc)
    th = dHp / (kH * sh)
    return np.sqrt(np.maximum(tl**2 + tc**2 + th**2 + rt * tc * th, 0.0))


def mean_delta_e00(rgb_a: np.ndarray, rgb_b: np.ndarray) -> float:
    """Mean CIEDE2000 difference between two sRGB images (float [0, 1] or uint8), per pixel."""
    a, b = _prepare_pair(rgb_a, rgb_b)
    if a.shape[-1] != 3:
        raise ValueError("expected RGB images with 3 channels on the last axis")
    return float(ciede2000(rgb_to_lab(a), rgb_to_lab(b)).mean())
