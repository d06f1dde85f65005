"""The Enhance tab's handlers, without gradio: plain functions and generators over PIL images.

:mod:`lib_enhancer.webui.tab` wires them to gradio components. Long runs are generators that yield
:class:`Update` objects (live preview of the best recipe so far, then the final result); the work
happens in a thread so the preview streams, and closing the generator (gradio's cancel, a closed
browser tab) or :func:`cancel_all` stops it at the next optimizer step.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME, engine
from lib_enhancer.webui.host import Host

logger = logging.getLogger(LOGGER_NAME)

PREVIEW_SIDE = 640  # live preview long side
COMPARE_SIDE = 1024  # before/after slider images long side
MAP_SIDE = 1024  # error maps are computed at most at this size
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
MAP_KINDS = ("difference", "SSIM map", "SSIM below threshold", "ΔE00 map", "haze depth (transmission)")
CUBE_SIZE = 33  # the usual .cube lattice; 65 is PIL's maximum but writes 8x the text


@dataclass(frozen=True)
class TabRequest:
    """The tab's options for one run."""

    scorer: str = "natural"
    text: str = ""
    mode: str = "gradient"
    steps: int = 40
    time_budget: float = 0.0
    strength: float = 1.0
    seed: int = 0
    lock: Sequence[str] = ()
    manual: Mapping[str, float] = field(default_factory=dict)
    verify: bool = True  # learned modes: the scorer picks how much of the model's proposal to keep

    def run_options(self, host: Host) -> engine.RunOptions:
        """Run options; locked parameters hold their fine-tune slider values."""
        from lib_enhancer.params import NEUTRAL, get_param

        lock = {}
        for name in self.lock:
            get_param(name)
            lock[name] = float(self.manual.get(name, NEUTRAL[name]))
        return engine.RunOptions.from_settings(
            host.settings(),
            scorer=self.scorer.strip() or None,
            text=self.text.strip(),
            mode=self.mode or None,
            steps=int(self.steps),
            time_budget=float(self.time_budget) or None,
            strength=float(self.strength),
            seed=int(self.seed),
            lock=lock,
            verify=bool(self.verify),
        )


@dataclass
class Update:
    """One refresh of the tab; ``None`` fields are left as they are."""

    image: Any = None
    status: str | None = None
    recipe_json: str | None = None
    files: list[str] | None = None
    compare_html: str | None = None
    params: dict[str, float] | None = None
    done: bool = False


# ---------------------------------------------------------------------------------------------
# Cancellation


_ACTIVE: set[threading.Event] = set()
_ACTIVE_LOCK = threading.Lock()


def new_cancel_token() -> threading.Event:
    token = threading.Event()
    with _ACTIVE_LOCK:
        _ACTIVE.add(token)
    return token


def _retire(token: threading.Event) -> None:
    with _ACTIVE_LOCK:
        _ACTIVE.discard(token)


def cancel_all() -> str:
    """Cancel every run of the tab (the Cancel button)."""
    with _ACTIVE_LOCK:
        tokens = list(_ACTIVE)
    for token in tokens:
        token.set()
    return "Cancelling…" if tokens else "Nothing to cancel."


# ---------------------------------------------------------------------------------------------
# Images


def to_pil(image: Any) -> Any:
    """PIL image from what gradio hands over (PIL, numpy array, or a file path)."""
    from PIL import Image

    if image is None:
        raise ValueError("no image: upload one first")
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    if isinstance(image, (str, Path)):
        from lib_enhancer.imageio import load_image

        loaded = load_image(image)
        rgb = loaded.rgb if loaded.rgb.dtype == np.uint8 else (loaded.rgb >> 8).astype(np.uint8)
        return Image.fromarray(rgb)
    raise TypeError(f"unsupported image value {type(image).__name__}")


def downsized(image: Any, side: int) -> Any:
    """A copy no larger than ``side`` on its long edge (RGB)."""
    from PIL import Image

    rgb = image.convert("RGB")
    scale = side / max(rgb.size)
    if scale >= 1.0:
        return rgb.copy()
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.LANCZOS)


def data_url(image: Any, side: int = COMPARE_SIDE, quality: int = 88) -> str:
    buf = io.BytesIO()
    downsized(image, side).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def compare_html(before: Any, after: Any) -> str:
    """The before/after slider: two stacked images and a range input (driven by the tab's JS)."""
    return (
        '<div class="nie-compare" style="--nie-pos: 50%">'
        f'<img class="nie-compare-before" alt="before" src="{data_url(before)}">'
        f'<img class="nie-compare-after" alt="after" src="{data_url(after)}">'
        '<input class="nie-compare-range" type="range" min="0" max="100" value="50" step="0.5" '
        'aria-label="Before / after split">'
        '<span class="nie-compare-label nie-compare-label-before">before</span>'
        '<span class="nie-compare-label nie-compare-label-after">after</span>'
        "</div>"
    )


# ---------------------------------------------------------------------------------------------
# Recipes and downloads


def recipe_from_params(values: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> Any:
    """A recipe from slider values (out-of-range values are clamped; neutral ones drop out)."""
    from lib_enhancer.params import validate_params
    from lib_enhancer.recipe import Recipe

    numeric = {k: float(v) for k, v in values.items() if v is not None}
    return Recipe(validate_params(numeric, clamp=True), dict(info or {}))


def parse_recipe(text: str) -> Any:
    from lib_enhancer.recipe import Recipe

    if not text or not text.strip():
        raise ValueError("no recipe yet: enhance an image or paste a recipe JSON")
    return Recipe.from_json(text)


def export_files(recipe: Any, folder: Path, photo: Any = None) -> tuple[list[str], str]:
    """Write ``recipe.json`` and a ``.cube`` of its colour part; returns the paths and a note.

    ``photo`` (the PIL image the recipe was made for) bakes its photo-adaptive auto curves into the
    ``.cube``; without it those are left out like the local filters.
    """
    from lib_enhancer.lut import recipe_lut, write_cube

    text = recipe.to_json()
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"enhancer_recipe_{digest}.json"
    json_path.write_text(text + "\n", encoding="utf-8")
    rgb = np.asarray(photo.convert("RGB")) if photo is not None else None
    table, left_out = recipe_lut(recipe.params, CUBE_SIZE, rgb)
    cube_path = write_cube(folder / f"enhancer_recipe_{digest}.cube", table, title="Neural Image Enhancer")
    note = (
        f"The .cube holds the colour part only; left out (local or photo-adaptive filters, vignette): "
        f"{', '.join(left_out)}."
        if left_out
        else ""
    )
    return [str(json_path), str(cube_path)], note


def score_line(result: Any, elapsed: float) -> str:
    gain = result.score_after - result.score_before
    scorer = result.recipe.info.get("scorer", "?")
    line = (
        f"**Score {result.score_before:.3f} → {result.score_after:.3f}** ({gain:+.3f}) · scorer {scorer} · "
        f"{len(result.history)} steps · {elapsed:.1f} s"
    )
    if result.message:
        line += f"  \n{result.message}"
    return line


# ---------------------------------------------------------------------------------------------
# Single image, streamed


def _preview(base: Any, params: Mapping[str, float], strength: float) -> Any:
    from lib_enhancer.api import apply
    from lib_enhancer.recipe import Recipe

    return apply(Recipe(params).with_strength(strength), base)


def enhance_stream(
    image: Any,
    request: TabRequest,
    host: Host,
    *,
    min_interval: float = 0.4,
    poll: float = 0.1,
    token: threading.Event | None = None,
) -> Iterator[Update]:
    """Enhance one image, yielding live previews of the best recipe so far, then the result."""
    try:
        source = to_pil(image)
        options = request.run_options(host)
    except (ValueError, TypeError, KeyError) as exc:
        yield Update(status=f"⚠️ {engine.describe_error(exc)}", done=True)
        return
    token = token or new_cancel_token()
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    started = time.perf_counter()

    def on_step(step: Any) -> bool:
        events.put(("step", step))
        return token.is_set()

    def work() -> None:
        try:
            with host.exclusive(), host.job("Neural Image Enhancer", 1):
                events.put(("done", engine.run(source, options, host, callback=on_step)))
        except Exception as exc:
            logger.error("%s enhancing the tab image failed: %s", LOG_PREFIX, exc, exc_info=True)
            events.put(("error", exc))
        finally:
            try:
                engine.release(host)
            except Exception as exc:
                logger.warning("%s freeing memory failed: %s", LOG_PREFIX, exc)

    thread = threading.Thread(target=work, name="nie-enhance", daemon=True)
    thread.start()
    yield Update(status=f"Enhancing with {options.scorer} ({options.mode})…")
    base = downsized(source, PREVIEW_SIDE)
    last_shown = 0.0
    best = float("-inf")
    finished = False
    try:
        while True:
            try:
                kind, payload = events.get(timeout=poll)
            except queue.Empty:
                if not thread.is_alive() and events.empty():
                    yield Update(status="⚠️ the enhancement stopped without a result", done=True)
                    finished = True
                    return
                continue
            if kind == "step":
                now = time.perf_counter()
                if payload.best_score > best and now - last_shown >= min_interval:
                    best = payload.best_score
                    last_shown = now
                    yield Update(
                        image=_preview(base, payload.params, options.strength),
                        status=f"Step {payload.step + 1}/{options.steps} · best score {best:.3f} · "
                        f"{now - started:.1f} s",
                    )
            elif kind == "error":
                yield Update(status=f"⚠️ {engine.describe_error(payload)}", done=True)
                finished = True
                return
            else:
                yield _final_update(source, payload, host, time.perf_counter() - started, token.is_set())
                finished = True
                return
    finally:
        if not finished:
            token.set()  # closed early: stop the worker at its next step
        _retire(token)


def _final_update(source: Any, result: Any, host: Host, elapsed: float, cancelled: bool) -> Update:
    recipe = result.recipe
    status = score_line(result, elapsed)
    if cancelled:
        status = "Cancelled — best result so far.  \n" + status
    files, note = export_files(recipe, host.temp_dir(), source)
    if note:
        status += f"  \n{note}"
    return Update(
        image=result.image,
        status=status,
        recipe_json=recipe.to_json(),
        files=files,
        compare_html=compare_html(source, result.image),
        params=recipe.full_params(),
        done=True,
    )


def apply_manual(image: Any, values: Mapping[str, Any], host: Host) -> Update:
    """Apply the fine-tune sliders to the input image at full size."""
    from lib_enhancer.api import apply

    try:
        source = to_pil(image)
        recipe = recipe_from_params(values, {"source": "manual"})
        out = apply(recipe, source)
        files, note = export_files(recipe, host.temp_dir(), source)
    except (ValueError, TypeError, KeyError) as exc:
        return Update(status=f"⚠️ {engine.describe_error(exc)}")
    status = "Applied the fine-tune sliders." + (f"  \n{note}" if note else "")
    return Update(
        image=out,
        status=status,
        recipe_json=recipe.to_json(),
        files=files,
        compare_html=compare_html(source, out),
    )


def params_from_recipe_text(text: str) -> dict[str, float]:
    """Slider values (every parameter) from a recipe JSON."""
    return parse_recipe(text).full_params()


# ---------------------------------------------------------------------------------------------
# Error maps


def _pair(before: Any, after: Any) -> tuple[Any, Any]:
    a = to_pil(before).convert("RGB")
    b = to_pil(after).convert("RGB")
    if a.size != b.size:
        raise ValueError(f"before and after differ in size ({a.size} vs {b.size}); enhance again")
    return downsized(a, MAP_SIDE), downsized(b, MAP_SIDE)


def error_map(before: Any, after: Any, kind: str, threshold: float = 0.9) -> tuple[Any, str]:
    """``(map image, markdown stats)`` comparing the original with the result.

    Kinds (:data:`MAP_KINDS`, drawn by :mod:`lib_enhancer.compare`, like ``compare A B``):
    ``difference`` (per-pixel |after - before|, normalised heat map), ``SSIM map`` (white =
    structurally identical), ``SSIM below threshold`` (red where local SSIM < ``threshold``),
    ``ΔE00 map`` (colour difference heat map) and ``haze depth (transmission)`` (the dehaze
    filter's transmission of the original: white = clear/near, dark = hazy/far).
    """
    from PIL import Image

    from lib_enhancer import compare

    if kind not in MAP_KINDS:
        raise ValueError(f"unknown error map {kind!r}; use one of {', '.join(MAP_KINDS)}")
    a, b = _pair(before, after)
    result = compare.compare_images(a, b, max_side=None)
    if kind == "difference":
        out, caption = compare.difference_picture(result)
    elif kind == "SSIM map":
        out, caption = compare.ssim_picture(result)
    elif kind == "SSIM below threshold":
        out, caption = compare.threshold_picture(result, b, threshold)
    elif kind == "ΔE00 map":
        out, caption = compare.delta_e_picture(result)
    else:
        out, caption = compare.haze_picture(compare.haze_map(a, max_side=None))
    return Image.fromarray(out), f"{result.summary()}  \n{caption}"


# ---------------------------------------------------------------------------------------------
# Batch


def batch_inputs(files: Iterable[Any] | None, input_dir: str | None) -> list[Path]:
    """Uploaded files (gradio 3 tempfile objects or gradio 4 paths) plus the images of a folder."""
    paths: list[Path] = []
    for item in files or []:
        name = getattr(item, "name", item)
        if name:
            paths.append(Path(str(name)))
    if input_dir and input_dir.strip():
        folder = Path(input_dir.strip()).expanduser()
        if not folder.is_dir():
            raise ValueError(f"input folder {folder} does not exist")
        paths.extend(
            sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        )
    return paths


def batch_target(source: Path, out_dir: Path, suffix: str) -> Path:
    ext = source.suffix.lower()
    if ext not in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"):
        ext = ".png"
    return out_dir / f"{source.stem}{suffix}{ext}"


def batch_stream(
    files: Iterable[Any] | None,
    input_dir: str | None,
    output_dir: str | None,
    request: TabRequest,
    host: Host,
    *,
    suffix: str = "-enhanced",
    overwrite: bool = False,
    token: threading.Event | None = None,
) -> Iterator[tuple[str, list[str]]]:
    """Enhance many files; yields ``(log text, written paths)`` after each file.

    Outputs keep the input's format, bit depth, alpha, ICC and EXIF and embed the recipe
    (``lib_enhancer.imageio.RECIPE_TEXT_KEY``). An input is never overwritten; one bad file is
    reported and the batch goes on.
    """
    from lib_enhancer.imageio import RECIPE_TEXT_KEY, load_image, save_image

    log: list[str] = []
    written: list[str] = []
    try:
        paths = batch_inputs(files, input_dir)
        options = request.run_options(host)
    except (ValueError, KeyError) as exc:
        yield f"⚠️ {engine.describe_error(exc)}", written
        return
    if not paths:
        yield "No input images: upload files or give an input folder.", written
        return
    out_dir = (
        Path(output_dir.strip()).expanduser() if output_dir and output_dir.strip() else host.output_dir()
    )
    inputs = {p.resolve() for p in paths}
    token = token or new_cancel_token()
    try:
        with host.exclusive(), host.job("Neural Image Enhancer batch", len(paths)):
            for number, path in enumerate(paths, 1):
                if token.is_set() or host.interrupted():
                    log.append("Cancelled.")
                    break
                started = time.perf_counter()
                try:
                    target = batch_target(path, out_dir, suffix)
                    if target.resolve() in inputs:
                        raise FileExistsError(f"{target} is an input; choose another output folder or suffix")
                    loaded = load_image(path)
                    result = engine.run(loaded.rgb, options, host, callback=lambda _s: token.is_set())
                    recipe_json = result.recipe.with_info(source=path.name).to_json(indent=None)
                    save_image(
                        target,
                        result.image,
                        alpha=loaded.alpha,
                        exif=loaded.exif,
                        icc_profile=loaded.icc_profile,
                        text={RECIPE_TEXT_KEY: recipe_json},
                        overwrite=overwrite,
                    )
                except Exception as exc:
                    logger.error("%s batch: %s failed: %s", LOG_PREFIX, path, exc, exc_info=True)
                    log.append(f"[{number}/{len(paths)}] ⚠️ {path.name}: {engine.describe_error(exc)}")
                else:
                    written.append(str(target))
                    log.append(
                        f"[{number}/{len(paths)}] {path.name} → {target} "
                        f"({result.score_before:.3f} → {result.score_after:.3f}, {time.perf_counter() - started:.1f} s)"
                    )
                host.next_image()
                yield "\n".join(log), list(written)
    finally:
        _retire(token)
        engine.release(host)
    done = len(written)
    log.append(f"Done: {done} written, {len(paths) - done} not, into {out_dir}.")
    yield "\n".join(log), list(written)
