"""Learned modes: synthetic data, histogram transport, the two networks, training, API and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lib_enhancer.learned import histogram as H
from lib_enhancer.learned import modes, synth
from lib_enhancer.learned import photos as P
from lib_enhancer.learned.common import read_model, save_model
from lib_enhancer.learned.modes import LearnedEdit
from lib_enhancer.learned.predictor import PREDICTED, RecipePredictor, load_predictor
from lib_enhancer.learned.train import TrainConfig, train
from lib_enhancer.lut import apply_lut_torch, identity_lattice
from lib_enhancer.params import get_param

REPO = Path(__file__).resolve().parents[1]


def smooth_photo(seed: int, h: int = 72, w: int = 96) -> np.ndarray:
    """A colourful smooth synthetic 'photo' (uint8) — gradients plus blobs, no two alike."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.zeros((h, w, 3))
    for c in range(3):
        a, b, ph = rng.uniform(1, 4, 3)
        out[..., c] = 0.5 + 0.35 * np.sin(a * x * 3 + b * y * 2 + ph * 6) * rng.uniform(0.5, 1.0)
    return np.clip(out * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(4):
        Image.fromarray(smooth_photo(i)).save(folder / f"p{i}.png")
    return folder


# ---- synthetic degradations ---------------------------------------------------------------------


def test_synth_is_seeded_and_edits_change_images() -> None:
    photos = synth.photos_to_tensors([smooth_photo(i) for i in range(3)])
    cfg = synth.SynthConfig(side=32)
    a = synth.make_batch(photos, 16, cfg, torch.Generator().manual_seed(3))
    b = synth.make_batch(photos, 16, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    degraded, clean, edits = a
    assert degraded.shape == clean.shape == (16, 3, 32, 32)
    assert float(degraded.min()) >= 0.0 and float(degraded.max()) <= 1.0
    for i, e in enumerate(edits):
        changed = not torch.equal(degraded[i], clean[i])
        assert changed == bool(e), (i, e)
    x = photos[0][None, :, :32, :32]
    for name, fn in synth.EDIT_FUNCTIONS.items():
        moved = (fn(x, torch.Generator().manual_seed(1), 1.0) - x).abs().mean()
        assert float(moved) > 1e-3, name


# ---- histograms and transport -------------------------------------------------------------------


def _splat_corner_by_corner(image: torch.Tensor, bins: int) -> torch.Tensor:
    """Trilinear splatting written as the plain loop over the 8 corners (the reference)."""
    n = image.shape[0]
    pos = image.reshape(n, 3, -1).clamp(0.0, 1.0) * bins - 0.5
    low = pos.floor()
    frac, low = pos - low, low.long()
    hist = torch.zeros(n, bins**3, dtype=image.dtype)
    for corner in range(8):
        idx = torch.zeros_like(low[:, 0])
        weight = torch.ones_like(frac[:, 0])
        for c in range(3):
            up = (corner >> c) & 1
            idx = idx * bins + (low[:, c] + up).clamp(0, bins - 1)
            weight = weight * (frac[:, c] if up else 1.0 - frac[:, c])
        hist.scatter_add_(1, idx, weight)
    return (hist / hist.sum(1, keepdim=True).clamp_min(1e-12)).reshape(n, bins, bins, bins)


@pytest.mark.parametrize(
    "batch, bins, dtype", [(1, 16, torch.float32), (5, 16, torch.float32), (2, 8, torch.float64)]
)
def test_soft_histogram_is_the_corner_loop_bit_for_bit(batch: int, bins: int, dtype: torch.dtype) -> None:
    """The broadcast splatting adds the same weights in the same order as the loop over corners:
    equal bit for bit (so ``train histogram`` still reproduces the shipped weights), edges included."""
    gen = torch.Generator().manual_seed(batch)
    x = torch.rand(batch, 3, 40, 30, generator=gen, dtype=dtype) * 1.2 - 0.1  # some values clamp
    assert torch.equal(H.soft_histogram(x, bins), _splat_corner_by_corner(x, bins))


def test_soft_histogram_sums_to_one_and_puts_mass_at_the_colour() -> None:
    img = torch.zeros(1, 3, 4, 4)
    img[:, 0] = 0.5 / 16 + 5 / 16  # red at the centre of bin 5, green/blue at bin 0's centre
    img[:, 1:] = 0.5 / 16
    h = H.soft_histogram(img, 16)
    assert h.shape == (1, 16, 16, 16)
    assert torch.isclose(h.sum(), torch.tensor(1.0))
    assert float(h[0, 5, 0, 0]) == pytest.approx(1.0, abs=1e-5)


def test_transfer_to_itself_is_the_identity_lut() -> None:
    img = torch.from_numpy(smooth_photo(1)).permute(2, 0, 1)[None].float() / 255
    h = H.soft_histogram(img)[0]
    table = H.transfer_lut(h, h)
    assert np.abs(table - identity_lattice(table.shape[0])).max() < 1e-9


def _kl(p: torch.Tensor, q: torch.Tensor) -> float:
    return float(H.kl_divergence(p[None], torch.log(q[None] + 1e-8)))


def test_idt_moves_the_histogram_onto_the_target() -> None:
    src = torch.from_numpy(smooth_photo(2)).permute(2, 0, 1)[None].float() / 255
    edited = synth.edit_cast(
        synth.edit_gamma(src, torch.Generator().manual_seed(0), 1.0), torch.Generator().manual_seed(1), 1.0
    ).clamp(0, 1)
    hs, ht = H.soft_histogram(edited)[0], H.soft_histogram(src)[0]
    table = H.transfer_lut(hs, ht)
    out = apply_lut_torch(edited.double(), table).float()
    ho = H.soft_histogram(out)[0]
    before, after = _kl(ht, hs), _kl(ht, ho)
    assert after < 0.25 * before, (before, after)
    psnr = lambda a, b: float(-10 * torch.log10(((a - b) ** 2).mean()))  # noqa: E731
    assert psnr(out, src) > psnr(edited, src) + 5.0


def test_lut_replays_the_transport_of_the_bins() -> None:
    """The 33³ lattice holds every 16³ bin centre, so the LUT reproduces the transported bins exactly."""
    img = torch.from_numpy(smooth_photo(3)).permute(2, 0, 1)[None].float() / 255
    target = synth.edit_saturation(img, torch.Generator().manual_seed(2), 1.0).clamp(0, 1)
    hs, ht = H.soft_histogram(img)[0], H.soft_histogram(target)[0]
    centres = H.bin_centres(16).numpy()
    ws, wt = hs.reshape(-1).double().numpy(), ht.reshape(-1).double().numpy()
    keep_s, keep_t = ws > 1e-7, wt > 1e-7
    table, moved = H.idt_lut(centres[keep_s], ws[keep_s], centres[keep_t], wt[keep_t], size=33)
    src = torch.from_numpy(centres[keep_s].T.copy()).reshape(1, 3, -1, 1)
    via_lut = apply_lut_torch(src, table).reshape(3, -1).T.numpy()
    assert np.abs(via_lut - np.clip(moved, 0, 1)).max() < 1e-5
    assert np.abs(table - H.transfer_lut(hs, ht)).max() < 1e-6


def test_mkl_matches_mean_and_covariance() -> None:
    rng = np.random.default_rng(1)
    source = rng.normal(0.4, 0.1, size=(2000, 3)) @ np.array([[1, 0.2, 0], [0, 1, 0.3], [0.1, 0, 1]])
    target = rng.normal(0.6, 0.05, size=(2000, 3))
    w = np.ones(2000)
    table = H.mkl_lut(source, w, target, w, size=5)  # affine, so a coarse lattice is exact
    lattice = identity_lattice(5).reshape(-1, 3)
    # recover the affine map from the lattice and push the source samples through it
    a, *_ = np.linalg.lstsq(np.c_[lattice, np.ones(len(lattice))], table.reshape(-1, 3), rcond=None)
    mapped = np.c_[source, np.ones(len(source))] @ a
    assert np.allclose(mapped.mean(0), target.mean(0), atol=1e-4)
    assert np.allclose(np.cov(mapped.T), np.cov(target.T), atol=2e-4)
    # the histogram mode takes the map the mkl LUT holds, without the LUT
    img = torch.from_numpy(smooth_photo(3)).permute(2, 0, 1)[None].float() / 255
    hs, ht = H.soft_histogram(img)[0], H.soft_histogram(img.pow(1.3))[0]
    table, affine = H.transfer_lut(hs, ht, "mkl"), H.mkl_map(hs, ht)
    assert affine[0].shape == (3, 3) and affine[1].shape == (3,)
    np.testing.assert_array_equal(table, H.affine_lut(*affine, table.shape[0]))
    with pytest.raises(ValueError, match="unknown transfer"):
        H.transfer_lut(hs, ht, "sinkhorn")


def test_untrained_histogram_net_predicts_its_input() -> None:
    net = H.HistogramNet(bins=8, widths=(4, 8, 8))
    img = torch.rand(2, 3, 16, 16)
    h = H.soft_histogram(img, 8)
    pred = net.predict(h)
    assert pred.shape == h.shape
    assert torch.allclose(pred.sum(dim=(1, 2, 3)), torch.ones(2))
    assert _kl(h[0], pred[0]) < 0.05  # the floor EMPTY adds a little mass to empty bins


# ---- the recipe predictor -----------------------------------------------------------------------


def test_predictor_outputs_stay_in_range_even_with_wild_weights() -> None:
    torch.manual_seed(0)
    model = RecipePredictor(side=32, width=8, hidden=16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 5.0)
    values = model(torch.rand(8, 3, 32, 32))
    for j, name in enumerate(model.names):
        param = get_param(name)
        assert float(values[:, j].min()) >= param.minimum - 1e-6, name
        assert float(values[:, j].max()) <= param.maximum + 1e-6, name
    assert model.names == PREDICTED and all(get_param(n).stage == "global" for n in PREDICTED)


def test_untrained_predictor_is_the_identity_recipe() -> None:
    model = RecipePredictor(side=32, width=8, hidden=16)
    params = model.predict(torch.rand(3, 40, 50))[0]
    assert all(v == pytest.approx(get_param(n).neutral) for n, v in params.items())


def test_predictor_with_a_prior_sees_and_returns_it(tmp_path: Path) -> None:
    model = RecipePredictor(side=32, width=8, hidden=16, prior={"auto_contrast": 1.0})
    flat = 0.3 + 0.4 * torch.rand(1, 3, 40, 50, generator=torch.Generator().manual_seed(2))
    seen = model.prepare(flat)
    assert float(seen.amin()) < 0.01 and float(seen.amax()) > 0.99  # stretched before the network
    params = model.predict(flat)[0]
    assert params["auto_contrast"] == 1.0 and set(params) == {"auto_contrast", *model.names}
    again = load_predictor(save_model(model, model.config, tmp_path / "p.safetensors"))
    assert again.prior == {"auto_contrast": 1.0} and again.predict(flat) == model.predict(flat)
    assert RecipePredictor(side=32, width=8, hidden=16).prepare(flat) is flat  # no prior: as it is
    with pytest.raises(ValueError, match="'pre' filters only"):
        RecipePredictor(side=32, width=8, hidden=16, prior={"exposure": 1.0})


def test_histogram_lut_after_a_prior_is_one_lut_for_the_whole_edit() -> None:
    from lib_enhancer.filters.pipeline import apply_filters, auto_of
    from lib_enhancer.learned.modes import _after_prior
    from lib_enhancer.lut import apply_lut_torch, identity_lattice

    x = 0.25 + 0.5 * torch.rand(1, 3, 30, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    prior = {"auto_contrast": 1.0}
    transport = 0.1 + 0.8 * identity_lattice(17)[..., [1, 2, 0]]  # channel-mixing: exact in a LUT
    composed, alone = _after_prior(transport, prior, auto_of(x))
    expected = apply_lut_torch(apply_filters(x, prior), transport)
    torch.testing.assert_close(apply_lut_torch(x, composed), expected, atol=5e-4, rtol=0)
    torch.testing.assert_close(apply_lut_torch(x, alone), apply_filters(x, prior), atol=5e-4, rtol=0)
    # an affine transport (mkl) composes without a lookup: the same LUT
    a = torch.tensor([[0.9, 0.2, -0.1], [0.05, 1.1, 0.0], [-0.2, 0.1, 1.3]], dtype=torch.float64)
    b = torch.tensor([0.02, -0.05, 0.1], dtype=torch.float64)
    affine_table = H.affine_lut(a, b, 17)
    via_lookup, _ = _after_prior(affine_table, prior, auto_of(x))
    direct, direct_alone = _after_prior((a, b), prior, auto_of(x), size=17)
    np.testing.assert_allclose(direct, via_lookup, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(direct_alone, alone)
    assert direct.min() >= 0.0 and direct.max() <= 1.0 and (via_lookup == 1.0).any()  # clamped alike
    net = H.HistogramNet(bins=8, widths=(4, 8, 8), prior=prior)
    assert H.HistogramNet(bins=8, widths=(4, 8, 8)).prior == {}  # no prior by default
    assert net.config["prior"] == prior and torch.equal(net.prepare(x), apply_filters(x, prior))


def test_saved_and_loaded_models_give_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = RecipePredictor(side=32, width=8, hidden=16)
    with torch.no_grad():
        model.out.weight.normal_(0, 0.5)
    path = save_model(model, model.config, tmp_path / "m.safetensors")
    again = load_predictor(path)
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), again(x))
    net = H.HistogramNet(bins=8, widths=(4, 8, 8))
    with torch.no_grad():
        net.out.weight.normal_(0, 0.5)
    path = save_model(net, net.config, tmp_path / "h.safetensors")
    h = H.soft_histogram(torch.rand(2, 3, 16, 16), 8)
    assert torch.equal(net.predict(h), H.load_histogram_net(path).predict(h))
    with pytest.raises(ValueError, match="not a recipe model"):
        load_predictor(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        read_model(tmp_path / "junk.safetensors")


def test_weights_that_do_not_fit_the_config_give_a_one_line_error(tmp_path: Path) -> None:
    model = RecipePredictor(side=32, width=8, hidden=16, prior={"auto_contrast": 1.0})
    cases = {
        "wide.safetensors": ({**model.config, "width": 16}, "weights do not match the config .wrong shape: "),
        "nameless.safetensors": (
            {k: v for k, v in model.config.items() if k != "names"},
            "bad recipe model config",
        ),
    }
    for name, (config, message) in cases.items():
        path = save_model(model, config, tmp_path / name)
        with pytest.raises(ValueError, match=message) as info:
            load_predictor(path)
        assert "\n" not in str(info.value) and name in str(info.value), str(info.value)
    save_model(
        torch.nn.ParameterDict({"extra": torch.nn.Parameter(torch.zeros(1))}),
        model.config,
        tmp_path / "x.safetensors",
    )
    with pytest.raises(ValueError, match=r"missing: .*unexpected: extra"):
        load_predictor(tmp_path / "x.safetensors")


# ---- training -----------------------------------------------------------------------------------


def _tiny(kind: str, out: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        kind=kind, out_dir=str(out), steps=steps, batch=8, lr=3e-3, photo_side=96, thumb_side=32, bins=8,
        val_every=steps, checkpoint_every=10, val_samples=16, threads=1,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["recipe", "histogram"])
def test_training_reduces_the_loss_and_writes_its_files(kind: str, photo_dir: Path, tmp_path: Path) -> None:
    sources = P.folder_photos(photo_dir)
    # the histogram net starts from the auto-contrasted photo (its prior): less to learn, more steps
    card = train(
        _tiny(kind, tmp_path, {"recipe": 40, "histogram": 80}[kind]), sources[:3], sources[3:], progress=False
    )
    name = {"recipe": "recipe_predictor", "histogram": "histogram_net"}[kind]
    for suffix in (".safetensors", ".json", "_loss.png"):
        assert (tmp_path / f"{name}{suffix}").is_file()
    assert json.loads((tmp_path / f"{name}.json").read_text())["training_photos"] == ["p0", "p1", "p2"]
    state = torch.load(tmp_path / f"{kind}.checkpoint.pt", weights_only=False)
    loss = state["history"]["loss"]
    assert np.mean(loss[-10:]) < 0.9 * np.mean(loss[:10]), loss
    assert card["validation_photos"] == ["p3"]


def test_resume_continues_exactly(photo_dir: Path, tmp_path: Path) -> None:
    sources = P.folder_photos(photo_dir)
    straight = train(_tiny("recipe", tmp_path / "a", 20), sources, [], progress=False)
    cfg = _tiny("recipe", tmp_path / "b", 20)
    partial = train(cfg, sources, [], progress=False, stop_after=10)  # as if interrupted
    assert partial["steps_done"] == 10
    resumed = train(cfg, sources, [], progress=False)
    a, _ = read_model(tmp_path / "a" / "recipe_predictor.safetensors")
    b, _ = read_model(tmp_path / "b" / "recipe_predictor.safetensors")
    assert straight["validation"] == resumed["validation"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


# ---- shipped weights, API, CLI ------------------------------------------------------------------


def test_shipped_weights_are_small_and_load() -> None:
    from lib_enhancer.learned.histogram import DEFAULT_FILE as HIST
    from lib_enhancer.learned.predictor import DEFAULT_FILE as PRED

    for path in (PRED, HIST):
        assert path.is_file(), path
        assert path.stat().st_size < 4e6
        card = json.loads(path.with_suffix(".json").read_text())
        assert not set(card["training_photos"]) & set(P.HELD_OUT), "benchmark photos leaked into training"
    load_predictor()
    H.load_histogram_net()


@pytest.mark.parametrize("mode", ["predict", "histogram"])
def test_enhance_learned_modes(mode: str) -> None:
    from lib_enhancer.api import enhance

    dull = (smooth_photo(5, 60, 80).astype(np.float64) * 0.5 + 60).astype(np.uint8)
    result = enhance(Image.fromarray(dull), mode=mode, verify=False)  # the model's proposal as it is
    assert isinstance(result.image, Image.Image) and result.image.size == (80, 60)
    assert result.recipe.info["mode"] == mode
    for name, value in result.recipe.params.items():
        param = get_param(name)
        assert param.minimum <= value <= param.maximum
    assert (result.lut is not None) == (mode == "histogram")
    verified = enhance(dull, mode=mode)  # the scorer's pick: a LUT only when it kept some of one
    kept_start = "start point" in verified.message
    assert kept_start or "of the proposal" in verified.message
    assert (verified.lut is not None) == (mode == "histogram" and not kept_start)
    half = enhance(dull, mode=mode, strength=0.0)
    assert np.abs(half.image.astype(int) - dull.astype(int)).max() <= 1  # strength 0: unchanged


def test_histogram_recipe_starts_from_the_prior_and_renders_the_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The histogram mode's editable recipe is its start point (auto contrast) plus fitted global
    parameters: re-applied like any recipe it gives the LUT's image as closely as its reported fit
    error says, closer than fitting the whole LUT with global parameters alone; a fit left far off
    is retried that way and the closer recipe kept."""
    from lib_enhancer.api import apply, enhance
    from lib_enhancer.learned.modes import fit_recipe_to_lut, with_fitted_recipe
    from lib_enhancer.render import array_to_tensor

    cast = (smooth_photo(7, 60, 80).astype(np.float64) * [0.5, 0.45, 0.35] + [60, 50, 40]).astype(np.uint8)
    result = enhance(cast, mode="histogram", verify=False)
    assert result.lut is not None and result.recipe.params["auto_contrast"] == 1.0
    wanted = np.asarray(result.image, dtype=np.float64)

    def rendered_error(params: dict[str, float]) -> float:
        return float(np.abs(np.asarray(apply(params, cast), dtype=np.float64) - wanted).mean())

    error = rendered_error(result.recipe.params)
    assert abs(error - 255 * result.recipe.info["recipe_fit_error"]) < 1.0
    global_only, _ = fit_recipe_to_lut(result.lut, array_to_tensor(cast))
    assert "auto_contrast" not in global_only
    assert error < rendered_error(global_only)

    preview = array_to_tensor(cast)
    edit = modes.histogram_edit(preview, fit_recipe=False)
    start_fit = with_fitted_recipe(edit, preview)
    monkeypatch.setattr(modes, "FIT_FALLBACK_ERROR", 0.0)  # every fit is retried on the whole LUT
    retried = with_fitted_recipe(edit, preview)
    _, whole_error = fit_recipe_to_lut(edit.lut, preview)
    best = min(start_fit.info["recipe_fit_error"], round(whole_error, 5))
    assert retried.info["recipe_fit_error"] == best
    assert ("auto_contrast" in retried.params) == (best == start_fit.info["recipe_fit_error"])
    no_start = with_fitted_recipe(replace(edit, start={}), preview)  # no prior: the whole LUT
    assert (
        no_start.info["recipe_fit_error"] == round(whole_error, 5) and "auto_contrast" not in no_start.params
    )


def test_histogram_recipe_starts_from_the_curves_the_render_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large photo's recipe is re-applied with auto curves read from the photo, not from the
    preview: the fit starts from the curves it is given, and enhance() gives it the render's."""
    from lib_enhancer.api import apply, enhance
    from lib_enhancer.filters.pipeline import AUTO_KEY, apply_filters, auto_of
    from lib_enhancer.learned.modes import with_fitted_recipe
    from lib_enhancer.render import auto_curves, downscale

    big = (smooth_photo(7, 420, 1300).astype(np.float64) * [0.5, 0.45, 0.35] + [60, 50, 40]).astype(np.uint8)
    preview = downscale(big, 160)
    edit = modes.histogram_edit(preview, fit_recipe=False)
    other = auto_of(preview * 0.7 + 0.1)  # curves unlike the preview's own
    fitted = with_fitted_recipe(edit, preview, curves=other)
    with torch.no_grad():
        rendered = apply_filters(preview, {**fitted.params, AUTO_KEY: other}, stages=("pre", "global"))
        error = float((rendered - apply_lut_torch(preview, edit.lut)).abs().mean())
    assert abs(error - fitted.info["recipe_fit_error"]) * 255 < 0.5

    given: list[object] = []
    real = modes.with_fitted_recipe

    def spy(*args, **kwargs):
        given.append(kwargs.get("curves"))
        return real(*args, **kwargs)

    monkeypatch.setattr(modes, "with_fitted_recipe", spy)
    result = enhance(big, mode="histogram", verify=False)
    assert given and all(torch.equal(a, b) for a, b in zip(given[-1], auto_curves(big), strict=True))
    wanted = np.asarray(result.image, dtype=np.float64)
    full_error = float(np.abs(np.asarray(apply(result.recipe, big), dtype=np.float64) - wanted).mean())
    assert abs(full_error - 255 * result.recipe.info["recipe_fit_error"]) < 1.0


def test_learned_warm_start_for_the_optimizer() -> None:
    from lib_enhancer.api import enhance

    dull = (smooth_photo(6, 48, 64).astype(np.float64) * 0.4 + 40).astype(np.uint8)
    result = enhance(dull, init="predict", steps=3, restarts=2)
    assert result.recipe.info["mode"] == "gradient"
    with pytest.raises(ValueError, match="unknown learned mode"):
        enhance(dull, init="nope", steps=1)


def test_cli_histogram_mode_writes_cube_and_train_command(photo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lib_enhancer"]
    run = subprocess.run(
        [*cmd, "enhance", str(photo_dir / "p0.png"), "-o", str(out), "--mode", "histogram", "--no-verify", "-q"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert len(list(out.glob("*.cube"))) == 1 and len(list(out.glob("*.png"))) == 1
    run = subprocess.run(
        [*cmd, "train", "recipe", "--photos", str(photo_dir), "-o", str(tmp_path / "m"), "--steps", "3",
         "--batch", "4", "--threads", "1", "-q"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    card = json.loads((tmp_path / "m" / "recipe_predictor.json").read_text())
    assert card["trained_with"].startswith("python -m lib_enhancer train recipe --photos")
    run = subprocess.run(
        [*cmd, "enhance", str(photo_dir / "p1.png"), "-o", str(out), "--mode", "predict",
         "--model", str(tmp_path / "m" / "recipe_predictor.safetensors"), "-q"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr


# ---- the scorer's check of a learned proposal -----------------------------------------------------


def _edit_with_lut() -> LearnedEdit:
    start_lut = identity_lattice(9).astype(np.float32)
    lut = np.clip(start_lut * 0.8 + 0.1, 0, 1).astype(np.float32)
    return LearnedEdit({"contrast": 0.4}, lut, {"model": "t"}, {"auto_contrast": 1.0}, start_lut)


def test_partial_edit_moves_from_the_start_point_to_the_proposal() -> None:
    from lib_enhancer.learned.modes import partial_edit

    edit = LearnedEdit(
        {"saturation": 0.6, "exposure": 1.0, "auto_contrast": 0.0}, None, {}, {"auto_contrast": 1.0}
    )
    assert partial_edit(edit, 1.0) is edit
    start = partial_edit(edit, 0.0).params
    assert start["saturation"] == get_param("saturation").neutral and start["exposure"] == 0.0
    assert start["auto_contrast"] == 1.0  # the start point, not neutral
    half = partial_edit(edit, 0.5)
    assert half.params["exposure"] == pytest.approx(0.5)
    assert half.params["auto_contrast"] == pytest.approx(0.5)
    assert half.info["fraction"] == 0.5 and "fraction" not in edit.info
    further = partial_edit(edit, 1.5)  # beyond the proposal, each parameter inside its range
    assert further.params["exposure"] == pytest.approx(1.5) and further.info["fraction"] == 1.5
    assert further.params["saturation"] == pytest.approx(0.9)
    assert partial_edit(edit, 2.0).params["exposure"] == 2.0
    edge = LearnedEdit({"exposure": 0.9 * get_param("exposure").maximum}, None, {}, {})
    assert partial_edit(edge, 2.0).params["exposure"] == get_param("exposure").maximum
    with pytest.raises(ValueError, match="fraction must be in"):
        partial_edit(edit, 2.5)
    lut_edit = _edit_with_lut()
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        partial_edit(lut_edit, 1.5)  # a LUT is blended, never extrapolated
    zero = partial_edit(lut_edit, 0.0)
    assert zero.lut is None and zero.params == {"auto_contrast": 1.0}  # the exact prior, no LUT
    mid = partial_edit(lut_edit, 0.5).lut
    assert mid is not None
    np.testing.assert_allclose(mid, (lut_edit.lut + lut_edit.start_lut) / 2, atol=1e-6)


def test_verified_edit_keeps_the_start_unless_more_scores_higher() -> None:
    from lib_enhancer.learned.modes import verified_edit, verify_candidates

    edit = LearnedEdit({"exposure": 1.0}, None, {}, {})
    by_exposure = {0.0: 1.0, 0.5: 1.04, 1.0: 1.02}

    def pick(threshold: float, fractions: tuple[float, ...] = (0.0, 0.5, 1.0)) -> tuple[LearnedEdit, float]:
        candidates = verify_candidates(edit, fractions)
        scores = [by_exposure[round(c.params["exposure"], 3)] for c in candidates]
        return verified_edit(candidates, scores, threshold)

    chosen, value = pick(threshold=0.01)
    assert chosen.info["fraction"] == 0.5 and value == 1.04 and chosen.params["exposure"] == 0.5
    chosen, value = pick(threshold=0.05)  # gain below the threshold: the start
    assert chosen.info["fraction"] == 0.0 and value == 1.0 and chosen.params["exposure"] == 0.0
    by_exposure[1.0] = 2.0
    chosen, _ = pick(threshold=0.05)
    assert chosen.info["fraction"] == 1.0 and chosen.params["exposure"] == 1.0
    by_exposure[1.5] = 2.5  # offered a step beyond the proposal, the scorer can take it
    chosen, value = pick(threshold=0.05, fractions=(0.0, 0.5, 1.0, 1.5))
    assert chosen.info["fraction"] == 1.5 and value == 2.5 and chosen.params["exposure"] == 1.5
    with pytest.raises(ValueError, match="start at 0"):
        verify_candidates(edit, (0.5, 1.0))
    with pytest.raises(ValueError, match="a score for each"):
        verified_edit(verify_candidates(edit), [1.0, 2.0], 0.0)


def test_the_scorer_judges_a_batch_image_by_image() -> None:
    """The API scores the input and every candidate in one batched call: each score must be the one
    the image gets alone (also with a reference set, as the learned modes set it)."""
    from lib_enhancer.scorers import create_scorer

    gen = torch.Generator().manual_seed(5)
    base = torch.rand(1, 3, 40, 60, generator=gen)
    cast = torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    images = torch.cat([base, 0.3 * base, 0.4 + 0.2 * base, base * cast])  # as is, dark, flat, cast
    scorer = create_scorer("natural")
    with torch.no_grad():
        for reference in (None, images[1:2]):
            scorer.set_reference(reference)
            together = scorer(images)
            alone = torch.cat([scorer(images[i : i + 1]) for i in range(4)])
            torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
            assert len(set(together.tolist())) == 4  # four different images, four different scores


def test_shipped_verify_fractions() -> None:
    """Each learned mode compares its start point first; only a recipe is taken beyond the proposal."""
    from lib_enhancer.learned.modes import LEARNED_MODES, MAX_FRACTION, VERIFY_FRACTIONS

    assert set(VERIFY_FRACTIONS) == set(LEARNED_MODES)
    for mode, fractions in VERIFY_FRACTIONS.items():
        assert fractions[0] == 0.0 and list(fractions) == sorted(fractions) and len(fractions) >= 2
        assert max(fractions) <= (MAX_FRACTION if mode == "predict" else 1.0)
    # bench/learned_cv.py: the whole recipe (not half, not 1.5x); half the LUT's edit (not all of it)
    assert VERIFY_FRACTIONS == {"predict": (0.0, 1.0), "histogram": (0.0, 0.5)}


def test_enhance_verify_follows_a_lower_is_better_scorer(monkeypatch: pytest.MonkeyPatch) -> None:
    from lib_enhancer import api
    from lib_enhancer.scorers.registry import ScorerInfo

    dull = (smooth_photo(7, 48, 64).astype(np.float64) * 0.5 + 60).astype(np.uint8)
    edit = LearnedEdit({"exposure": 1.0}, None, {"model": "t"}, {})
    monkeypatch.setattr(api, "_learned_edit", lambda *a, **k: edit)

    class Darkness(torch.nn.Module):  # lower is better: rewards brightening
        info = ScorerInfo("darkness", "1 - mean", (0.0, 1.0), higher_is_better=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 1.0 - x.mean(dim=(1, 2, 3))

    kept = api.enhance(dull, mode="predict", scorer=Darkness())
    assert kept.recipe.params["exposure"] == pytest.approx(1.0) and "kept 100%" in kept.message
    monkeypatch.setitem(modes.VERIFY_FRACTIONS, "predict", (0.0, 0.5, 1.0, 1.5))  # offered a step beyond
    further = api.enhance(dull, mode="predict", scorer=Darkness())
    assert further.recipe.params["exposure"] == pytest.approx(1.5) and "further (150%" in further.message
    assert kept.score_after < kept.score_before
    brightness = Darkness()
    brightness.forward = lambda x: x.mean(dim=(1, 2, 3))  # now darker is better: keep the start
    start = api.enhance(dull, mode="predict", scorer=brightness)
    assert start.recipe.params.get("exposure", 0.0) == 0.0 and "start point" in start.message
    as_proposed = api.enhance(dull, mode="predict", scorer=brightness, verify=False)
    assert as_proposed.recipe.params["exposure"] == pytest.approx(1.0) and "kept" not in as_proposed.message


def test_recipe_fitted_to_a_lut_reproduces_it() -> None:
    """The histogram mode's editable recipe: fitted to a LUT made from a known recipe, it gives the
    same colours (mean error under 1 level on random colours, as reported) and stays inside the
    parameter ranges; an identity LUT gives the neutral recipe."""
    from lib_enhancer.filters.pipeline import apply_filters
    from lib_enhancer.learned.modes import FIT_NAMES, fit_recipe_to_lut
    from lib_enhancer.lut import apply_lut_torch, build_lut

    known = {"exposure": 0.3, "contrast": 0.2, "temperature": -0.15, "saturation": 0.25, "gamma": 1.1}
    table = build_lut(known, 33)
    image = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(3))
    params, error = fit_recipe_to_lut(table, image)
    assert tuple(params) == FIT_NAMES and not any(
        n.startswith(("black_", "white_", "gamma_")) for n in params
    )
    assert all(get_param(n).minimum <= v <= get_param(n).maximum for n, v in params.items())
    with torch.no_grad():
        fitted = apply_filters(image, params, stages=("global",))
        wanted = apply_lut_torch(image, table)
    measured = float((fitted - wanted).abs().mean())
    assert measured * 255 < 1.0, measured * 255
    assert abs(error - measured) * 255 < 0.5  # the reported error is the real one
    # far closer than doing nothing, and the parameters moved towards the known recipe
    assert float((image - wanted).abs().mean()) > 5 * measured
    assert params["exposure"] > 0.1 and params["saturation"] > 0.2 and params["temperature"] < -0.1
    neutral, identity_error = fit_recipe_to_lut(build_lut({}, 17), image)
    assert identity_error * 255 < 0.1
    assert all(abs(v - get_param(n).neutral) < 0.02 for n, v in neutral.items()), neutral


def test_blend_lut_moves_from_the_identity_to_the_table() -> None:
    from lib_enhancer.lut import blend_lut

    ident = identity_lattice(5).astype(np.float32)
    table = np.clip(ident**2 + 0.05, 0, 1).astype(np.float32)
    np.testing.assert_allclose(blend_lut(table, 0.0), ident)
    np.testing.assert_array_equal(blend_lut(table, 1.0), table)
    np.testing.assert_allclose(blend_lut(table, 0.25), ident + 0.25 * (table - ident), atol=1e-7)
    with pytest.raises(ValueError, match="strength"):
        blend_lut(table, 1.5)


@pytest.mark.parametrize(
    ("cin", "cout", "side", "stride"), [(4, 8, 16, 1), (8, 16, 16, 2), (16, 32, 7, 2), (3, 5, 5, 1)]
)
def test_histogram_net_convolution_as_2d_equals_conv3d(cin: int, cout: int, side: int, stride: int) -> None:
    """Inference runs the 3x3x3 convolutions as one 2-D convolution of stacked depth taps: the same
    values as torch's conv3d (other summation order), and training keeps conv3d's own path."""
    gen = torch.Generator().manual_seed(cin * side + stride)
    x = torch.randn(2, cin, side, side + 1, side + 2, generator=gen)
    conv = H.Conv3x3x3(cin, cout, stride)
    want = torch.nn.functional.conv3d(x, conv.weight, conv.bias, stride=stride, padding=1)
    with torch.no_grad():
        assert torch.equal(conv(x), want)  # training's validation (no gradient): conv3d itself
        conv.as_2d = True
        got = conv(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.equal(conv(x), want)  # with gradients: conv3d itself (training reproduces the weights)
    net = H.HistogramNet()
    assert all(type(m) is not torch.nn.Conv3d or m.kernel_size == (1, 1, 1) for m in net.modules())
    hist = H.soft_histogram(torch.rand(1, 3, 20, 20, generator=gen), net.bins)
    with torch.no_grad():
        plain = net(hist).exp()
    torch.testing.assert_close(net.predict(hist), plain, atol=1e-6, rtol=1e-5)  # predict: the 2-D form
    assert not any(getattr(m, "as_2d", False) for m in net.modules())  # and only while it runs


def test_a_partial_builtin_photo_set_is_named_with_its_install_commands() -> None:
    def photo(name: str) -> tuple[str, object]:
        return (name, lambda: None)

    full = [photo(f"{g}/x") for g in P.SOURCE_PACKAGES]
    assert P.missing_sources(full) == []
    partial = [photo("mate/Aqua"), photo("skimage/coffee"), photo("sklearn/flower")]
    missing = P.missing_sources(partial)
    assert missing == [P.SOURCE_PACKAGES["lomiri"], P.SOURCE_PACKAGES["plasma"]]
    assert all(m.startswith("apt-get install") for m in missing)
