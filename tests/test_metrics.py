"""Tests for lib_enhancer.metrics: CIEDE2000 (Sharma et al. 2005 data), Lab, PSNR, SSIM vs skimage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lib_enhancer.metrics import (
    ciede2000,
    lab_to_xyz,
    linear_to_srgb,
    mean_delta_e00,
    psnr,
    rgb_to_lab,
    rgb_to_xyz,
    srgb_to_linear,
    ssim,
    ssim_map,
)

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Table 1: L1 a1 b1 L2 a2 b2 ΔE00.
SHARMA_2005 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


def _real_photo() -> np.ndarray:
    """A real photograph if scikit-image's data is available, else a smooth synthetic image."""
    try:
        from skimage import data

        img = data.astronaut()[::4, ::4]  # 128 x 128
        return img.astype(np.float64) / 255.0
    except Exception:  # pragma: no cover - skimage absent
        y, x = np.mgrid[0:96, 0:128] / 128.0
        return np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x * y)], axis=-1)


# ------------------------------------------------------------------------------------ CIEDE2000


def test_ciede2000_sharma_table_all_34_pairs():
    data = np.array(SHARMA_2005)
    assert data.shape == (34, 7)
    de = ciede2000(data[:, 0:3], data[:, 3:6])
    np.testing.assert_allclose(de, data[:, 6], atol=1e-4, rtol=0)


@pytest.mark.parametrize("row", SHARMA_2005, ids=[f"pair{i + 1}" for i in range(34)])
def test_ciede2000_sharma_pairs_scalar_and_symmetric(row):
    lab1, lab2, expected = np.array(row[0:3]), np.array(row[3:6]), row[6]
    assert float(ciede2000(lab1, lab2)) == pytest.approx(expected, abs=1e-4)
    assert float(ciede2000(lab2, lab1)) == pytest.approx(expected, abs=1e-4)


def test_ciede2000_identity_and_broadcast():
    lab = rgb_to_lab(np.random.default_rng(0).random((4, 5, 3)))
    np.testing.assert_array_equal(ciede2000(lab, lab), np.zeros((4, 5)))
    ref = np.array([50.0, 0.0, 0.0])
    out = ciede2000(lab, ref)
    assert out.shape == (4, 5)
    assert np.all(out > 0)


def test_ciede2000_matches_skimage_on_random_colours():
    color = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(1)
    lab1 = rgb_to_lab(rng.random((500, 3)))
    lab2 = rgb_to_lab(rng.random((500, 3)))
    np.testing.assert_allclose(ciede2000(lab1, lab2), color.deltaE_ciede2000(lab1, lab2), atol=1e-8)


# ------------------------------------------------------------------------------------ colour spaces


def test_lab_of_known_colours():
    np.testing.assert_allclose(rgb_to_lab(np.array([1.0, 1.0, 1.0])), [100.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(rgb_to_lab(np.array([0.0, 0.0, 0.0])), [0.0, 0.0, 0.0], atol=1e-8)
    np.testing.assert_allclose(rgb_to_lab(np.array([1.0, 0.0, 0.0])), [53.24, 80.09, 67.20], atol=0.01)
    np.testing.assert_allclose(rgb_to_lab(np.array([0.0, 1.0, 0.0])), [87.73, -86.18, 83.18], atol=0.01)
    np.testing.assert_allclose(rgb_to_lab(np.array([0.0, 0.0, 1.0])), [32.30, 79.19, -107.86], atol=0.01)
    grey = rgb_to_lab(np.array([0.5, 0.5, 0.5]))
    assert grey[0] == pytest.approx(53.389, abs=0.01)
    np.testing.assert_allclose(grey[1:], 0.0, atol=1e-4)


def test_lab_matches_skimage():
    color = pytest.importorskip("skimage.color")
    rgb = np.random.default_rng(2).random((16, 16, 3))
    # skimage rounds the D65 white and matrix slightly differently: agree to ~0.005 units
    np.testing.assert_allclose(rgb_to_lab(rgb), color.rgb2lab(rgb), atol=1e-2)


def test_lab_uint8_equals_float():
    img = (np.random.default_rng(3).random((8, 8, 3)) * 255).astype(np.uint8)
    np.testing.assert_allclose(rgb_to_lab(img), rgb_to_lab(img / 255.0))


def test_srgb_linear_roundtrip_and_known_points():
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert float(srgb_to_linear(np.array(0.5))) == pytest.approx(0.21404, abs=1e-5)
    assert float(srgb_to_linear(np.array(1.0))) == pytest.approx(1.0)
    assert float(linear_to_srgb(np.array(0.0))) == 0.0


def test_lab_to_xyz_roundtrip():
    rgb = np.random.default_rng(4).random((50, 3))
    np.testing.assert_allclose(lab_to_xyz(rgb_to_lab(rgb)), rgb_to_xyz(rgb), atol=1e-10)


def test_mean_delta_e00():
    img = np.random.default_rng(5).random((10, 10, 3))
    assert mean_delta_e00(img, img) == 0.0
    shifted = np.clip(img + 0.05, 0, 1)
    de = mean_delta_e00(img, shifted)
    assert 0.5 < de < 10
    assert mean_delta_e00(shifted, img) == pytest.approx(de)


# ------------------------------------------------------------------------------------ PSNR


def test_psnr_known_values():
    a = np.full((8, 8, 3), 0.5)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-9)
    assert psnr(a, a - 0.01) == pytest.approx(40.0, abs=1e-9)
    assert psnr(a * 255, a * 255 + 25.5, data_range=255) == pytest.approx(20.0, abs=1e-9)
    # uint8 inputs are scaled to [0, 1]
    u = np.full((4, 4, 3), 100, np.uint8)
    assert psnr(u, u + np.uint8(1)) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_psnr_shape_mismatch_raises():
    with pytest.raises(ValueError):
        psnr(np.zeros((2, 2)), np.zeros((2, 3)))


# ------------------------------------------------------------------------------------ SSIM


def test_ssim_identical_is_one():
    img = _real_photo()
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(ssim_map(img, img), 1.0, atol=1e-12)


def test_ssim_decreases_with_noise():
    img = _real_photo()
    rng = np.random.default_rng(6)
    s1 = ssim(img, np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1))
    s2 = ssim(img, np.clip(img + rng.normal(0, 0.1, img.shape), 0, 1))
    assert 1.0 > s1 > s2 > 0.0


def _skimage_ssim(a, b, **kw):
    metrics = pytest.importorskip("skimage.metrics")
    return metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, **kw
    )


def test_ssim_matches_skimage_random():
    rng = np.random.default_rng(7)
    a = rng.random((40, 52, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert ssim(a, b) == pytest.approx(_skimage_ssim(a, b, channel_axis=-1), abs=1e-4)


def test_ssim_matches_skimage_real_photo():
    img = _real_photo()
    degraded = np.clip(img * 0.6 + 0.1, 0, 1) ** 1.3
    ours = ssim(img, degraded)
    ref = _skimage_ssim(img, degraded, channel_axis=-1)
    assert ours == pytest.approx(ref, abs=1e-4)
    assert ours < 0.99


def test_ssim_map_matches_skimage_full_map_and_grey():
    rng = np.random.default_rng(8)
    a = rng.random((30, 33))
    b = np.clip(a * 0.8 + rng.normal(0, 0.05, a.shape), 0, 1)
    ref_mean, ref_map = _skimage_ssim(a, b, full=True)
    np.testing.assert_allclose(ssim_map(a, b, channel_axis=None), ref_map, atol=1e-10)
    assert ssim(a, b) == pytest.approx(ref_mean, abs=1e-10)


def test_ssim_uint8_input():
    img = (_real_photo() * 255).round().astype(np.uint8)
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, img // 2) < 0.9
