"""Called once by the scripts file at import: install the webui host, logging and callbacks."""

from __future__ import annotations

import logging
from typing import Any

from lib_enhancer.webui import LOG_PREFIX, LOGGER_NAME
from lib_enhancer.webui.host import WebuiHost, set_host

logger = logging.getLogger(LOGGER_NAME)
CALLBACK_NAME = "neural_image_enhancer"


def configure_logging(level: str | None) -> None:
    """``--enhancer-log-level``: level of the ``lib_enhancer`` loggers (messages carry ``[Enhancer]``)."""
    root = logging.getLogger("lib_enhancer")
    if level:
        resolved = logging.getLevelName(str(level).upper())
        if not isinstance(resolved, int):
            logger.warning("%s unknown --enhancer-log-level %r, ignored", LOG_PREFIX, level)
        else:
            root.setLevel(resolved)
    if not root.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(handler)


def _callback_kwargs(register: Any, name: str) -> dict[str, Any]:
    """``name=`` for A1111/Forge callbacks; SD.Next's ``on_*`` take no name."""
    import inspect

    try:
        return {"name": name} if "name" in inspect.signature(register).parameters else {}
    except (TypeError, ValueError):
        return {}


def install(script_callbacks: Any) -> WebuiHost:
    """Register settings, the tab, the API routes and cleanup with the webui's ``script_callbacks``."""
    from modules import shared

    from lib_enhancer.webui import engine, routes, settings, tab

    configure_logging(getattr(getattr(shared, "cmd_opts", None), "enhancer_log_level", None))
    host = WebuiHost()
    set_host(host)
    registrations = (
        (script_callbacks.on_ui_settings, settings.register),
        (script_callbacks.on_ui_tabs, tab.on_ui_tabs),
        (script_callbacks.on_app_started, routes.on_app_started),
    )
    for register, callback in registrations:
        register(callback, **_callback_kwargs(register, CALLBACK_NAME))
    unloaded = getattr(script_callbacks, "on_script_unloaded", None)
    if unloaded is not None:
        unloaded(lambda: engine.free_all(host), **_callback_kwargs(unloaded, CALLBACK_NAME))
    return host
