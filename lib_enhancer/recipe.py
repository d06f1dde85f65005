"""Recipes: a small, versioned, named parameter set — the edit, portable and re-applicable.

A recipe stores only the non-neutral parameters, in table order, plus free-form ``info`` (scorer,
scores, seed…) that does not affect the pixels. JSON in and out; unknown parameters, a newer
format version or out-of-range values are refused with a clear message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lib_enhancer.params import NEUTRAL, PARAM_NAMES, PARAMS, Stage, validate_params

RECIPE_FORMAT = "lib_enhancer.recipe"
RECIPE_VERSION = 1


def _ordered_non_neutral(values: Mapping[str, float]) -> dict[str, float]:
    checked = validate_params(dict(values))
    return {n: round(checked[n], 6) for n in PARAM_NAMES if n in checked and checked[n] != NEUTRAL[n]}


@dataclass(frozen=True)
class Recipe:
    """An edit: non-neutral filter parameters by name (table order) and descriptive info."""

    params: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    version: int = RECIPE_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _ordered_non_neutral(self.params))
        object.__setattr__(self, "info", dict(self.info))

    # ---- constructors ---------------------------------------------------------------------
    @classmethod
    def identity(cls, **info: Any) -> Recipe:
        """The recipe that changes nothing."""
        return cls({}, info)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Build from the JSON structure (or a plain ``{name: value}`` mapping of parameters)."""
        if "params" not in data:  # a bare parameter mapping
            return cls(dict(data))
        fmt = data.get("format", RECIPE_FORMAT)
        if fmt != RECIPE_FORMAT:
            raise ValueError(f"not a lib_enhancer recipe (format {fmt!r})")
        version = int(data.get("version", RECIPE_VERSION))
        if version > RECIPE_VERSION:
            raise ValueError(
                f"recipe version {version} is newer than this lib_enhancer understands ({RECIPE_VERSION})"
            )
        extra = set(data) - {"format", "version", "params", "info"}
        if extra:
            raise ValueError(f"unknown recipe fields: {', '.join(sorted(extra))}")
        return cls(dict(data["params"]), dict(data.get("info") or {}), version)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        """Parse a recipe JSON string."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"recipe is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("recipe JSON must be an object")
        return cls.from_dict(data)

    # ---- views ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECIPE_FORMAT,
            "version": self.version,
            "params": dict(self.params),
            "info": self.info,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def full_params(self) -> dict[str, float]:
        """Every parameter of the table, neutral where the recipe does not set it."""
        return {**NEUTRAL, **self.params}

    def stage_params(self, stage: Stage) -> dict[str, float]:
        """The recipe's non-neutral parameters of one stage."""
        stages = {p.name: p.stage for p in PARAMS}
        return {n: v for n, v in self.params.items() if stages[n] == stage}

    @property
    def is_identity(self) -> bool:
        return not self.params

    # ---- edits ----------------------------------------------------------------------------
    def with_strength(self, strength: float) -> Recipe:
        """Blend every parameter towards neutral: ``neutral + s (value - neutral)``, s in [0, 1]."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        blended = {n: NEUTRAL[n] + strength * (v - NEUTRAL[n]) for n, v in self.params.items()}
        return Recipe(blended, {**self.info, "strength": strength}, self.version)

    def with_info(self, **info: Any) -> Recipe:
        return Recipe(self.params, {**self.info, **info}, self.version)

    def replace(self, **params: float) -> Recipe:
        """A copy with some parameters set (neutral values drop out)."""
        return Recipe({**self.params, **params}, self.info, self.version)
