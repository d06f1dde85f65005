"""The extension's REST API under ``/enhancer/v1/`` (registered from ``on_app_started``).

============================  ======  ===========================================================
route                         method  what
============================  ======  ===========================================================
``/enhancer/v1/version``      GET     versions, available modes, host
``/enhancer/v1/scorers``      GET     the scorer registry (license, weights, non-commercial flag)
``/enhancer/v1/filters``      GET     the filter parameter table
``/enhancer/v1/score``        POST    score one image
``/enhancer/v1/enhance``      POST    enhance one image (every option of ``lib_enhancer.enhance``)
``/enhancer/v1/apply``        POST    apply a recipe to an image
============================  ======  ===========================================================

Images travel as base64 (a ``data:`` URL prefix is accepted). The schemas are built with
``pydantic.create_model`` and plain ``Field`` arguments that pydantic 1 (A1111: fastapi 0.94) and
pydantic 2 (Forge: fastapi 0.104) both understand; unknown request keys are refused. The handlers
are plain functions of the validated request, testable without FastAPI.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at runtime.
"""

import base64
import binascii
import io
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME, engine
from lib_enhancer.webui.host import Host, get_host
from lib_enhancer.webui.options import MODE_SEARCH, available_modes, check_mode

logger = logging.getLogger(LOGGER_NAME)

PREFIX = "/enhancer/v1"
IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}


class RouteError(Exception):
    """An error answer: HTTP ``status`` and a message for the client."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# Schemas


def _is_v1(pydantic: Any) -> bool:
    return str(getattr(pydantic, "VERSION", "1")).startswith("1")


def make_schemas(pydantic: Any) -> SimpleNamespace:
    """Request/response models for the given pydantic module (``pydantic`` or ``pydantic.v1``)."""
    F = pydantic.Field
    if _is_v1(pydantic):

        class Forbid:
            extra = "forbid"

        config: Any = Forbid
    else:
        config = pydantic.ConfigDict(extra="forbid")

    def model(model_name: str, /, **fields: Any) -> Any:
        return pydantic.create_model(model_name, __config__=config, **fields)

    image = (str, F(..., description="Image, base64 (PNG/JPEG/WebP…); a data: URL prefix is accepted."))
    fmt = (str, F("png", description="Format of returned images: png, jpeg or webp."))
    scorer = (str | None, F(None, description="Scorer name or ensemble spec; default: the setting."))
    text = (str, F("", description="Text target for the 'text' scorer (or an ensemble with it)."))

    ns = SimpleNamespace()
    ns.Version = model(
        "EnhancerVersion",
        version=(str, ...),
        api=(str, ...),
        modes=(list[str], ...),
        search_available=(bool, ...),
        host=(str, ...),
    )
    ns.Scorer = model(
        "EnhancerScorer",
        name=(str, ...),
        description=(str, ...),
        score_range=(list[float], ...),
        higher_is_better=(bool, ...),
        differentiable=(bool, ...),
        weights=(list[str], ...),
        license=(str, ...),
        non_commercial=(bool, ...),
        tags=(list[str], ...),
    )
    ns.Filter = model(
        "EnhancerFilter",
        name=(str, ...),
        label=(str, ...),
        neutral=(float, ...),
        minimum=(float, ...),
        maximum=(float, ...),
        step=(float, ...),
        stage=(str, ...),
        group=(str, ...),
        help=(str, ...),
    )
    ns.ScoreRequest = model("EnhancerScoreRequest", image=image, scorer=scorer, text=text)
    ns.ScoreResponse = model(
        "EnhancerScoreResponse",
        scorer=(str, ...),
        score=(float, ...),
        higher_is_better=(bool, ...),
        score_range=(list[float], ...),
    )
    ns.EnhanceRequest = model(
        "EnhancerEnhanceRequest",
        image=image,
        scorer=scorer,
        text=text,
        mode=(str | None, F(None, description="gradient, search or hybrid; default: the setting.")),
        steps=(int | None, F(None, ge=0, le=1000, description="Optimizer steps; default: the setting.")),
        time_budget=(float | None, F(None, ge=0, description="Seconds; 0 or null = the setting.")),
        strength=(float | None, F(None, ge=0, le=1, description="Blend towards the original.")),
        seed=(int, F(0, ge=0, description="Makes the run reproducible.")),
        restarts=(int | None, F(None, ge=1, le=32, description="Candidates optimised together.")),
        preview_side=(int | None, F(None, ge=32, le=2048, description="Long side of the preview.")),
        l2=(float | None, F(None, ge=0, description="Pull towards neutral (larger = gentler).")),
        lock=(dict[str, float], F(default_factory=dict, description="Parameters held at fixed values.")),
        active=(list[str] | None, F(None, description="Parameters the optimizer may change.")),
        init=(dict[str, float] | None, F(None, description="Warm start parameters.")),
        prior=(
            dict[str, float] | None,
            F(
                None,
                description="Gradient start point and pull target; default: the scorer's own, {}: neutral.",
            ),
        ),
        verify=(
            bool,
            F(True, description="Learned modes: the scorer picks how much of the model's proposal to keep."),
        ),
        return_image=(bool, F(True, description="Return the enhanced image.")),
        format=fmt,
    )
    ns.EnhanceResponse = model(
        "EnhancerEnhanceResponse",
        image=(str | None, None),
        recipe=(dict[str, Any], ...),
        score_before=(float, ...),
        score_after=(float, ...),
        identity=(bool, ...),
        message=(str, ...),
        mode=(str, ...),
        steps=(int, ...),
        elapsed=(float, ...),
    )
    ns.ApplyRequest = model(
        "EnhancerApplyRequest",
        image=image,
        recipe=(dict[str, Any] | str, F(..., description="Recipe object or its JSON text.")),
        strength=(float | None, F(None, ge=0, le=1, description="Blend the recipe towards neutral.")),
        format=fmt,
    )
    ns.ApplyResponse = model("EnhancerApplyResponse", image=(str, ...), recipe=(dict[str, Any], ...))
    return ns


# ---------------------------------------------------------------------------------------------
# Images


def decode_image(data: str) -> Any:
    """A PIL image from base64 text (EXIF orientation applied)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    text = data.strip()
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        raw = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise RouteError(400, f"image is not valid base64: {exc}") from None
    if not raw:
        raise RouteError(400, "image is empty")
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise RouteError(400, f"image cannot be decoded: {exc}") from None
    return ImageOps.exif_transpose(image)


def encode_image(image: Any, fmt: str) -> str:
    key = fmt.strip().lower()
    if key not in IMAGE_FORMATS:
        raise RouteError(400, f"unknown image format {fmt!r}; use png, jpeg or webp")
    pil_format = IMAGE_FORMATS[key]
    if pil_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format=pil_format, **({"quality": 95} if pil_format != "PNG" else {}))
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Handlers (plain functions of validated requests)


def route_version(host: Host) -> dict[str, Any]:
    import lib_enhancer

    modes = list(available_modes())
    return {
        "version": lib_enhancer.__version__,
        "api": "v1",
        "modes": modes,
        "search_available": MODE_SEARCH in modes,
        "host": host.name,
    }


def route_scorers() -> list[dict[str, Any]]:
    from lib_enhancer.scorers import list_scorers
    from lib_enhancer.webui.controls import is_non_commercial

    return [
        {
            "name": i.name,
            "description": i.description,
            "score_range": [float(i.score_range[0]), float(i.score_range[1])],
            "higher_is_better": i.higher_is_better,
            "differentiable": i.differentiable,
            "weights": list(i.weights),
            "license": i.license,
            "non_commercial": is_non_commercial(i.license),
            "tags": list(i.tags),
        }
        for i in list_scorers()
    ]


def route_filters() -> list[dict[str, Any]]:
    from lib_enhancer.params import PARAMS

    return [
        {
            "name": p.name,
            "label": p.label,
            "neutral": p.neutral,
            "minimum": p.minimum,
            "maximum": p.maximum,
            "step": p.step,
            "stage": p.stage,
            "group": p.group,
            "help": p.help,
        }
        for p in PARAMS
    ]


def _user_error(exc: Exception) -> RouteError:
    return RouteError(400, engine.describe_error(exc))


def route_score(req: Any, host: Host) -> dict[str, Any]:
    from lib_enhancer.api import score

    image = decode_image(req.image)
    spec = (req.scorer or host.settings().scorer).strip()
    try:
        with host.exclusive():
            device = host.device()
            module = engine.get_scorer(spec, req.text, host, device)
            value = score(image, module, device=device)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
        raise _user_error(exc) from None
    finally:
        engine.release(host)
    info = module.info
    return {
        "scorer": spec,
        "score": value,
        "higher_is_better": info.higher_is_better,
        "score_range": [float(info.score_range[0]), float(info.score_range[1])],
    }


def enhance_options(req: Any, host: Host) -> engine.RunOptions:
    """Run options from an enhance request; ``None`` fields take the settings."""
    mode = req.mode
    if mode is not None:
        try:
            mode = check_mode(mode)
        except ValueError as exc:
            raise _user_error(exc) from None
    return engine.RunOptions.from_settings(
        host.settings(),
        scorer=(req.scorer or "").strip() or None,
        text=req.text,
        mode=mode,
        steps=req.steps,
        time_budget=req.time_budget or None,
        strength=req.strength,
        seed=req.seed,
        restarts=req.restarts,
        preview_side=req.preview_side,
        l2=req.l2,
        lock=dict(req.lock or {}),
        active=tuple(req.active) if req.active is not None else None,
        init=dict(req.init) if req.init is not None else None,
        prior=dict(req.prior) if req.prior is not None else None,
        verify=bool(req.verify),
    )


def route_enhance(req: Any, host: Host) -> dict[str, Any]:
    image = decode_image(req.image)
    options = enhance_options(req, host)
    started = time.perf_counter()
    try:
        with host.exclusive(), host.job("Neural Image Enhancer API", 1):
            result = engine.run(image, options, host)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
        raise _user_error(exc) from None
    finally:
        engine.release(host)
    return {
        "image": encode_image(result.image, req.format) if req.return_image else None,
        "recipe": result.recipe.to_dict(),
        "score_before": result.score_before,
        "score_after": result.score_after,
        "identity": bool(result.identity),
        "message": result.message,
        "mode": options.mode,
        "steps": len(result.history),
        "elapsed": round(time.perf_counter() - started, 3),
    }


def route_apply(req: Any, host: Host) -> dict[str, Any]:
    from lib_enhancer.api import apply
    from lib_enhancer.recipe import Recipe

    image = decode_image(req.image)
    try:
        recipe = Recipe.from_json(req.recipe) if isinstance(req.recipe, str) else Recipe.from_dict(req.recipe)
        if req.strength is not None:
            recipe = recipe.with_strength(req.strength)
        with host.exclusive():
            out = apply(recipe, image)
    except (ValueError, KeyError, TypeError) as exc:
        raise _user_error(exc) from None
    return {"image": encode_image(out, req.format), "recipe": recipe.to_dict()}


# ---------------------------------------------------------------------------------------------
# Registration


def _http(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`RouteError` into FastAPI's ``HTTPException``; log unexpected failures."""
    import functools

    from fastapi import HTTPException

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RouteError as exc:
            raise HTTPException(status_code=exc.status, detail=exc.detail) from None
        except Exception as exc:
            logger.error("%s API %s failed: %s", LOG_PREFIX, fn.__name__, exc, exc_info=True)
            raise HTTPException(
                status_code=500, detail=f"{LOG_PREFIX} {engine.describe_error(exc)}"
            ) from None

    return wrapper


def register(app: Any, host: Host | None = None, pydantic: Any = None) -> SimpleNamespace:
    """Add the routes to a FastAPI ``app``; returns the schemas used."""
    if pydantic is None:
        import pydantic
    s = make_schemas(pydantic)
    host_ = host or get_host()

    def version() -> Any:
        return route_version(host_)

    def scorers() -> Any:
        return route_scorers()

    def filters() -> Any:
        return route_filters()

    def score(req: s.ScoreRequest) -> Any:  # type: ignore[name-defined]
        return route_score(req, host_)

    def enhance(req: s.EnhanceRequest) -> Any:  # type: ignore[name-defined]
        return route_enhance(req, host_)

    def apply(req: s.ApplyRequest) -> Any:  # type: ignore[name-defined]
        return route_apply(req, host_)

    tags = ["Neural Image Enhancer"]
    app.add_api_route(
        f"{PREFIX}/version", _http(version), methods=["GET"], response_model=s.Version, tags=tags
    )
    app.add_api_route(
        f"{PREFIX}/scorers", _http(scorers), methods=["GET"], response_model=list[s.Scorer], tags=tags
    )
    app.add_api_route(
        f"{PREFIX}/filters", _http(filters), methods=["GET"], response_model=list[s.Filter], tags=tags
    )
    app.add_api_route(
        f"{PREFIX}/score", _http(score), methods=["POST"], response_model=s.ScoreResponse, tags=tags
    )
    app.add_api_route(
        f"{PREFIX}/enhance", _http(enhance), methods=["POST"], response_model=s.EnhanceResponse, tags=tags
    )
    app.add_api_route(
        f"{PREFIX}/apply", _http(apply), methods=["POST"], response_model=s.ApplyResponse, tags=tags
    )
    return s


def on_app_started(demo: Any, app: Any) -> None:
    """``script_callbacks.on_app_started`` callback (``demo`` is None with ``--nowebui``)."""
    try:
        register(app)
    except Exception as exc:
        logger.error("%s API routes not registered: %s", LOG_PREFIX, exc, exc_info=True)
