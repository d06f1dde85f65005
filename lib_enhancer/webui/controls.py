"""Gradio controls built from the tables (:mod:`lib_enhancer.webui.options`, :mod:`lib_enhancer.params`).

The gradio module is passed in (or imported inside the functions); nothing here runs at import.
Choice lists and scorer notes are gradio-free so the routes and tests share them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from lib_enhancer.webui import gradio_compat as compat
from lib_enhancer.webui.options import ENSEMBLE_EXAMPLES, Field, available_modes

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
TARGET_RESULTS = "results"
TARGET_INIT = "init image"
TARGET_CHOICES: tuple[str, ...] = (TARGET_RESULTS, TARGET_INIT)
NON_COMMERCIAL_MARKERS = ("non-commercial", "noncommercial", "-nc-", "nc-sa", "research-use", "research use")


# ---------------------------------------------------------------------------------------------
# Gradio-free helpers


def scorer_names() -> list[str]:
    """Registry scorer names (``fidelity`` is only meaningful inside an ensemble, so it is left out)."""
    from lib_enhancer.scorers import list_scorers

    return [info.name for info in list_scorers() if info.name != "fidelity"]


def scorer_choices() -> list[str]:
    """Dropdown choices: registry names, then example ensemble specs."""
    return [*scorer_names(), *ENSEMBLE_EXAMPLES]


def is_non_commercial(license_text: str) -> bool:
    low = license_text.lower()
    return any(marker in low for marker in NON_COMMERCIAL_MARKERS)


def scorer_note(spec: str) -> str:
    """One markdown paragraph about a scorer spec: what it is, its weights and license.

    Non-commercial licenses (NIMA) are called out in bold, as the user picks the scorer.
    """
    from lib_enhancer.scorers.registry import get_scorer_info, is_ensemble_spec, parse_scorer_spec

    spec = (spec or "").strip()
    if not spec:
        return ""
    try:
        names = [n for n, _ in parse_scorer_spec(spec)] if is_ensemble_spec(spec) else [spec]
        infos = [get_scorer_info(n) for n in names]
    except (KeyError, ValueError) as exc:
        return f"⚠️ {exc.args[0] if exc.args else exc}"
    lines = []
    for info in infos:
        weights = ", ".join(info.weights) or "none (no download)"
        line = f"**{info.name}** — {info.description} Weights: {weights}. License: {info.license}."
        if is_non_commercial(info.license):
            line += " **Non-commercial use only.**"
        lines.append(line)
    return "\n\n".join(lines)


def choices_for(kind: str | None) -> list[str]:
    if kind == "scorers":
        return scorer_choices()
    if kind == "modes":
        return list(available_modes())
    if kind == "devices":
        return list(DEVICE_CHOICES)
    if kind == "targets":
        return list(TARGET_CHOICES)
    return []


# ---------------------------------------------------------------------------------------------
# Gradio builders


def field_control(
    gr: Any,
    f: Field,
    *,
    value: Any = None,
    elem_id: str | None = None,
    label: str | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """The gradio control for one table field (checkbox, slider, number, dropdown or textbox)."""
    current = f.default if value is None else value
    optional: dict[str, Any] = {"elem_id": elem_id, "info": f.help or None}
    optional = {k: v for k, v in optional.items() if v is not None}
    text = label or f.label
    if f.kind == "bool":
        return compat.make(gr.Checkbox, value=bool(current), label=text, optional=optional)
    if f.kind in ("int", "float"):
        assert f.minimum is not None and f.maximum is not None
        if f.maximum - f.minimum > 100_000:
            return compat.make(
                gr.Number,
                value=current,
                label=text,
                optional={**optional, "precision": 0 if f.kind == "int" else None},
            )
        return compat.make(
            gr.Slider,
            minimum=f.minimum,
            maximum=f.maximum,
            step=f.step or (1 if f.kind == "int" else 0.01),
            value=current,
            label=text,
            optional=optional,
        )
    if f.kind == "choice":
        options = list(choices if choices is not None else choices_for(f.choices))
        if current not in options:
            options.insert(0, current)
        custom = f.choices == "scorers"
        return compat.make(
            gr.Dropdown,
            choices=options,
            value=current,
            label=text,
            optional={**optional, "allow_custom_value": custom},
        )
    return compat.make(gr.Textbox, value=str(current), label=text, lines=1, optional=optional)


@contextlib.contextmanager
def enable_accordion(gr: Any, value: bool, *, label: str, elem_id: str | None = None) -> Iterator[Any]:
    """``with enable_accordion(gr, False, label=...) as enabled:`` — the webui's ``InputAccordion``
    (A1111 >= 1.7, Forge), whose header is the enable checkbox, else an accordion holding a checkbox.
    Yields the checkbox component (its value is the "enabled" argument)."""
    try:
        from modules.ui_components import InputAccordion
    except ImportError:
        InputAccordion = None
    if InputAccordion is not None:
        with InputAccordion(value, label=label, elem_id=elem_id) as accordion:
            yield accordion
        return
    with gr.Accordion(label, open=False):
        yield compat.make(gr.Checkbox, value=value, label="Enable", optional={"elem_id": elem_id})
