"""Command line: ``python -m lib_enhancer`` / ``lib-enhancer``.

Subcommands: ``enhance``, ``score``, ``apply``, ``export-lut``, ``filters``, ``scorers`` (and
``models`` when the model manager is present). A bad file gets one line on stderr and a non-zero
exit; the rest of a batch continues; a summary closes every batch. Inputs are never overwritten and
every output is written atomically.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib_enhancer.modes import LEARNED_MODES, MODES
from lib_enhancer.params import AUTO_NAMES, PARAMS, get_param

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"})
OUTPUT_FORMATS = {
    "same": None,
    "jpg": ".jpg",
    "jpeg": ".jpg",
    "png": ".png",
    "tif": ".tif",
    "tiff": ".tif",
    "webp": ".webp",
}
SIDECAR_SUFFIX = ".recipe.json"
FULL_RESOLUTION = 1 << 16  # preview side that keeps any image at its native size
CROP_MODES = ("cover", "five_crop", "pad", "center", "whole")


class UsageError(Exception):
    """A problem with the command line itself (exit code 2)."""


# ---------------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------------


def expand_inputs(items: Sequence[str], recursive: bool = False) -> list[Path]:
    """Files, globs and folders -> image paths (sorted, de-duplicated, order of arguments kept).

    Explicit files are kept whatever their suffix (so a bad file is reported, not ignored);
    folders and globs contribute files with an image suffix.
    """
    seen: set[Path] = set()
    out: list[Path] = []

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(path)

    for item in items:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for p in sorted(path.glob(pattern)):
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                    add(p)
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item, recursive=recursive))
            if not matches:
                raise UsageError(f"no files match {item!r}")
            for m in matches:
                if Path(m).is_file() and Path(m).suffix.lower() in IMAGE_SUFFIXES:
                    add(Path(m))
        else:
            add(path)  # missing files are reported per file, not as a usage error
    return out


def output_path(source: Path, out_dir: Path | None, suffix: str, fmt: str) -> Path:
    """Where the result of ``source`` goes: ``<out_dir or source dir>/<stem><suffix><ext>``."""
    ext = OUTPUT_FORMATS[fmt] or source.suffix.lower() or ".png"
    if ext in (".bmp", ".gif"):
        ext = ".png"  # keep full quality; these formats can't carry the recipe
    folder = out_dir if out_dir is not None else source.parent
    return folder / f"{source.stem}{suffix}{ext}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


@dataclass
class Outcome:
    path: Path
    ok: bool
    message: str


def _report_error(path: Path, exc: BaseException) -> Outcome:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if str(path) not in msg:
        msg = f"{path}: {msg}"
    print(f"error: {msg}", file=sys.stderr)
    return Outcome(path, False, msg)


def _progress(items: list[Path], enabled: bool) -> Iterator[Path]:
    if not enabled or len(items) < 2:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, unit="img", file=sys.stderr, dynamic_ncols=True)


def _summary(outcomes: list[Outcome], verb: str) -> int:
    ok = sum(o.ok for o in outcomes)
    failed = len(outcomes) - ok
    print(f"{verb}: {ok} done, {failed} failed, {len(outcomes)} total", file=sys.stderr)
    return 0 if failed == 0 else 1


def _parse_param_values(items: Sequence[str], flag: str = "--lock") -> dict[str, float]:
    """``NAME=VALUE`` options (``--lock``, ``--prior``) as validated parameter values."""
    locks: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{flag} expects NAME=VALUE, got {item!r}")
        try:
            param = get_param(name.strip())
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        try:
            v = float(value)
        except ValueError:
            raise UsageError(f"{flag} {name}: {value!r} is not a number") from None
        if not param.minimum <= v <= param.maximum:
            raise UsageError(f"{flag} {name}={v:g} is outside [{param.minimum:g}, {param.maximum:g}]")
        locks[param.name] = v
    return locks


def _scorer_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--text``/``--negative`` become options of the text scorer (alone or inside an ensemble)."""
    options: dict[str, Any] = {}
    if getattr(args, "text", None):
        options["text"] = args.text
    if getattr(args, "negative", None):
        options["negative"] = args.negative
    if options and "text" not in args.scorer:
        raise UsageError(
            "--text/--negative need the 'text' scorer, e.g. --scorer text or --scorer text:0.5,natural:0.5"
        )
    if getattr(args, "crop_mode", None):
        options["crop_mode"] = args.crop_mode
        _check_crop_mode(args.scorer)
    if getattr(args, "models_dir", None) is not None:  # every scorer factory takes cache_dir
        options["cache_dir"] = str(args.models_dir)
    return options


def _check_crop_mode(spec: str) -> None:
    """``--crop-mode`` needs a scorer that takes crops (CLIP scorers, taste models)."""
    from lib_enhancer.scorers.registry import is_ensemble_spec, parse_scorer_spec, scorer_accepts_option

    names = [n for n, _ in parse_scorer_spec(spec)] if is_ensemble_spec(spec) else [spec]
    if not any(scorer_accepts_option(n, "crop_mode") for n in names):
        raise UsageError(
            f"--crop-mode: scorer {spec!r} does not take crops (CLIP scorers and taste models do)"
        )


def _save_result(loaded: Any, rgb: Any, target: Path, recipe_json: str, args: argparse.Namespace) -> None:
    from lib_enhancer.imageio import RECIPE_TEXT_KEY, save_image

    save_image(
        target,
        rgb,
        alpha=loaded.alpha,
        exif=loaded.exif,
        icc_profile=loaded.icc_profile,
        text={RECIPE_TEXT_KEY: recipe_json},
        quality=args.quality,
        overwrite=args.overwrite,
    )
    if not args.no_sidecar:
        _write_text_atomic(target.with_name(target.name + SIDECAR_SUFFIX), recipe_json + "\n", args.overwrite)


def _write_text_atomic(path: Path, text: str, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite to replace outputs)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_target(source: Path, target: Path, inputs: set[Path], overwrite: bool) -> None:
    if any(_same_file(target, p) for p in inputs) or _same_file(source, target):
        raise FileExistsError(
            f"{source}: output {target} would overwrite an input; choose another -o or --suffix"
        )
    if target.exists() and not overwrite:
        raise FileExistsError(f"{source}: output {target} exists (use --overwrite to replace outputs)")


# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------


def _for_each_image(args: argparse.Namespace, verb: str, process: Callable[[Path, Path, Any], str]) -> int:
    """The batch loop of ``enhance``/``apply``: expand inputs, pick and check each output path,
    load the image, ``process(path, target, loaded) -> line``; one bad file never stops the batch."""
    from lib_enhancer.imageio import load_image

    files = expand_inputs(args.inputs, args.recursive)
    if not files:
        raise UsageError("no input images")
    inputs = {p.resolve() for p in files}
    outcomes: list[Outcome] = []
    for path in _progress(files, not args.quiet):
        try:
            target = output_path(path, args.output, args.suffix, args.format)
            _check_target(path, target, inputs, args.overwrite)
            line = process(path, target, load_image(path))
        except Exception as exc:  # one bad file must not stop the batch
            outcomes.append(_report_error(path, exc))
            continue
        outcomes.append(Outcome(path, True, line))
    return _summary(outcomes, verb)


def cmd_enhance(args: argparse.Namespace) -> int:
    from lib_enhancer.api import enhance, get_scorer

    if not expand_inputs(args.inputs, args.recursive):
        raise UsageError("no input images")
    locks = _parse_param_values(args.lock or [])
    prior = {} if args.no_prior else (_parse_param_values(args.prior, "--prior") if args.prior else None)
    scorer = get_scorer(args.scorer, args.device, **_scorer_options(args))

    def process(path: Path, target: Path, loaded: Any) -> str:
        started = time.perf_counter()
        result = enhance(
            loaded.rgb,
            scorer=scorer,
            mode=args.mode,
            max_evals=args.max_evals,
            steps=args.steps,
            time_budget=args.time,
            strength=args.strength,
            seed=args.seed,
            lock=locks,
            prior=prior,
            device=args.device,
            init=args.init,
            model=args.model,
            verify=not args.no_verify,
        )
        recipe = result.recipe.with_info(source=path.name)
        _save_result(loaded, result.image, target, recipe.to_json(indent=None), args)
        if result.lut is not None:  # histogram mode: the exact edit is the LUT; keep it beside
            from lib_enhancer.lut import write_cube

            write_cube(target.with_suffix(".cube"), result.lut, title=f"lib_enhancer histogram {path.name}")
        line = f"{path} -> {target}: {result.message} ({time.perf_counter() - started:.1f} s)"
        if not args.quiet:
            print(line, file=sys.stderr)
        return line

    return _for_each_image(args, "enhance", process)


def _load_recipe(source: str) -> Any:
    from lib_enhancer.imageio import RECIPE_TEXT_KEY, read_embedded_text
    from lib_enhancer.recipe import Recipe

    path = Path(source)
    if not path.is_file():
        raise UsageError(f"recipe {source}: no such file")
    if path.suffix.lower() == ".json":
        try:
            return Recipe.from_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UsageError(f"recipe {source}: {exc}") from None
    text = read_embedded_text(path).get(RECIPE_TEXT_KEY)
    if not text:
        raise UsageError(f"recipe {source}: neither a .json recipe nor an image with an embedded recipe")
    return Recipe.from_json(text)


def cmd_apply(args: argparse.Namespace) -> int:
    if sum(x is not None for x in (args.recipe, args.model, args.lut)) != 1:
        raise UsageError("give one of --recipe, --model or --lut")
    if args.model is not None:
        return cmd_apply_model(args)
    if args.lut is not None:
        return cmd_apply_lut(args)
    from lib_enhancer.render import render  # torch is imported here, only for recipes

    recipe = _load_recipe(args.recipe)
    if args.strength is not None:
        recipe = recipe.with_strength(args.strength)

    def process(path: Path, target: Path, loaded: Any) -> str:
        out = render(loaded.rgb, recipe)
        _save_result(loaded, out, target, recipe.with_info(source=path.name).to_json(indent=None), args)
        return str(target)

    return _for_each_image(args, "apply", process)


def cmd_score(args: argparse.Namespace) -> int:
    from lib_enhancer.api import get_scorer, score
    from lib_enhancer.imageio import load_image

    files = expand_inputs(args.inputs, args.recursive)
    if not files:
        raise UsageError("no input images")
    scorer = get_scorer(args.scorer, args.device, **_scorer_options(args))
    if args.move_to is not None and args.threshold is None:
        raise UsageError("--move-to needs --threshold")
    rows: list[tuple[Path, float]] = []
    outcomes: list[Outcome] = []
    for path in _progress(files, not args.quiet and args.csv != "-"):
        try:
            side = FULL_RESOLUTION if args.crop_mode == "five_crop" else 512  # five crops at native size
            value = score(load_image(path).rgb, scorer, device=args.device, preview_side=side)
        except Exception as exc:
            outcomes.append(_report_error(path, exc))
            continue
        rows.append((path, value))
        outcomes.append(Outcome(path, True, f"{value:.4f}"))
    if args.sort:
        rows.sort(key=lambda r: r[1], reverse=True)
    if args.top:
        rows = rows[: args.top]
    if args.csv:
        _write_csv(args.csv, rows, args.scorer)
    if args.csv != "-":
        for path, value in rows:
            flag = (
                ""
                if args.threshold is None
                else ("  keep" if value >= args.threshold else "  below threshold")
            )
            print(f"{value:8.4f}  {path}{flag}")
    if args.move_to is not None:
        outcomes += _move_below(rows, args.threshold, args.move_to)
    return _summary(outcomes, "score")


def _move_below(rows: list[tuple[Path, float]], threshold: float, folder: Path) -> list[Outcome]:
    """Move files scoring below ``threshold`` into ``folder`` (never overwriting, never deleting)."""
    folder.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for path, value in rows:
        if value >= threshold:
            continue
        target = folder / path.name
        if target.exists():
            outcomes.append(_report_error(path, FileExistsError(f"{path}: {target} exists; not moved")))
            continue
        try:
            if _same_device(path, folder):
                os.replace(path, target)
            else:
                _copy_then_remove(path, target)
        except OSError as exc:
            outcomes.append(_report_error(path, exc))
            continue
        print(f"moved {path} -> {target} ({value:.4f} < {threshold:g})", file=sys.stderr)
    return outcomes


def _same_device(path: Path, folder: Path) -> bool:
    return path.stat().st_dev == folder.stat().st_dev


def _copy_then_remove(path: Path, target: Path) -> None:
    import shutil

    shutil.copy2(path, target)
    path.unlink()


def _write_csv(target: str, rows: list[tuple[Path, float]], scorer: str) -> None:
    header = ["path", f"score_{scorer}"]
    if target == "-":
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows((str(p), f"{v:.6f}") for p, v in rows)
        return
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows((str(p), f"{v:.6f}") for p, v in rows)
    _write_text_atomic(Path(target), buf.getvalue(), overwrite=True)


def cmd_apply_lut(args: argparse.Namespace) -> int:
    """``apply --lut look.cube``: a 3-D LUT on every image (numpy + Pillow only: no torch import).

    ``--strength`` blends the LUT with the identity. Nothing is embedded and no sidecar is written
    (a LUT is not a recipe).
    """

    from lib_enhancer.imageio import save_image
    from lib_enhancer.lut import apply_lut_array, blend_lut, read_cube

    try:
        table = read_cube(args.lut)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--lut {args.lut}: {exc}") from None
    if args.strength is not None:
        if not 0.0 <= args.strength <= 1.0:
            raise UsageError(f"--strength must be in [0, 1], got {args.strength}")
        table = blend_lut(table, args.strength)

    def process(path: Path, target: Path, loaded: Any) -> str:
        out = apply_lut_array(loaded.rgb, table)
        save_image(
            target,
            out,
            alpha=loaded.alpha,
            exif=loaded.exif,
            icc_profile=loaded.icc_profile,
            quality=args.quality,
            overwrite=args.overwrite,
        )
        return str(target)

    return _for_each_image(args, "apply", process)


def cmd_apply_model(args: argparse.Namespace) -> int:
    """``apply --model unpaired:NAME``: each image gets the recipe the model predicts for it."""
    from lib_enhancer.render import render
    from lib_enhancer.unpaired import load_unpaired

    kind, sep, name = args.model.partition(":")
    if not sep or kind != "unpaired":
        raise UsageError(f"--model {args.model!r}: expected unpaired:NAME (see 'train unpaired')")
    model = load_unpaired(name, cache_dir=args.models_dir)

    def process(path: Path, target: Path, loaded: Any) -> str:
        recipe = model.predict_recipe(loaded.rgb)
        if args.strength is not None:
            recipe = recipe.with_strength(args.strength)
        out = render(loaded.rgb, recipe)
        _save_result(loaded, out, target, recipe.with_info(source=path.name).to_json(indent=None), args)
        return str(target)

    return _for_each_image(args, "apply", process)


def cmd_compare(args: argparse.Namespace) -> int:
    from lib_enhancer.compare import write_comparison

    for item in (args.a, args.b):
        if not Path(item).is_file():
            raise UsageError(f"{item}: no such file")
    try:
        comparison, written = write_comparison(
            args.a,
            args.b,
            args.output,
            threshold=args.threshold,
            max_side=args.max_side or None,
            resize=args.resize,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(comparison.stats(args.threshold)))
    else:
        note = (
            ""
            if comparison.size == comparison.original_size
            else f" (at {comparison.size[0]}x{comparison.size[1]})"
        )
        print(f"{comparison.summary()}{note}")
        print(f"SSIM < {args.threshold:g}: {100 * comparison.below(args.threshold):.1f}% of pixels")
        for key, path in written.items():
            print(f"  {key:11s} {path}")
    return 0


def cmd_train_taste(args: argparse.Namespace) -> int:
    from lib_enhancer.taste import run_train_command

    if not args.add and (not args.ok or not args.nok):
        raise UsageError("train taste needs --ok DIR and --nok DIR (or --add to extend an existing model)")
    try:
        return run_train_command(args)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None


def cmd_train_unpaired(args: argparse.Namespace) -> int:
    from lib_enhancer.unpaired import run_train_command

    try:
        return run_train_command(args)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None


def cmd_train_learned(args: argparse.Namespace) -> int:
    """``train recipe|histogram``: the learned modes' models, from photos (default: the offline set)."""
    from lib_enhancer.learned import photos
    from lib_enhancer.learned.train import TrainConfig, train

    if args.photos:
        sources = [s for folder in args.photos for s in photos.folder_photos(folder, args.recursive)]
        val = [s for folder in args.val_photos or [] for s in photos.folder_photos(folder, args.recursive)]
    else:  # the built-in set, minus the benchmark's held-out photos and the validation photos
        everything = photos.builtin_photos()
        sources = photos.select(everything, exclude=(*photos.HELD_OUT, *photos.VALIDATION))
        val = photos.select(everything, only=photos.VALIDATION)
        if args.val_photos:
            val = [s for folder in args.val_photos for s in photos.folder_photos(folder, args.recursive)]
    sources = photos.select(sources, exclude=args.exclude)
    if not sources:
        raise UsageError("no training photos found (give --photos DIR, or install mate-backgrounds)")
    if not args.photos and (missing := photos.missing_sources(everything)):
        print(
            f"note: the built-in photo set is partial ({len(sources)} training, {len(val)} validation "
            f"photos); for all of it: {'; '.join(missing)}",
            file=sys.stderr,
        )
    config = TrainConfig(
        kind=args.kind,
        out_dir=str(args.out),
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        time_budget=args.time,
        param_l2=args.param_l2,
        **({"prior": {}} if args.no_prior else {}),
    )
    command = "python -m lib_enhancer " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    card = train(config, sources, val, resume=not args.no_resume, command=command, progress=not args.quiet)
    print(json.dumps({"validation": card["validation"], "minutes": card["train_minutes"]}))
    return 0


def cmd_export_lut(args: argparse.Namespace) -> int:
    from lib_enhancer.lut import recipe_lut, write_cube

    recipe = _load_recipe(args.recipe)
    if not 2 <= args.size <= 65:
        raise UsageError(f"--size must be in [2, 65], got {args.size}")
    photo = None
    if args.image:
        from lib_enhancer.imageio import load_image

        photo = load_image(Path(args.image)).rgb
    table, left_out = recipe_lut(recipe.params, args.size, photo)
    adaptive = [n for n in left_out if n in AUTO_NAMES]
    local = [n for n in left_out if n not in AUTO_NAMES]
    if local:
        print(
            "note: local filters and the vignette are not expressible as a LUT and were left out: "
            + ", ".join(local),
            file=sys.stderr,
        )
    if adaptive:
        print(
            f"note: {', '.join(adaptive)} read the photo's histogram and were left out; "
            "pass --image PHOTO to bake that photo's curves into the LUT",
            file=sys.stderr,
        )
    target = Path(args.output)
    if target.exists() and not args.overwrite:
        raise UsageError(f"{target} exists (use --overwrite)")
    write_cube(target, table, title=f"lib_enhancer {Path(args.recipe).name}")
    print(f"wrote {target} ({args.size}^3)", file=sys.stderr)
    return 0


def cmd_filters(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([p.__dict__ for p in PARAMS], indent=2))
        return 0
    print(f"{'name':12s} {'stage':8s} {'neutral':>8s} {'min':>7s} {'max':>7s}  help")
    for p in PARAMS:
        print(f"{p.name:12s} {p.stage:8s} {p.neutral:8g} {p.minimum:7g} {p.maximum:7g}  {p.help}")
    return 0


def cmd_scorers(args: argparse.Namespace) -> int:
    from lib_enhancer.scorers import list_scorers

    for info in list_scorers():
        low, high = info.score_range
        weights = ", ".join(info.weights) or "none"
        grad = "differentiable" if info.differentiable else "not differentiable"
        print(f"{info.name:16s} [{low:g}, {high:g}] {grad}; weights: {weights}; license: {info.license}")
        print(f"{'':16s} {info.description}")
    return 0


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="image files, folders or globs")
    p.add_argument(
        "-o", "--output", type=Path, default=None, help="output folder (default: next to each input)"
    )
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--suffix", default="_enhanced", help="added to output file names (default: _enhanced)")
    p.add_argument(
        "--format", choices=sorted(OUTPUT_FORMATS), default="same", help="output format (default: same)"
    )
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: 95)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    p.add_argument("--no-sidecar", action="store_true", help="don't write <output>.recipe.json")
    p.add_argument("-q", "--quiet", action="store_true")


def _add_text_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", default=None, help="target description for the 'text' scorer")
    p.add_argument("--negative", default=None, help="what to move away from (the 'text' scorer)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lib-enhancer",
        description="Neural Image Enhancer: automatic photo enhancement with portable recipes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("enhance", help="enhance images; writes results, recipes (sidecar + embedded)")
    _add_output_options(p)
    p.add_argument("--scorer", default="natural", help="scorer name (default: natural, no download)")
    p.add_argument(
        "--mode",
        default="gradient",
        choices=MODES,
        help="gradient optimizer (default), a search mode, or a learned one-pass mode (predict, histogram)",
    )
    p.add_argument(
        "--init",
        choices=LEARNED_MODES,
        default=None,
        help="warm-start the gradient/search modes from a learned mode's proposal",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="FILE",
        help="weights for the learned modes (default: the shipped ones)",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="learned modes: apply the model's proposal as it is (default: the scorer picks between "
        "the model's start point and the proposal, histogram's at half strength)",
    )
    p.add_argument("--steps", type=int, default=40, help="optimizer steps (default: 40)")
    p.add_argument("--max-evals", type=int, default=None, help="search budget in scored images")
    p.add_argument("--time", type=float, default=None, help="time budget per image in seconds")
    p.add_argument("--strength", type=float, default=1.0, help="blend of the edit, 0..1 (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lock", action="append", metavar="NAME=VALUE", help="hold a filter parameter fixed")
    prior = p.add_mutually_exclusive_group()
    prior.add_argument(
        "--prior",
        action="append",
        metavar="NAME=VALUE",
        help="start from (gradient: and pull towards) this value instead of the scorer's own "
        "(natural: auto_contrast=1)",
    )
    prior.add_argument("--no-prior", action="store_true", help="start from neutral")
    p.add_argument("--device", default=None, help="torch device for the scorer (default: cpu)")
    _add_text_options(p)
    _add_crop_option(p)
    _add_scorer_models_dir(p)
    p.set_defaults(func=cmd_enhance)

    p = sub.add_parser("apply", help="apply a recipe (.json, or an image carrying one) to images")
    _add_output_options(p)
    p.add_argument("--recipe", default=None, help="recipe .json or an enhanced image")
    p.add_argument(
        "--model",
        default=None,
        metavar="unpaired:NAME",
        help="predict each image's recipe with a trained model",
    )
    p.add_argument(
        "--models-dir", type=Path, default=None, help="model cache (default: $LIB_ENHANCER_MODELS)"
    )
    p.add_argument(
        "--lut", type=Path, default=None, metavar="CUBE", help="apply a .cube 3-D LUT instead of a recipe"
    )
    p.add_argument("--strength", type=float, default=None, help="blend the recipe towards neutral, 0..1")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("score", help="score images")
    p.add_argument("inputs", nargs="+")
    p.add_argument("-r", "--recursive", action="store_true")
    p.add_argument("--scorer", default="natural")
    p.add_argument("--device", default=None)
    p.add_argument("--csv", default=None, metavar="FILE", help="write a CSV ('-' for stdout)")
    p.add_argument("--sort", action="store_true", help="best first")
    p.add_argument("--top", type=int, default=None, metavar="K", help="only the K best (with --sort)")
    p.add_argument("--threshold", type=float, default=None, help="mark files scoring below T")
    p.add_argument(
        "--move-to", type=Path, default=None, metavar="DIR", help="move files below --threshold here"
    )
    _add_text_options(p)
    _add_crop_option(p)
    _add_scorer_models_dir(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("export-lut", help="export a recipe's colour part as a .cube 3-D LUT")
    p.add_argument("--recipe", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--size", type=int, default=33, help="lattice size, 2..65 (default: 33)")
    p.add_argument(
        "--image",
        help="the photo the recipe was made for: bakes its auto contrast / levels / equalize curves into the LUT",
    )
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export_lut)

    p = sub.add_parser("filters", help="list filters, ranges and neutral values")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_filters)

    p = sub.add_parser("scorers", help="list scorers")
    p.set_defaults(func=cmd_scorers)

    _add_compare_parser(sub)
    _add_train_parser(sub)
    _add_models_parser(sub)
    return parser


def _add_crop_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--crop-mode",
        choices=CROP_MODES,
        default=None,
        help="how neural/taste scorers see the image: cover (default), five_crop (corners + centre at "
        "native resolution: high-res scoring), pad, center; built-in taste models: whole or five_crop",
    )


def _add_scorer_models_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="model cache for the scorer's weights and taste:NAME models (default: $LIB_ENHANCER_MODELS)",
    )


def _add_compare_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="difference, SSIM, thresholded-SSIM, ΔE00 and haze maps of two images; PSNR/SSIM/ΔE00"
    )
    p.add_argument("a", help="reference image (e.g. the original)")
    p.add_argument("b", help="image to compare with it (e.g. the enhanced one)")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the maps and stats.json")
    p.add_argument("--threshold", type=float, default=0.9, help="SSIM threshold of the ssim_below map")
    p.add_argument("--max-side", type=int, default=2048, help="compute at most at this long side (0 = full)")
    p.add_argument("--resize", action="store_true", help="resample B to A's size when they differ")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=cmd_compare)


def _add_train_parser(sub: Any) -> None:
    """``train KIND ...``: one sub-command per kind of model (each kind adds its own parser here)."""
    p = sub.add_parser("train", help="train your own models from folders of images")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    _add_train_taste_parser(kinds)
    _add_train_unpaired_parser(kinds)
    for kind, what in (
        ("recipe", "recipe predictor (the 'predict' mode): thumbnail -> recipe, trained through the filters"),
        ("histogram", "histogram network (the 'histogram' mode): RGB histogram -> good histogram -> LUT"),
    ):
        _add_train_learned_parser(kinds, kind, what)


def _add_train_learned_parser(kinds: Any, kind: str, what: str) -> None:
    p = kinds.add_parser(kind, help=f"{what}; learns from synthetic degradations of your photos")
    p.add_argument(
        "--photos",
        action="append",
        metavar="DIR",
        help="folder of good photos to learn from (repeatable; default: the built-in offline set)",
    )
    p.add_argument("--val-photos", action="append", metavar="DIR", help="folder of validation photos")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME", help="leave a photo out by name")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (weights, card, curve)")
    p.add_argument("--steps", type=int, default=3000, help="training steps (default: 3000)")
    p.add_argument(
        "--time", type=float, default=None, help="stop (checkpoint + export) after this many seconds"
    )
    p.add_argument("--batch", type=int, default=32, help="samples per step (default: 32)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument(
        "--param-l2",
        type=float,
        default=0.02,
        help="recipe: pull of the predicted recipe towards its start (larger = more conservative)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument(
        "--no-prior",
        action="store_true",
        help="model the photo as it is (default: after auto contrast, natural's start point)",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train_learned)


def _add_train_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="model name (letters, digits, _ . -)")
    p.add_argument(
        "--models-dir", type=Path, default=None, help="model cache (default: $LIB_ENHANCER_MODELS)"
    )
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("-q", "--quiet", action="store_true")


def _add_train_taste_parser(kinds: Any) -> None:
    p = kinds.add_parser(
        "taste", help="personal taste scorer taste:NAME from a folder of images you like and one you don't"
    )
    p.add_argument("--ok", action="append", metavar="DIR", help="images you like (repeatable)")
    p.add_argument("--nok", action="append", metavar="DIR", help="images you don't like (repeatable)")
    _add_train_common(p)
    p.add_argument(
        "--backbone",
        default="auto",
        help="auto (CLIP if its weights are on disk, else built-in features), builtin, ViT-B-32, ViT-L-14, ViT-B-16",
    )
    p.add_argument("--head", choices=("logistic", "mlp"), default="logistic")
    p.add_argument(
        "--crop-mode", choices=CROP_MODES, default=None, help="builtin: whole|five_crop; CLIP: cover|..."
    )
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    p.add_argument("--add", action="store_true", help="keep the existing model's images and add these")
    p.set_defaults(func=cmd_train_taste)


def _add_train_unpaired_parser(kinds: Any) -> None:
    p = kinds.add_parser(
        "unpaired",
        help="learn to make --source photos look like --target photos (unpaired, WESPE-style, parametric)",
    )
    p.add_argument("--source", action="append", required=True, metavar="DIR", help="photos to improve")
    p.add_argument("--target", action="append", required=True, metavar="DIR", help="photos to look like")
    _add_train_common(p)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: 800)")
    p.add_argument("--time", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--batch", type=int, default=None, help="crops per batch (default: 12)")
    p.add_argument("--holdout", type=int, default=None, help="source images held out for evaluation")
    p.add_argument("--curves", type=Path, default=None, help="write loss curves (PNG) here")
    p.set_defaults(func=cmd_train_unpaired)


def _add_models_parser(sub: Any) -> None:
    try:
        from lib_enhancer.models import add_models_subparser
    except ImportError:
        return
    add_models_subparser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:  # unknown scorer / parameter names
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # options refused while setting up (e.g. a crop mode a taste model lacks)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
