#!/usr/bin/env python3
"""Scorer throughput: images per second through each neural backbone on this machine.

Every backbone is built with random weights (no download; the architecture, not the weights, sets
the cost): open_clip ViT-B-32, ViT-B-16 and ViT-L-14 (QuickGELU, the OpenAI architecture) with a
LAION-style linear head, and the VGG16 NIMA network. Each is timed exactly as the optimizer uses
it: ``scorer(images)`` on a batch of 224 x 224 sRGB images (one crop each), forward alone (under
``torch.no_grad``) and forward + backward to the input pixels. A 3:2 preview is scored as two
crops in the default ``cover`` mode, so it costs about twice the per-image time below.

Usage::

    .venv/bin/python bench/scorers.py                  # full table (~5 min on 2 cores)
    .venv/bin/python bench/scorers.py --quick          # ViT-B-32 only, batch 1
    .venv/bin/python bench/scorers.py --threads 4 --results ''   # don't write bench/results/

Writes the Markdown table to ``bench/results/scorers.md`` (committed) unless ``--results ''``.
Timings are the best of ``--repeats`` runs after one warm-up: on a shared machine the minimum is
the least disturbed measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lib_enhancer.scorers.clip import LaionAestheticScorer, get_clip_backbone, load_clip_model  # noqa: E402
from lib_enhancer.scorers.nima import NimaScorer, NimaVGG16  # noqa: E402
from lib_enhancer.scorers.preprocess import CropSpec  # noqa: E402

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "scorers.md"


@dataclass(frozen=True)
class Case:
    """One backbone to time: how to build its scorer and at which batch sizes."""

    label: str
    used_by: str
    build: Callable[[], nn.Module]
    batches: tuple[int, ...]


@dataclass(frozen=True)
class Row:
    label: str
    used_by: str
    params_m: float
    build_s: float
    batch: int
    fwd_ips: float
    fwd_bwd_ips: float


def _clip_scorer(arch: str) -> nn.Module:
    model = load_clip_model(arch, pretrained=None)
    backbone = get_clip_backbone(arch, clip_model=model)
    head = nn.Linear(backbone.embed_dim, 1)
    scorer = LaionAestheticScorer(backbone, head, backbone.crop_spec("cover"))
    scorer.params_m = sum(p.numel() for p in model.visual.parameters()) / 1e6  # type: ignore[assignment]
    return scorer.eval().requires_grad_(False)


def _nima_scorer() -> nn.Module:
    model = NimaVGG16().requires_grad_(False)
    scorer = NimaScorer(model, CropSpec(224), device=torch.device("cpu"), dtype=torch.float32)
    scorer.params_m = sum(p.numel() for p in model.parameters()) / 1e6  # type: ignore[assignment]
    return scorer.eval()


CASES = (
    Case("CLIP ViT-B-32 (visual)", "laion-v1-b32, text", lambda: _clip_scorer("ViT-B-32"), (1, 8)),
    Case("CLIP ViT-B-16 (visual)", "laion-v1-b16", lambda: _clip_scorer("ViT-B-16"), (1, 8)),
    Case("CLIP ViT-L-14 (visual)", "laion, laion-v1-l14, clip-iqa", lambda: _clip_scorer("ViT-L-14"), (1, 2)),
    Case("VGG16 NIMA", "nima", _nima_scorer, (1, 8)),
)


def _best_time(fn: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_scorer(scorer: nn.Module, batch: int, repeats: int) -> tuple[float, float]:
    """Images per second (forward, forward + backward to the input) at one batch size."""
    images = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))

    def forward() -> None:
        with torch.no_grad():
            scorer(images)

    def forward_backward() -> None:
        x = images.clone().requires_grad_(True)
        scorer(x).sum().backward()
        assert x.grad is not None

    return batch / _best_time(forward, repeats), batch / _best_time(forward_backward, repeats)


def run(cases: tuple[Case, ...], repeats: int) -> list[Row]:
    rows = []
    for case in cases:
        start = time.perf_counter()
        scorer = case.build()
        build_s = time.perf_counter() - start
        for batch in case.batches:
            fwd, fwd_bwd = time_scorer(scorer, batch, repeats)
            rows.append(Row(case.label, case.used_by, scorer.params_m, build_s, batch, fwd, fwd_bwd))
            print(
                f"  {case.label} b{batch}: {fwd:.2f} img/s fwd, {fwd_bwd:.2f} img/s fwd+bwd", file=sys.stderr
            )
        del scorer
    return rows


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def to_markdown(rows: list[Row], repeats: int, elapsed: float) -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    lines = [
        "# Scorer throughput",
        "",
        f"Measured {dt.date.today().isoformat()} by `bench/scorers.py`: {_cpu_name()}, "
        f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}, fp32, random weights, "
        f"224 x 224 input (one crop per image), best of {repeats} after a warm-up; "
        f"load average {load[0]:.1f} at the end, total {elapsed:.0f} s.",
        "",
        "| backbone | used by | visual params (M) | batch | forward img/s | forward ms/img "
        "| fwd+bwd img/s | fwd+bwd ms/img |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.used_by} | {r.params_m:.1f} | {r.batch} | {r.fwd_ips:.2f} | {1000 / r.fwd_ips:.0f} "
            f"| {r.fwd_bwd_ips:.2f} | {1000 / r.fwd_bwd_ips:.0f} |"
        )
    lines += [
        "",
        "fwd+bwd is what one optimizer step costs per candidate image (gradient to the pixels, "
        "weights frozen). A preview scored in `cover` mode costs `ceil(long/short)` crops, e.g. "
        "two for 3:2. Shared CPUs make these numbers noisy; compare rows from one run only.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ViT-B-32 at batch 1 only")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement (best is kept)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: cores, at most 16)"
    )
    parser.add_argument("--results", default=str(DEFAULT_RESULTS), help="Markdown output ('' = don't write)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or min(16, os.cpu_count() or 1))
    cases = (Case(CASES[0].label, CASES[0].used_by, CASES[0].build, (1,)),) if args.quick else CASES
    start = time.perf_counter()
    rows = run(cases, max(1, args.repeats))
    table = to_markdown(rows, max(1, args.repeats), time.perf_counter() - start)
    print(table)
    if args.results and not args.quick:
        out = Path(args.results)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
