"""Where the glue meets its host: the sd-webui process or a plain Python process.

A :class:`Host` answers the few questions the glue has — settings, device, models folder, output
folder, whether the user interrupted — and does the few things it needs done: take the GPU queue
lock, report progress, free memory. :class:`WebuiHost` reads ``modules.*`` (imported inside its
methods); :class:`StandaloneHost` needs nothing but torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME
from lib_enhancer.webui.options import EnhancerSettings, settings_from_lookup

logger = logging.getLogger(LOGGER_NAME)

MODELS_SUBDIR = "lib_enhancer"


class Host:
    """The standalone behaviour; :class:`WebuiHost` overrides what the webui provides."""

    name = "standalone"

    def __init__(self, settings: EnhancerSettings | None = None) -> None:
        self._settings = settings or EnhancerSettings()
        self._lock = threading.Lock()

    # ---- configuration ----------------------------------------------------------------------
    def settings(self) -> EnhancerSettings:
        return self._settings

    def update_settings(self, **values: Any) -> None:
        self._settings = replace(self._settings, **values)

    def models_dir(self) -> Path | None:
        """The models folder from the settings; ``None`` = the library's default cache."""
        folder = self.settings().models_dir.strip()
        return Path(folder).expanduser() if folder else None

    def search_dirs(self) -> tuple[str, ...]:
        """Further folders where weights are looked for before downloading."""
        return ()

    def offline(self) -> bool | None:
        """``True``/``False`` from the settings; ``None`` lets ``$LIB_ENHANCER_OFFLINE`` decide."""
        return True if self.settings().offline else None

    def device(self) -> str:
        """The torch device for scorers: the setting, else CUDA when available, else CPU."""
        chosen = self.settings().device.strip().lower()
        if chosen and chosen != "auto":
            return chosen
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def output_dir(self) -> Path:
        """Default folder for batch outputs."""
        return Path.cwd() / "enhanced"

    def temp_dir(self) -> Path:
        """Folder for downloads offered by the tab (recipe JSON, .cube)."""
        import tempfile

        return Path(tempfile.gettempdir()) / "lib_enhancer_webui"

    # ---- runtime ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the GPU for one run (the webui's queue lock; a plain lock standalone)."""
        with self._lock:
            yield

    def interrupted(self) -> bool:
        """Whether the user asked to stop (webui Interrupt / Skip)."""
        return False

    @contextlib.contextmanager
    def job(self, title: str, count: int) -> Iterator[None]:
        """Progress scope of a job of ``count`` images outside a generation."""
        yield

    def progress(self, step: int, steps: int, text: str, *, in_generation: bool = False) -> None:
        """Report optimizer progress (step of steps); inside a generation only the text is shown."""

    def next_image(self) -> None:
        """Advance the job to its next image."""

    def torch_gc(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def can_send_to_webui(self) -> bool:
        return False


class StandaloneHost(Host):
    """Host for ``python -m lib_enhancer.webui.app`` and for library users."""


class WebuiHost(Host):
    """Host inside AUTOMATIC1111 / Forge: settings from ``shared.opts``, devices, state, queue lock."""

    name = "webui"

    def __init__(self) -> None:
        super().__init__()

    def settings(self) -> EnhancerSettings:
        from modules import shared

        opts = shared.opts
        resolved = settings_from_lookup(lambda key, default: getattr(opts, key, default))
        cmd = getattr(shared, "cmd_opts", None)
        models_dir = getattr(cmd, "enhancer_models_dir", None)
        if models_dir:
            resolved = replace(resolved, models_dir=str(models_dir))
        if getattr(cmd, "enhancer_offline", False):
            resolved = replace(resolved, offline=True)
        return resolved

    def models_dir(self) -> Path:
        configured = super().models_dir()
        if configured is not None:
            return configured
        from modules import paths

        return Path(paths.models_path) / MODELS_SUBDIR

    def search_dirs(self) -> tuple[str, ...]:
        """``<models>/`` itself, so weights already in the webui's models folder are found."""
        from modules import paths

        return (str(paths.models_path),)

    def device(self) -> str:
        """The setting, else CPU when the command line asks for it, else the webui's device.

        Forge's ``devices.get_device_for`` ignores ``--use-cpu``, so the flags are read here.
        """
        chosen = self.settings().device.strip().lower()
        if chosen and chosen != "auto":
            return chosen
        from modules import devices, shared

        cmd = getattr(shared, "cmd_opts", None)
        use_cpu = [str(x).lower() for x in (getattr(cmd, "use_cpu", None) or [])]
        if "all" in use_cpu or "enhancer" in use_cpu or getattr(cmd, "always_cpu", False):
            return "cpu"
        get_for = getattr(devices, "get_device_for", None)
        device = get_for("enhancer") if callable(get_for) else devices.device
        return str(device)

    def output_dir(self) -> Path:
        from modules import shared

        base = getattr(shared.opts, "outdir_extras_samples", "") or os.path.join("outputs", "extras-images")
        return Path(base) / "enhancer"

    def temp_dir(self) -> Path:
        from modules import shared

        configured = getattr(shared.opts, "temp_dir", "") or ""
        return Path(configured) / "lib_enhancer" if configured else super().temp_dir()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The webui's GPU queue lock (``modules.call_queue.queue_lock``), so runs never overlap a
        generation. Never take it from inside a generation hook: the generation holds it."""
        try:
            from modules import call_queue

            lock = call_queue.queue_lock
        except (ImportError, AttributeError):
            lock = self._lock
        with lock:
            yield

    def interrupted(self) -> bool:
        from modules import shared

        state = shared.state
        return bool(getattr(state, "interrupted", False) or getattr(state, "skipped", False))

    @contextlib.contextmanager
    def job(self, title: str, count: int) -> Iterator[None]:
        from modules import shared

        state = shared.state
        state.begin(job=title)
        state.job_count = count
        try:
            yield
        finally:
            state.end()

    def progress(self, step: int, steps: int, text: str, *, in_generation: bool = False) -> None:
        from modules import shared

        state = shared.state
        state.textinfo = text
        if in_generation:  # the generation owns the step counters
            return
        state.sampling_steps = steps
        state.sampling_step = step

    def next_image(self) -> None:
        from modules import shared

        shared.state.nextjob()

    def torch_gc(self) -> None:
        from modules import devices

        devices.torch_gc()

    def can_send_to_webui(self) -> bool:
        return True


_HOST: Host | None = None


def get_host() -> Host:
    """The process-wide host (standalone until :func:`set_host` installs the webui's)."""
    global _HOST
    if _HOST is None:
        _HOST = StandaloneHost()
    return _HOST


def set_host(host: Host) -> Host:
    global _HOST
    _HOST = host
    logger.debug("%s host: %s", LOG_PREFIX, host.name)
    return host
