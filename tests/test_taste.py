"""Personal taste model: built-in features, training, cross-validation, cache, registry, CLI, CLIP path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_photo
from PIL import Image
from torch import nn

from lib_enhancer import taste
from lib_enhancer.features import FEATURE_NAMES, BuiltinFeatures, image_features
from lib_enhancer.filters.pipeline import apply_filters
from lib_enhancer.scorers import create_scorer, get_scorer_info, list_scorers

N_PER_CLASS = 10


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids oversubscribing the shared cores (and is faster here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _shifted(seed: int, shift: float) -> np.ndarray:
    """A synthetic photo with a random exposure and a warm (+) or cool (-) colour shift."""
    rng = np.random.default_rng(100 + seed)
    img = synthetic_photo(40, 56, seed=seed).astype(np.float64) / 255.0 * rng.uniform(0.75, 1.1)
    img[..., 0] += shift
    img[..., 2] -= shift
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("taste_data")
    out = {}
    for name, shift, seeds in (
        ("ok", 0.08, range(N_PER_CLASS)),
        ("nok", -0.08, range(N_PER_CLASS)),
        ("more_ok", 0.08, range(50, 52)),
        ("test_ok", 0.08, range(80, 83)),
        ("test_nok", -0.08, range(90, 93)),
    ):
        folder = root / name
        folder.mkdir()
        for s in seeds:
            Image.fromarray(_shifted(s, shift)).save(folder / f"{name}_{s}.png")
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def trained(
    folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, taste.TrainReport]:
    cache = tmp_path_factory.mktemp("models")
    report = taste.train_taste("warm", [folders["ok"]], [folders["nok"]], backbone="builtin", cache_dir=cache)
    return cache, report


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).float().div(255).permute(2, 0, 1).unsqueeze(0)


# ---------------------------------------------------------------------------------------------
# Built-in features


def test_builtin_features_shapes_values_and_gradient() -> None:
    x = torch.rand(2, 3, 50, 70, generator=torch.Generator().manual_seed(0), requires_grad=True)
    f = BuiltinFeatures()(x)
    assert f.shape == (2, len(FEATURE_NAMES)) and torch.isfinite(f).all()
    f.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # reference values: a flat mid-grey image
    grey = torch.full((1, 3, 32, 32), 0.5)
    g = dict(zip(FEATURE_NAMES, image_features(grey)[0].tolist(), strict=True))
    assert g["L_mean"] == pytest.approx(0.5338, abs=2e-3)  # L* of sRGB 0.5 is 53.39
    assert abs(g["a_mean"]) < 1e-3 and abs(g["b_mean"]) < 1e-3 and g["C_mean"] < 0.02
    assert g["grad_s0"] < 1e-3 and g["L_std"] < 1e-3
    warm = grey.clone()
    warm[:, 0] += 0.1
    warm[:, 2] -= 0.1
    assert dict(zip(FEATURE_NAMES, image_features(warm)[0].tolist(), strict=True))["b_mean"] > 0.05
    # five crops at native resolution: a (B, D) average of five crops
    big = torch.rand(1, 3, 300, 400, generator=torch.Generator().manual_seed(1))
    assert BuiltinFeatures("five_crop")(big).shape == (1, len(FEATURE_NAMES))
    with pytest.raises(ValueError, match="crop mode"):
        BuiltinFeatures("center")


# ---------------------------------------------------------------------------------------------
# Training, accuracy, scorer


def test_separates_warm_from_cool_with_high_cv_accuracy(trained) -> None:
    _cache, report = trained
    cv = report.card["cv"]
    assert cv["accuracy"] >= 0.9 and cv["baseline"] == 0.5 and cv["folds"] == 5
    assert cv["auc"] >= 0.95 and len(cv["per_fold"]) == 5
    assert report.card["counts"] == {"ok": N_PER_CLASS, "nok": N_PER_CLASS}
    assert report.weights_path.is_file() and report.card_path.is_file()
    card = json.loads(report.card_path.read_text())
    assert card["backbone"] == {"kind": "builtin", "crop_mode": "whole", "key": "builtin-v1-whole"}
    assert len(card["samples"]) == 2 * N_PER_CLASS and card["head"]["l2"] in taste.L2_GRID
    assert any("cross-validated accuracy" in line for line in report.lines())


def test_scorer_from_registry_scores_held_out_images_and_its_gradient_warms(trained, folders) -> None:
    cache, _ = trained
    scorer = create_scorer("taste:warm", cache_dir=str(cache))
    assert scorer.info.name == "taste:warm" and scorer.info.score_range == (0.0, 1.0)
    assert not scorer.training and all(not p.requires_grad for p in scorer.parameters())
    ok = [_tensor(np.asarray(Image.open(p))) for p in sorted(folders["test_ok"].iterdir())]
    nok = [_tensor(np.asarray(Image.open(p))) for p in sorted(folders["test_nok"].iterdir())]
    with torch.no_grad():
        s_ok = torch.cat([scorer(x) for x in ok])
        s_nok = torch.cat([scorer(x) for x in nok])
    assert (s_ok > 0.5).all() and (s_nok < 0.5).all()
    # the gradient points the right way: warming a neutral image raises P(OK), cooling lowers it
    x = _tensor(synthetic_photo(40, 56, seed=7))
    temperature = torch.zeros(1, requires_grad=True)
    scorer(apply_filters(x, {"temperature": temperature})).sum().backward()
    assert temperature.grad.item() > 0
    pixels = x.clone().requires_grad_(True)
    scorer(pixels).sum().backward()
    g = pixels.grad[0].mean(dim=(1, 2))
    assert g[0] > 0 > g[2]  # more red, less blue is "more OK"


def test_second_run_hits_the_embedding_cache(trained, folders, monkeypatch) -> None:
    cache, _ = trained
    calls = []
    original = taste._load_for_embedding
    monkeypatch.setattr(taste, "_load_for_embedding", lambda *a: calls.append(a) or original(*a))
    report = taste.train_taste(
        "warm2", [folders["ok"]], [folders["nok"]], backbone="builtin", cache_dir=cache
    )
    assert calls == [] and report.samples["embedded"] == 0
    assert report.samples["cache_hits"] == 2 * N_PER_CLASS
    # a renamed copy is still a hit: the cache is keyed by content
    moved = cache.parent / "renamed_ok"
    shutil.copytree(folders["ok"], moved)
    for p in moved.iterdir():
        p.rename(p.with_name("x_" + p.name))
    report = taste.train_taste("warm3", [moved], [folders["nok"]], backbone="builtin", cache_dir=cache)
    assert calls == [] and report.samples["cache_hits"] == 2 * N_PER_CLASS


def test_incremental_retrain_adds_images_and_embeds_only_new_ones(trained, folders, tmp_path) -> None:
    cache = tmp_path / "models"
    shutil.copytree(trained[0], cache)
    report = taste.train_taste("warm", [folders["more_ok"]], [], add=True, cache_dir=cache)
    assert report.card["counts"] == {"ok": N_PER_CLASS + 2, "nok": N_PER_CLASS}
    assert report.samples["embedded"] == 2 and report.samples["kept_previous"] == 2 * N_PER_CLASS
    assert report.card["backbone"]["kind"] == "builtin"  # kept from the earlier model
    # relabelling: giving an OK image again as not OK moves it to the other class
    report = taste.train_taste("warm", [], [folders["more_ok"]], add=True, cache_dir=cache)
    assert report.card["counts"] == {"ok": N_PER_CLASS, "nok": N_PER_CLASS + 2}
    assert report.samples["relabelled"] == 2
    with pytest.raises(FileNotFoundError, match="no taste model"):
        taste.train_taste("nothing", [folders["ok"]], [], add=True, cache_dir=cache)


def test_mlp_head_and_errors(folders, tmp_path) -> None:
    report = taste.train_taste(
        "mlp", [folders["ok"]], [folders["nok"]], backbone="builtin", head="mlp", cache_dir=tmp_path, folds=3
    )
    assert report.card["head"]["kind"] == "mlp" and report.card["cv"]["accuracy"] >= 0.8
    assert report.card["cv"]["folds"] == 3
    with pytest.raises(ValueError, match="both classes"):
        taste.train_taste("one", [folders["ok"]], [folders["ok"]], backbone="builtin", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="invalid taste model name"):
        taste.train_taste("../evil", [folders["ok"]], [folders["nok"]], cache_dir=tmp_path)
    with pytest.raises(KeyError, match=r"taste:absent.*no such taste model.*train taste"):
        create_scorer("taste:absent", cache_dir=str(tmp_path))
    x = torch.randn(6, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="at least 2 images per class"):
        taste.cross_validate(x, torch.tensor([1.0, 0, 0, 0, 0, 0]))


def test_cross_validation_is_honest_on_random_labels() -> None:
    """Labels unrelated to the embeddings: the nested CV must not report a good model."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 30, generator=gen, dtype=torch.float64)
    y = (torch.rand(40, generator=gen) < 0.5).double()
    cv = taste.cross_validate(x, y)
    assert cv["accuracy"] < 0.75
    signal = x.clone()
    signal[:, 0] += 5 * (2 * y - 1)
    assert taste.cross_validate(signal, y)["accuracy"] >= 0.85


def test_registry_lists_and_ensembles_taste_models(trained, monkeypatch) -> None:
    cache, _ = trained
    monkeypatch.setenv("LIB_ENHANCER_MODELS", str(cache))
    names = [i.name for i in list_scorers()]
    assert "taste:warm" in names and "natural" in names
    assert "cross-validated accuracy" in get_scorer_info("taste:warm").description
    ens = create_scorer("taste:warm:0.7,natural:0.3")
    x = torch.stack([_tensor(synthetic_photo(40, 56, seed=s))[0] for s in (3, 4)]).requires_grad_(True)
    out = ens(x)
    assert out.shape == (2,) and torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad.abs().sum() > 0


def test_cli_train_score_move_and_enhance(folders, tmp_path, monkeypatch, capsys) -> None:
    from lib_enhancer import api
    from lib_enhancer.cli import main

    cache = tmp_path / "models"
    monkeypatch.setenv("LIB_ENHANCER_MODELS", str(cache))
    api._cached_scorer.cache_clear()
    argv = ["train", "taste", "--ok", str(folders["ok"]), "--nok", str(folders["nok"]), "--name", "cli"]
    assert main([*argv, "--backbone", "builtin", "--threads", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "cross-validated accuracy (5-fold, nested): 100.0%" in out and "taste:cli" in out
    # sort a mixed folder: the cool images go to rejects/
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in [*folders["test_ok"].iterdir(), *folders["test_nok"].iterdir()]:
        shutil.copy(p, mixed / p.name)
    rejects = tmp_path / "rejects"
    code = main(
        ["score", str(mixed), "--scorer", "taste:cli", "--threshold", "0.5", "--move-to", str(rejects), "-q"]
    )
    assert code == 0
    assert sorted(p.name for p in rejects.iterdir()) == sorted(p.name for p in folders["test_nok"].iterdir())
    assert sorted(p.name for p in mixed.iterdir()) == sorted(p.name for p in folders["test_ok"].iterdir())
    # enhance with the taste scorer warms a cool image
    src = next(rejects.iterdir())
    code = main(
        ["enhance", str(src), "--scorer", "taste:cli", "-o", str(tmp_path / "out"), "--steps", "15", "-q"]
    )
    assert code == 0
    out_file = next((tmp_path / "out").glob("*_enhanced.png"))
    recipe = json.loads(out_file.with_name(out_file.name + ".recipe.json").read_text())
    assert recipe["info"]["scorer"] == "taste:cli" and recipe["params"].get("temperature", 0) > 0
    from lib_enhancer import api

    after = np.asarray(Image.open(out_file)).astype(float)
    untinted = {n: v for n, v in recipe["params"].items() if n != "temperature"}
    without = np.asarray(api.apply(untinted, Image.open(src).convert("RGB"))).astype(float)
    assert (after[..., 0] - after[..., 2]).mean() > (without[..., 0] - without[..., 2]).mean() + 2
    # usage errors: missing folders; a crop mode the built-in model was not trained with
    assert main(["train", "taste", "--ok", str(folders["ok"]), "--name", "x"]) == 2
    assert main(["score", str(mixed), "--scorer", "taste:cli", "--crop-mode", "five_crop", "-q"]) == 2
    assert "crop mode 'whole'" in capsys.readouterr().err
    assert main(["score", str(mixed), "--scorer", "natural", "--crop-mode", "five_crop"]) == 2
    api._cached_scorer.cache_clear()


def test_cli_models_dir_finds_taste_models_outside_the_default_cache(
    trained, folders, tmp_path, monkeypatch, capsys
) -> None:
    """``score``/``enhance --models-dir DIR`` find taste:NAME in DIR, as ``train taste --models-dir`` saves it."""
    from lib_enhancer import api
    from lib_enhancer.cli import main

    cache, _ = trained
    monkeypatch.setenv("LIB_ENHANCER_MODELS", str(tmp_path / "empty"))
    api._cached_scorer.cache_clear()
    images = sorted(folders["test_ok"].iterdir())
    capsys.readouterr()
    assert main(["score", str(images[0]), "--scorer", "taste:warm", "-q"]) == 2  # not in the default cache
    assert "no such taste model" in capsys.readouterr().err
    for spec in ("taste:warm", "taste:warm:0.5,natural:0.5"):
        argv = ["score", *map(str, images), "--scorer", spec, "--models-dir", str(cache), "--csv", "-", "-q"]
        assert main(argv) == 0
        rows = capsys.readouterr().out.strip().splitlines()
        assert rows[0].startswith("path,") and len(rows) == 1 + len(images)
    src = sorted(folders["test_nok"].iterdir())[0]
    out = tmp_path / "out"
    argv = ["enhance", str(src), "--scorer", "taste:warm", "--models-dir", str(cache), "-o", str(out)]
    assert main([*argv, "--steps", "5", "-q"]) == 0
    recipe = json.loads(next(out.glob("*.recipe.json")).read_text())
    assert recipe["info"]["scorer"] == "taste:warm"
    api._cached_scorer.cache_clear()


def test_get_scorer_cache_rebuilds_a_retrained_taste_model(folders, tmp_path, monkeypatch) -> None:
    """The in-process scorer cache keys on the model files: retraining gives a fresh scorer."""
    from lib_enhancer import api
    from lib_enhancer.scorers.registry import scorer_cache_token

    cache = tmp_path / "models"
    api._cached_scorer.cache_clear()
    warm = _tensor(np.asarray(Image.open(sorted(folders["test_ok"].iterdir())[0])))
    taste.train_taste("flip", [folders["ok"]], [folders["nok"]], backbone="builtin", cache_dir=cache, folds=2)
    first = api.get_scorer("taste:flip", cache_dir=str(cache))
    assert api.get_scorer("taste:flip", cache_dir=str(cache)) is first  # unchanged: cached
    with torch.no_grad():
        assert first(warm).item() > 0.5
    token = scorer_cache_token("taste:flip", cache)
    # retrain with the labels swapped: the same name now prefers cool images
    taste.train_taste("flip", [folders["nok"]], [folders["ok"]], backbone="builtin", cache_dir=cache, folds=2)
    assert scorer_cache_token("taste:flip", cache) != token
    second = api.get_scorer("taste:flip", cache_dir=str(cache))
    assert second is not first
    with torch.no_grad():
        assert second(warm).item() < 0.5
    assert api.get_scorer("taste:flip", cache_dir=str(cache)) is second
    # ensembles holding the member notice too; built-in scorers have no files to watch
    assert scorer_cache_token("natural:0.5,taste:flip:0.5", cache)[0][0] == "taste:flip"
    assert scorer_cache_token("natural") == () and scorer_cache_token("a,,b") == ()
    # the same name through $LIB_ENHANCER_MODELS is another file, hence another key
    monkeypatch.setenv("LIB_ENHANCER_MODELS", str(cache))
    assert scorer_cache_token("taste:flip") == scorer_cache_token("taste:flip", cache)
    monkeypatch.setenv("LIB_ENHANCER_MODELS", str(tmp_path / "elsewhere"))
    assert scorer_cache_token("taste:flip") != scorer_cache_token("taste:flip", cache)
    api._cached_scorer.cache_clear()


# ---------------------------------------------------------------------------------------------
# CLIP backbones (tiny random-weight open_clip models; the real weights are not downloaded)


class ColourClip(nn.Module):
    """A stand-in CLIP whose image embedding is the mean colour (so warm vs cool is separable)."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = nn.Module()
        self.visual.output_dim = 8
        self.visual.image_size = 32
        self.proj = nn.Linear(3, 8)
        self.logit_scale = nn.Parameter(torch.tensor(4.6))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(2, 3))) + 0.1


def test_clip_backbone_path_trains_caches_and_scores(folders, tmp_path) -> None:
    from lib_enhancer.scorers.clip import free_backbones

    torch.manual_seed(0)
    model = ColourClip().eval()
    kwargs = {"backbone": "ViT-B-32", "clip_model": model, "cache_dir": tmp_path}
    report = taste.train_taste("clip", [folders["ok"]], [folders["nok"]], embedding_key="colour", **kwargs)
    card = report.card
    assert card["backbone"]["kind"] == "clip" and card["backbone"]["model"] == "ViT-B-32"
    assert card["backbone"]["crop_mode"] == "cover" and card["dim"] == 8
    assert card["cv"]["accuracy"] >= 0.9
    assert (tmp_path / "taste" / "embeddings" / "clip-ViT-B-32-colour-cover-4.safetensors").is_file()
    again = taste.train_taste("clip", [folders["ok"]], [folders["nok"]], embedding_key="colour", **kwargs)
    assert again.samples["embedded"] == 0
    scorer = create_scorer("taste:clip", cache_dir=str(tmp_path), clip_model=model)
    assert scorer.info.weights == ("ViT-B-32.pt",) and scorer.info.input_size == 224
    x = _tensor(_shifted(80, 0.08)).requires_grad_(True)
    assert scorer(x).item() > 0.5
    scorer(x).sum().backward()
    assert x.grad.abs().sum() > 0
    # five crops at native resolution: the option reaches the CLIP crops
    five = create_scorer("taste:clip", cache_dir=str(tmp_path), clip_model=model, crop_mode="five_crop")
    assert five.extractor.crop.mode == "five_crop" and torch.isfinite(five(torch.rand(1, 3, 64, 80))).all()
    free_backbones()


def test_real_open_clip_architecture_runs_end_to_end(folders, tmp_path) -> None:
    """A real (tiny, random) open_clip CLIP as the backbone: forward, backward, save, load."""
    open_clip = pytest.importorskip("open_clip")
    from lib_enhancer.scorers.clip import free_backbones

    torch.manual_seed(512)
    model = open_clip.model.CLIP(
        embed_dim=64,
        vision_cfg={"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 64},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
        quick_gelu=True,
    ).eval()
    report = taste.train_taste(
        "oc",
        [folders["ok"]],
        [folders["nok"]],
        backbone="ViT-B-32",
        clip_model=model,
        cache_dir=tmp_path,
        folds=2,
    )
    assert report.card["dim"] == 64 and 0.0 <= report.card["cv"]["accuracy"] <= 1.0
    # an injected model without an embedding key is not cached on disk (its key would be meaningless)
    assert not (tmp_path / "taste" / "embeddings").exists()
    scorer = create_scorer("taste:oc", cache_dir=str(tmp_path), clip_model=model)
    x = torch.rand(2, 3, 40, 90, requires_grad=True)
    out = scorer(x)
    assert out.shape == (2,) and ((out >= 0) & (out <= 1)).all()
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    free_backbones()


def test_auto_backbone_without_clip_weights_is_builtin(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LIB_ENHANCER_OFFLINE", "1")
    monkeypatch.setattr(taste, "available_clip_backbones", lambda *a, **k: [])
    assert isinstance(taste.make_extractor("auto", cache_dir=tmp_path), BuiltinFeatures)
    monkeypatch.setattr(taste, "available_clip_backbones", lambda *a, **k: ["ViT-B-32"])
    extractor = taste.make_extractor("auto", cache_dir=tmp_path)
    assert extractor.model_name == "ViT-B-32" and not extractor.backbone.loaded  # loaded lazily
