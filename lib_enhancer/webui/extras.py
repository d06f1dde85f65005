"""Extras-tab glue: a mixin for ``scripts_postprocessing.ScriptPostprocessing``.

The scripts file defines ``class X(ExtrasMixin, scripts_postprocessing.ScriptPostprocessing)``.
Controls: enable, scorer, mode, strength (names = :data:`EXTRAS_ARG_NAMES`, the keyword arguments
of :meth:`ExtrasMixin.process`).

The Extras API (``/sdapi/v1/extra-single-image``, ``extra-batch-images``) passes ``None`` for every
control of an extension: ``None`` means "use the settings" — the step runs only when the setting
"Enhance in Extras API requests" is on, with the default scorer, mode and strength.
"""

from __future__ import annotations

import logging
from typing import Any

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME, controls, engine
from lib_enhancer.webui.host import get_host
from lib_enhancer.webui.options import (
    GEN_ARGS_BY_NAME,
    KEY_ERROR,
    KEY_RECIPE,
    KEY_SCORE_AFTER,
    KEY_SCORE_BEFORE,
    arg_defaults,
    recipe_infotext,
)

logger = logging.getLogger(LOGGER_NAME)

EXTRAS_NAME = "Neural Image Enhancer"
EXTRAS_ORDER = 20000  # after upscaling and face restoration (built-ins are <= 1000 + user order)
EXTRAS_ARG_NAMES: tuple[str, ...] = ("enabled", "scorer", "mode", "strength")


def extras_options(values: dict[str, Any]) -> tuple[bool, engine.RunOptions]:
    """``(enabled, options)`` from the Extras controls; ``None`` values take the settings.

    Raises:
        ValueError: a value that does not fit its control.
    """
    settings = get_host().settings()
    enabled_raw = values.get("enabled")
    enabled = settings.extras_api if enabled_raw is None else GEN_ARGS_BY_NAME["enabled"].coerce(enabled_raw)
    overrides = {
        name: GEN_ARGS_BY_NAME[name].coerce(values[name])
        for name in EXTRAS_ARG_NAMES[1:]
        if values.get(name) not in (None, "")
    }
    return bool(enabled), engine.RunOptions.from_settings(settings, **overrides)


def process_extras(pp: Any, values: dict[str, Any]) -> None:
    """Enhance ``pp.image`` in place and describe it in ``pp.info``; never raises."""
    host = get_host()
    try:
        enabled, options = extras_options(values)
    except ValueError as exc:
        message = f"{LOG_PREFIX} invalid Extras arguments, enhancement skipped: {exc}"
        logger.error(message)
        pp.info[KEY_ERROR] = message
        return
    if not enabled:
        return
    outcome = engine.enhance_safely(pp.image, options, host, what="Extras image")
    if not outcome.ok:
        pp.info[KEY_ERROR] = outcome.error
        return
    result = outcome.result
    pp.image = outcome.image
    pp.info[KEY_RECIPE] = recipe_infotext(result.recipe.to_json(indent=None))
    pp.info[KEY_SCORE_BEFORE] = f"{result.score_before:.4f}"
    pp.info[KEY_SCORE_AFTER] = f"{result.score_after:.4f}"


class ExtrasMixin:
    """Mix into ``ScriptPostprocessing`` (listed in Extras as :data:`EXTRAS_NAME`)."""

    name = EXTRAS_NAME
    order = EXTRAS_ORDER

    def ui(self) -> dict[str, Any]:
        import gradio as gr

        defaults = arg_defaults(get_host().settings())
        accordion = controls.enable_accordion(gr, False, label=EXTRAS_NAME, elem_id="nie-extras-enabled")
        with accordion as enabled, gr.Row():
            scorer = controls.field_control(
                gr, GEN_ARGS_BY_NAME["scorer"], value=defaults["scorer"], elem_id="nie-extras-scorer"
            )
            mode = controls.field_control(
                gr, GEN_ARGS_BY_NAME["mode"], value=defaults["mode"], elem_id="nie-extras-mode"
            )
            strength = controls.field_control(
                gr,
                GEN_ARGS_BY_NAME["strength"],
                value=defaults["strength"],
                elem_id="nie-extras-strength",
            )
        components = {"enabled": enabled, "scorer": scorer, "mode": mode, "strength": strength}
        assert tuple(components) == EXTRAS_ARG_NAMES
        return components

    def process(self, pp: Any, **args: Any) -> None:
        process_extras(pp, args)
