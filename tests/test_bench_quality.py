"""Fast checks of bench/quality.py on a tiny synthetic image (no real photos, no lib_enhancer.enhance)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH_FILE = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def q():
    spec = importlib.util.spec_from_file_location("bench_quality_under_test", BENCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while the class is built
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def img():
    """48 x 64 smooth colourful image with some texture, uint8."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float64)
    r = 0.15 + 0.7 * x / 63
    g = 0.2 + 0.6 * y / 47
    b = 0.5 + 0.3 * np.sin(x / 5.0) * np.cos(y / 7.0)
    return np.round(np.clip(np.stack([r, g, b], -1), 0, 1) * 255).astype(np.uint8)


def _mean_luma(a: np.ndarray) -> float:
    return float((a.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])).mean())


def test_every_degradation_type_is_deterministic_and_changes_the_image(q, img):
    for kind in q.DEGRADATION_TYPES:
        d1 = q.sample_degradation(kind, np.random.default_rng([3, 1, 2]))
        d2 = q.sample_degradation(kind, np.random.default_rng([3, 1, 2]))
        assert d1 == d2, kind
        out1, out2 = q.apply_degradation(img, d1), q.apply_degradation(img, d2)
        assert out1.dtype == np.uint8 and out1.shape == img.shape
        np.testing.assert_array_equal(out1, out2)
        assert np.abs(out1.astype(int) - img).mean() > 1.0, f"{kind} barely changed the image"
        assert d1.describe() != "none"
    assert q.sample_degradation("none", np.random.default_rng(0)).ops == []
    np.testing.assert_array_equal(q.apply_degradation(img, q.Degradation("none")), img)
    with pytest.raises(KeyError):
        q.sample_degradation("blur", np.random.default_rng(0))


def test_mixtures_have_two_or_three_distinct_ops(q):
    for i in range(30):
        d = q.sample_degradation("mix", np.random.default_rng([0, i]))
        names = [n for n, _ in d.ops]
        assert 2 <= len(names) <= 3
        assert len(set(names)) == len(names)
        assert names == [n for n in q.OP_ORDER if n in names]


def test_make_cases_is_seeded_and_balanced(q):
    a = q.make_cases(5, 4, seed=1)
    b = q.make_cases(5, 4, seed=1)
    c = q.make_cases(5, 4, seed=2)
    assert [x.degradation for x in a] == [x.degradation for x in b]
    assert [x.degradation for x in a] != [x.degradation for x in c]
    assert sum(x.degradation.kind == "none" for x in a) == 5
    kinds = [x.degradation.kind for x in q.make_cases(9, 4, seed=0) if x.degradation.kind != "none"]
    counts = {k: kinds.count(k) for k in q.DEGRADATION_TYPES}
    assert set(counts.values()) == {4}  # 36 draws over 9 types, dealt from shuffled decks


def test_exposure_and_haze_directions(q, img):
    under = q.apply_degradation(img, q.sample_degradation("under_exposure", np.random.default_rng(0)))
    over = q.apply_degradation(img, q.sample_degradation("over_exposure", np.random.default_rng(0)))
    assert _mean_luma(under) < _mean_luma(img) - 10
    assert _mean_luma(over) > _mean_luma(img) + 10
    flat = q.apply_degradation(img, q.sample_degradation("low_contrast", np.random.default_rng(0)))
    assert flat.astype(float).std() < img.astype(float).std()
    desat = q.apply_degradation(img, q.Degradation("desaturate", [("saturation", {"sat": 0.0})]))
    assert np.abs(desat.astype(int) - desat[..., :1]).max() <= 1  # grey


def test_color_cast_keeps_grey_luminance(q):
    grey = np.full((4, 4, 3), 118, np.uint8)
    out = q.apply_degradation(grey, q.Degradation("color_cast", [("color_cast", {"temp": 0.4, "tint": 0.1})]))
    lin = q._to_linear(out / 255.0) @ q._LUMA
    assert lin.mean() == pytest.approx(float(q._to_linear(np.array(118 / 255.0))), abs=0.01)
    assert out[0, 0, 0] > out[0, 0, 2]  # warm


def test_identity_contender_is_perfect(q, img):
    c = q.build_contenders()["identity"]
    p, s, d = q.evaluate(img, c(img))
    assert p == math.inf
    assert s == pytest.approx(1.0)
    assert d == 0.0


@pytest.mark.parametrize("name", ["autocontrast", "equalize", "grayworld", "clahe", "imagemagick", "aaphoto"])
def test_classical_contenders_run_on_tiny_image(q, img, name):
    c = q.build_contenders()[name]
    reason = c.unavailable()
    if reason:
        pytest.skip(reason)
    degraded = q.apply_degradation(img, q.sample_degradation("low_contrast", np.random.default_rng(4)))
    out = c(degraded)
    assert out.shape == img.shape and out.dtype == np.uint8
    p, s, d = q.evaluate(img, out)
    assert math.isfinite(p) and -1 <= s <= 1 and d >= 0
    if name == "autocontrast":  # stretching a flattened image must restore some contrast
        assert out.astype(float).std() > degraded.astype(float).std()


def test_grayworld_removes_a_cast(q, img):
    cast = q.apply_degradation(img, q.Degradation("color_cast", [("color_cast", {"temp": 0.5, "tint": 0.0})]))
    out = q.c_grayworld(cast)
    means = out.reshape(-1, 3).mean(0)
    assert np.ptp(means) < np.ptp(cast.reshape(-1, 3).mean(0))


def test_run_benchmark_and_reports_without_ours(q, img, tmp_path):
    photos = [q.Photo("synthetic", img), q.Photo("flipped", img[:, ::-1].copy())]
    cases = q.make_cases(len(photos), 2, seed=0)
    reg = q.build_contenders()
    contenders = [reg["identity"], reg["autocontrast"], reg["grayworld"]]
    sheet = q.pick_sheet_cases(cases, 2)
    rows, kept, _notes = q.run_benchmark(
        photos, cases, contenders, score=False, sheet_cases=sheet, progress=False
    )
    assert len(rows) == len(cases) * len(contenders)
    summaries = q.summarize(rows, contenders)
    ident = next(s for s in summaries if s.contender == "identity")
    assert ident.de00_none == 0.0 and ident.psnr_none == q.PSNR_CAP
    table = q.summary_table(summaries, scored=False)
    assert table.count("\n") == 1 + len(contenders)
    per_type = q.per_type_table(rows, ["identity", "grayworld"], "psnr", ".2f")
    assert "| none (2) |" in per_type and per_type.count("\n") == 1 + len({r.kind for r in rows})
    ok, lines = q.target_verdict(summaries)
    assert ok is None and "not evaluated" in lines[0]
    q.write_csv(rows, tmp_path / "q.csv")
    assert (tmp_path / "q.csv").read_text().count("\n") == len(rows) + 1
    labels = {k: "label" for k in kept}
    q.contact_sheet(kept, labels, [c.name for c in contenders], tmp_path / "sheet.png", size=32)
    assert (tmp_path / "sheet.png").stat().st_size > 0


def test_target_verdict_logic(q):
    S = q.Summary
    base = dict(ssim=0.9, psnr_none=40.0, seconds=0.1, score=float("nan"), n=10)
    summaries = [
        S("identity", "baseline", psnr=18.0, de00=9.0, de00_none=0.0, **base),
        S("autocontrast", "classical", psnr=20.0, de00=8.0, de00_none=5.0, **base),
        S("ours", "ours", psnr=22.5, de00=5.0, de00_none=1.5, **base),
    ]
    ok, lines = q.target_verdict(summaries)
    assert ok is True and lines[0].startswith("TARGET HOLDS")
    summaries[2] = S("ours", "ours", psnr=21.0, de00=5.0, de00_none=1.5, **base)
    ok, lines = q.target_verdict(summaries)
    assert ok is False and "DOES NOT HOLD" in lines[0]


def test_csv_roundtrip_and_report_from_csv(q, img, tmp_path):
    photos = [q.Photo("synthetic", img)]
    cases = q.make_cases(1, 2, seed=5)
    contenders = [q.build_contenders()[n] for n in ("identity", "grayworld")]
    rows, _, _ = q.run_benchmark(photos, cases, contenders, score=False, progress=False)
    rows[0].score_original, rows[0].score_input = 3.0, 4.0
    q.write_csv(rows, tmp_path / "quality.csv")
    back = q.read_csv(tmp_path / "quality.csv")
    assert [r.contender for r in back] == [r.contender for r in rows]
    assert back[0].psnr == math.inf and back[0].score_input == 4.0
    assert back[1].psnr == pytest.approx(rows[1].psnr, rel=1e-5)
    md = q.render_markdown(back, contenders, {"settings": "test"})
    assert "| identity |" in md and "## Target" in md
    assert q.report_from_csv(tmp_path / "quality.csv", tmp_path, "") == 0
    assert (tmp_path / "quality.md").read_text() == md.replace(
        "test", f"re-rendered from {tmp_path / 'quality.csv'}"
    )


def test_scorer_sanity_counts_cases_where_degraded_scores_higher(q):
    def row(case, s_orig, s_in, contender="identity"):
        return q.Row("p", case, "gamma", "", contender, 20.0, 0.9, 5.0, 0.0, s_orig, s_in, s_in)

    rows = [row(1, 5.0, 6.0), row(1, 5.0, 6.0, "ours"), row(2, 5.0, 4.0), row(3, 5.0, 5.0)]
    lines = q.scorer_sanity(rows)
    assert "2 of 3 cases (67 %)" in lines[1]
    assert q.scorer_sanity([row(1, None, None)]) == []


def test_learned_verify_measures_and_leaves_the_shipped_min_gain(img):
    spec = importlib.util.spec_from_file_location(
        "bench_learned_verify_under_test", BENCH_FILE.with_name("learned_verify.py")
    )
    lv = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = lv
    spec.loader.exec_module(lv)
    cases = lv.Q.make_cases(1, 2, 0)
    psnr_db, de, de_none, seconds = lv.measure(lambda im: im, [("synthetic", img)], cases)
    assert de_none == 0.0 and de > 0.0 and psnr_db < lv.Q.PSNR_CAP and seconds >= 0.0  # identity
    from lib_enhancer.learned.modes import VERIFY_FRACTIONS, VERIFY_MIN_GAIN

    shipped = dict(VERIFY_MIN_GAIN), dict(VERIFY_FRACTIONS)
    runs = {(label, gain, fractions): run for label, gain, fractions, run in lv.variants()}
    assert sum("(shipped)" in gain for _, gain, _ in runs) == 2  # one shipped min gain per learned mode
    tried = [f for label, _, f in runs if label == "predict, verified"]
    assert len(tried) == len(lv.MIN_GAINS) + len(lv.PREDICT_FRACTIONS) - 1  # the shipped set once
    assert sum("(shipped)" in f for f in set(tried)) == 1 and "0 / 0.25 / 0.5 / 0.75 / 1" in tried
    out = runs[("histogram, verified", "0", "0 / 0.5 **(shipped)**")](img)
    assert out.shape == img.shape and shipped == (VERIFY_MIN_GAIN, VERIFY_FRACTIONS)  # put back
    wide = next(run for (label, _, f), run in runs.items() if f == "0 / 1 / 1.5 / 2")
    assert wide(img).shape == img.shape and shipped == (VERIFY_MIN_GAIN, VERIFY_FRACTIONS)
