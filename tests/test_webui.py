"""The sd-webui glue against a stub of the webui's ``modules`` (A1111 1.10 and Forge flavours).

Most hook tests replace the optimizer by a fast fake that applies a real, seed-dependent recipe,
so the glue (argument order, infotext, image replacement, error handling) is checked exactly;
a few tests run the real optimizer with a tiny differentiable scorer.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import runpy
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import synthetic_photo
from PIL import Image

from lib_enhancer.api import Result, apply
from lib_enhancer.optimize import Step
from lib_enhancer.recipe import Recipe
from lib_enhancer.scorers.registry import ScorerInfo
from lib_enhancer.webui import controls, engine, extras, generation, gradio_compat, options, tab_logic
from lib_enhancer.webui.host import StandaloneHost, WebuiHost, get_host, set_host

_spec = importlib.util.spec_from_file_location(
    "nie_webui_harness", Path(__file__).parent / "webui_stub" / "harness.py"
)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

HAS_GRADIO = importlib.util.find_spec("gradio") is not None
needs_gradio = pytest.mark.skipif(not HAS_GRADIO, reason="gradio is not installed")
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Fixtures and fakes


@pytest.fixture(params=["a1111", "forge"])
def webui(request, tmp_path):
    with harness.webui_env(request.param, models_path=tmp_path / "models") as env:
        yield env


@pytest.fixture
def a1111(tmp_path):
    with harness.webui_env("a1111", models_path=tmp_path / "models") as env:
        yield env


def pil(seed: int = 0, h: int = 40, w: int = 56) -> Image.Image:
    return Image.fromarray(synthetic_photo(h, w, seed))


def fake_recipe(options_: engine.RunOptions) -> Recipe:
    """A real recipe that depends on the seed and strength (so every image gets its own)."""
    params = {"exposure": round(0.1 + 0.05 * (options_.seed % 7), 4), "contrast": 0.3}
    return Recipe(params, {"scorer": options_.scorer, "seed": options_.seed}).with_strength(options_.strength)


@pytest.fixture
def fast(monkeypatch):
    """Replace the engine's call of lib_enhancer.api.enhance by a fake; returns the RunOptions it saw."""
    calls: list[engine.RunOptions] = []

    def fake_gradient(image, scorer, options_, device, on_step):
        calls.append(options_)
        recipe = fake_recipe(options_)
        history = []
        for i in range(3):
            step = Step(i, 1.0 + i, 1.0 + i, dict(recipe.params), 0.01 * i)
            history.append(step)
            if on_step(step):
                break
        return Result(apply(recipe, image), recipe, 1.0, 3.0, history, False, "fake")

    monkeypatch.setattr(engine, "_enhance", fake_gradient)
    monkeypatch.setattr(engine, "get_scorer", lambda spec, text, host, device: SimpleNamespace(spec=spec))
    return calls


class Brightness(torch.nn.Module):
    """Tiny differentiable scorer: prefers a mean brightness of 0.6."""

    info = ScorerInfo(
        name="test-brightness", description="test", score_range=(-1.0, 0.0), judges_detail=False
    )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x.mean(dim=(1, 2, 3)) - 0.6) ** 2)


class Broken(torch.nn.Module):
    info = ScorerInfo(name="test-broken", description="test", score_range=(0.0, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("scorer exploded")


def gen_args(**values) -> list:
    """Positional alwayson_scripts args in GEN_ARGS order."""
    base = {
        "enabled": True,
        "scorer": "natural",
        "mode": "gradient",
        "steps": 5,
        "strength": 0.8,
        "seed": -1,
        "keep_original": False,
        "text": "",
    }
    base.update(values)
    return [base[n] for n in options.GEN_ARG_NAMES]


def generate(env, outputs, args, *, img2img=False, batch_size=None, n_iter=1, save=False, **kw):
    runner = env.scripts.ScriptRunner(is_img2img=img2img)
    script = runner.alwayson_scripts[0]
    cls = (
        env.processing.StableDiffusionProcessingImg2Img
        if img2img
        else env.processing.StableDiffusionProcessingTxt2Img
    )
    p = cls(
        outputs,
        batch_size=batch_size or len(outputs),
        n_iter=n_iter,
        scripts_runner=runner,
        do_not_save_samples=not save,
        **kw,
    )
    p.script_args_by_script = {script: list(args)}
    return p, env.processing.process_images(p), runner


# ---------------------------------------------------------------------------------------------
# Loading, registration, imports


def test_scripts_file_registers_exactly_the_expected_classes(webui):
    names = [d.script_class.__name__ for d in webui.scripts.scripts_data]
    post = [d.script_class.__name__ for d in webui.scripts.postprocessing_scripts_data]
    assert sorted(names) == ["NeuralImageEnhancer", "NeuralImageEnhancerImg2Img"]
    assert post == ["NeuralImageEnhancerExtras"]
    cbs = webui.script_callbacks.callback_map
    for category in ("ui_settings", "ui_tabs", "app_started", "script_unloaded"):
        assert [c.name for c in cbs[f"callbacks_{category}"]] == ["neural_image_enhancer"], category
    assert isinstance(get_host(), WebuiHost)

    txt = webui.scripts.ScriptRunner(is_img2img=False)
    img = webui.scripts.ScriptRunner(is_img2img=True)
    assert [type(s).__name__ for s in txt.alwayson_scripts] == ["NeuralImageEnhancer"]
    assert txt.selectable_scripts == []
    assert [type(s).__name__ for s in img.selectable_scripts] == ["NeuralImageEnhancerImg2Img"]
    assert {s.title().lower() for s in img.scripts} == {
        "neural image enhancer",
        "neural image enhancer (img2img)",
    }
    assert txt.alwayson_scripts[0].elem_id("enabled") == "script_txt2img_neural_image_enhancer_enabled"


def test_one_uniquely_named_entry_file():
    entries = sorted(p.name for p in (REPO / "scripts").iterdir() if p.suffix == ".py")
    assert entries == ["neural_image_enhancer.py"]
    assert not (REPO / "scripts" / "__init__.py").exists()
    text = (REPO / "scripts" / "neural_image_enhancer.py").read_text()
    assert "from scripts" not in text and "from modules.scripts import" not in text


def test_webui_glue_imports_no_webui_or_gradio():
    mods = ", ".join(
        f"lib_enhancer.webui.{m}"
        for m in (
            "options",
            "host",
            "engine",
            "controls",
            "generation",
            "extras",
            "settings",
            "setup",
            "tab",
            "tab_logic",
            "routes",
            "gradio_compat",
            "app",
        )
    )
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in '{mods}'.split(', ')]; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('modules', 'launch', 'gradio', 'fastapi'));"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------------------------------------
# Settings and host


class FakeGr:
    class Checkbox: ...

    class Slider: ...

    class Dropdown: ...

    class Textbox: ...


def test_settings_section_and_resolution(webui, tmp_path):
    from lib_enhancer.webui import settings

    settings.register(webui.shared, gr=FakeGr)
    labels = webui.shared.opts.data_labels
    for s in options.SETTINGS:
        assert labels[s.key].section == options.SECTION
        assert labels[s.key].default == s.default
    webui.shared.opts.dumpjson()  # crashes on an option without a section
    scorer_args = labels["nie_scorer"].component_args
    assert callable(scorer_args) and "natural" in scorer_args()["choices"]

    host = WebuiHost()
    assert host.settings() == options.EnhancerSettings()
    assert host.models_dir() == Path(webui.paths.models_path) / "lib_enhancer"
    assert host.offline() is None
    webui.shared.opts.nie_steps = 12
    webui.shared.opts.nie_models_dir = str(tmp_path / "mine")
    assert host.settings().steps == 12 and host.models_dir() == tmp_path / "mine"
    webui.shared.cmd_opts.enhancer_models_dir = str(tmp_path / "flag")
    webui.shared.cmd_opts.enhancer_offline = True
    assert host.models_dir() == tmp_path / "flag" and host.offline() is True


def test_settings_fall_back_when_a_stored_value_is_bad(a1111, caplog):
    a1111.shared.opts.data["nie_steps"] = "many"
    with caplog.at_level(logging.WARNING, logger="lib_enhancer.webui"):
        assert WebuiHost().settings().steps == 40
    assert any("[Enhancer]" in r.getMessage() and "nie_steps" in r.getMessage() for r in caplog.records)


def test_device_honours_settings_and_cpu_flags(webui):
    host = WebuiHost()
    assert host.device() == "cpu"
    webui.devices.device = torch.device("cuda:0")  # a string only; nothing runs there
    assert host.device() == "cuda:0"
    webui.shared.cmd_opts.use_cpu = ["all"]  # Forge's get_device_for ignores this: the host must not
    assert host.device() == "cpu"
    webui.shared.cmd_opts.use_cpu = []
    webui.shared.cmd_opts.always_cpu = True  # Forge's CPU flag
    assert host.device() == "cpu"
    webui.shared.opts.nie_device = "cuda:1"
    assert host.device() == "cuda:1"


# ---------------------------------------------------------------------------------------------
# Generation hooks


def test_postprocess_image_replaces_images_and_writes_infotext(webui, fast):
    outputs = [pil(0), pil(1)]
    args = gen_args()
    p, processed, _ = generate(webui, outputs, args)
    assert len(processed.images) == 2
    for i, (before, after, text) in enumerate(
        zip(outputs, processed.images, processed.infotexts, strict=True)
    ):
        params = webui.infotext_utils.parse_generation_parameters(text)
        recipe = Recipe.from_json(params[options.KEY_RECIPE])
        assert recipe.info["seed"] == p.all_seeds[i]  # seed -1 = the image's generation seed
        assert np.array_equal(np.asarray(apply(recipe, before)), np.asarray(after))
        assert not np.array_equal(np.asarray(before), np.asarray(after))
        assert params[options.KEY_SCORE_BEFORE] == "1.0000" and params[options.KEY_SCORE_AFTER] == "3.0000"
        assert options.from_infotext(params) == options.config_from_args(args)
    first, second = (
        Recipe.from_json(webui.infotext_utils.parse_generation_parameters(t)[options.KEY_RECIPE])
        for t in processed.infotexts
    )
    assert first.params != second.params  # each image's own recipe, not the last one's
    assert [c.strength for c in fast] == [0.8, 0.8]
    assert webui.errors.reported == []


def test_disabled_script_leaves_the_generation_alone(a1111, fast):
    outputs = [pil(2)]
    _, processed, _ = generate(a1111, outputs, gen_args(enabled=False))
    assert fast == []
    assert np.array_equal(np.asarray(processed.images[0]), np.asarray(outputs[0]))
    assert "Enhancer" not in processed.infotexts[0]


@pytest.mark.parametrize("how", ["scorer raises", "unknown scorer"])
def test_failure_keeps_the_image_and_logs(webui, monkeypatch, caplog, how):
    if how == "scorer raises":
        monkeypatch.setattr(engine, "build_scorer", lambda spec, text, host, device: Broken())
        scorer = "natural"
    else:
        scorer = "no-such-scorer"
    outputs = [pil(3), pil(4)]
    with caplog.at_level(logging.ERROR, logger="lib_enhancer.webui"):
        p, processed, _ = generate(webui, outputs, gen_args(scorer=scorer, steps=2))
    for before, after, text in zip(outputs, processed.images, processed.infotexts, strict=True):
        assert np.array_equal(np.asarray(before), np.asarray(after))
        assert options.KEY_RECIPE not in text and "Steps: 20" in text
    messages = [r.getMessage() for r in caplog.records]
    expected = "scorer exploded" if how == "scorer raises" else "no-such-scorer"
    assert messages and all(m.startswith("[Enhancer]") for m in messages)
    assert any(expected in m for m in messages)
    assert any(expected in c for c in p.comments)
    assert webui.errors.reported == []  # handled by the glue, not by the webui's hook wrapper


def test_bad_api_arguments_are_reported_not_raised(a1111, fast, caplog):
    outputs = [pil(5)]
    with caplog.at_level(logging.ERROR, logger="lib_enhancer.webui"):
        _, processed, _ = generate(a1111, outputs, gen_args(steps="lots"))
    assert fast == []
    assert np.array_equal(np.asarray(processed.images[0]), np.asarray(outputs[0]))
    assert any("[Enhancer]" in m and "Steps" in m for m in caplog.messages)


def test_keep_original_returns_and_saves_it(a1111, fast):
    outputs = [pil(6), pil(7)]
    _, processed, _ = generate(a1111, outputs, gen_args(keep_original=True), save=True)
    assert len(processed.images) == 4 and len(processed.infotexts) == 4
    for original, kept in zip(outputs, processed.images[2:], strict=True):
        assert np.array_equal(np.asarray(original), np.asarray(kept))
    assert options.KEY_RECIPE in processed.infotexts[0]
    assert options.KEY_RECIPE not in processed.infotexts[2] and "Enhancer scorer" in processed.infotexts[2]
    suffixes = [s["suffix"] for s in a1111.images.saved]
    assert suffixes.count(generation.ORIGINAL_SUFFIX) == 2 and suffixes.count("") == 2


def test_memory_is_handed_back_between_batches(a1111, fast, monkeypatch):
    offloads = []
    monkeypatch.setitem(
        sys.modules,
        "lib_enhancer.scorers.clip",
        SimpleNamespace(offload_backbones=lambda: offloads.append(1)),
    )
    released = []
    real_release = engine.release
    monkeypatch.setattr(
        engine, "release", lambda host, force=False: (released.append(1), real_release(host, force=force))
    )
    gc_before = a1111.devices.gc_calls
    generate(a1111, [pil(8), pil(9)], gen_args(), batch_size=1, n_iter=2)
    assert len(released) == 2  # before the second batch, and at the end
    assert len(offloads) == 2 and a1111.devices.gc_calls >= gc_before + 2
    a1111.shared.opts.nie_keep_on_gpu = True
    offloads.clear()
    generate(a1111, [pil(8)], gen_args())
    assert offloads == []


def test_img2img_script_enhances_results_or_init(a1111, fast):
    runner = a1111.scripts.ScriptRunner(is_img2img=True)
    alwayson = runner.alwayson_scripts[0]
    selectable = runner.selectable_scripts[0]
    script_args = ["results", "natural", "gradient", 4, 1.0, 5, False, ""]
    assert len(script_args) == len(generation.IMG2IMG_ARG_NAMES)

    out, init = pil(10), pil(11)
    p = a1111.processing.StableDiffusionProcessingImg2Img([out], init_images=[init], scripts_runner=runner)
    p.script_args_by_script = {alwayson: [False]}  # the accordion is off: the dropdown script drives it
    processed = runner.run(p, selectable, script_args)
    assert options.KEY_RECIPE in processed.infotexts[0]
    assert not np.array_equal(np.asarray(processed.images[0]), np.asarray(out))
    assert np.array_equal(np.asarray(p.init_images[0]), np.asarray(init))

    p2 = a1111.processing.StableDiffusionProcessingImg2Img([out], init_images=[init], scripts_runner=runner)
    p2.script_args_by_script = {alwayson: [False]}
    processed2 = runner.run(p2, selectable, ["init image", *script_args[1:]])
    assert not np.array_equal(np.asarray(p2.init_images[0]), np.asarray(init))
    assert options.KEY_INIT_RECIPE in p2.extra_generation_params
    assert options.KEY_RECIPE not in processed2.infotexts[0]

    # no always-on hooks at all (e.g. another runner): the results are enhanced afterwards
    p3 = a1111.processing.StableDiffusionProcessingImg2Img([out], init_images=[init], scripts_runner=None)
    processed3 = selectable.run(p3, *script_args)
    assert options.KEY_RECIPE in processed3.infotexts[0]
    assert not np.array_equal(np.asarray(processed3.images[0]), np.asarray(out))


# ---------------------------------------------------------------------------------------------
# Arguments and infotext


def _configs() -> list[options.EnhancerConfig]:
    """Configs covering every argument's range ends and choices, driven by GEN_ARGS."""
    base = options.EnhancerConfig(enabled=True)
    out = [base]
    for a in options.GEN_ARGS:
        if a.name == "enabled":
            continue
        if a.kind == "bool":
            values = [True, False]
        elif a.kind in ("int", "float"):
            mid = (a.minimum + a.maximum) / 2
            values = [a.minimum, a.maximum, int(mid) if a.kind == "int" else 0.123456789]
        elif a.kind == "choice":
            values = (
                list(options.all_modes())
                if a.choices == "modes"
                else ["natural", "laion:0.7,natural:0.3", "taste:mine"]
            )
        else:
            values = ["warm, golden: light", 'say "cheese"\nplease', ""]
        out += [base.with_values(**{a.name: a.coerce(v)}) for v in values]
    return out


@pytest.mark.parametrize(
    "config", _configs(), ids=lambda c: ",".join(f"{v}" for v in c.as_dict().values())[:60]
)
def test_infotext_round_trip(config):
    assert options.from_infotext(options.to_infotext(config)) == config


def test_infotext_round_trip_through_the_webui_text(a1111):
    quote = a1111.infotext_utils.quote
    for config in _configs():
        entries = {"Steps": "20", "Sampler": "Euler a", **options.to_infotext(config)}
        text = "a prompt, with commas\n" + ", ".join(f"{k}: {quote(v)}" for k, v in entries.items())
        params = a1111.infotext_utils.parse_generation_parameters(text)
        assert options.from_infotext(params) == config
        for a in options.GEN_ARGS:
            assert options.paste_value(params, a.name) == getattr(config, a.name)


def test_paste_without_enhancer_entries_disables():
    params = {"Steps": "20", "Prompt": "x"}
    assert options.from_infotext(params) is None
    assert options.paste_value(params, "enabled") is False
    assert options.paste_value(params, "steps") is None


def test_malformed_pasted_value_falls_back(caplog):
    with caplog.at_level(logging.WARNING, logger="lib_enhancer.webui"):
        config = options.from_infotext(
            {"Enhancer scorer": "natural", "Enhancer steps": "x", "Enhancer strength": "7"}
        )
    assert config.steps == 40 and config.strength == 1.0
    assert len([m for m in caplog.messages if m.startswith("[Enhancer]")]) == 2


def test_api_argument_order_and_defaults(a1111):
    config = options.config_from_args([True, "laion", "gradient", 10, 0.5, 3, True, "warm"])
    assert config == options.EnhancerConfig(True, "laion", "gradient", 10, 0.5, 3, True, "warm")
    a1111.shared.opts.nie_steps = 7
    a1111.shared.opts.nie_strength = 0.25
    short = options.config_from_args([True, None], WebuiHost().settings())
    assert (short.scorer, short.steps, short.strength, short.seed) == ("natural", 7, 0.25, -1)
    with pytest.raises(ValueError, match="Strength"):
        options.config_from_args([True, "natural", "gradient", 10, 1.5])
    with pytest.raises(ValueError, match="unknown enhancer arguments"):
        options.config_from_args({"enabled": True, "stepz": 3})


def test_search_modes_follow_the_search_module(monkeypatch):
    from lib_enhancer import api

    monkeypatch.setattr(options, "search_function", lambda: None)
    assert "gradient" in options.available_modes()
    assert not set(options.available_modes()) & set(api.SEARCH_MODES)
    with pytest.raises(ValueError, match=r"lib_enhancer\.search"):
        options.check_mode("search")
    monkeypatch.setattr(options, "search_function", lambda: lambda *a, **k: None)
    assert options.available_modes() == options.all_modes() == api.MODES
    with pytest.raises(ValueError, match="unknown enhancer mode"):
        options.check_mode("annealing")
    assert options.check_mode(" Search ") == "best-first"  # infotext of earlier versions


def test_webui_modes_are_the_api_modes(monkeypatch):
    """A mode added to lib_enhancer.api.MODES appears in the webui and passes through to api.enhance."""
    from lib_enhancer import api

    monkeypatch.setattr(api, "MODES", (*api.MODES, "future"))
    assert "future" in options.available_modes()
    assert "future" in controls.choices_for("modes")
    seen = {}

    def fake_enhance(image, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(image=image, recipe=Recipe.identity(), score_before=1.0, score_after=1.0)

    monkeypatch.setattr(api, "enhance", fake_enhance)
    monkeypatch.setattr(engine, "get_scorer", lambda *a: "scorer")
    engine.run(pil(5), engine.RunOptions(mode="future", steps=3, strength=0.5), StandaloneHost())
    assert seen["mode"] == "future" and seen["steps"] == 3 and seen["strength"] == 0.5
    assert seen["scorer"] == "scorer" and seen["max_evals"] == 3 * engine.EVALS_PER_STEP


# ---------------------------------------------------------------------------------------------
# Extras


def test_extras_none_arguments_use_the_settings(webui, fast):
    cls = webui.scripts.postprocessing_scripts_data[0].script_class
    step = cls()
    assert step.name == extras.EXTRAS_NAME and step.order > 1000
    api_args = webui.scripts_postprocessing.api_args_for(extras.EXTRAS_ARG_NAMES)
    image = pil(12)
    pp = webui.scripts_postprocessing.PostprocessedImage(image.copy())
    step.process(pp, **api_args)
    assert fast == [] and np.array_equal(np.asarray(pp.image), np.asarray(image))

    webui.shared.opts.nie_extras_api = True
    webui.shared.opts.nie_strength = 0.5
    webui.shared.opts.nie_scorer = "natural"
    step.process(pp, **api_args)
    assert fast[-1].strength == 0.5 and fast[-1].scorer == "natural"
    assert Recipe.from_json(pp.info[options.KEY_RECIPE]).info["strength"] == 0.5
    assert not np.array_equal(np.asarray(pp.image), np.asarray(image))

    pp2 = webui.scripts_postprocessing.PostprocessedImage(image.copy())
    step.process(pp2, enabled=True, scorer="natural", mode="gradient", strength=0.25)
    assert fast[-1].strength == 0.25


def test_extras_failure_keeps_image(a1111, monkeypatch):
    monkeypatch.setattr(engine, "build_scorer", lambda spec, text, host, device: Broken())
    image = pil(13)
    pp = a1111.scripts_postprocessing.PostprocessedImage(image.copy())
    a1111.scripts_postprocessing_cls = None
    extras.process_extras(pp, {"enabled": True, "scorer": "natural", "mode": "gradient", "strength": 1.0})
    assert np.array_equal(np.asarray(pp.image), np.asarray(image))
    assert pp.info[options.KEY_ERROR].startswith("[Enhancer]")


# ---------------------------------------------------------------------------------------------
# Real optimizer: progress, interrupt, modes


@pytest.fixture
def tiny_scorer(monkeypatch):
    monkeypatch.setattr(engine, "build_scorer", lambda spec, text, host, device: Brightness())


def test_progress_and_interrupt_through_shared_state(a1111, tiny_scorer):
    host = WebuiHost()
    opts_ = engine.RunOptions(steps=3, preview_side=32, restarts=1, active=("exposure",))
    with host.job("test", 1):
        result = engine.run(pil(14), opts_, host)
    state = a1111.shared.state
    assert ("begin", "test") in state.history and ("end", "test") in state.history
    assert state.sampling_steps == 3 and state.sampling_step == len(result.history)
    assert "Enhancer" in state.textinfo

    state.sampling_steps = 99
    engine.run(pil(14), opts_, host, in_generation=True)  # the generation owns the counters
    assert state.sampling_steps == 99

    state.interrupted = True
    stopped = engine.run(
        pil(14), engine.RunOptions(steps=30, preview_side=32, restarts=1, active=("exposure",)), host
    )
    assert len(stopped.history) == 1


def test_real_generation_run_with_tiny_scorer(a1111, tiny_scorer, monkeypatch):
    import lib_enhancer.api as api

    real = api.enhance
    monkeypatch.setattr(
        api, "enhance", lambda image, **kw: real(image, **{**kw, "active": ("exposure", "contrast")})
    )
    outputs = [pil(15)]
    _, processed, _ = generate(a1111, outputs, gen_args(steps=4, strength=1.0))
    params = a1111.infotext_utils.parse_generation_parameters(processed.infotexts[0])
    recipe = Recipe.from_json(params[options.KEY_RECIPE])
    assert np.array_equal(np.asarray(apply(recipe, outputs[0])), np.asarray(processed.images[0]))
    assert float(params[options.KEY_SCORE_AFTER]) >= float(params[options.KEY_SCORE_BEFORE])


# ---------------------------------------------------------------------------------------------
# Tab handlers (no gradio needed)


def test_enhance_stream_previews_then_result(fast, tmp_path):
    host = StandaloneHost(options.EnhancerSettings(models_dir=str(tmp_path)))
    host.temp_dir = lambda: tmp_path / "tmp"
    image = pil(16, 64, 80)
    updates = list(
        tab_logic.enhance_stream(image, tab_logic.TabRequest(steps=3, seed=2), host, min_interval=0.0)
    )
    previews = [u for u in updates if u.image is not None and not u.done]
    final = updates[-1]
    assert previews and final.done and final.image is not None
    assert previews[0].image.size <= image.size
    recipe = Recipe.from_json(final.recipe_json)
    assert final.params == recipe.full_params()
    assert np.array_equal(np.asarray(final.image), np.asarray(apply(recipe, image)))
    assert all(Path(f).is_file() for f in final.files) and {Path(f).suffix for f in final.files} == {
        ".json",
        ".cube",
    }
    assert (
        final.compare_html.count("data:image/jpeg;base64,") == 2
        and 'class="nie-compare"' in final.compare_html
    )
    assert "Score 1.000 → 3.000" in final.status


def test_enhance_stream_cancel_stops_the_worker(monkeypatch, tmp_path):
    seen = []

    def slow_gradient(image, scorer, options_, device, on_step):
        recipe = fake_recipe(options_)
        for i in range(500):
            time.sleep(0.005)
            stop = on_step(Step(i, float(i), float(i), dict(recipe.params), 0.0))
            seen.append(stop)
            if stop:
                break
        return Result(apply(recipe, image), recipe, 0.0, 1.0, [], False, "")

    monkeypatch.setattr(engine, "_enhance", slow_gradient)
    monkeypatch.setattr(engine, "get_scorer", lambda *a: None)
    host = StandaloneHost()
    host.temp_dir = lambda: tmp_path
    token = tab_logic.new_cancel_token()
    stream = tab_logic.enhance_stream(pil(17), tab_logic.TabRequest(), host, min_interval=0.0, token=token)
    next(stream)
    assert tab_logic.cancel_all() == "Cancelling…"
    final = list(stream)[-1]
    assert final.done and final.status.startswith("Cancelled")
    assert seen[-1] is True and len(seen) < 500
    assert tab_logic.cancel_all() == "Nothing to cancel."


def test_apply_manual_and_sliders_from_recipe(tmp_path):
    host = StandaloneHost()
    host.temp_dir = lambda: tmp_path
    image = pil(18)
    update = tab_logic.apply_manual(image, {"exposure": 0.5, "sharpen": 0.2, "gamma": 1.0}, host)
    expected = apply(Recipe({"exposure": 0.5, "sharpen": 0.2}), image)
    assert np.array_equal(np.asarray(update.image), np.asarray(expected))
    assert "sharpen" in update.status  # the .cube leaves the local filter out, and says so
    values = tab_logic.params_from_recipe_text(update.recipe_json)
    assert values["exposure"] == 0.5 and values["gamma"] == 1.0
    with pytest.raises(ValueError):
        tab_logic.params_from_recipe_text("")
    assert tab_logic.apply_manual(None, {}, host).status.startswith("⚠️")


def test_export_files_write_recipe_and_cube(tmp_path):
    from lib_enhancer.lut import build_lut, read_cube

    recipe = Recipe({"exposure": 0.4, "saturation": 0.2})
    files, note = tab_logic.export_files(recipe, tmp_path)
    assert note == ""
    assert Recipe.from_json(Path(files[0]).read_text()) == recipe
    assert np.allclose(
        read_cube(files[1]),
        np.clip(build_lut(recipe.stage_params("global"), tab_logic.CUBE_SIZE), 0, 1),
        atol=1e-5,
    )
    # photo-adaptive filters: baked in with the photo, named as left out without it
    auto = Recipe({"auto_levels": 0.8, "exposure": 0.2})
    files_plain, note_plain = tab_logic.export_files(auto, tmp_path / "plain")
    files_baked, note_baked = tab_logic.export_files(auto, tmp_path / "baked", pil(3, 48, 64))
    assert "auto_levels" in note_plain and note_baked == ""
    assert not np.allclose(read_cube(files_plain[1]), read_cube(files_baked[1]), atol=1e-3)


def test_error_maps():
    before = pil(19, 48, 64)
    after = apply(Recipe({"exposure": 0.6}), before)
    for kind in tab_logic.MAP_KINDS:
        image, stats = tab_logic.error_map(before, after, kind, 0.95)
        assert image.size == before.size and "PSNR" in stats and "ΔE00" in stats
    same, stats = tab_logic.error_map(before, before.copy(), "SSIM map")
    assert "PSNR ∞" in stats and "SSIM 1.0000" in stats
    assert np.asarray(same).min() == 255
    _, stats = tab_logic.error_map(before, after, "SSIM below threshold", 1.01)
    assert "(100.0% of pixels)" in stats
    with pytest.raises(ValueError, match="size"):
        tab_logic.error_map(before, pil(0, 20, 20), "difference")


def test_batch_writes_outputs_with_recipes_and_spares_inputs(fast, tmp_path):
    from lib_enhancer.imageio import RECIPE_TEXT_KEY, read_embedded_text

    src = tmp_path / "in"
    src.mkdir()
    pil(20).save(src / "a.png")
    pil(21).save(src / "b.jpg", quality=95)
    (src / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    host = StandaloneHost()
    logs = list(tab_logic.batch_stream(None, str(src), str(out), tab_logic.TabRequest(steps=2), host))
    log, written = logs[-1]
    assert sorted(Path(w).name for w in written) == ["a-enhanced.png", "b-enhanced.jpg"]
    assert "broken.png" in log and "Done: 2 written, 1 not" in log
    for w in written:
        assert Recipe.from_json(read_embedded_text(w)[RECIPE_TEXT_KEY]).info["source"] in ("a.png", "b.jpg")
    # the same folder without a suffix would overwrite the inputs: refused per file
    log2, written2 = list(
        tab_logic.batch_stream(None, str(src), str(src), tab_logic.TabRequest(), host, suffix="")
    )[-1]
    assert written2 == [] and log2.count("is an input") == 3
    assert list(tab_logic.batch_stream(None, None, None, tab_logic.TabRequest(), host))[-1][0].startswith(
        "No input"
    )


# ---------------------------------------------------------------------------------------------
# gradio version switches (fakes), install.py, preload.py, front end


def test_gradio_version_switches():
    gr3 = SimpleNamespace(__version__="3.41.2", update=lambda **kw: ("update", kw))
    gr4 = SimpleNamespace(__version__="4.40.0", update=lambda **kw: ("update", kw))
    assert gradio_compat.major_version(gr3) == 3 and gradio_compat.major_version(SimpleNamespace()) == 0
    assert gradio_compat.image_source_kwargs(gr3) == {"source": "upload"}
    assert gradio_compat.image_source_kwargs(gr4) == {"sources": ["upload"]}
    assert gradio_compat.js_kwargs(gr3, "f") == {"_js": "f"} and gradio_compat.js_kwargs(gr4, "f") == {
        "js": "f"
    }
    assert gradio_compat.js_kwargs(gr4, None) == {}
    assert gradio_compat.update(gr4, value=1) == ("update", {"value": 1})

    class Base:
        def __init__(self, value=None, *, label=None, elem_id=None): ...

    class Forwarding(Base):
        def __init__(self, value=None, *, info=None, **kwargs):
            super().__init__(value, **kwargs)

    class Anything:
        def __init__(self, **kwargs): ...

    wanted = {"label": "x", "info": "i", "show_copy_button": True}
    assert gradio_compat.supported(Base, wanted) == {"label": "x"}
    assert gradio_compat.supported(Forwarding, wanted) == {"label": "x", "info": "i"}
    assert gradio_compat.supported(Anything, wanted) == wanted

    class Blocks3:
        def __init__(self, *, css=None, title=None, analytics_enabled=None): ...

    gr3.Blocks = Blocks3
    assert gradio_compat.blocks_kwargs(gr3, css="c", head="h") == {"css": "c", "analytics_enabled": False}


def test_install_only_adds_what_is_missing():
    with harness.webui_env(load_script=False):
        import launch

        launch.installed = {"safetensors", "tqdm", "torch"}
        launch.pip_calls.clear()
        runpy.run_path(str(REPO / "install.py"), run_name="__main__")
        assert [c[0] for c in launch.pip_calls] == ["install open_clip_torch"]
        launch.installed = {"open_clip", "safetensors", "tqdm"}  # A1111's own open_clip install
        launch.pip_calls.clear()
        runpy.run_path(str(REPO / "install.py"), run_name="__main__")
        assert launch.pip_calls == []
    text = (REPO / "install.py").read_text()
    assert (
        "torch==" not in text and "install torch" not in text and "==" not in text.replace("__name__ ==", "")
    )


def test_preload_flags():
    module = runpy.run_path(str(REPO / "preload.py"))
    parser = argparse.ArgumentParser()
    module["preload"](parser)
    args = parser.parse_args(
        ["--enhancer-models-dir", "/m", "--enhancer-offline", "--enhancer-log-level", "debug"]
    )
    assert (args.enhancer_models_dir, args.enhancer_offline, args.enhancer_log_level) == ("/m", True, "DEBUG")
    assert parser.parse_args([]).enhancer_offline is False


def test_front_end_is_namespaced():
    js = (REPO / "javascript" / "neural_image_enhancer.js").read_text()
    code = "\n".join(line for line in js.splitlines() if not line.strip().startswith("//")).strip()
    assert code.startswith("(function () {") and code.endswith("})();")
    assert "__nieInitDone" in js and "composedPath" in js
    css = (REPO / "style.css").read_text()
    import re

    body = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    selectors = [s.strip() for block in re.findall(r"([^{}]+)\{", body) for s in block.split(",")]
    assert selectors and all(s.startswith("#nie-") for s in selectors), selectors
    assert "var(--background-fill-primary" in css and "var(--body-text-color" in css


def test_log_level_flag(a1111):
    from lib_enhancer.webui import setup

    setup.configure_logging("debug")
    assert logging.getLogger("lib_enhancer").level == logging.DEBUG
    setup.configure_logging(None)
    logging.getLogger("lib_enhancer").setLevel(logging.NOTSET)


# ---------------------------------------------------------------------------------------------
# gradio UI (only where gradio is installed)


@needs_gradio
def test_generation_ui_matches_the_argument_table(a1111):
    import gradio as gr

    a1111.shared.opts.nie_steps = 9
    runner = a1111.scripts.ScriptRunner(is_img2img=False)
    script = runner.alwayson_scripts[0]
    with gr.Blocks():
        components = script.ui(False)
    assert len(components) == len(options.GEN_ARGS)
    defaults = options.arg_defaults(get_host().settings())
    assert [c.value for c in components] == [defaults[n] for n in options.GEN_ARG_NAMES]
    assert [c for c, _ in script.infotext_fields] == components
    params = {"Enhancer scorer": "laion", "Enhancer steps": "12", "Enhancer strength": "0.5"}
    pasted = {getter.__name__: getter(params) for _, getter in script.infotext_fields}
    assert (
        pasted["paste_enabled"] is True and pasted["paste_steps"] == 12 and pasted["paste_scorer"] == "laion"
    )

    img_runner = a1111.scripts.ScriptRunner(is_img2img=True)
    with gr.Blocks():
        img_components = img_runner.selectable_scripts[0].ui(True)
    assert len(img_components) == len(generation.IMG2IMG_ARG_NAMES)
    assert img_components[0].value == "results"


@needs_gradio
def test_generation_ui_without_input_accordion(a1111, monkeypatch):
    import gradio as gr

    monkeypatch.setitem(sys.modules, "modules.ui_components", None)  # an older webui: import fails
    script = a1111.scripts.ScriptRunner(is_img2img=False).alwayson_scripts[0]
    with gr.Blocks():
        components = script.ui(False)
    assert isinstance(components[0], gr.Checkbox) and components[0].value is False


@needs_gradio
def test_extras_ui_keys(a1111):
    import gradio as gr

    step = a1111.scripts.postprocessing_scripts_data[0].script_class()
    with gr.Blocks():
        controls_ = step.ui()
    assert tuple(controls_) == extras.EXTRAS_ARG_NAMES


@needs_gradio
def test_settings_callback_with_gradio(a1111):
    a1111.script_callbacks.ui_settings_callback()
    assert a1111.shared.opts.data_labels["nie_scorer"].section == options.SECTION


@needs_gradio
def test_tab_builds_in_the_webui_and_standalone(a1111, tmp_path):
    tabs = a1111.script_callbacks.ui_tabs_callback()
    assert [(title, elem) for _, title, elem in tabs] == [("Enhancer", "neural_image_enhancer")]
    assert [b.tabname for b in a1111.infotext_utils.registered_param_bindings] == ["img2img", "extras"]
    from lib_enhancer.webui import app

    blocks = app.build_app(app.build_parser().parse_args(["--models-dir", str(tmp_path)]))
    assert blocks is not None and isinstance(get_host(), StandaloneHost)
    set_host(StandaloneHost())


def test_app_parser_and_assets():
    from lib_enhancer.webui import app

    args = app.build_parser().parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7861
    css, head = app.assets()
    assert "#nie-compare" in css and head.startswith("<script>") and "__nieInitDone" in head


def test_cancel_tokens_are_thread_safe():
    tokens = [tab_logic.new_cancel_token() for _ in range(5)]
    threads = [threading.Thread(target=tab_logic.cancel_all) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(t.is_set() for t in tokens)
    for t in tokens:
        tab_logic._retire(t)


def test_recipe_in_infotext_is_compact_json():
    text = options.recipe_infotext(Recipe({"exposure": 0.25}, {"scorer": "natural"}).to_json())
    assert " " not in text and json.loads(text)["params"] == {"exposure": 0.25}


@pytest.mark.skipif(options.search_function() is None, reason="lib_enhancer.search is not installed")
@pytest.mark.parametrize("mode", ["search", "hybrid"])
def test_search_modes_run_through_the_search_module(tiny_scorer, mode):
    image = pil(22)
    result = engine.run(
        image,
        engine.RunOptions(mode=mode, steps=2, preview_side=32, active=("exposure",), strength=0.5),
        StandaloneHost(),
    )
    assert result.recipe.info["mode"] == options.check_mode(mode) and result.recipe.info["strength"] == 0.5
    assert result.score_after >= result.score_before
    assert np.array_equal(np.asarray(result.image), np.asarray(apply(result.recipe, image)))


def test_creative_sliders_come_last_in_a_labelled_group():
    from lib_enhancer.params import CREATIVE_NAMES
    from lib_enhancer.webui import tab

    groups = tab._slider_groups()
    title, params = groups[-1]
    assert "Creative" in title and "changes the look" in title
    assert tuple(p.name for p in params) == CREATIVE_NAMES
    assert all(p.neutral == 0.0 for p in params)  # off by default
    assert not any("changes the look" in t for t, _ in groups[:-1])


def test_creative_recipe_round_trips_through_infotext(webui, fast, monkeypatch):
    """A recipe with creative edits goes into the infotext, comes back equal and re-applies."""
    look = {"exposure": 0.2, "hue": 0.1, "split_tone": 0.4, "posterize": 2.0, "vignette": 0.5}
    monkeypatch.setitem(globals(), "fake_recipe", lambda options_: Recipe(look, {"seed": options_.seed}))
    outputs = [pil(3)]
    _p, processed, _ = generate(webui, outputs, gen_args())
    params = webui.infotext_utils.parse_generation_parameters(processed.infotexts[0])
    recipe = Recipe.from_json(params[options.KEY_RECIPE])
    assert recipe.params == Recipe(look).params
    assert np.array_equal(np.asarray(apply(recipe, outputs[0])), np.asarray(processed.images[0]))


def test_scorer_cache_rebuilds_when_the_model_file_changes(monkeypatch, tmp_path):
    """A retrained taste model (new file fingerprint) is rebuilt, and the stale scorer is dropped."""
    from lib_enhancer.scorers import registry

    host = StandaloneHost()
    token = {"value": ("taste:mine", (1,))}
    built = []
    monkeypatch.setattr(registry, "scorer_cache_token", lambda spec, cache_dir=None: (token["value"],))
    monkeypatch.setattr(
        engine, "build_scorer", lambda spec, text, host, device: built.append(spec) or object()
    )
    monkeypatch.setattr(engine, "_SCORERS", {})
    first = engine.get_scorer("taste:mine", "", host, "cpu")
    assert engine.get_scorer("taste:mine", "", host, "cpu") is first
    token["value"] = ("taste:mine", (2,))  # the model file was rewritten
    second = engine.get_scorer("taste:mine", "", host, "cpu")
    assert second is not first and len(built) == 2
    assert list(engine._SCORERS.values()) == [second]


@pytest.mark.parametrize("verify", [True, False])
def test_tab_verify_checkbox_reaches_the_learned_mode(verify, tmp_path):
    """The tab's "let the scorer check" box is the API's ``verify``: off, the learned mode returns the
    model's proposal as it is (no ``fraction`` chosen); on, the scorer's pick."""
    from lib_enhancer.params import NEUTRAL, PARAM_NAMES
    from lib_enhancer.webui import tab

    manual = [NEUTRAL[n] for n in PARAM_NAMES]
    request = tab._request(["natural", "", "predict", 5, 0.0, 1.0, 0, [], verify, *manual])
    assert request.verify is verify and request.mode == "predict"
    host = StandaloneHost(options.EnhancerSettings(models_dir=str(tmp_path)))
    host.temp_dir = lambda: tmp_path / "tmp"
    assert request.run_options(host).verify is verify
    final = list(tab_logic.enhance_stream(pil(21, 64, 80), request, host, min_interval=0.0))[-1]
    recipe = Recipe.from_json(final.recipe_json)
    assert recipe.info["mode"] == "predict"
    assert ("fraction" in recipe.info) is verify
