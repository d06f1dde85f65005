#!/usr/bin/env python3
"""A learned mode's scorer check chosen by cross-validation over the training photos.

``bench/learned_verify.py`` picks :data:`~lib_enhancer.learned.modes.VERIFY_MIN_GAIN` and
:data:`~lib_enhancer.learned.modes.VERIFY_FRACTIONS` on the three validation photos (21 cases): too
few to tell rules apart that differ on a handful of cases (e.g. who wins a tie at the scorer's top
score). Here the 31 training photos are split into ``--folds`` folds; for each fold the mode's model
is trained by the shipped command (``train recipe --steps 5000`` / ``train histogram --steps 2000``,
``--threads 1``, best step on the validation photos) with the fold's photos left out
(``--exclude``), and the fold's photos are then restored by that model. The three validation photos
join as one more fold, with the shipped model. The quality benchmark's held-out photos are never
touched.

Every case (``bench/quality.py``'s degradations: ``none`` + ``--per-photo`` per photo, 1 MP) runs the
shipped ``enhance(mode=...)`` once per fraction ``f`` with the scorer check forced to keep ``f``
(fractions ``(0, f)``, min gain −∞), recording the score the check saw and the restoration's PSNR /
ΔE00; any rule (min gain, fractions) is then replayed from the records, exactly as
:func:`~lib_enhancer.learned.modes.verified_edit` picks. The gradient mode runs on every case too.

Run: .venv/bin/python bench/learned_cv.py [--mode predict|histogram] [--folds 5] [--jobs 2]
         [--work /tmp/learned_cv] [--results bench/results/learned_cv_<mode>.md]
Training takes ~7 (predict) or ~13 (histogram) min per fold on one thread (``--jobs`` folds at a
time; resumable: a fold whose weights exist is not retrained), the cases ~1-2 s each.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import quality as Q  # noqa: E402

RESULTS = REPO / "bench" / "results"
MIN_GAINS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3)
KEEP_INPUT_GAINS = (0.0, 1e-5, 1e-3)  # the gains also replayed with the untouched input kept (below)
VALIDATION_FOLD = "validation"
# A rule: (fractions, min gain, keep input). With "keep input" the untouched photo comes back where
# even the pick scores below it, as in the gradient mode (the learned modes do not do this).
Rule = tuple[tuple[float, ...], float, bool]
# the rules shipped before this cross-validation chose the current ones, marked in the tables; they
# had been picked on the 3 validation photos alone (bench/learned_verify.py)
PREVIOUS_RULES: dict[str, Rule] = {
    "predict": ((0.0, 0.5, 1.0), 0.0, False),
    "histogram": ((0.0, 0.5, 1.0), 1e-3, False),
}


@dataclass(frozen=True)
class ModeSpec:
    """How a learned mode's models are trained, and the scorer-check rules replayed for it."""

    train: str  # the ``train`` subcommand
    steps: int  # the shipped command's steps
    fractions: tuple[float, ...]  # every fraction a replayed rule may use (recorded per case)
    rules: tuple[tuple[float, ...], ...]  # the fraction sets replayed (with each of MIN_GAINS)


MODES = {
    # the shipped predictor's command: --steps 5000 (exported at step 600); a recipe extrapolates
    "predict": ModeSpec(
        "recipe",
        5000,
        (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
        ((0.0, 0.5, 1.0), (0.0, 0.25, 0.5, 0.75, 1.0), (0.0, 0.5, 1.0, 1.5), (0.0, 1.0)),
    ),
    # the shipped network's command: --steps 2000 (exported at step 400); a LUT is never extrapolated
    "histogram": ModeSpec(
        "histogram",
        2000,
        (0.0, 0.25, 0.5, 0.75, 1.0),
        ((0.0, 0.5, 1.0), (0.0, 0.25, 0.5, 0.75, 1.0), (0.0, 1.0), (0.0, 0.5)),
    ),
}


def training_names() -> list[str]:
    """The built-in training set's photo names (what ``train recipe`` uses by default)."""
    from lib_enhancer.learned import photos as P

    everything = P.builtin_photos()
    return sorted(n for n, _ in P.select(everything, exclude=(*P.HELD_OUT, *P.VALIDATION)))


def fold_of(names: Sequence[str], folds: int) -> dict[str, list[str]]:
    """Fold name -> its photos (sorted names dealt round-robin)."""
    return {f"fold{k}": [n for i, n in enumerate(names) if i % folds == k] for k in range(folds)}


def train_fold(out: Path, left_out: Sequence[str], kind: str, steps: int, seed: int) -> Path:
    """Train (or resume) the fold's ``kind`` model without ``left_out``; returns its weights' path."""
    from lib_enhancer.learned.train import FILE_NAMES

    weights = out / f"{FILE_NAMES[kind]}.safetensors"
    if weights.exists():
        return weights
    cmd = [sys.executable, "-m", "lib_enhancer", "train", kind, "-o", str(out), "--steps", str(steps)]
    cmd += ["--threads", "1", "--seed", str(seed), "-q"]
    for name in left_out:
        cmd += ["--exclude", name]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "w") as log:
        subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True)
    if not weights.exists():
        raise SystemExit(f"training wrote no weights in {out} (see {out / 'train.log'})")
    return weights


def record_fold(
    mode: str, model: str | None, photos: list[tuple[str, np.ndarray]], per_photo: int, seed: int
) -> list[dict[str, object]]:
    """One record per case: photo, degradation, per fraction (score, PSNR, ΔE00), the untouched
    input's (its score in the same scorer call, PSNR, ΔE00) and the gradient mode's (PSNR, ΔE00)."""
    from lib_enhancer.api import enhance
    from lib_enhancer.learned.modes import VERIFY_FRACTIONS, VERIFY_MIN_GAIN
    from lib_enhancer.metrics import mean_delta_e00, psnr

    def metrics(out: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
        return min(Q.PSNR_CAP, psnr(out, reference)), mean_delta_e00(out, reference)

    saved = dict(VERIFY_MIN_GAIN), dict(VERIFY_FRACTIONS)
    records = []
    try:
        VERIFY_MIN_GAIN[mode] = -math.inf  # the one fraction after the start point is kept
        for case in Q.make_cases(len(photos), per_photo, seed):
            name, reference = photos[case.photo]
            image = Q.apply_degradation(reference, case.degradation)
            by_fraction, input_score = {}, math.nan
            for f in MODES[mode].fractions:
                VERIFY_FRACTIONS[mode] = (0.0, f)
                result = enhance(image, mode=mode, scorer="natural", seed=0, model=model)
                by_fraction[f"{f:g}"] = (result.score_after, *metrics(np.asarray(result.image), reference))
                input_score = result.score_before  # the input, in the same batched scorer call
            gradient = enhance(image, scorer="natural", seed=0)
            records.append(
                {
                    "photo": name,
                    "degradation": case.degradation.kind,
                    "none": case.index == 0,
                    "fractions": by_fraction,
                    "input": (input_score, *metrics(image, reference)),
                    "gradient": metrics(np.asarray(gradient.image), reference),
                }
            )
    finally:
        VERIFY_MIN_GAIN.update(saved[0])
        VERIFY_FRACTIONS.update(saved[1])
    return records


def picked_fraction(scores: dict[str, float], fractions: Sequence[float], threshold: float) -> float:
    """The fraction a rule keeps given each fraction's score (keys ``f"{f:g}"``), picked as
    :func:`~lib_enhancer.learned.modes.verified_edit` picks (the first best after the start point,
    kept only ``threshold`` above the start point's score)."""
    values = [scores[f"{f:g}"] for f in fractions]
    best = max(range(1, len(fractions)), key=lambda i: values[i])
    return fractions[best] if values[best] - values[0] >= threshold else 0.0


def replay(
    record: dict[str, object], fractions: Sequence[float], threshold: float, keep_input: bool = False
) -> tuple[float, float]:
    """(PSNR, ΔE00) of the case under a rule (``keep_input``: the untouched input where the pick
    scores below it)."""
    table = record["fractions"]
    assert isinstance(table, dict)
    pick = table[f"{picked_fraction({k: v[0] for k, v in table.items()}, fractions, threshold):g}"]
    if keep_input and pick[0] < record["input"][0]:  # type: ignore[index]
        return record["input"][1], record["input"][2]  # type: ignore[index]
    return pick[1], pick[2]


def summarise(records: list[dict[str, object]], pick: object) -> tuple[float, float, float]:
    """(mean PSNR and ΔE00 on the degraded cases, mean ΔE00 on ``none``) with ``pick(record)``."""
    degraded = [pick(r) for r in records if not r["none"]]
    undegraded = [pick(r)[1] for r in records if r["none"]]
    return (
        float(np.mean([p for p, _ in degraded])),
        float(np.mean([d for _, d in degraded])),
        float(np.mean(undegraded)),
    )


def load_fold_photos(names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    from lib_enhancer.learned import photos as P

    sources = dict(P.builtin_photos())
    return [(n, P.resize_to_megapixels(sources[n](), 1.0)) for n in names]


def verdict(results: dict[Rule, tuple[float, float, float]], shipped: Rule) -> str:
    """The rule set before looking: another rule replaces the shipped one only if it beats it on
    both the degraded cases' mean PSNR and mean ΔE00; among those, the highest PSNR (equal PSNR:
    the lower ΔE00, then the lower ΔE00 on the undegraded photos)."""
    base = results[shipped]
    better = [rule for rule, (p, d, _) in results.items() if p > base[0] and d < base[1]]
    if not better:
        return "No rule beats the shipped one on both PSNR and ΔE00: the shipped rule stays."
    rule = max(
        better, key=lambda rule: (round(results[rule][0], 6), -round(results[rule][1], 6), -results[rule][2])
    )
    p, d, none = results[rule]
    return (
        f"Beats the shipped rule on both PSNR and ΔE00, best PSNR: {describe(rule)} ({p:.2f} dB, ΔE00 "
        f"{d:.2f}, undegraded {none:.2f}; shipped {base[0]:.2f} dB, ΔE00 {base[1]:.2f}, undegraded "
        f"{base[2]:.2f})."
    )


def describe(rule: Rule) -> str:
    fractions, gain, keep_input = rule
    text = f"min gain {gain:g}, fractions {' / '.join(f'{f:g}' for f in fractions)}"
    return text + (", keeping the input" if keep_input else "")


def rules_of(spec: ModeSpec) -> list[Rule]:
    """Every rule replayed: each fraction set with each min gain, and with some of them keeping the
    untouched input."""
    plain = [(fractions, gain, False) for fractions in spec.rules for gain in MIN_GAINS]
    kept = [(fractions, gain, True) for fractions in spec.rules for gain in KEEP_INPUT_GAINS]
    return plain + kept


def report(records: dict[str, list[dict[str, object]]], args: argparse.Namespace, span: float) -> str:
    from lib_enhancer.learned.modes import VERIFY_FRACTIONS, VERIFY_MIN_GAIN

    mode, spec = args.mode, MODES[args.mode]
    every = [r for fold in records.values() for r in fold]
    n_photos = len({r["photo"] for r in every})
    g = summarise(every, lambda r: tuple(r["gradient"]))
    rows = [["gradient (`ours`)", "–", "–", "yes", f"{g[0]:.2f}", f"{g[1]:.2f}", f"{g[2]:.2f}", "–"]]
    shipped: Rule = (tuple(VERIFY_FRACTIONS[mode]), VERIFY_MIN_GAIN[mode], False)
    results = {}
    for rule in rules_of(spec):
        fractions, gain, keep_input = rule

        def pick(r: dict[str, object], rule: Rule = rule) -> tuple[float, float]:
            return replay(r, rule[0], rule[1] * span, rule[2])

        results[rule] = summarise(every, pick)
        per_fold = [summarise(fold, pick)[0] for fold in records.values()]
        p, d, none = results[rule]
        rows.append(
            [
                mode
                + (" **(shipped)**" if rule == shipped else "")
                + (" (shipped before)" if rule == PREVIOUS_RULES.get(mode) and rule != shipped else ""),
                f"{gain:g}",
                " / ".join(f"{f:g}" for f in fractions),
                "yes" if keep_input else "no",
                f"{p:.2f}",
                f"{d:.2f}",
                f"{none:.2f}",
                " ".join(f"{v:.1f}" for v in per_fold),
            ]
        )
    best = summarise(
        every, lambda r: max((tuple(v[1:]) for v in r["fractions"].values()), key=lambda m: m[0])
    )
    rows.append(
        [f"{mode}, best fraction per case (oracle)", "–", "any", "no", *(f"{v:.2f}" for v in best), "–"]
    )
    ties = sum(
        1
        for r in every
        if r["fractions"]["0"][0] >= max(r["fractions"][f"{f:g}"][0] for f in (0.5, 1.0))  # type: ignore[index]
    )
    import torch

    folds = ", ".join(f"{k}: {len({r['photo'] for r in v})} photos" for k, v in records.items())
    return "\n".join(
        [
            f"# `{mode}` mode: the scorer check chosen by cross-validation",
            "",
            f"_Generated by `bench/learned_cv.py`: {n_photos} photos ({folds}), "
            f"{sum(1 for r in every if not r['none'])} degraded cases + "
            f"{sum(1 for r in every if r['none'])} undegraded at 1 MP, seed {args.seed}; each fold's "
            f"photos restored by a model trained without them (`train {spec.train} --steps {args.steps} "
            "--threads 1 --exclude ...`), the validation photos by the shipped one; "
            f"{platform.machine()}, torch {torch.__version__}._",
            "",
            "A rule keeps more than the start point (auto contrast) only where the best later fraction "
            "scores at least min gain × the scorer's range higher (0: ties go to the proposal); "
            "'keeps input': the untouched photo comes back where even that pick scores below it. "
            f"In {ties} of {len(every)} cases the start point scored at least as high as the proposal "
            "(whole and at half strength). 'PSNR per fold' lists the folds in the order above; the "
            "oracle row keeps, per case, whichever fraction restored best (a bound, not a rule).",
            "",
            Q.markdown_table(
                [
                    "rule",
                    "min gain",
                    "fractions",
                    "keeps input",
                    "PSNR dB ↑",
                    "ΔE00 ↓",
                    "ΔE00 on `none` ↓",
                    "PSNR per fold",
                ],
                rows,
                "llllrrrl",
            ),
            "",
            "**Verdict** (rule set before looking): " + verdict(results, shipped),
            "",
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=tuple(MODES), default="predict")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2, help="folds trained at a time (one thread each)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the shipped command's)")
    ap.add_argument("--per-photo", type=int, default=6, help="degradations per photo (default 6)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/learned_cv", help="fold models and records (resumable)")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument(
        "--results",
        default=None,
        help="Markdown output (default: bench/results/learned_cv_<mode>.md; '' to skip)",
    )
    args = ap.parse_args()
    spec = MODES[args.mode]
    args.steps = args.steps or spec.steps
    results = str(RESULTS / f"learned_cv_{args.mode}.md") if args.results is None else args.results
    work = Path(args.work) / args.mode
    folds = fold_of(training_names(), args.folds)
    start = time.perf_counter()

    def train(fold: str) -> Path:
        return train_fold(work / fold, folds[fold], spec.train, args.steps, args.seed)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        weights = dict(zip(folds, pool.map(train, folds), strict=True))
    print(f"trained {len(folds)} folds in {time.perf_counter() - start:.0f} s", flush=True)
    if args.train_only:
        return 0

    from lib_enhancer.api import get_scorer, score_span
    from lib_enhancer.learned import photos as P

    records: dict[str, list[dict[str, object]]] = {}
    for fold, names in [*folds.items(), (VALIDATION_FOLD, list(P.VALIDATION))]:
        path = work / f"{fold}.records.json"
        if path.exists():
            records[fold] = json.loads(path.read_text())
            continue
        model = str(weights[fold]) if fold in weights else None
        records[fold] = record_fold(args.mode, model, load_fold_photos(names), args.per_photo, args.seed)
        path.write_text(json.dumps(records[fold]))
        print(f"{fold}: {len(records[fold])} cases", flush=True)
    text = report(records, args, score_span(get_scorer("natural")))
    print(text)
    Q.publish(text, results or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
