"""Unpaired enhancer: loss pieces, a short training run that moves held-out statistics, save/load, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import synthetic_photo
from PIL import Image

from lib_enhancer import unpaired as up
from lib_enhancer.params import get_param


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _photo(seed: int, size: tuple[int, int] = (48, 64)) -> torch.Tensor:
    return up.as_tensor(synthetic_photo(*size, seed=seed))


def _dull(x: torch.Tensor) -> torch.Tensor:
    """The 'source camera': dark, cool and flat."""
    cast = torch.tensor([0.85, 0.95, 1.1]).view(3, 1, 1)
    return ((x**1.6) * 0.8 * cast).clamp(0, 1)


SOURCE = [_dull(_photo(s)) for s in range(6)]
TARGET = [_photo(s) for s in range(20, 26)]
HELD_OUT = [_dull(_photo(s)) for s in (40, 41)]
FAST = up.UnpairedConfig(
    steps=60, batch=6, crop=48, thumb=32, width=8, hidden=32, disc_width=8, lr_g=3e-4, eval_every=20
)


def test_loss_pieces() -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert float(up.structure_loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    # a global brightness/contrast change keeps structure; replacing the content does not
    assert float(up.structure_loss(x, 0.5 * x + 0.2)) < 0.01 < float(up.structure_loss(x, x.flip(-1)))
    proj = torch.nn.functional.normalize(
        torch.randn(3, 16, generator=torch.Generator().manual_seed(1)), dim=0
    )
    a = torch.rand(100, 3, generator=torch.Generator().manual_seed(2))
    assert float(up.sliced_wasserstein(a, a, proj)) == 0.0
    assert (
        float(up.sliced_wasserstein(a, a + 0.1, proj)) > float(up.sliced_wasserstein(a, a + 0.01, proj)) > 0
    )
    assert float(up.sliced_wasserstein(a, a[:60] + 0.1, proj)) > 0  # different sizes compare quantiles
    assert up.colour_view(x, 2.0).shape == (2, 3, 16, 16) and up.texture_view(x).shape == (2, 1, 32, 32)
    d = up.PatchDiscriminator(3, 8)
    assert d(x).shape[0] == 2 and d(x).dim() == 2
    crops = up.random_crops([_photo(0)], 5, 24, 0.5, torch.Generator().manual_seed(0))
    assert crops.shape == (5, 3, 24, 24) and crops.min() >= 0 and crops.max() <= 1


def test_short_training_moves_held_out_statistics_towards_the_target() -> None:
    result = up.train_unpaired(SOURCE, TARGET, FAST, evaluate_on=HELD_OUT)
    ev = result.evaluation
    assert ev["distance_after"] < 0.7 * ev["distance_before"], ev
    # measured directly on a held-out image: brighter and less blue, like the target set
    model = up.UnpairedModel(result.generator, {"name": "t"})
    params = model.predict_params(HELD_OUT[0])
    from lib_enhancer.filters.pipeline import apply_filters

    out = apply_filters(HELD_OUT[0].unsqueeze(0), params, stages=("global",))[0]
    target_mean = torch.stack([t.mean(dim=(1, 2)) for t in TARGET]).mean(0)
    before_gap = (HELD_OUT[0].mean(dim=(1, 2)) - target_mean).abs().sum()
    after_gap = (out.mean(dim=(1, 2)) - target_mean).abs().sum()
    assert after_gap < 0.6 * before_gap
    # stable: finite losses all along, parameters inside their ranges
    for key in ("g_color", "g_texture", "content", "distribution", "d_color", "d_texture"):
        assert all(math.isfinite(v) for v in result.history[key])
    for name, value in params.items():
        p = get_param(name)
        assert p.minimum <= value <= p.maximum
    assert len(result.history["distance"]) == 3 and ev["kept_step"] in (20, 40, 60)


def test_adversarial_only_run_is_stable() -> None:
    cfg = up.UnpairedConfig(
        **{**FAST.__dict__, "steps": 30, "weights": up.LossWeights(distribution=0.0, color=1.0)}
    )
    result = up.train_unpaired(SOURCE, TARGET, cfg)
    assert result.steps == 30 and all(math.isfinite(v) for v in result.history["g_total"])
    assert all(v == 0.0 for v in result.history["distribution"])
    values = result.generator(torch.rand(4, 3, 32, 32))
    assert torch.isfinite(values).all()
    for i, name in enumerate(result.generator.names):
        p = get_param(name)
        assert (values[:, i] >= p.minimum).all() and (values[:, i] <= p.maximum).all()
    with pytest.raises(ValueError, match="at least one"):
        up.train_unpaired([], TARGET, cfg)


def test_save_load_and_any_resolution(tmp_path) -> None:
    cfg = up.UnpairedConfig(**{**FAST.__dict__, "steps": 10})
    result = up.train_unpaired(SOURCE, TARGET, cfg, evaluate_on=HELD_OUT)
    weights, card = up.save_unpaired("mine", result, cfg, {"note": "test"}, tmp_path)
    assert weights == tmp_path / "unpaired" / "mine.safetensors" and card.is_file()
    loaded = up.load_unpaired("mine", tmp_path)
    rgb = synthetic_photo(96, 128, seed=3)
    a = result.generator.predict(up.as_tensor(rgb).unsqueeze(0))[0]
    b = loaded.predict_params(rgb)
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-3 for k in a)
    big = np.asarray(Image.fromarray(rgb).resize((512, 384), Image.BILINEAR))
    c = loaded.predict_params(big)  # same photo at 4x the size: nearly the same recipe
    assert all(abs(b[k] - c[k]) <= 0.05 * get_param(k).span for k in b)
    recipe = loaded.predict_recipe(big)
    assert recipe.info["model"] == "unpaired:mine"
    with pytest.raises(KeyError, match="train unpaired"):
        up.load_unpaired("other", tmp_path)
    curves = up.plot_curves(result.history, tmp_path / "curves.png", "t")
    with Image.open(curves) as im:
        assert im.size == (900, 420)


def test_cli_train_and_apply(tmp_path, capsys) -> None:
    from lib_enhancer.cli import main

    src, tgt = tmp_path / "phone", tmp_path / "dslr"
    src.mkdir()
    tgt.mkdir()
    for i, x in enumerate(SOURCE):
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(src / f"s{i}.png")
    for i, x in enumerate(TARGET):
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(tgt / f"t{i}.png")
    models = tmp_path / "models"
    code = main(
        ["train", "unpaired", "--source", str(src), "--target", str(tgt), "--name", "phone2dslr",
         "--models-dir", str(models), "--steps", "8", "--batch", "4", "--holdout", "2", "--threads", "1", "-q"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "saved unpaired:phone2dslr" in out and "distance of colour/tone statistics" in out
    card = json.loads((models / "unpaired" / "phone2dslr.json").read_text())
    assert card["steps"] == 8 and card["data"]["source_images"] == 6 and len(card["data"]["held_out"]) == 2
    assert (models / "unpaired" / "phone2dslr_curves.png").is_file()
    outdir = tmp_path / "out"
    code = main(
        [
            "apply",
            "--model",
            "unpaired:phone2dslr",
            "--models-dir",
            str(models),
            str(src),
            "-o",
            str(outdir),
            "-q",
        ]
    )
    assert code == 0
    outputs = sorted(outdir.glob("*_enhanced.png"))
    assert len(outputs) == 6
    recipe = json.loads(outputs[0].with_name(outputs[0].name + ".recipe.json").read_text())
    assert recipe["info"]["model"] == "unpaired:phone2dslr" and recipe["info"]["source"] == "s0.png"
    # usage errors
    assert main(["apply", str(src), "-o", str(outdir)]) == 2
    assert main(["apply", "--model", "nope:x", str(src), "-o", str(outdir)]) == 2
    assert main(["apply", "--model", "unpaired:absent", "--models-dir", str(models), str(src)]) == 2
