"""compare A B: maps and statistics on known pairs; the haze (transmission) map; the CLI command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from lib_enhancer import compare, metrics
from lib_enhancer.cli import main


def _img(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    from conftest import synthetic_photo

    return synthetic_photo(h, w, seed)


def test_identical_pair_is_perfect() -> None:
    a = _img()
    c = compare.compare_images(a, a.copy())
    assert math.isinf(c.psnr) and c.ssim == pytest.approx(1.0)
    assert c.delta_e00 == 0.0 and c.delta_e00_p95 == 0.0
    assert c.difference.shape == (40, 56) and c.ssim_map.shape == (40, 56) and c.delta_e_map.shape == (40, 56)
    assert np.allclose(c.ssim_map, 1.0) and c.difference.max() == 0.0
    assert c.below(0.99) == 0.0
    assert "PSNR ∞" in c.summary() and c.stats()["psnr_db"] is None


def test_uniform_offset_has_known_values() -> None:
    a = np.full((32, 32, 3), 100, np.uint8)
    b = np.full((32, 32, 3), 110, np.uint8)
    c = compare.compare_images(a, b)
    assert c.psnr == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    assert np.allclose(c.difference, 10 / 255)
    expected_de = metrics.mean_delta_e00(a, b)
    assert c.delta_e00 == pytest.approx(expected_de) and np.allclose(c.delta_e_map, expected_de)
    assert c.psnr == pytest.approx(metrics.psnr(a, b)) and c.ssim == pytest.approx(metrics.ssim(a, b))


def test_local_damage_shows_where_it_is() -> None:
    a = _img(64, 64)
    b = a.copy()
    rng = np.random.default_rng(1)
    b[40:60, 40:60] = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)  # noise in one corner
    c = compare.compare_images(a, b)
    assert c.ssim_map[45:55, 45:55].mean() < 0.3 < 0.95 < c.ssim_map[5:25, 5:25].mean()
    assert c.difference[45:55, 45:55].mean() > 0.1 and c.difference[:30, :30].max() == 0
    pic, caption = compare.threshold_picture(c, b, 0.9)
    assert pic.shape == (64, 64, 3) and pic.dtype == np.uint8
    assert np.array_equal(pic[10, 10], b[10, 10])  # untouched pixels keep B's colour
    assert pic[50, 50, 0] >= 150 and "% of pixels" in caption
    assert 0.05 < c.below(0.9) < 0.3
    heat, _ = compare.difference_picture(c)
    assert heat.shape == (64, 64, 3) and heat[:30, :30].max() == 0 and heat[45:55, 45:55].max() > 200
    grey, _ = compare.ssim_picture(c)
    assert grey[10, 10].tolist() == [255, 255, 255] and grey[50, 50, 0] < 100


def test_size_mismatch_and_resize_and_max_side() -> None:
    a = _img(60, 80)
    small = np.asarray(Image.fromarray(a).resize((40, 30), Image.LANCZOS))
    with pytest.raises(ValueError, match="differ in size"):
        compare.compare_images(a, small)
    c = compare.compare_images(a, small, resize=True)
    assert c.size == (80, 60) and c.psnr > 20  # a down/up-scaled copy is close
    c2 = compare.compare_images(a, a, max_side=40)
    assert c2.size == (40, 30) and c2.original_size == (80, 60)


def test_haze_map_is_low_where_the_haze_is() -> None:
    """A scene with synthetic haze added on its right half: transmission drops there."""
    rng = np.random.default_rng(0)
    clear = rng.uniform(0.0, 0.6, (48, 96, 3))
    clear[..., 1] *= 0.3  # saturated colours: a low dark channel (the prior holds)
    t_true = np.ones((48, 96, 1))
    t_true[:, 48:] = 0.35
    hazy = clear * t_true + 0.9 * (1 - t_true)
    t = compare.haze_map(hazy, max_side=None)
    assert t.shape == (48, 96) and t.min() >= 0.0 and t.max() <= 1.0
    assert t[:, 60:].mean() < t[:, :36].mean() - 0.3
    depth = compare.depth_proxy(t)
    assert depth[:, 60:].mean() > depth[:, :36].mean()
    pic, caption = compare.haze_picture(t)
    assert pic.shape == (48, 96, 3) and "transmission" in caption


def test_write_comparison_files_and_cli(tmp_path, capsys) -> None:
    from lib_enhancer import Recipe, apply

    a = _img(48, 64)
    b = apply(Recipe({"exposure": 0.5}), a)
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(a).save(pa)
    Image.fromarray(b).save(pb)
    assert main(["compare", str(pa), str(pb), "-o", str(tmp_path / "maps"), "--threshold", "0.95"]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "SSIM" in out and "ΔE00" in out
    for key in compare.MAP_FILES:
        with Image.open(tmp_path / "maps" / f"a_vs_b_{key}.png") as im:
            assert im.size == (64, 48)
    stats = json.loads((tmp_path / "maps" / "a_vs_b_stats.json").read_text())
    assert stats["psnr_db"] == pytest.approx(metrics.psnr(a, b), abs=1e-3)
    assert stats["delta_e00_mean"] > 1 and set(stats["maps"]) == set(compare.MAP_FILES)
    # outputs are not overwritten without --overwrite; different sizes are a usage error
    assert main(["compare", str(pa), str(pb), "-o", str(tmp_path / "maps")]) == 2
    assert "exist" in capsys.readouterr().err
    assert main(["compare", str(pa), str(pb), "-o", str(tmp_path / "maps"), "--overwrite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["ssim"] < 1
    Image.fromarray(a[:20, :20]).save(tmp_path / "c.png")
    assert main(["compare", str(pa), str(tmp_path / "c.png"), "-o", str(tmp_path / "m2")]) == 2
    assert "differ in size" in capsys.readouterr().err


def test_webui_maps_use_the_shared_code() -> None:
    from lib_enhancer import Recipe, apply
    from lib_enhancer.webui import tab_logic

    before = Image.fromarray(_img(48, 64))
    after = apply(Recipe({"exposure": 0.6}), before)
    c = compare.compare_images(before, after, max_side=None)
    image, stats = tab_logic.error_map(before, after, "ΔE00 map")
    assert np.array_equal(np.asarray(image), compare.delta_e_picture(c)[0]) and c.summary() in stats
    image, stats = tab_logic.error_map(before, after, "haze depth (transmission)")
    t = compare.haze_map(before, max_side=None)
    assert np.array_equal(np.asarray(image), compare.haze_picture(t)[0]) and "transmission" in stats
