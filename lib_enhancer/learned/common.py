"""What both learned models share: thumbnails, safetensors files with a config, the shipped-weights folder."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CONFIG_KEY = "lib_enhancer.config"


def checked_prior(prior: Mapping[str, float] | None) -> dict[str, float]:
    """A learned model's prior (photo-adaptive ``pre`` filters applied before it, e.g. natural's start
    point ``{"auto_contrast": 1.0}``), validated."""
    from lib_enhancer.params import get_param

    out = {get_param(n).name: float(v) for n, v in (prior or {}).items()}
    if any(get_param(n).stage != "pre" for n in out):
        raise ValueError(f"a learned model's prior holds 'pre' filters only, got {sorted(out)}")
    return out


def apply_prior(images: Tensor, prior: Mapping[str, float], tables: Any = None) -> Tensor:
    """``images`` with the prior applied (``tables``: precomputed auto curves of the photo)."""
    if not prior:
        return images
    from lib_enhancer.filters.pipeline import AUTO_KEY, apply_filters

    params: dict[str, Any] = dict(prior)
    if tables is not None:
        params[AUTO_KEY] = tables
    return apply_filters(images, params, stages=("pre",))


def thumbnail(image: Tensor, side: int) -> Tensor:
    """Squash float ``(*, 3, H, W)`` to ``(N, 3, side, side)`` with an antialiased resize."""
    x = image.reshape(-1, 3, *image.shape[-2:]).float()
    if x.shape[-2:] == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False).clamp(
        0.0, 1.0
    )


def save_model(module: torch.nn.Module, config: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write weights + their constructor config as one safetensors file, atomically."""
    from safetensors.torch import save_file

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    try:
        save_file(state, str(tmp), metadata={CONFIG_KEY: json.dumps(dict(config), sort_keys=True)})
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_model(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, config)`` of a file written by :func:`save_model`; clear error otherwise."""
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"model file not found: {file}")
    try:
        with safe_open(str(file), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except Exception as exc:
        raise ValueError(f"{file}: not a readable safetensors model ({exc})") from exc
    if CONFIG_KEY not in metadata:
        raise ValueError(f"{file}: safetensors file has no {CONFIG_KEY} metadata (not a lib_enhancer model)")
    return state, json.loads(metadata[CONFIG_KEY])


@functools.lru_cache(maxsize=8)
def load_model(path: str, kind: str, build: Callable[[dict[str, Any]], torch.nn.Module]) -> torch.nn.Module:
    """A model of ``kind`` from a :func:`save_model` file, built by ``build(config)``; cached, eval mode."""
    state, config = read_model(path)
    if config.get("kind") != kind:
        raise ValueError(f"{path}: not a {kind} model (kind {config.get('kind')!r})")
    try:
        model = build(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad {kind} model config ({type(exc).__name__}: {exc})") from None
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise ValueError(f"{path}: weights do not match the config ({problem})")
    model.load_state_dict(state)
    return model.eval()


def state_mismatch(expected: Mapping[str, Tensor], found: Mapping[str, Tensor]) -> str:
    """One line saying how ``found`` weights differ from a model's ``expected`` ones ('' if they fit)."""

    def some(keys: set[str]) -> str:
        first = sorted(keys)[:2]
        return ", ".join(first) + (f" and {len(keys) - 2} more" if len(keys) > 2 else "")

    missing, unexpected = set(expected) - set(found), set(found) - set(expected)
    shapes = {k for k in set(expected) & set(found) if expected[k].shape != found[k].shape}
    named = (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
    return "; ".join(f"{what}: {some(keys)}" for what, keys in named if keys)


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Pretty JSON, written atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(dict(data), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
