"""One enhancement, run for the glue: scorer cache, modes, progress, cancellation, memory.

Every user-facing hook goes through :func:`enhance_safely`, which never raises: on any failure it
returns the untouched image and a one-line message, and logs the error (with traceback) under the
``[Enhancer]`` prefix. :func:`run` is the raising core used by the API routes (which turn errors
into HTTP answers).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME
from lib_enhancer.webui.host import Host
from lib_enhancer.webui.options import MODE_GRADIENT, EnhancerConfig, EnhancerSettings, check_mode

logger = logging.getLogger(LOGGER_NAME)

StepCallback = Callable[[Any], "bool | None"]


@dataclass(frozen=True)
class RunOptions:
    """Everything one run needs besides the image and the host."""

    scorer: str = "natural"
    text: str = ""
    mode: str = MODE_GRADIENT
    steps: int = 40
    time_budget: float | None = None
    strength: float = 1.0
    seed: int = 0
    restarts: int = 4
    preview_side: int = 256
    l2: float | None = None
    lock: Mapping[str, float] = field(default_factory=dict)
    active: tuple[str, ...] | None = None
    init: Mapping[str, float] | None = None
    prior: Mapping[str, float] | None = None  # None: the scorer's own ({}: start from neutral)
    verify: bool = True  # learned modes: the scorer picks how much of the model's proposal to keep

    @classmethod
    def from_settings(cls, settings: EnhancerSettings, **overrides: Any) -> RunOptions:
        """Options from the settings page, with ``overrides`` (``None`` values are ignored)."""
        base = cls(
            scorer=settings.scorer,
            mode=settings.mode,
            steps=settings.steps,
            time_budget=settings.time_budget or None,
            strength=settings.strength,
            restarts=settings.restarts,
            preview_side=settings.preview_side,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_config(cls, config: EnhancerConfig, settings: EnhancerSettings, seed: int = 0) -> RunOptions:
        """Options of the generation script; ``config.seed == -1`` takes ``seed`` (the image's)."""
        return cls.from_settings(
            settings,
            scorer=config.scorer,
            text=config.text,
            mode=config.mode,
            steps=config.steps,
            strength=config.strength,
            seed=seed if config.seed < 0 else config.seed,
        )


@dataclass
class Outcome:
    """What :func:`enhance_safely` returns: the image to use and what happened."""

    image: Any
    result: Any | None = None  # lib_enhancer.api.Result on success
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# ---------------------------------------------------------------------------------------------
# Scorers


_PROBE_OPTION = "_nie_probe_option_"
_SCORERS: dict[tuple[Any, ...], Any] = {}
_SCORERS_LOCK = threading.Lock()


def _explicit_option(name: str, option: str) -> bool:
    """Whether the factory of ``name`` declares ``option`` by name (not just through ``**kwargs``)."""
    from lib_enhancer.scorers.registry import scorer_accepts_option

    return scorer_accepts_option(name, option) and not scorer_accepts_option(name, _PROBE_OPTION)


def _member_options(name: str, candidates: Mapping[str, Any], text: str) -> dict[str, Any]:
    options = {k: v for k, v in candidates.items() if _explicit_option(name, k)}
    if text and _explicit_option(name, "text"):
        options["text"] = text
    return options


def scorer_key(spec: str, text: str, host: Host, device: str) -> tuple[Any, ...]:
    """Cache key: the request, the host's model settings, and a fingerprint of the model files
    behind ``spec`` (so a retrained ``taste:<name>`` is rebuilt, not served stale)."""
    from lib_enhancer.scorers.registry import scorer_cache_token

    models_dir = host.models_dir()
    token = scorer_cache_token(spec, str(models_dir) if models_dir is not None else None)
    return (spec, text, device, str(models_dir), host.offline(), host.search_dirs(), token)


def build_scorer(spec: str, text: str, host: Host, device: str) -> Any:
    """Create (uncached) the scorer for ``spec`` — a registry name or an ensemble spec.

    The models folder, offline flag and search folders go to every member that takes them; the
    text target goes to the ``text`` member.

    Raises:
        ValueError: empty or unknown scorer (with suggestions), a bad ensemble spec, a text
            scorer without text.
    """
    from lib_enhancer.scorers.registry import create_scorer, is_ensemble_spec, parse_scorer_spec

    spec = str(spec).strip()
    if not spec:
        raise ValueError("no scorer given")
    models_dir = host.models_dir()
    cache_dir = str(models_dir) if models_dir is not None else None
    candidates: dict[str, Any] = {"search_dirs": host.search_dirs()}
    if host.offline() is not None:
        candidates["offline"] = host.offline()
    try:
        if is_ensemble_spec(spec):
            names = [n for n, _ in parse_scorer_spec(spec)]
            member_options = {n: _member_options(n, candidates, text) for n in names}
            member_options = {n: o for n, o in member_options.items() if o}
            return create_scorer(spec, device=device, cache_dir=cache_dir, member_options=member_options)
        return create_scorer(
            spec, device=device, cache_dir=cache_dir, **_member_options(spec, candidates, text)
        )
    except KeyError as exc:  # unknown scorer: the registry's message has the suggestions
        raise ValueError(str(exc.args[0]) if exc.args else str(exc)) from None


def get_scorer(spec: str, text: str, host: Host, device: str) -> Any:
    """The cached scorer for (spec, text, device, models folder, offline)."""
    key = scorer_key(spec, text, host, device)
    with _SCORERS_LOCK:
        scorer = _SCORERS.get(key)
        if scorer is None:
            scorer = build_scorer(spec, text, host, device)
            for stale in [k for k in _SCORERS if k[:-1] == key[:-1]]:  # an older model file's scorer
                del _SCORERS[stale]
            _SCORERS[key] = scorer
        return scorer


def release(host: Host, *, force: bool = False) -> None:
    """Hand memory back after use: unless "keep on GPU" is set, CLIP backbones go to the CPU and
    scorers built for a GPU are dropped; then the host's ``torch_gc``."""
    if force or not host.settings().keep_on_gpu:
        clip = sys.modules.get("lib_enhancer.scorers.clip")
        if clip is not None:
            clip.offload_backbones()
        with _SCORERS_LOCK:
            for key in [k for k in _SCORERS if k[2] != "cpu"]:
                del _SCORERS[key]
    host.torch_gc()


def free_all(host: Host) -> None:
    """Drop every cached scorer and CLIP backbone (script reload, 'free memory')."""
    clip = sys.modules.get("lib_enhancer.scorers.clip")
    if clip is not None:
        clip.free_backbones()
    with _SCORERS_LOCK:
        _SCORERS.clear()
    host.torch_gc()


# ---------------------------------------------------------------------------------------------
# Runs


def _step_callback(
    host: Host, options: RunOptions, callback: StepCallback | None, in_generation: bool
) -> Callable[[Any], bool]:
    def on_step(step: Any) -> bool:
        number = int(getattr(step, "step", 0)) + 1
        best = getattr(step, "best_score", float("nan"))
        host.progress(
            number,
            options.steps,
            f"Enhancer: step {number}/{options.steps}, score {best:.3f}",
            in_generation=in_generation,
        )
        stop = host.interrupted()
        if callback is not None and callback(step):
            stop = True
        return stop

    return on_step


#: Images scored per "step" of a search mode (its ``max_evals`` is ``steps`` x this).
EVALS_PER_STEP = 8


def run(
    image: Any,
    options: RunOptions,
    host: Host,
    *,
    callback: StepCallback | None = None,
    in_generation: bool = False,
) -> Any:
    """Enhance ``image`` (PIL image or ``(H, W, 3|4)`` array) and return the api ``Result``; raises on failure.

    Every mode goes through :func:`lib_enhancer.api.enhance` — the modes are
    ``lib_enhancer.api.MODES`` (the gradient optimizer, the search modes, and whatever else the
    library offers), all with the same options; a search's budget is ``steps`` x 8 images scored.
    ``callback(step)`` returning True cancels, and so does the host's interrupt/skip; a cancelled
    run returns its best result so far.
    """
    options = replace(options, mode=check_mode(options.mode))
    device = host.device()
    scorer = get_scorer(options.scorer, options.text, host, device)
    on_step = _step_callback(host, options, callback, in_generation)
    return _enhance(image, scorer, options, device, on_step)


def _enhance(
    image: Any, scorer: Any, options: RunOptions, device: str, on_step: Callable[[Any], bool]
) -> Any:
    """The one call into the library (a seam for tests)."""
    from lib_enhancer.api import enhance

    return enhance(
        image,
        scorer=scorer,
        mode=options.mode,
        steps=options.steps,
        max_evals=max(EVALS_PER_STEP, options.steps * EVALS_PER_STEP),
        time_budget=options.time_budget,
        strength=options.strength,
        seed=options.seed,
        restarts=options.restarts,
        l2=options.l2,
        lock=dict(options.lock),
        active=options.active,
        init=dict(options.init) if options.init else None,
        prior=dict(options.prior) if options.prior is not None else None,
        verify=options.verify,
        preview_side=options.preview_side,
        device=device,
        callback=on_step,
    )


def describe_error(exc: BaseException) -> str:
    """One line for the user: the exception's own message with its type when that helps."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (ValueError, KeyError, FileNotFoundError)):
        return text.splitlines()[0] if "\n" in text and len(text) > 400 else text
    return f"{type(exc).__name__}: {text}"


def enhance_safely(
    image: Any,
    options: RunOptions,
    host: Host,
    *,
    what: str = "image",
    callback: StepCallback | None = None,
    in_generation: bool = False,
    release_after: bool = True,
) -> Outcome:
    """:func:`run` that never raises: a failure keeps ``image`` and reports the message.

    The error is logged once with its traceback, prefixed ``[Enhancer]``; ``what`` names the image
    in the message (``"txt2img image 2"``).
    """
    try:
        result = run(image, options, host, callback=callback, in_generation=in_generation)
    except Exception as exc:
        message = f"{LOG_PREFIX} enhancing {what} failed, the original is kept: {describe_error(exc)}"
        logger.error(message, exc_info=True)
        return Outcome(image, None, message)
    finally:
        if release_after:
            try:
                release(host)
            except Exception as exc:  # freeing memory must not turn a success into a failure
                logger.warning("%s freeing memory failed: %s", LOG_PREFIX, exc)
    return Outcome(result.image, result, None)
