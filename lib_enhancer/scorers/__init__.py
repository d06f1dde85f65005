"""Scorers: image -> score modules behind a registry (see :mod:`lib_enhancer.scorers.registry`)."""

from lib_enhancer.scorers.registry import (
    BUILTIN_SCORER_MODULES,
    ScorerInfo,
    create_scorer,
    get_scorer_info,
    list_scorers,
    register_scorer,
)

__all__ = [
    "BUILTIN_SCORER_MODULES",
    "ScorerInfo",
    "create_scorer",
    "get_scorer_info",
    "list_scorers",
    "register_scorer",
]
