"""Neural Image Enhancer: automatic photo enhancement with exact differentiable filters.

The top-level names are imported lazily, so ``import lib_enhancer`` is cheap and loads neither
torch nor anything of the webui::

    from lib_enhancer import enhance, score, apply, Recipe
    result = enhance(pil_image)             # built-in scorer, no download
    result.image.save("out.jpg"); print(result.recipe.to_json())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "enhance": "lib_enhancer.api",
    "score": "lib_enhancer.api",
    "apply": "lib_enhancer.api",
    "Result": "lib_enhancer.api",
    "Recipe": "lib_enhancer.recipe",
    "PARAMS": "lib_enhancer.params",
    "create_scorer": "lib_enhancer.scorers",
    "list_scorers": "lib_enhancer.scorers",
}

__all__ = [
    "PARAMS",
    "Recipe",
    "Result",
    "__version__",
    "apply",
    "create_scorer",
    "enhance",
    "list_scorers",
    "score",
]

if TYPE_CHECKING:
    from lib_enhancer.api import Result, apply, enhance, score
    from lib_enhancer.params import PARAMS
    from lib_enhancer.recipe import Recipe
    from lib_enhancer.scorers import create_scorer, list_scorers


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lib_enhancer' has no attribute {name!r}")
