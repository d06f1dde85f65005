#!/usr/bin/env python3
"""Search benchmark: score reached against scorer evaluations and seconds, per search mode, with
NUl Image Enhancer's own loop (mode ``nulie``) as the reference.

For every case (scorer x input set) and photo, ``nulie`` runs with a budget of N = 200 evaluations
and sets the target: the score it reaches. Every other mode then runs

* once with a budget of N/10 = 20 evaluations (the score it reaches there), and
* once with a budget of N, stopped (through the progress callback) as soon as it reaches the
  target, which gives the evaluations and the seconds it needed.

"Reached" means within 0.1 % of the scorer's range of the target. The claim checked: *our best
mode reaches the score nulie reaches with N evaluations using at most N/10 evaluations.*

Cases:

* ``natural, -1 EV``: the mate-backgrounds nature photos, previews of 256 px, under-exposed by one
  stop in linear light; the built-in ``natural`` scorer (there is something to fix).
* ``natural, original``: the same photos untouched (little to fix).
* ``tiny CLIP, original``: the real LAION-Aesthetics v1 ViT-B/32 linear head (from
  ``../shared/weights`` when present, else a seeded random head) on a small random-weight CLIP
  vision tower (4 layers, width 256, patch 32, 224 px). Its score is not an aesthetic judgement,
  only a differentiable neural objective of realistic shape and cost.

Modes: ``nulie`` (reference), ``nulie-ablated`` (NUlIE without its histogram ops autocontrast and
equalize: what its *search* achieves with photographic ops only), ``best-first`` (gradient-guided
when the scorer is differentiable), ``best-first-nograd`` (derivative-free, like nulie), ``beam``,
``gradient`` (the core optimizer within the budget), ``optimize`` (``lib_enhancer.optimize.optimize``
with its defaults and its own budget), ``hybrid`` and ``hybrid-reverse``.

Usage::

    .venv/bin/python bench/search.py            # full run, ~15 min on 2 shared cores
    .venv/bin/python bench/search.py --quick    # smoke run (2 photos, one case)

Prints a Markdown report and writes it to ``bench/results/search.md`` (unless ``--quick`` or
``--results ''``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lib_enhancer.filters.color import linear_to_srgb, srgb_to_linear  # noqa: E402
from lib_enhancer.optimize import OptimizeConfig, Step, default_active, optimize  # noqa: E402
from lib_enhancer.scorers import create_scorer  # noqa: E402
from lib_enhancer.search import SearchConfig, search  # noqa: E402

MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")
SHARED_WEIGHTS = REPO_ROOT.parent / "shared" / "weights"
LAION_B32_HEAD = "sa_0_4_vit_b_32_linear.pth"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "search.md"
NULIE_WITHOUT_HISTOGRAM_OPS = (
    "adjust_brightness",
    "adjust_contrast",
    "adjust_gamma",
    "adjust_saturation",
    "adjust_sharpness",
    "gaussian_blur",
)
#: Bench mode -> search settings (``optimize`` is the core optimizer with its own budget).
VARIANTS: dict[str, dict[str, object]] = {
    "nulie": {"mode": "nulie"},
    "nulie-ablated": {"mode": "nulie", "nulie_ops": NULIE_WITHOUT_HISTOGRAM_OPS},
    "best-first": {"mode": "best-first"},
    "best-first-nograd": {"mode": "best-first", "guided": False},
    "beam": {"mode": "beam"},
    "gradient": {"mode": "gradient"},
    "optimize": {},
    "hybrid": {"mode": "hybrid"},
    "hybrid-reverse": {"mode": "hybrid-reverse"},
}
LABELS = {
    "nulie": "nulie (reference)",
    "nulie-ablated": "nulie without autocontrast/equalize (ablation)",
    "best-first-nograd": "best-first, no gradient",
    "optimize": "optimize (core defaults, own budget)",
}
MODES = tuple(VARIANTS)
REFERENCE_MODES = ("nulie", "nulie-ablated")
REACH_TOLERANCE = 1e-3  # fraction of the score range


@dataclass
class Outcome:
    """One mode on one photo."""

    score_small: float  # score with the small budget (N/10)
    evals_small: int
    seconds_small: float
    evals_to_target: int | None  # None: not reached within N
    passes_to_target: int | None  # scorer calls (batched passes) until then
    seconds_to_target: float | None
    score_large: float  # best score of the run with the large budget (stopped at the target)
    evals_large: int


@dataclass
class Case:
    name: str
    scorer: torch.nn.Module
    photos: list[tuple[str, torch.Tensor]]
    span: float
    results: dict[str, list[Outcome]] = field(default_factory=dict)
    targets: list[float] = field(default_factory=list)
    befores: list[float] = field(default_factory=list)


# ---- inputs -----------------------------------------------------------------------------------------


def load_previews(limit: int | None, side: int) -> list[tuple[str, torch.Tensor]]:
    """The mate nature photos as ``(1, 3, h, w)`` previews with the long side ``side``."""
    paths = sorted(MATE_NATURE.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no photos in {MATE_NATURE} (install mate-backgrounds)")
    out = []
    for path in paths[:limit]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((side, side), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.float32) / 255.0
        out.append((path.stem, torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)))
    return out


def under_expose(image: torch.Tensor, ev: float = -1.0) -> torch.Tensor:
    """Change exposure by ``ev`` stops in linear light (independent of the filters searched)."""
    return linear_to_srgb(srgb_to_linear(image) * 2.0**ev).clamp(0.0, 1.0)


def tiny_clip_scorer() -> tuple[torch.nn.Module, str]:
    """LAION v1 B/32 head on a small random-weight CLIP vision tower; returns (scorer, description)."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.model.CLIP(
        embed_dim=512,
        vision_cfg={"image_size": 224, "patch_size": 32, "width": 256, "layers": 4, "head_width": 64},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
        quick_gelu=True,
    ).eval()
    head = SHARED_WEIGHTS / LAION_B32_HEAD
    if head.is_file():
        note = f"real LAION v1 B/32 head ({LAION_B32_HEAD})"
    else:
        import tempfile

        head = Path(tempfile.mkdtemp()) / "random-head.pth"
        torch.save(torch.nn.Linear(512, 1).state_dict(), head)
        note = "seeded random linear head (real head not found)"
    scorer = create_scorer(
        "laion-v1-b32", clip_model=model, head_weights=str(head), crop_mode="pad", max_crops=1
    )
    return scorer, note


# ---- runs -------------------------------------------------------------------------------------------


def _stop_at(target: float, sign: float, tol: float) -> Callable[[Step], bool]:
    def callback(step: Step) -> bool:
        return step.best_score * sign >= target * sign - tol

    return callback


def _reached(history: Sequence[Step], target: float, sign: float, tol: float) -> Step | None:
    for step in history:
        if step.best_score * sign >= target * sign - tol:
            return step
    return None


def run_mode(
    mode: str,
    preview: torch.Tensor,
    scorer: torch.nn.Module,
    small: int,
    large: int,
    target: float,
    tol: float,
) -> Outcome:
    if mode == "optimize":  # the core optimizer with its defaults: its own budget
        result = optimize(preview, scorer, OptimizeConfig(active=default_active(scorer)))
        # optimize's history has one entry per step (restarts candidates each, after 2 evaluations)
        restarts = OptimizeConfig().restarts
        reach = None
        for step in result.history:
            if step.best_score >= target - tol:
                reach = step
                break
        evals_to = None if reach is None else 2 + restarts * (reach.step + 1)
        at_small = [s.best_score for s in result.history if 2 + restarts * (s.step + 1) <= small]
        return Outcome(
            score_small=max([result.score_before, *at_small]),
            evals_small=small,
            seconds_small=float("nan"),
            evals_to_target=evals_to,
            passes_to_target=None if reach is None else 2 + reach.step + 1,
            seconds_to_target=None if reach is None else reach.elapsed,
            score_large=result.score_after,
            evals_large=result.evaluations,
        )
    t0 = time.perf_counter()
    settings = VARIANTS[mode]
    r_small = search(preview, scorer, SearchConfig(max_evals=small, **settings))  # type: ignore[arg-type]
    seconds_small = time.perf_counter() - t0
    r_large = search(
        preview,
        scorer,
        SearchConfig(max_evals=large, **settings),  # type: ignore[arg-type]
        callback=_stop_at(target, 1.0, tol),
    )
    reach = _reached(r_large.history, target, 1.0, tol)
    return Outcome(
        score_small=r_small.score_after,
        evals_small=r_small.evaluations,
        seconds_small=seconds_small,
        evals_to_target=None if reach is None else reach.evaluations,  # type: ignore[attr-defined]
        passes_to_target=None if reach is None else r_large.passes,  # the run stops at the target
        seconds_to_target=None if reach is None else reach.elapsed,
        score_large=max([r_large.score_before, *(s.best_score for s in r_large.history)]),
        evals_large=r_large.evaluations,
    )


def run_case(case: Case, modes: Sequence[str], small: int, large: int) -> None:
    tol = REACH_TOLERANCE * case.span
    for mode in modes:
        case.results[mode] = []
    for name, preview in case.photos:
        t0 = time.perf_counter()
        ref = search(preview, case.scorer, SearchConfig(mode="nulie", max_evals=large))
        ref_seconds = time.perf_counter() - t0
        target = ref.score_after
        case.targets.append(target)
        case.befores.append(ref.score_before)
        reach = _reached(ref.history, target, 1.0, tol)
        ref_small = search(preview, case.scorer, SearchConfig(mode="nulie", max_evals=small))
        case.results.setdefault("nulie", []).append(
            Outcome(
                score_small=ref_small.score_after,
                evals_small=ref_small.evaluations,
                seconds_small=float("nan"),
                evals_to_target=None if reach is None else reach.evaluations,  # type: ignore[attr-defined]
                passes_to_target=None if reach is None else reach.evaluations,  # type: ignore[attr-defined]
                seconds_to_target=None if reach is None else reach.elapsed,
                score_large=target,
                evals_large=ref.evaluations,
            )
        )
        line = [
            f"  {case.name} / {name}: before {ref.score_before:.3f}, nulie@{large} {target:.3f} ({ref_seconds:.1f}s)"
        ]
        for mode in modes:
            if mode == "nulie":
                continue
            out = run_mode(mode, preview, case.scorer, small, large, target, tol)
            case.results[mode].append(out)
            reached = "-" if out.evals_to_target is None else str(out.evals_to_target)
            line.append(f"{mode} @{small}: {out.score_small:.3f}, reach@{reached}")
        print(" | ".join(line), flush=True)


# ---- report -----------------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def case_table(case: Case, modes: Sequence[str], small: int, large: int) -> list[str]:
    n = len(case.photos)
    tol = REACH_TOLERANCE * case.span
    lines = [
        f"### {case.name} ({n} photos; mean score before {statistics.fmean(case.befores):.3f}, "
        f"mean nulie@{large} target {statistics.fmean(case.targets):.3f})",
        "",
        f"| mode | mean score @{small} evals | photos ≥ target @{small} | median evals to target "
        f"| median scorer calls to target | photos reaching target ≤ {large} | mean score ≤ {large} "
        f"(stopped at target) | median s to target | mean s @{small} evals |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in modes:
        outs = case.results[mode]
        hit_small = sum(o.score_small >= t - tol for o, t in zip(outs, case.targets, strict=True))
        reached = [o.evals_to_target for o in outs if o.evals_to_target is not None]
        seconds = [o.seconds_to_target for o in outs if o.seconds_to_target is not None]
        evals_med = _median([float(e) for e in reached]) if len(reached) * 2 > n else None
        passes = [o.passes_to_target for o in outs if o.passes_to_target is not None]
        passes_med = _median([float(p) for p in passes]) if len(passes) * 2 > n else None
        sec_med = _median(seconds) if len(seconds) * 2 > n else None
        small_seconds = [o.seconds_small for o in outs if not math.isnan(o.seconds_small)]
        label = LABELS.get(mode, mode)
        lines.append(
            f"| {label} | {statistics.fmean(o.score_small for o in outs):.3f} | {hit_small}/{n} "
            f"| {_fmt(evals_med, 0) if evals_med is not None else '> ' + str(large)} "
            f"| {_fmt(passes_med, 0) if passes_med is not None else '–'} "
            f"| {len(reached)}/{n} | {statistics.fmean(o.score_large for o in outs):.3f} | {_fmt(sec_med, 2)} "
            f"| {_fmt(statistics.fmean(small_seconds), 2) if small_seconds else '–'} |"
        )
    return lines


def verdict(case: Case, modes: Sequence[str], small: int, large: int) -> str:
    tol = REACH_TOLERANCE * case.span
    n = len(case.photos)
    best_mode, best_hits = "", -1
    for mode in modes:
        if mode in (*REFERENCE_MODES, "optimize"):
            continue
        hits = sum(o.score_small >= t - tol for o, t in zip(case.results[mode], case.targets, strict=True))
        if hits > best_hits:
            best_mode, best_hits = mode, hits
    holds = "holds" if best_hits == n else ("mostly holds" if best_hits * 2 > n else "does not hold")
    reached = sorted(o.evals_to_target for o in case.results[best_mode] if o.evals_to_target is not None)
    median = _median([float(e) for e in reached]) if len(reached) * 2 > n else None
    speedup = f", a median {large / median:.0f}× fewer evaluations" if median else ""
    return (
        f"- **{case.name}**: best mode `{best_mode}` reaches nulie@{large}'s score with ≤ {small} "
        f"evaluations on {best_hits}/{n} photos — the 10× target {holds}; it reaches it at all on "
        f"{len(reached)}/{n} (median {_fmt(median, 0)} evaluations{speedup})."
    )


def report(cases: Sequence[Case], modes: Sequence[str], small: int, large: int, header: str) -> str:
    lines = [header, ""]
    for case in cases:
        lines += case_table(case, modes, small, large)
        lines.append("")
    lines.append(
        "**10× target** (our best mode reaches the score nulie reaches with N = "
        f"{large} evaluations using ≤ N/10 = {small}):"
    )
    lines.append("")
    for case in cases:
        lines.append(verdict(case, modes, small, large))
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 photos, natural -1 EV only")
    ap.add_argument("--limit", type=int, default=8, help="photos for the natural -1 EV case")
    ap.add_argument("--limit-original", type=int, default=4, help="photos for the natural, original case")
    ap.add_argument("--limit-clip", type=int, default=3, help="photos for the tiny CLIP case (0: skip)")
    ap.add_argument("--side", type=int, default=256, help="preview long side in px")
    ap.add_argument("--budget", type=int, default=200, help="N: nulie's budget in evaluations")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--results", default=str(DEFAULT_RESULTS), help="Markdown output ('' = none)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timings on shared CPUs)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "nulie" not in modes:
        modes.insert(0, "nulie")
    large, small = args.budget, max(1, args.budget // 10)
    if args.quick:
        args.limit, args.limit_original, args.limit_clip = 2, 0, 0
    t_start = time.perf_counter()

    natural = create_scorer("natural")
    photos = load_previews(max(args.limit, args.limit_original, args.limit_clip), args.side)
    cases = [Case("natural, -1 EV", natural, [(n, under_expose(p)) for n, p in photos[: args.limit]], 10.0)]
    if args.limit_original > 0:
        cases.append(Case("natural, original", natural, photos[: args.limit_original], 10.0))
    clip_note = ""
    if args.limit_clip > 0:
        clip, clip_note = tiny_clip_scorer()
        cases.append(Case("tiny CLIP, original", clip, photos[: args.limit_clip], 10.0))
    for case in cases:
        run_case(case, modes, small, large)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = "\n".join(
        [
            "# Search engine: score vs evaluations and seconds",
            "",
            f"Measured by `bench/search.py` on {platform.machine()} ({platform.processor() or 'cpu'}), "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, float32; previews "
            f"{args.side} px long side; N = {large}, N/10 = {small}. Load average {load:.1f} at the end "
            f"(shared CPUs: seconds are noisy, compare within one run), total "
            f"{time.perf_counter() - t_start:.0f} s.",
            "",
            "An evaluation is one image scored (gradient passes count as one per image, like forward "
            "passes). `nulie` sets the target per photo: the score it reaches with N evaluations. "
            f"*Score @{small}*: a run with a budget of {small}. *Evals / s to target*: a run with "
            f"budget N stopped once within {REACH_TOLERANCE:.1%} of the scorer range of the target "
            "(medians shown when more than half the photos reach it). Tiny CLIP: "
            f"{clip_note or 'not run'}.",
            "",
            "How to read it:",
            "",
            f"- *@{small}* and *to target* come from different runs: the budget shapes a run (batch "
            "size, gradient restarts, the hybrids' split), so a mode can hit the target in its "
            f"{small}-evaluation run yet need more evaluations in its N-budget run, or the reverse.",
            "- *Scorer calls* count batched passes (nulie: one per evaluation). On a GPU a pass of 4-16 "
            "images costs about one image, so calls, not evaluations, predict GPU wall-clock.",
            "- Seconds are CPU wall-clock with one thread. Gradient-guided modes pay a backward pass "
            "per image: on the cheap `natural` scorer nulie's forward-only evaluations are faster "
            "per evaluation; with a neural scorer the scorer dominates and fewer evaluations win.",
            "- The ablation row is nulie's own search with its photographic ops only (no "
            "autocontrast / equalize): it isolates what nulie's *search* achieves from what its "
            "histogram ops achieve. `natural` rewards exactly what histogram equalisation does "
            "(percentile and spread bands) and its per-channel versions remove casts; our soft set has "
            "the same two moves as amounts (`auto_levels`, `equalize`: blends towards the photo's "
            "per-channel auto levels / equalisation) plus per-channel black and white points.",
        ]
    )
    text = report(cases, modes, small, large, header)
    print()
    print(text)
    if args.results and not args.quick:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(text, encoding="utf-8")
        print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
