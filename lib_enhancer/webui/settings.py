"""The settings-page section, built from :data:`~lib_enhancer.webui.options.SETTINGS`."""

from __future__ import annotations

from typing import Any

from lib_enhancer.webui import controls
from lib_enhancer.webui.options import SECTION, SETTINGS, Setting


def option_component(gr: Any, s: Setting) -> tuple[Any, dict[str, Any] | Any]:
    """``(component class, component_args)`` for ``OptionInfo``; choice lists are computed when the
    settings page is built (a callable), so the registry is not imported at registration."""
    if s.kind == "bool":
        return gr.Checkbox, {}
    if s.kind in ("int", "float"):
        return gr.Slider, {"minimum": s.minimum, "maximum": s.maximum, "step": s.step}
    if s.kind == "choice":
        custom = s.choices in ("scorers", "devices")

        def args() -> dict[str, Any]:
            return {"choices": controls.choices_for(s.choices), "allow_custom_value": custom}

        return gr.Dropdown, args
    return gr.Textbox, {}


def register(shared: Any | None = None, gr: Any | None = None) -> None:
    """``on_ui_settings`` callback: add every setting under the extension's own section."""
    if gr is None:
        import gradio as gr
    if shared is None:
        from modules import shared
    for s in SETTINGS:
        component, component_args = option_component(gr, s)
        info = shared.OptionInfo(s.default, s.label, component, component_args, section=SECTION)
        if s.help:
            info = info.info(s.help)
        shared.opts.add_option(s.key, info)
