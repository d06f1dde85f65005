"""The command line end to end, on real files in a temporary folder."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from conftest import REPO, real_photos
from PIL import Image

from lib_enhancer.cli import main
from lib_enhancer.imageio import RECIPE_TEXT_KEY, read_embedded_text


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path):
    """A photo folder: a real photo (darkened, so there is something to fix), a PNG with alpha and
    junk that must be reported and skipped."""
    src = tmp_path / "in"
    src.mkdir()
    _name, photo = real_photos(limit=1, long_side=320)[0]
    dark = (photo.astype(np.float64) * 0.45).astype(np.uint8)
    Image.fromarray(dark).save(src / "dark.jpg", quality=92)
    rgba = np.dstack([dark, np.full(dark.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.jpg").write_text("this is not an image")
    return src


def test_enhance_folder_writes_results_sidecars_and_reports_bad_files(folder, tmp_path, capsys):
    out = tmp_path / "out"
    before = {p.name: _digest(p) for p in folder.iterdir()}
    code = main(["enhance", str(folder), "-o", str(out), "--steps", "12", "-q"])
    err = capsys.readouterr().err
    assert code == 1  # two bad files
    assert "empty.jpg" in err and "notes.jpg" in err and "2 failed" in err and "2 done" in err
    assert {p.name: _digest(p) for p in folder.iterdir()} == before  # inputs untouched
    result = out / "dark_enhanced.jpg"
    sidecar = out / "dark_enhanced.jpg.recipe.json"
    assert result.exists() and sidecar.exists()
    recipe = json.loads(sidecar.read_text())
    assert recipe["format"] == "lib_enhancer.recipe" and recipe["params"]
    assert json.loads(read_embedded_text(result)[RECIPE_TEXT_KEY])["params"] == recipe["params"]
    png = Image.open(out / "alpha_enhanced.png")
    assert png.mode == "RGBA" and np.asarray(png)[..., 3].min() == 200  # alpha kept
    assert np.asarray(Image.open(result)).mean() > np.asarray(Image.open(folder / "dark.jpg")).mean()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_enhance_prior_options(folder, tmp_path, capsys):
    """natural starts from auto contrast; --no-prior starts from neutral, --prior from what it names."""
    recipes = {}
    for name, extra in {
        "default": [],
        "none": ["--no-prior"],
        "half": ["--prior", "auto_contrast=0.5"],
    }.items():
        out = tmp_path / name
        code = main(["enhance", str(folder / "dark.jpg"), "-o", str(out), "--steps", "6", "-q", *extra])
        assert code == 0
        recipes[name] = json.loads((out / "dark_enhanced.jpg.recipe.json").read_text())["params"]
    assert recipes["default"].get("auto_contrast", 0) > 0.5
    assert "auto_contrast" not in recipes["none"]
    assert recipes["half"] != recipes["default"]
    with pytest.raises(SystemExit):
        main(["enhance", str(folder / "dark.jpg"), "--prior", "auto_contrast=1", "--no-prior"])
    assert main(["enhance", str(folder / "dark.jpg"), "--prior", "nope=1", "-q"]) == 2
    assert "nope" in capsys.readouterr().err


def test_enhance_never_overwrites(folder, capsys):
    # same folder, empty suffix: the output would be the input itself
    code = main(["enhance", str(folder / "dark.jpg"), "--suffix", "", "--steps", "5", "-q"])
    assert code == 1 and "would overwrite an input" in capsys.readouterr().err
    out = folder.parent / "o"
    assert main(["enhance", str(folder / "dark.jpg"), "-o", str(out), "--steps", "5", "-q"]) == 0
    stamp = _digest(out / "dark_enhanced.jpg")
    assert main(["enhance", str(folder / "dark.jpg"), "-o", str(out), "--steps", "5", "-q"]) == 1
    assert "exists" in capsys.readouterr().err and _digest(out / "dark_enhanced.jpg") == stamp


def test_apply_export_lut_and_score(folder, tmp_path, capsys):
    recipe = tmp_path / "look.json"
    recipe.write_text(json.dumps({"params": {"exposure": 0.8, "saturation": 0.3, "detail": 0.2}}))
    out = tmp_path / "applied"
    assert main(["apply", "--recipe", str(recipe), str(folder / "dark.jpg"), "-o", str(out), "-q"]) == 0
    applied = out / "dark_enhanced.jpg"
    # the output carries its recipe: it can itself be the --recipe of another apply
    again = tmp_path / "again"
    assert main(["apply", "--recipe", str(applied), str(folder / "alpha.png"), "-o", str(again), "-q"]) == 0
    assert (again / "alpha_enhanced.png").exists()
    cube = tmp_path / "look.cube"
    assert main(["export-lut", "--recipe", str(recipe), "-o", str(cube), "--size", "9"]) == 0
    assert "LUT_3D_SIZE 9" in cube.read_text() and "detail" in capsys.readouterr().err
    table = tmp_path / "scores.csv"
    assert main(["score", str(folder / "dark.jpg"), str(applied), "--csv", str(table), "--sort", "-q"]) == 0
    rows = list(csv.reader(table.open()))
    assert rows[0] == ["path", "score_natural"] and len(rows) == 3
    assert float(rows[1][1]) >= float(rows[2][1])


def test_score_threshold_moves_rejects_never_deletes(folder, tmp_path):
    rejects = tmp_path / "rejects"
    files = [str(folder / "dark.jpg"), str(folder / "alpha.png")]
    assert main(["score", *files, "--threshold", "11", "--move-to", str(rejects), "-q"]) == 0
    assert sorted(p.name for p in rejects.iterdir()) == ["alpha.png", "dark.jpg"]
    assert not (folder / "dark.jpg").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["enhance", "x.jpg", "--lock", "exposure"], "NAME=VALUE"),
        (["enhance", "x.jpg", "--lock", "exposure=9"], "outside"),
        (["enhance", "x.jpg", "--lock", "exposur=1"], "Did you mean exposure"),
        (["enhance", "x.jpg", "--scorer", "natrual"], "Did you mean 'natural'"),
        (["enhance", "nothing-*.jpg"], "no files match"),
        (["apply", "--recipe", "missing.json", "x.jpg"], "no such file"),
        (["score", "x.jpg", "--move-to", "r"], "needs --threshold"),
        (["score", "x.jpg", "--text", "warm"], "need the 'text' scorer"),
    ],
)
def test_usage_errors_are_one_line(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err


def test_filters_and_scorers_listing(capsys):
    assert main(["filters"]) == 0
    text = capsys.readouterr().out
    assert "exposure" in text and "local_tone" in text
    assert main(["filters", "--json"]) == 0
    assert {p["name"] for p in json.loads(capsys.readouterr().out)} >= {"exposure", "dehaze"}
    assert main(["scorers"]) == 0
    assert "natural" in capsys.readouterr().out


def test_module_entry_point_runs(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "lib_enhancer", "filters"], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0 and "exposure" in done.stdout


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path):
    from lib_enhancer.imageio import load_image, save_image

    ramp = np.linspace(0, 40000, 96 * 128, dtype=np.float64).reshape(96, 128)
    rgb = np.stack([ramp, ramp * 0.9, ramp * 0.7], axis=-1).astype(np.uint16)
    src = save_image(tmp_path / "deep.png", rgb)
    assert main(["enhance", str(src), "-o", str(tmp_path / "out"), "--steps", "8", "-q"]) == 0
    out = load_image(tmp_path / "out" / "deep_enhanced.png")
    assert out.bit_depth == 16 and out.rgb.dtype == np.uint16
    assert len(np.unique(out.rgb[..., 0])) > 256


def test_apply_lut_matches_the_recipe_and_imports_no_torch(folder, tmp_path):
    """``apply --lut`` applies an exported .cube like the recipe's colour part, without torch."""
    import subprocess
    import sys

    recipe = tmp_path / "look.json"
    recipe.write_text(json.dumps({"params": {"exposure": 0.5, "contrast": 0.3, "hue": 0.05}}))
    cube = tmp_path / "look.cube"
    assert main(["export-lut", "--recipe", str(recipe), "-o", str(cube), "--size", "65"]) == 0
    src = folder / "alpha.png"  # PNG: lossless, alpha kept
    assert main(["apply", "--lut", str(cube), str(src), "-o", str(tmp_path / "lut"), "-q"]) == 0
    assert main(["apply", "--recipe", str(recipe), str(src), "-o", str(tmp_path / "rec"), "-q"]) == 0
    via_lut = np.asarray(Image.open(tmp_path / "lut" / "alpha_enhanced.png")).astype(int)
    via_recipe = np.asarray(Image.open(tmp_path / "rec" / "alpha_enhanced.png")).astype(int)
    assert via_lut.shape[2] == 4 and np.array_equal(via_lut[..., 3], via_recipe[..., 3])
    assert np.abs(via_lut[..., :3] - via_recipe[..., :3]).max() <= 2  # .cube values are rounded to 1e-6
    assert not (tmp_path / "lut" / "alpha_enhanced.png.recipe.json").exists()  # a LUT is no recipe
    assert main(["apply", "--lut", str(cube), "--recipe", str(recipe), str(src), "-o", str(tmp_path)]) == 2
    code = (
        "import sys; from lib_enhancer.cli import main; "
        f"rc = main(['apply', '--lut', {str(cube)!r}, {str(src)!r}, '-o', {str(tmp_path / 'p')!r}, '-q']); "
        "print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.split() == ["0", "False"], out.stderr


@pytest.mark.parametrize("command", ["score", "enhance"])
def test_models_dir_reaches_every_scorer_built_from_the_cli(command, folder, tmp_path, monkeypatch):
    """``--models-dir`` becomes the scorer's cache_dir (CLIP heads and backbones, taste models, ensembles)."""
    from lib_enhancer import api

    calls = []
    natural = api.get_scorer("natural")

    def fake_get_scorer(scorer, device=None, **options):
        if isinstance(scorer, str):  # the CLI builds it by name, then passes the module on
            calls.append(options)
        return natural if isinstance(scorer, str) else scorer

    monkeypatch.setattr(api, "get_scorer", fake_get_scorer)
    models = tmp_path / "models"
    base = [command, str(folder / "dark.jpg"), "-q"]
    if command == "enhance":
        base += ["-o", str(tmp_path / "out"), "--steps", "1", "--overwrite"]
    for spec in ("laion", "laion:0.5,natural:0.5", "natural"):
        assert main([*base, "--scorer", spec, "--models-dir", str(models)]) == 0
    assert main([*base, "--scorer", "laion", "--crop-mode", "center"]) == 0
    assert calls == [{"cache_dir": str(models)}] * 3 + [{"crop_mode": "center"}]


def test_export_lut_bakes_the_photo_adaptive_curves_only_with_the_photo(folder, tmp_path, capsys):
    """The auto filters read a photo's histogram: ``export-lut --image`` bakes that photo's
    curves (the .cube then reproduces ``apply --recipe`` on it); without the photo they are left out
    and the note says how to keep them."""
    recipe = tmp_path / "auto.json"
    recipe.write_text(
        json.dumps({"params": {"auto_contrast": 1.0, "auto_levels": 0.8, "equalize": 0.3, "exposure": 0.2}})
    )
    src = folder / "alpha.png"
    plain, baked = tmp_path / "plain.cube", tmp_path / "baked.cube"
    capsys.readouterr()
    assert main(["export-lut", "--recipe", str(recipe), "-o", str(plain), "--size", "65"]) == 0
    assert "pass --image" in capsys.readouterr().err
    assert (
        main(["export-lut", "--recipe", str(recipe), "-o", str(baked), "--size", "65", "--image", str(src)])
        == 0
    )
    assert "--image" not in capsys.readouterr().err
    assert main(["apply", "--recipe", str(recipe), str(src), "-o", str(tmp_path / "rec"), "-q"]) == 0
    via_recipe = np.asarray(Image.open(tmp_path / "rec" / "alpha_enhanced.png"))[..., :3].astype(int)
    for cube, expect_close in ((baked, True), (plain, False)):
        out = tmp_path / cube.stem
        assert main(["apply", "--lut", str(cube), str(src), "-o", str(out), "-q"]) == 0
        via_lut = np.asarray(Image.open(out / "alpha_enhanced.png"))[..., :3].astype(int)
        diff = np.abs(via_lut - via_recipe)
        if expect_close:
            assert diff.max() <= 2, diff.max()
        else:
            assert diff.mean() > 5  # the dark photo's stretch is missing
