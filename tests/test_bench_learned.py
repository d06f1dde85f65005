"""bench/learned.py's 1 MP time split: the apply clock and the table (the bench itself runs by hand)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH_FILE = Path(__file__).resolve().parents[1] / "bench" / "learned.py"


def _bench(name: str = "learned.py"):
    """A bench script loaded as a module (bench/ is not a package on the path)."""
    path = BENCH_FILE.with_name(name)
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up)
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

    bench = _bench("recipe_fit.py")
    table = build_lut({"exposure": -0.4, "contrast": 0.3, "tint": 0.1, "vibrance": 0.3}, 17)
    image = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    adam_params, adam_error = bench.adam_fit(table, image, steps=20)
    _, lm_error = fit_recipe_to_lut(table, image)
    assert set(adam_params) == set(fit_recipe_to_lut(table, image, iterations=0)[0])
    assert 0 < lm_error < adam_error, (lm_error, adam_error)


def test_cross_validation_replays_the_scorer_checks_pick():
    """bench/learned_cv.py replays a rule from recorded scores: the same fraction as verified_edit
    keeps, ties included (scores drawn from a few values so ties are common)."""
    from lib_enhancer.learned.modes import LearnedEdit, verified_edit, verify_candidates

    bench = _bench("learned_cv.py")
    spec = bench.MODES["predict"]  # a recipe: its rules reach beyond the proposal
    rng = np.random.default_rng(0)
    edit = LearnedEdit({"exposure": 0.4, "saturation": 0.2}, start={"auto_contrast": 1.0})
    seen = set()
    for _ in range(300):
        fractions = spec.rules[int(rng.integers(len(spec.rules)))]
        scores = {f"{f:g}": float(rng.choice([9.5, 9.9, 10.0])) for f in spec.fractions}
        threshold = float(rng.choice([0.0, 1e-5, 0.2]))
        chosen, _ = verified_edit(
            verify_candidates(edit, fractions), [scores[f"{f:g}"] for f in fractions], threshold
        )
        picked = bench.picked_fraction(scores, fractions, threshold)
        assert picked == chosen.info["fraction"], (fractions, scores, threshold)
        seen.add(picked)
    assert {0.0, 0.5, 1.0, 1.5} <= seen  # the start point, in-between, full and further all occur
    assert all(max(f) <= 1.0 for f in bench.MODES["histogram"].rules)  # a LUT is never extrapolated


def test_cross_validation_keeps_the_input_only_where_the_pick_scores_below_it():
    bench = _bench("learned_cv.py")
    record = {
        "fractions": {"0": (9.0, 20.0, 8.0), "1": (9.5, 25.0, 6.0)},
        "input": (9.2, 30.0, 0.0),  # (score, PSNR, ΔE00)
    }
    assert bench.replay(record, (0.0, 1.0), 0.0) == (25.0, 6.0)
    assert bench.replay(record, (0.0, 1.0), 0.0, keep_input=True) == (25.0, 6.0)  # 9.5 > 9.2
    assert bench.replay(record, (0.0, 1.0), 1.0) == (20.0, 8.0)  # the start point: no gain of 1
    assert bench.replay(record, (0.0, 1.0), 1.0, keep_input=True) == (30.0, 0.0)  # 9.0 < 9.2


def test_cross_validation_folds_split_the_training_photos():
    bench = _bench("learned_cv.py")
    names = [f"p{i}" for i in range(11)]
    folds = bench.fold_of(names, 3)
    assert sorted(n for fold in folds.values() for n in fold) == sorted(names)
    assert [len(f) for f in folds.values()] == [4, 4, 3]


def test_cross_validation_verdict_needs_both_metrics():
    """A rule replaces the shipped one only when better on PSNR and on ΔE00; the best PSNR of those."""
    bench = _bench("learned_cv.py")
    shipped = ((0.0, 0.5, 1.0), 0.0, False)
    both, psnr_only, weaker = (
        ((0.0, 1.0), 1e-5, False),
        ((0.0, 0.5, 1.0, 1.5), 0.0, False),
        ((0.0, 1.0), 0.0, True),
    )
    results = {
        shipped: (20.0, 8.0, 1.0),
        both: (20.5, 7.9, 1.5),
        psnr_only: (22.0, 8.1, 0.5),
        weaker: (19.0, 8.5, 1.0),
    }
    text = bench.verdict(results, shipped)
    assert "min gain 1e-05, fractions 0 / 1 (20.50 dB" in text
    tied = ((0.0, 1.0), 1e-6, False)  # the same PSNR and ΔE00: the undegraded photos' ΔE00 decides
    results[tied] = (20.5, 7.9, 1.8)
    assert "min gain 1e-05" in bench.verdict(results, shipped)
    results[tied] = (20.5, 7.9, 1.2)
    assert "min gain 1e-06" in bench.verdict(results, shipped)
    del results[both], results[tied]
    assert "shipped rule stays" in bench.verdict(results, shipped)


def test_cross_validation_records_each_fraction_as_enhance_gives_it():
    """A record's whole-proposal entry is the unverified proposal's restoration, the input's entry
    the degraded photo itself, and the shipped rules are put back afterwards."""
    from lib_enhancer.api import enhance
    from lib_enhancer.learned.modes import VERIFY_FRACTIONS, VERIFY_MIN_GAIN
    from lib_enhancer.metrics import psnr

    bench = _bench("learned_cv.py")
    shipped = dict(VERIFY_MIN_GAIN), dict(VERIFY_FRACTIONS)
    photo = (np.random.default_rng(0).random((48, 64, 3)) * 200 + 20).astype(np.uint8)
    records = bench.record_fold("histogram", None, [("synthetic", photo)], 1, 0)
    assert shipped == (VERIFY_MIN_GAIN, VERIFY_FRACTIONS)
    assert [r["none"] for r in records] == [True, False]
    degraded = bench.Q.apply_degradation(photo, bench.Q.make_cases(1, 1, 0)[1].degradation)
    whole = np.asarray(enhance(degraded, mode="histogram", scorer="natural", verify=False).image)
    record = records[1]
    assert record["fractions"]["1"][1] == pytest.approx(min(bench.Q.PSNR_CAP, psnr(whole, photo)))
    assert record["input"][1] == pytest.approx(min(bench.Q.PSNR_CAP, psnr(degraded, photo)))
    assert set(record["fractions"]) == {f"{f:g}" for f in bench.MODES["histogram"].fractions}
