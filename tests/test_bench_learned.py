"""bench/learned.py's 1 MP time split: the apply clock and the table (the bench itself runs by hand)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

BENCH_FILE = Path(__file__).resolve().parents[1] / "bench" / "learned.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_learned_under_test", BENCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_apply_clock_times_the_full_resolution_apply_and_restores():
    from lib_enhancer import api, lut
    from lib_enhancer.api import enhance

    bench = _bench()
    before = (api.apply, lut.apply_lut_array)
    img = (np.random.default_rng(0).random((40, 56, 3)) * 150 + 30).astype(np.uint8)
    with bench.ApplyClock() as clock:
        enhance(img, mode="predict", verify=False)  # the proposal is applied: a recipe
        assert api.apply is not before[0]
    assert (api.apply, lut.apply_lut_array) == before
    assert clock.seconds > 0
    with bench.ApplyClock() as idle:
        pass
    assert idle.seconds == 0


def test_split_table_ratios_against_gradient():
    bench = _bench()
    rows = [("gradient", 1.0, 0.1), ("predict", 0.2, 0.1), ("histogram", 0.05, 0.01)]
    table = bench.split_table(rows, 21, 7)
    predict = next(line for line in table if line.startswith("| predict"))
    assert "0.20 (1/5.0)" in predict and "0.11 (1/9.0)" in predict and "❌" in predict
    histogram = next(line for line in table if line.startswith("| histogram"))
    assert "0.05 (1/20.0)" in histogram and "✅" in histogram


def test_before_after_table_ratios_within_each_version():
    bench = _bench()
    mean = np.array(
        [[0.4, 0.05, 0.04], [0.38, 0.038, 0.03]]
    )  # (before, after) x (gradient, predict, histogram)
    table = bench.before_after_table(mean, Path("/tmp/base"), 21, 3)
    predict = next(line for line in table if line.startswith("| predict"))
    assert "| 0.050 | 0.038 | 0.76 |" in predict and "(1/8.0)" in predict and "(1/10.0)" in predict
    assert any("21 cases, each timed 3×" in line for line in table)


def test_recipe_fit_bench_compares_the_shipped_fit_with_adam():
    """bench/recipe_fit.py's baseline fit runs on the same inputs, and the shipped Levenberg–Marquardt
    fit is closer to a LUT than it (on a LUT made from a known recipe)."""
    import torch

    from lib_enhancer.learned.modes import fit_recipe_to_lut
    from lib_enhancer.lut import build_lut

    spec = importlib.util.spec_from_file_location(
        "bench_recipe_fit_under_test", BENCH_FILE.with_name("recipe_fit.py")
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = build_lut({"exposure": -0.4, "contrast": 0.3, "tint": 0.1, "vibrance": 0.3}, 17)
    image = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    adam_params, adam_error = bench.adam_fit(table, image, steps=20)
    _, lm_error = fit_recipe_to_lut(table, image)
    assert set(adam_params) == set(fit_recipe_to_lut(table, image, iterations=0)[0])
    assert 0 < lm_error < adam_error, (lm_error, adam_error)
