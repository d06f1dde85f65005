"""Generation-time glue: mixins for the webui's ``scripts.Script`` classes.

The scripts file defines the classes (``class X(AlwaysOnMixin, scripts.Script)``), so the webui's
base classes are never imported here at module level and never land in a namespace the webui scans.

* :class:`AlwaysOnMixin` — the "Neural Image Enhancer" accordion in txt2img and img2img: enhances
  every generated image in ``postprocess_image`` (A1111 ``PostprocessImageArgs(image)`` and Forge
  ``PostprocessImageArgs(image, index)`` alike), writes the settings, recipe and scores into the
  infotext and registers paste fields. API: ``alwayson_scripts["neural image enhancer"]["args"]``
  in :data:`~lib_enhancer.webui.options.GEN_ARGS` order.
* :class:`Img2ImgMixin` — "Neural Image Enhancer (img2img)" in the img2img Script dropdown: runs
  img2img and enhances the results, or enhances the init image(s) first.

A failure never breaks a generation: the image stays as generated, the error is logged with the
``[Enhancer]`` prefix and shown as a generation comment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME, controls, engine
from lib_enhancer.webui.host import get_host
from lib_enhancer.webui.options import (
    GEN_ARG_NAMES,
    GEN_ARGS,
    GEN_ARGS_BY_NAME,
    KEY_INIT_RECIPE,
    KEY_RECIPE,
    KEY_SCORE_AFTER,
    KEY_SCORE_BEFORE,
    RESULT_KEYS,
    EnhancerConfig,
    Field,
    arg_defaults,
    config_from_args,
    paste_value,
    recipe_infotext,
    to_infotext,
)

logger = logging.getLogger(LOGGER_NAME)

TITLE = "Neural Image Enhancer"
IMG2IMG_TITLE = "Neural Image Enhancer (img2img)"
ORIGINAL_SUFFIX = "-before-enhancer"
#: Attribute set on ``p`` by the img2img script so the always-on script enhances its results.
OVERRIDE_ATTR = "_nie_override"
RUN_ATTR = "_nie_run"

TARGET_ARG = Field(
    "target",
    "Enhance",
    controls.TARGET_RESULTS,
    "choice",
    choices="targets",
    help="results: enhance what img2img makes; init image: enhance the input before img2img.",
)
#: Positional order of the img2img script's arguments (``script_args`` in the API).
IMG2IMG_ARG_NAMES: tuple[str, ...] = ("target", *(n for n in GEN_ARG_NAMES if n != "enabled"))


@dataclass
class GenerationRun:
    """Per-generation state kept on ``p`` between the hooks."""

    config: EnhancerConfig
    enhanced: int = 0
    failed: int = 0
    originals: list[tuple[Any, str]] = field(default_factory=list)  # (image, infotext)


# ---------------------------------------------------------------------------------------------
# Helpers shared by the hooks


def _comment(p: Any, text: str) -> None:
    comment = getattr(p, "comment", None)
    if callable(comment):
        comment(text)


def _report_bad_args(p: Any, exc: Exception) -> None:
    message = f"{LOG_PREFIX} invalid arguments, enhancement skipped: {exc}"
    logger.error(message)
    _comment(p, message)


def _image_seed(p: Any, batch_index: int) -> int:
    seeds = getattr(p, "seeds", None) or getattr(p, "all_seeds", None) or []
    if 0 <= batch_index < len(seeds):
        return int(seeds[batch_index])
    return int(getattr(p, "seed", 0) or 0)


def _tab(p: Any) -> str:
    return "img2img" if hasattr(p, "init_images") else "txt2img"


def _infotext(p: Any, batch_index: int) -> str:
    """The infotext of image ``batch_index`` as the webui would write it now (best effort)."""
    try:
        from modules import processing

        return processing.create_infotext(
            p,
            p.prompts,
            p.seeds,
            p.subseeds,
            index=batch_index,
            all_negative_prompts=getattr(p, "negative_prompts", None),
        )
    except Exception as exc:
        logger.debug("%s no infotext for the original: %s", LOG_PREFIX, exc)
        return ""


def _save_original(p: Any, image: Any, batch_index: int, infotext: str) -> None:
    save_samples = getattr(p, "save_samples", None)
    if not callable(save_samples) or not save_samples():
        return
    try:
        from modules import images, shared

        images.save_image(
            image,
            p.outpath_samples,
            "",
            _image_seed(p, batch_index),
            p.prompts[batch_index] if getattr(p, "prompts", None) else "",
            shared.opts.samples_format,
            info=infotext,
            p=p,
            suffix=ORIGINAL_SUFFIX,
        )
    except Exception as exc:
        logger.error("%s could not save the original image: %s", LOG_PREFIX, exc, exc_info=True)


def write_result_infotext(params: dict[str, Any], outcome: engine.Outcome) -> None:
    """Put this image's recipe and scores into ``params`` (``p.extra_generation_params``).

    Keys of the previous image are removed first: the dict is shared by the whole job and each
    image's infotext is made right after its ``postprocess_image``.
    """
    for key in RESULT_KEYS:
        params.pop(key, None)
    if outcome.result is None:
        return
    result = outcome.result
    params[KEY_RECIPE] = recipe_infotext(result.recipe.to_json(indent=None))
    params[KEY_SCORE_BEFORE] = f"{result.score_before:.4f}"
    params[KEY_SCORE_AFTER] = f"{result.score_after:.4f}"


def build_gen_controls(script: Any, is_img2img: bool, names: Sequence[str]) -> dict[str, Any]:
    """Controls for the named :data:`GEN_ARGS` (in table order), defaults from the settings."""
    import gradio as gr

    defaults = arg_defaults(get_host().settings())
    out: dict[str, Any] = {}
    with gr.Row():
        for name in ("scorer", "mode"):
            if name in names:
                out[name] = controls.field_control(
                    gr, GEN_ARGS_BY_NAME[name], value=defaults[name], elem_id=script.elem_id(name)
                )
    with gr.Row():
        for name in ("steps", "strength", "seed"):
            if name in names:
                out[name] = controls.field_control(
                    gr, GEN_ARGS_BY_NAME[name], value=defaults[name], elem_id=script.elem_id(name)
                )
    for name in names:
        if name not in out and name != "enabled":
            out[name] = controls.field_control(
                gr, GEN_ARGS_BY_NAME[name], value=defaults[name], elem_id=script.elem_id(name)
            )
    return {n: out[n] for n in names if n in out}


def _paste_getter(name: str) -> Any:
    def getter(params: dict[str, Any]) -> Any:
        return paste_value(params, name, get_host().settings())

    getter.__name__ = f"paste_{name}"
    return getter


# ---------------------------------------------------------------------------------------------
# Always-on script (txt2img + img2img accordion)


class AlwaysOnMixin:
    """Mix into ``scripts.Script``: ``class NeuralImageEnhancer(AlwaysOnMixin, scripts.Script)``."""

    infotext_fields: list[tuple[Any, Any]] | None = None
    paste_field_names: list[str] | None = None

    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        import modules.scripts

        return modules.scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr

        with controls.enable_accordion(gr, False, label=TITLE, elem_id=self.elem_id("enabled")) as enabled:
            rest = build_gen_controls(self, is_img2img, [n for n in GEN_ARG_NAMES if n != "enabled"])
        components = {"enabled": enabled, **rest}
        assert tuple(components) == GEN_ARG_NAMES, "controls must follow GEN_ARGS order"
        self.infotext_fields = [(components[a.name], _paste_getter(a.name)) for a in GEN_ARGS]
        self.paste_field_names = [a.infotext for a in GEN_ARGS if a.infotext]
        return list(components.values())

    def process(self, p: Any, *args: Any) -> None:
        config = getattr(p, OVERRIDE_ATTR, None)
        if config is None:
            try:
                config = config_from_args(args, get_host().settings())
            except ValueError as exc:
                setattr(p, RUN_ATTR, None)
                if args and args[0]:
                    _report_bad_args(p, exc)
                return
        if not config.enabled:
            setattr(p, RUN_ATTR, None)
            return
        p.extra_generation_params.update(to_infotext(config))
        setattr(p, RUN_ATTR, GenerationRun(config))

    def process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        """Before each batch: give the GPU back to the diffusion model if the scorer used it."""
        run = getattr(p, RUN_ATTR, None)
        if run is not None and run.enhanced + run.failed:
            engine.release(get_host())

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        run: GenerationRun | None = getattr(p, RUN_ATTR, None)
        if run is None:
            return
        host = get_host()
        batch_index = getattr(pp, "index", None)
        if batch_index is None:
            batch_index = int(getattr(p, "batch_index", 0) or 0)
        number = (
            int(getattr(p, "iteration", 0) or 0) * int(getattr(p, "batch_size", 1) or 1) + batch_index + 1
        )
        options = engine.RunOptions.from_config(run.config, host.settings(), seed=_image_seed(p, batch_index))
        original = pp.image
        outcome = engine.enhance_safely(
            original, options, host, what=f"{_tab(p)} image {number}", in_generation=True, release_after=False
        )
        write_result_infotext(p.extra_generation_params, outcome)
        if not outcome.ok:
            run.failed += 1
            _comment(p, outcome.error or "")
            return
        run.enhanced += 1
        pp.image = outcome.image
        if run.config.keep_original:
            params = p.extra_generation_params
            saved = {k: params.pop(k) for k in RESULT_KEYS if k in params}
            infotext = _infotext(p, batch_index)
            params.update(saved)
            run.originals.append((original, infotext))
            _save_original(p, original, batch_index, infotext)

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        run: GenerationRun | None = getattr(p, RUN_ATTR, None)
        if run is None:
            return
        for image, infotext in run.originals:
            processed.images.append(image)
            if getattr(processed, "infotexts", None) is not None:
                processed.infotexts.append(infotext)
        run.originals.clear()
        if run.enhanced + run.failed:
            engine.release(get_host())


# ---------------------------------------------------------------------------------------------
# img2img script dropdown


def img2img_config(args: Sequence[Any]) -> tuple[str, EnhancerConfig]:
    """``(target, config)`` from the img2img script's positional arguments.

    Raises:
        ValueError: a bad target or argument.
    """
    named = dict(zip(IMG2IMG_ARG_NAMES, args, strict=False))
    target = TARGET_ARG.coerce(named.pop("target", None) or TARGET_ARG.default)
    if target not in controls.TARGET_CHOICES:
        raise ValueError(
            f"Enhance: unknown target {target!r}; use one of {', '.join(controls.TARGET_CHOICES)}"
        )
    config = config_from_args({**named, "enabled": True}, get_host().settings())
    return target, config


def enhance_init_images(p: Any, config: EnhancerConfig) -> None:
    """Replace ``p.init_images`` by their enhanced versions (failures keep the image)."""
    host = get_host()
    images = list(getattr(p, "init_images", None) or [])
    recipes = []
    for i, image in enumerate(images):
        options = engine.RunOptions.from_config(config, host.settings(), seed=int(getattr(p, "seed", 0) or 0))
        outcome = engine.enhance_safely(image, options, host, what=f"init image {i + 1}", release_after=False)
        if outcome.ok:
            images[i] = outcome.image
            recipes.append(recipe_infotext(outcome.result.recipe.to_json(indent=None)))
        else:
            _comment(p, outcome.error or "")
    engine.release(host)
    p.init_images = images
    if recipes:
        p.extra_generation_params.update(to_infotext(config))
        p.extra_generation_params[KEY_INIT_RECIPE] = recipes[0]


def enhance_processed(p: Any, processed: Any, config: EnhancerConfig) -> None:
    """Fallback when the always-on script did not run: enhance ``processed.images`` afterwards."""
    host = get_host()
    first = int(getattr(processed, "index_of_first_image", 0) or 0)
    for i in range(first, len(processed.images)):
        options = engine.RunOptions.from_config(config, host.settings(), seed=_image_seed(p, i - first))
        outcome = engine.enhance_safely(
            processed.images[i], options, host, what=f"img2img image {i - first + 1}"
        )
        if not outcome.ok:
            _comment(p, outcome.error or "")
            continue
        processed.images[i] = outcome.image
        infotexts = getattr(processed, "infotexts", None)
        if infotexts is not None and i < len(infotexts):
            extra = {**to_infotext(config)}
            write_result_infotext(extra, outcome)
            infotexts[i] = infotexts[i] + ", " + ", ".join(f"{k}: {_quote(v)}" for k, v in extra.items())


def _quote(value: str) -> str:
    try:
        from modules.infotext_utils import quote
    except ImportError:
        import json

        return json.dumps(value) if any(c in value for c in ",:\n") else value
    return quote(value)


class Img2ImgMixin:
    """Mix into ``scripts.Script``: a selectable img2img script (Script dropdown / ``script_name``)."""

    def title(self) -> str:
        return IMG2IMG_TITLE

    def show(self, is_img2img: bool) -> bool:
        return bool(is_img2img)

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr

        target = controls.field_control(gr, TARGET_ARG, elem_id=self.elem_id("target"))
        rest = build_gen_controls(self, is_img2img, list(IMG2IMG_ARG_NAMES[1:]))
        return [target, *rest.values()]

    def run(self, p: Any, *args: Any) -> Any:
        from modules import processing

        try:
            target, config = img2img_config(args)
        except ValueError as exc:
            _report_bad_args(p, exc)
            return processing.process_images(p)
        if target == controls.TARGET_INIT:
            enhance_init_images(p, config)
            return processing.process_images(p)
        setattr(p, OVERRIDE_ATTR, config)
        processed = processing.process_images(p)
        run = getattr(p, RUN_ATTR, None)
        if run is None or not (run.enhanced + run.failed):
            enhance_processed(p, processed, config)
        return processed
