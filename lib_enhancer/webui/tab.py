"""The Enhance tab: gradio layout and wiring (handlers live in :mod:`lib_enhancer.webui.tab_logic`).

Built by the webui's ``on_ui_tabs`` callback and by the standalone app. Element ids start with
``nie-`` (the JavaScript and CSS address them).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME, controls, tab_logic
from lib_enhancer.webui import gradio_compat as compat
from lib_enhancer.webui.host import Host, get_host
from lib_enhancer.webui.options import GEN_ARGS_BY_NAME, SETTINGS_BY_KEY, Field

logger = logging.getLogger(LOGGER_NAME)

TAB_TITLE = "Enhancer"
TAB_ID = "neural_image_enhancer"
SEED_FIELD = Field("seed", "Seed (-1 = random)", 0, "int", -1, 2**31 - 1, 1)


def _request(values: Sequence[Any]) -> tab_logic.TabRequest:
    """TabRequest from the option controls' values (order of :func:`build_tab`'s ``options``)."""
    from lib_enhancer.params import PARAM_NAMES

    scorer, text, mode, steps, budget, strength, seed, lock, verify, *manual = values
    seed = int(seed if seed is not None else 0)
    if seed < 0:
        seed = secrets.randbelow(2**31)
    return tab_logic.TabRequest(
        scorer=str(scorer or ""),
        text=str(text or ""),
        mode=str(mode or ""),
        steps=int(steps),
        time_budget=float(budget or 0.0),
        strength=float(strength),
        seed=seed,
        lock=tuple(lock or ()),
        manual=dict(zip(PARAM_NAMES, manual, strict=True)),
        verify=bool(verify),
    )


def _outputs(gr: Any, update: tab_logic.Update, slider_count: int) -> tuple[Any, ...]:
    """Map an Update onto (output image, status, recipe, files, compare, *sliders)."""
    from lib_enhancer.params import PARAM_NAMES

    def value(v: Any) -> Any:
        return compat.update(gr) if v is None else v

    sliders: list[Any]
    if update.params is None:
        sliders = [compat.update(gr) for _ in range(slider_count)]
    else:
        sliders = [update.params[n] for n in PARAM_NAMES]
    return (
        value(update.image),
        value(update.status),
        value(update.recipe_json),
        value(update.files),
        value(update.compare_html),
        *sliders,
    )


#: Titles of the fine-tune slider groups (the table's ``group``); others are capitalised.
GROUP_TITLES = {
    "creative": "Creative — changes the look (off at neutral)",
    "auto": "Auto — curves read from the photo's own histogram",
}


def _slider_groups() -> list[tuple[str, list[Any]]]:
    """(title, parameters) of the fine-tune sliders, in table order: the creative hard set last."""
    from lib_enhancer.params import PARAMS

    groups: dict[str, list[Any]] = {}
    for p in PARAMS:
        groups.setdefault(p.group, []).append(p)
    return [(GROUP_TITLES.get(group, group.capitalize()), params) for group, params in groups.items()]


def _send_buttons(gr: Any, image: Any) -> None:
    """ "Send to img2img / extras" when the webui offers them (``modules.infotext_utils``)."""
    try:
        try:
            from modules import infotext_utils as itu
        except ImportError:
            from modules import generation_parameters_copypaste as itu
    except ImportError:
        return
    try:
        with gr.Row(elem_id="nie-send"):
            buttons = itu.create_buttons(["img2img", "extras"])
        binding = getattr(itu, "ParamBinding", None)
        register = getattr(itu, "register_paste_params_button", None)
        if binding is not None and register is not None:
            for tabname, button in buttons.items():
                register(binding(paste_button=button, tabname=tabname, source_image_component=image))
        else:
            itu.bind_buttons(buttons, image, None)
    except Exception as exc:  # the tab must still build
        logger.warning("%s send-to buttons unavailable: %s", LOG_PREFIX, exc)


def build_tab(
    host: Host | None = None,
    *,
    blocks_kwargs: dict[str, Any] | None = None,
    image: Any = None,
    initial: tab_logic.Update | None = None,
) -> Any:
    """The tab as a ``gr.Blocks`` (for ``on_ui_tabs`` or the standalone app).

    ``image`` pre-fills the input and ``initial`` (a finished run) the outputs — the standalone app
    uses them for ``--image``/``--enhance``.
    """
    import gradio as gr

    from lib_enhancer.params import CORE_NAMES, NEUTRAL, PARAM_NAMES

    host = host or get_host()
    settings = host.settings()
    shown = initial or tab_logic.Update()
    start_params = shown.params or dict(NEUTRAL)
    kwargs = {"analytics_enabled": False, **(blocks_kwargs or {})}
    with gr.Blocks(**compat.supported(gr.Blocks, kwargs)) as blocks:
        with gr.Row(elem_id="nie-tab", equal_height=False):
            with gr.Column(scale=1, elem_id="nie-left"):
                with gr.Tabs(elem_id="nie-source-tabs"):
                    with gr.Tab("Single image", elem_id="nie-single"):
                        source = gr.Image(
                            value=image,
                            type="pil",
                            label="Image",
                            elem_id="nie-input",
                            **compat.image_source_kwargs(gr),
                        )
                        with gr.Row():
                            run_button = gr.Button("Enhance", variant="primary", elem_id="nie-run")
                            cancel_button = gr.Button("Cancel", elem_id="nie-cancel")
                    with gr.Tab("Batch", elem_id="nie-batch"):
                        batch_files = gr.File(
                            file_count="multiple", label="Images", elem_id="nie-batch-files"
                        )
                        batch_in = gr.Textbox(label="Input folder (optional)", elem_id="nie-batch-input")
                        batch_out = gr.Textbox(
                            value=str(host.output_dir()), label="Output folder", elem_id="nie-batch-output"
                        )
                        with gr.Row():
                            batch_suffix = gr.Textbox(
                                value="-enhanced", label="File name suffix", elem_id="nie-batch-suffix"
                            )
                            batch_overwrite = gr.Checkbox(
                                False, label="Overwrite outputs", elem_id="nie-batch-overwrite"
                            )
                        with gr.Row():
                            batch_button = gr.Button(
                                "Enhance all", variant="primary", elem_id="nie-batch-run"
                            )
                            batch_cancel = gr.Button("Cancel", elem_id="nie-batch-cancel")
                        batch_log = gr.Textbox(
                            label="Log", lines=8, interactive=False, elem_id="nie-batch-log"
                        )
                scorer = controls.field_control(
                    gr, GEN_ARGS_BY_NAME["scorer"], value=settings.scorer, elem_id="nie-scorer"
                )
                scorer_note = gr.Markdown(controls.scorer_note(settings.scorer), elem_id="nie-scorer-note")
                text = controls.field_control(gr, GEN_ARGS_BY_NAME["text"], elem_id="nie-text")
                mode = controls.field_control(
                    gr, GEN_ARGS_BY_NAME["mode"], value=settings.mode, elem_id="nie-mode"
                )
                with gr.Row():
                    steps = controls.field_control(
                        gr, GEN_ARGS_BY_NAME["steps"], value=settings.steps, elem_id="nie-steps"
                    )
                    budget = controls.field_control(
                        gr,
                        SETTINGS_BY_KEY["nie_time_budget"],
                        value=settings.time_budget,
                        label="Time budget (s, 0 = none)",
                        elem_id="nie-budget",
                    )
                with gr.Row():
                    strength = controls.field_control(
                        gr, GEN_ARGS_BY_NAME["strength"], value=settings.strength, elem_id="nie-strength"
                    )
                    seed = controls.field_control(gr, SEED_FIELD, elem_id="nie-seed")
                lock = compat.make(
                    gr.CheckboxGroup,
                    choices=list(CORE_NAMES),  # creative edits are applied by hand, never searched
                    value=[],
                    label="Lock parameters (held at their fine-tune values)",
                    optional={"elem_id": "nie-lock"},
                )
                verify = gr.Checkbox(
                    value=True,
                    label="Learned modes: let the scorer check the model's proposal",
                    elem_id="nie-verify",
                )
            with gr.Column(scale=1, elem_id="nie-right"):
                result = gr.Image(
                    value=shown.image, type="pil", label="Result", interactive=False, elem_id="nie-output"
                )
                status = gr.Markdown(shown.status or "", elem_id="nie-status")
                compare = gr.HTML(shown.compare_html or "", elem_id="nie-compare")
                if host.can_send_to_webui():
                    _send_buttons(gr, result)
                with gr.Accordion("Recipe", open=True, elem_id="nie-recipe-box"):
                    recipe = compat.make(
                        gr.Code,
                        value=shown.recipe_json or "",
                        language="json",
                        label="Recipe JSON (copy, or paste one and load it)",
                        optional={"elem_id": "nie-recipe", "interactive": True},
                    )
                    files = gr.File(
                        value=shown.files,
                        label="Recipe + .cube",
                        file_count="multiple",
                        interactive=False,
                        elem_id="nie-files",
                    )
                with gr.Accordion("Fine-tune", open=False, elem_id="nie-finetune"):
                    sliders: dict[str, Any] = {}
                    for title, params in _slider_groups():
                        gr.Markdown(f"**{title}**")
                        with gr.Row():
                            for p in params:
                                sliders[p.name] = compat.make(
                                    gr.Slider,
                                    minimum=p.minimum,
                                    maximum=p.maximum,
                                    step=p.step,
                                    value=start_params[p.name],
                                    label=p.label,
                                    optional={
                                        "elem_id": f"nie-param-{p.name}",
                                        "info": p.help,
                                        "min_width": 160,
                                    },
                                )
                    with gr.Row():
                        apply_button = gr.Button("Apply sliders", variant="primary", elem_id="nie-apply")
                        load_button = gr.Button("Sliders from recipe", elem_id="nie-load")
                        neutral_button = gr.Button("Neutral", elem_id="nie-neutral")
                with gr.Accordion("Error maps", open=False, elem_id="nie-maps"):
                    with gr.Row():
                        map_kind = gr.Radio(
                            list(tab_logic.MAP_KINDS),
                            value=tab_logic.MAP_KINDS[0],
                            label="Map",
                            elem_id="nie-map-kind",
                        )
                        threshold = gr.Slider(
                            0.5,
                            1.0,
                            value=0.9,
                            step=0.01,
                            label="SSIM threshold",
                            elem_id="nie-map-threshold",
                        )
                    map_button = gr.Button("Compute map", elem_id="nie-map-run")
                    map_image = gr.Image(type="pil", label="Map", interactive=False, elem_id="nie-map")
                    map_stats = gr.Markdown(elem_id="nie-map-stats")

        slider_list = [sliders[n] for n in PARAM_NAMES]
        options = [scorer, text, mode, steps, budget, strength, seed, lock, verify, *slider_list]
        outputs = [result, status, recipe, files, compare, *slider_list]

        def run_single(image: Any, *values: Any) -> Iterator[tuple[Any, ...]]:
            try:
                request = _request(values)
            except (TypeError, ValueError) as exc:
                yield _outputs(gr, tab_logic.Update(status=f"⚠️ {exc}"), len(slider_list))
                return
            for update in tab_logic.enhance_stream(image, request, host):
                yield _outputs(gr, update, len(slider_list))

        def run_batch(
            files_value: Any, folder: str, out: str, suffix: str, overwrite: bool, *values: Any
        ) -> Iterator[str]:
            request = _request(values)
            for log, _written in tab_logic.batch_stream(
                files_value, folder, out, request, host, suffix=suffix or "", overwrite=bool(overwrite)
            ):
                yield log

        def apply_sliders(image: Any, *values: Any) -> tuple[Any, ...]:
            update = tab_logic.apply_manual(image, dict(zip(PARAM_NAMES, values, strict=True)), host)
            return _outputs(gr, update, len(slider_list))[:5]

        def load_sliders(text_value: str) -> tuple[Any, ...]:
            try:
                params = tab_logic.params_from_recipe_text(text_value)
            except ValueError as exc:
                if hasattr(gr, "Warning"):
                    gr.Warning(str(exc))
                return tuple(compat.update(gr) for _ in slider_list)
            return tuple(params[n] for n in PARAM_NAMES)

        def compute_map(before: Any, after: Any, kind: str, limit: float) -> tuple[Any, str]:
            if before is None or after is None:
                return None, "Enhance an image first."
            try:
                return tab_logic.error_map(before, after, kind, float(limit))
            except (ValueError, TypeError) as exc:
                return None, f"⚠️ {exc}"

        scorer.change(fn=controls.scorer_note, inputs=[scorer], outputs=[scorer_note], show_progress=False)
        run_event = run_button.click(fn=run_single, inputs=[source, *options], outputs=outputs)
        cancel_button.click(fn=tab_logic.cancel_all, inputs=None, outputs=[status], cancels=[run_event])
        batch_event = batch_button.click(
            fn=run_batch,
            inputs=[batch_files, batch_in, batch_out, batch_suffix, batch_overwrite, *options],
            outputs=[batch_log],
        )
        batch_cancel.click(fn=tab_logic.cancel_all, inputs=None, outputs=[batch_log], cancels=[batch_event])
        apply_button.click(fn=apply_sliders, inputs=[source, *slider_list], outputs=outputs[:5])
        load_button.click(fn=load_sliders, inputs=[recipe], outputs=slider_list)
        neutral_button.click(
            fn=lambda: tuple(NEUTRAL[n] for n in PARAM_NAMES), inputs=None, outputs=slider_list
        )
        map_button.click(
            fn=compute_map, inputs=[source, result, map_kind, threshold], outputs=[map_image, map_stats]
        )
    return blocks


def on_ui_tabs() -> list[tuple[Any, str, str]]:
    """``script_callbacks.on_ui_tabs`` callback; a failure leaves the webui without the tab, not broken."""
    try:
        return [(build_tab(get_host()), TAB_TITLE, TAB_ID)]
    except Exception as exc:
        logger.error("%s the Enhancer tab could not be built: %s", LOG_PREFIX, exc, exc_info=True)
        return []
