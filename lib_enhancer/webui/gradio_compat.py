"""The few gradio differences the glue meets: A1111 ships gradio 3.41, Forge 4.40, standalone may be newer.

Every function takes the gradio module as an argument (never imports it at module level), so the
version switches are testable with a fake module.

* gradio 3: ``gr.Image(source="upload")``, events take ``_js=``, ``Component.update(...)``.
* gradio 4+: ``gr.Image(sources=["upload"])``, events take ``js=``, ``gr.update(...)`` only.
* Forge drops unknown constructor keywords with a warning and gradio 3 raises ``TypeError`` on
  them, so optional keywords are filtered against the constructor's signature.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any


def major_version(gr: Any) -> int:
    """gradio's major version (``3`` for ``"3.41.2"``); 0 when unknown."""
    version = str(getattr(gr, "__version__", "0"))
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


@functools.lru_cache(maxsize=64)
def _parameters(cls: type) -> tuple[frozenset[str], bool]:
    names: set[str] = set()
    var_kw = False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            continue
        for p in sig.parameters.values():
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                var_kw = True
            else:
                names.add(p.name)
        # a subclass that forwards **kwargs: keep collecting its bases' names
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            var_kw = False
            break
    return frozenset(names), var_kw


def supported(cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` minus the keywords ``cls`` does not take (an ``__init__`` chain that only forwards
    ``**kwargs`` all the way down accepts everything)."""
    names, var_kw = _parameters(cls)
    if var_kw:
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in names}


def make(cls: type, *args: Any, optional: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """Build ``cls(*args, **kwargs, **optional)`` keeping only the optional keywords it supports."""
    return cls(*args, **kwargs, **supported(cls, optional or {}))


def image_source_kwargs(gr: Any, *, upload: bool = True) -> dict[str, Any]:
    """Keywords restricting an input image to uploads (``source=`` in 3, ``sources=`` in 4+)."""
    if not upload:
        return {}
    return {"source": "upload"} if major_version(gr) < 4 else {"sources": ["upload"]}


def js_kwargs(gr: Any, js: str | None) -> dict[str, Any]:
    """The keyword that attaches a JavaScript function to an event (``_js`` in 3, ``js`` in 4+)."""
    if not js:
        return {}
    return {"_js": js} if major_version(gr) < 4 else {"js": js}


def update(gr: Any, **kwargs: Any) -> Any:
    """``gr.update(...)``: present in 3.x and 4.x, and the only form in 4.x."""
    return gr.update(**kwargs)


def blocks_kwargs(
    gr: Any, *, css: str | None = None, head: str | None = None, title: str | None = None
) -> dict[str, Any]:
    """Keywords for a standalone ``gr.Blocks``: ``css``/``head`` where the constructor takes them."""
    wanted = {"css": css, "head": head, "title": title, "analytics_enabled": False}
    if major_version(gr) < 4:  # gradio 3 takes **kwargs but ignores (and warns about) head
        wanted.pop("head")
    return supported(gr.Blocks, {k: v for k, v in wanted.items() if v is not None})


def launch_kwargs(gr: Any, blocks: Any, **kwargs: Any) -> dict[str, Any]:
    """Keywords for ``Blocks.launch`` that this gradio supports (gradio 6 takes ``css``/``head`` here)."""
    try:
        params = inspect.signature(blocks.launch).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params and v is not None}
