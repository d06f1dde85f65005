"""The two tables of the webui glue: generation-script arguments and settings. Pure Python.

:data:`GEN_ARGS` is the single source for the generation script: the order of its gradio controls
(and so of the ``alwayson_scripts`` / ``script_args`` API argument lists), their labels, ranges and
defaults, the infotext keys written into ``p.extra_generation_params`` and the paste-from-infotext
parser. :data:`SETTINGS` does the same for the settings page. Filter parameters are not listed
here: they come from :mod:`lib_enhancer.params`.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME

logger = logging.getLogger(LOGGER_NAME)

Kind = Literal["bool", "int", "float", "choice", "text"]

MODE_GRADIENT = "gradient"
MODE_SEARCH = "best-first"
MODE_HYBRID = "hybrid"
#: Mode names written into infotext by earlier versions of the extension -> today's names.
MODE_ALIASES = {"search": MODE_SEARCH}
#: One line per mode (documentation); the choices themselves come from ``lib_enhancer.api.MODES``.
MODE_HELP = {
    MODE_GRADIENT: "gradient: optimise the recipe with gradients through the exact filters (fast, smooth).",
    "best-first": "best-first: search over discrete edits of the recipe (works with any scorer).",
    "beam": "beam: a beam search over discrete edits (broader than best-first, slower).",
    MODE_HYBRID: "hybrid: a search finds the start point, gradients refine it.",
    "hybrid-reverse": "hybrid-reverse: gradients first, then a search refines the result.",
    "predict": "predict: the learned recipe predictor, one pass; the scorer picks how much to keep (fastest).",
    "histogram": "histogram: the learned histogram network as a colour LUT, one pass; the scorer picks how much.",
}

DEFAULT_SCORER = "natural"
#: Scorer specs offered in dropdowns besides the registry names (custom values are allowed too).
ENSEMBLE_EXAMPLES: tuple[str, ...] = ("laion:0.7,natural:0.3", "laion:1,fidelity:0.5")

# Infotext keys written with every enhanced image (besides the GEN_ARGS keys).
KEY_RECIPE = "Enhancer recipe"
KEY_SCORE_BEFORE = "Enhancer score before"
KEY_SCORE_AFTER = "Enhancer score after"
KEY_INIT_RECIPE = "Enhancer init recipe"
KEY_ERROR = "Enhancer error"
RESULT_KEYS: tuple[str, ...] = (KEY_RECIPE, KEY_SCORE_BEFORE, KEY_SCORE_AFTER)


# ---------------------------------------------------------------------------------------------
# Modes


def search_function() -> Callable[..., Any] | None:
    """``lib_enhancer.search.search`` if that module imports and exposes it, else ``None``.

    Checked at call time (never at import), so a search module that lands later is picked up.
    """
    try:
        module = importlib.import_module("lib_enhancer.search")
    except ImportError as exc:
        logger.debug("%s search mode unavailable: %s", LOG_PREFIX, exc)
        return None
    except Exception as exc:  # a broken module must not take the glue down with it
        logger.warning(
            "%s search mode unavailable, lib_enhancer.search failed to import: %s", LOG_PREFIX, exc
        )
        return None
    fn = getattr(module, "search", None)
    return fn if callable(fn) else None


def all_modes() -> tuple[str, ...]:
    """Every mode of the library: ``lib_enhancer.api.MODES``, read at call time (never at import),
    so a mode added there appears in the webui's choices without a change here."""
    from lib_enhancer import api

    return tuple(api.MODES)


def available_modes() -> tuple[str, ...]:
    """The modes this installation can run: :func:`all_modes`, without the search modes when
    ``lib_enhancer.search`` is missing."""
    from lib_enhancer import api

    modes = all_modes()
    if search_function() is None:
        searching = set(getattr(api, "SEARCH_MODES", ()))
        modes = tuple(m for m in modes if m not in searching)
    return modes


def check_mode(mode: str) -> str:
    """Validate a mode name against :func:`available_modes`; returns the canonical name
    (old infotext names such as ``search`` are mapped by :data:`MODE_ALIASES`).

    Raises:
        ValueError: unknown mode, or a search mode without ``lib_enhancer.search``.
    """
    name = str(mode).strip().lower()
    name = MODE_ALIASES.get(name, name)
    known = all_modes()
    if name not in known:
        raise ValueError(f"unknown enhancer mode {mode!r}; known modes: {', '.join(known)}")
    if name not in available_modes():
        raise ValueError(
            f"enhancer mode {name!r} needs lib_enhancer.search, which is not available in this "
            f"installation; use {MODE_GRADIENT!r}"
        )
    return name


# ---------------------------------------------------------------------------------------------
# Typed values


@dataclass(frozen=True)
class Field:
    """One typed, bounded value of a table (a generation argument or a setting)."""

    name: str
    label: str
    default: Any
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    help: str = ""
    choices: str | None = None  # "scorers", "modes", "devices", "targets": filled in by the UI

    def coerce(self, value: Any) -> Any:
        """Convert ``value`` (possibly a string from infotext or JSON) to this field's type.

        Raises:
            ValueError: not convertible, not finite or out of range.
        """
        try:
            out = _convert(self.kind, value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.label}: cannot use {value!r} ({exc})") from None
        if self.kind in ("int", "float"):
            if not math.isfinite(out):
                raise ValueError(f"{self.label}: {value!r} is not a finite number")
            if self.minimum is not None and out < self.minimum - 1e-9:
                raise ValueError(f"{self.label}: {out:g} is below the minimum {self.minimum:g}")
            if self.maximum is not None and out > self.maximum + 1e-9:
                raise ValueError(f"{self.label}: {out:g} is above the maximum {self.maximum:g}")
        return out

    def format(self, value: Any) -> str:
        """The infotext form of a coerced value (parsed back exactly by :meth:`coerce`)."""
        if self.kind == "bool":
            return "True" if value else "False"
        if self.kind == "float":
            return repr(float(value))
        return str(value)


def _convert(kind: Kind, value: Any) -> Any:
    if kind == "bool":
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off", ""):
                return False
            raise ValueError("expected true or false")
        return bool(value)
    if kind == "int":
        number = float(value)
        if not number.is_integer():
            raise ValueError("expected a whole number")
        return int(number)
    if kind == "float":
        return float(value)
    if value is None:
        raise ValueError("expected text")
    return str(value).strip() if kind == "choice" else str(value)


# ---------------------------------------------------------------------------------------------
# Generation-script arguments


@dataclass(frozen=True)
class Arg(Field):
    """A generation-script argument: a :class:`Field` with its infotext key and setting."""

    infotext: str = ""
    setting: str | None = None  # settings key supplying the default (UI default and None args)


#: Positional order = order of the UI controls = ``alwayson_scripts[...]["args"]`` order.
GEN_ARGS: tuple[Arg, ...] = (
    Arg("enabled", "Enable", False, "bool", help="Enhance every generated image."),
    Arg(
        "scorer",
        "Scorer",
        DEFAULT_SCORER,
        "choice",
        choices="scorers",
        infotext="Enhancer scorer",
        setting="nie_scorer",
        help="Registry name or ensemble spec such as laion:0.7,natural:0.3.",
    ),
    Arg(
        "mode",
        "Mode",
        MODE_GRADIENT,
        "choice",
        choices="modes",
        infotext="Enhancer mode",
        setting="nie_mode",
        help="How the recipe is found: gradient, a search (best-first, beam, hybrid...) or a learned "
        "mode; the choices are lib_enhancer.api.MODES.",
    ),
    Arg(
        "steps",
        "Steps",
        40,
        "int",
        1,
        300,
        1,
        infotext="Enhancer steps",
        setting="nie_steps",
        help="Optimizer steps.",
    ),
    Arg(
        "strength",
        "Strength",
        1.0,
        "float",
        0.0,
        1.0,
        0.05,
        infotext="Enhancer strength",
        setting="nie_strength",
        help="Blend of the found edit towards the original (0 = unchanged).",
    ),
    Arg(
        "seed",
        "Seed",
        -1,
        "int",
        -1,
        2**31 - 1,
        1,
        infotext="Enhancer seed",
        help="-1 uses the image's generation seed (or 0 outside a generation).",
    ),
    Arg(
        "keep_original",
        "Keep original as extra output",
        False,
        "bool",
        infotext="Enhancer keep original",
        help="Also return (and save) the un-enhanced image.",
    ),
    Arg(
        "text",
        "Text target",
        "",
        "text",
        infotext="Enhancer text",
        help="For the 'text' scorer (or an ensemble with it): words describing the look you want.",
    ),
)
GEN_ARGS_BY_NAME: dict[str, Arg] = {a.name: a for a in GEN_ARGS}
GEN_ARG_NAMES: tuple[str, ...] = tuple(a.name for a in GEN_ARGS)


@dataclass(frozen=True)
class EnhancerConfig:
    """The generation script's arguments, validated (field names = :data:`GEN_ARGS` names)."""

    enabled: bool = False
    scorer: str = DEFAULT_SCORER
    mode: str = MODE_GRADIENT
    steps: int = 40
    strength: float = 1.0
    seed: int = -1
    keep_original: bool = False
    text: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_values(self, **values: Any) -> EnhancerConfig:
        return replace(self, **values)


assert tuple(f.name for f in fields(EnhancerConfig)) == GEN_ARG_NAMES, "GEN_ARGS and EnhancerConfig differ"


def arg_defaults(settings: EnhancerSettings | None = None) -> dict[str, Any]:
    """Default value of every argument; arguments tied to a setting take the setting's value."""
    values = {a.name: a.default for a in GEN_ARGS}
    if settings is not None:
        for a in GEN_ARGS:
            if a.setting is not None:
                values[a.name] = getattr(settings, SETTINGS_BY_KEY[a.setting].name)
    return values


def config_from_args(
    args: Sequence[Any] | Mapping[str, Any], settings: EnhancerSettings | None = None
) -> EnhancerConfig:
    """Build a config from the script's positional ``*args`` (or a mapping by name).

    Missing trailing arguments and ``None`` values take the defaults (from ``settings`` where an
    argument is tied to one), as the webui API does for arguments it was not given.

    Raises:
        ValueError: a value that does not fit its argument (the message names the argument).
    """
    defaults = arg_defaults(settings)
    if isinstance(args, Mapping):
        unknown = sorted(set(args) - set(GEN_ARG_NAMES))
        if unknown:
            raise ValueError(
                f"unknown enhancer arguments: {', '.join(unknown)}; known: {', '.join(GEN_ARG_NAMES)}"
            )
        given = dict(args)
    else:
        given = dict(zip(GEN_ARG_NAMES, args, strict=False))
    values = {}
    for a in GEN_ARGS:
        raw = given.get(a.name)
        values[a.name] = a.coerce(defaults[a.name] if raw is None else raw)
    return EnhancerConfig(**values)


def to_infotext(config: EnhancerConfig) -> dict[str, str]:
    """The infotext entries of an enabled config (``{"Enhancer scorer": "natural", ...}``)."""
    out: dict[str, str] = {}
    for a in GEN_ARGS:
        if not a.infotext:
            continue
        value = getattr(config, a.name)
        if a.kind == "text" and value == "":
            continue
        out[a.infotext] = a.format(value)
    return out


def from_infotext(
    params: Mapping[str, Any], settings: EnhancerSettings | None = None
) -> EnhancerConfig | None:
    """Parse pasted infotext parameters back into a config; ``None`` when it has no enhancer entries.

    A malformed value falls back to its default with a warning (pasting never fails).
    """
    marker = GEN_ARGS_BY_NAME["scorer"].infotext
    if marker not in params:
        return None
    defaults = arg_defaults(settings)
    values: dict[str, Any] = {"enabled": True}
    for a in GEN_ARGS:
        if not a.infotext:
            continue
        raw = params.get(a.infotext)
        if raw is None:
            values[a.name] = defaults[a.name]
            continue
        try:
            values[a.name] = a.coerce(raw)
        except ValueError as exc:
            logger.warning("%s pasted infotext: %s; using %r", LOG_PREFIX, exc, defaults[a.name])
            values[a.name] = defaults[a.name]
    return EnhancerConfig(**values)


def paste_value(params: Mapping[str, Any], name: str, settings: EnhancerSettings | None = None) -> Any:
    """The value one control takes when an infotext is pasted (``None`` = leave it alone).

    ``enabled`` becomes ``False`` for an infotext without enhancer entries, so pasting restores the
    generation exactly; the other controls keep their value then.
    """
    config = from_infotext(params, settings)
    if config is None:
        return False if name == "enabled" else None
    return getattr(config, name)


def recipe_infotext(recipe_json: str) -> str:
    """Compact one-line JSON for the infotext (the webui quotes it)."""
    return json.dumps(json.loads(recipe_json), separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Setting(Field):
    """A settings-page option; ``key`` is the ``shared.opts`` name."""

    key: str = ""


SECTION = ("neural_image_enhancer", "Neural Image Enhancer")

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "scorer",
        "Default scorer",
        DEFAULT_SCORER,
        "choice",
        choices="scorers",
        key="nie_scorer",
        help="'natural' needs no download. NIMA weights are licensed for non-commercial use only.",
    ),
    Setting("mode", "Default mode", MODE_GRADIENT, "choice", choices="modes", key="nie_mode"),
    Setting("steps", "Default steps", 40, "int", 1, 300, 1, key="nie_steps"),
    Setting(
        "time_budget",
        "Time budget per image (seconds, 0 = no limit)",
        0.0,
        "float",
        0.0,
        600.0,
        1.0,
        key="nie_time_budget",
    ),
    Setting("strength", "Default strength", 1.0, "float", 0.0, 1.0, 0.05, key="nie_strength"),
    Setting(
        "restarts",
        "Restarts (candidates optimised together)",
        4,
        "int",
        1,
        16,
        1,
        key="nie_restarts",
    ),
    Setting(
        "preview_side",
        "Optimisation preview size (long side, pixels)",
        256,
        "int",
        64,
        1024,
        32,
        key="nie_preview_side",
    ),
    Setting(
        "models_dir",
        "Models folder (empty = <models>/lib_enhancer)",
        "",
        "text",
        key="nie_models_dir",
        help="Where scorer weights are looked for and downloaded to; --enhancer-models-dir overrides it.",
    ),
    Setting(
        "keep_on_gpu",
        "Keep scorer models on the GPU between runs (faster, uses VRAM)",
        False,
        "bool",
        key="nie_keep_on_gpu",
        help="Off: scorer models are moved to the CPU / freed after every use.",
    ),
    Setting(
        "device",
        "Device",
        "auto",
        "choice",
        choices="devices",
        key="nie_device",
        help="auto = the webui's device (honours --use-cpu all / --always-cpu); or cpu, cuda, cuda:1, mps.",
    ),
    Setting(
        "offline",
        "Offline mode (never download weights)",
        False,
        "bool",
        key="nie_offline",
        help="A missing weight file then fails with a message naming the file and where to put it.",
    ),
    Setting(
        "extras_api",
        "Enhance in Extras API requests (they cannot pass arguments)",
        False,
        "bool",
        key="nie_extras_api",
        help="/sdapi/v1/extra-* pass None for every extension control; this decides what None means.",
    ),
)
SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class EnhancerSettings:
    """The settings, resolved (field names = :data:`SETTINGS` names)."""

    scorer: str = DEFAULT_SCORER
    mode: str = MODE_GRADIENT
    steps: int = 40
    time_budget: float = 0.0
    strength: float = 1.0
    restarts: int = 4
    preview_side: int = 256
    models_dir: str = ""
    keep_on_gpu: bool = False
    device: str = "auto"
    offline: bool = False
    extras_api: bool = False


assert tuple(f.name for f in fields(EnhancerSettings)) == tuple(s.name for s in SETTINGS), (
    "SETTINGS and EnhancerSettings differ"
)


def settings_from_lookup(get: Callable[[str, Any], Any]) -> EnhancerSettings:
    """Resolve the settings with ``get(key, default)`` (e.g. ``getattr(shared.opts, key, default)``).

    A stored value that no longer fits (hand-edited config.json) falls back to the default with a
    warning instead of breaking every hook.
    """
    values = {}
    for s in SETTINGS:
        raw = get(s.key, s.default)
        try:
            values[s.name] = s.coerce(s.default if raw is None else raw)
        except ValueError as exc:
            logger.warning("%s setting %s: %s; using %r", LOG_PREFIX, s.key, exc, s.default)
            values[s.name] = s.default
    return EnhancerSettings(**values)
