"""Training of the learned modes: ``python -m lib_enhancer train recipe|histogram``.

Seeded synthetic degradations of real photos (:mod:`~lib_enhancer.learned.synth`) are generated on
the fly; the model trains with Adam and a cosine learning rate on CPU, validates on held-out photos
(fixed degraded samples), checkpoints (model, optimiser, random state, history) so an interrupted run
resumes exactly, and finishes with ``<kind>.safetensors`` (weights + config), a JSON model card (data,
edits, steps, metrics, the command) and a loss-curve PNG.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib_enhancer.filters.pipeline import apply_filters
from lib_enhancer.learned import photos as photo_sources
from lib_enhancer.learned.common import save_model, write_json
from lib_enhancer.learned.histogram import (
    HistogramNet,
    apply_affine,
    histogram_mkl,
    kl_divergence,
    soft_histogram,
)
from lib_enhancer.learned.predictor import RecipePredictor
from lib_enhancer.learned.synth import EDITS, SynthConfig, make_batch, photos_to_tensors
from lib_enhancer.scorers import get_scorer_info

Tensor = torch.Tensor
KINDS = ("recipe", "histogram")
THUMB_SIDE = {"recipe": 64, "histogram": 128}  # the predictor sees pixels; the histogram net, counts
LOG_MSE_FLOOR = 1e-4  # recipe loss: errors below 40 dB PSNR stop mattering
MKL_WEIGHT = 10.0  # histogram: weight of the pixel loss through the MKL transfer, next to the KL
FILE_NAMES = {"recipe": "recipe_predictor", "histogram": "histogram_net"}


@dataclass
class TrainConfig:
    """One training run."""

    kind: str
    out_dir: str
    steps: int = 3000
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-3
    seed: int = 0
    photo_side: int = 384  # photos are downscaled to this long side before cropping
    thumb_side: int | None = None  # default per kind: THUMB_SIDE
    bins: int = 16
    val_every: int = 200
    val_samples: int = 128
    checkpoint_every: int = 200
    param_l2: float = 0.02  # recipe: pull towards neutral (simpler recipes), in normalised units
    # 'pre' filters applied before the model (the natural scorer's start point): the recipe continues
    # from them, the histogram is read after them
    prior: dict[str, float] = field(default_factory=lambda: dict(get_scorer_info("natural").prior))
    threads: int | None = None
    time_budget: float | None = None  # seconds (over all resumed runs); stop, checkpoint, export
    train_photos: list[str] = field(default_factory=list)
    val_photos: list[str] = field(default_factory=list)


# ---- the two tasks ----------------------------------------------------------------------------


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    if cfg.kind == "recipe":
        return RecipePredictor(side=_side(cfg), width=16, hidden=96, prior=cfg.prior)
    if cfg.kind == "histogram":
        return HistogramNet(bins=cfg.bins, widths=(8, 16, 32), side=_side(cfg), prior=cfg.prior)
    raise ValueError(f"unknown model kind {cfg.kind!r}; choose one of {', '.join(KINDS)}")


def _side(cfg: TrainConfig) -> int:
    return cfg.thumb_side or THUMB_SIDE[cfg.kind]


def recipe_loss(
    model: RecipePredictor, degraded: Tensor, clean: Tensor, param_l2: float
) -> tuple[Tensor, dict[str, float]]:
    """Mean log-MSE between the photo restored *through the exact filters* and the original.

    The log of each sample's MSE is its PSNR up to a constant, so the loss is the mean PSNR the
    benchmark reports; unlike a plain L1 it does not let a few hopeless samples (clipped highlights)
    outweigh the many mild ones, where a needless edit costs most. Plus an L2 pull to neutral.
    """
    start = model.prepare(degraded)
    values = model(start)
    restored = apply_filters(start, model.as_params(values), stages=("global",))
    norm = model.squash.normalised(values)
    mse = ((restored - clean) ** 2).mean(dim=(1, 2, 3))
    loss = torch.log(mse + LOG_MSE_FLOOR).mean() + param_l2 * (norm**2).mean()
    l1 = float((restored.detach() - clean).abs().mean())
    return loss, {"l1": l1, "psnr": _psnr(restored.detach(), clean)}


def _psnr(a: Tensor, b: Tensor, cap: float = 50.0) -> float:
    """Mean per-sample PSNR (dB), capped so untouched samples don't dominate the mean."""
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return float((-10 * torch.log10(mse.clamp_min(10 ** (-cap / 10)))).mean())


def histogram_loss(
    model: HistogramNet, degraded: Tensor, clean: Tensor, param_l2: float
) -> tuple[Tensor, dict[str, float]]:
    """KL(original histogram ‖ predicted histogram) + L1 of the photo restored by the MKL transfer.

    KL alone rewards hedging (the mean of all plausible originals' histograms is wider than any of
    them, and transporting to it over-stretches colours); the pixel term asks the predicted
    histogram's moments to restore *this* photo.
    """
    degraded = model.prepare(degraded)
    source, target = soft_histogram(degraded, model.bins), soft_histogram(clean, model.bins)
    log_pred = model(source)
    kl = kl_divergence(target, log_pred)
    a, b = histogram_mkl(source.double(), log_pred.exp().double())
    restored = apply_affine(degraded.double(), a, b).clamp(0.0, 1.0).float()
    l1 = (restored - clean).abs().mean()
    metrics = {"l1": float(l1.detach()), "kl": float(kl.detach()), "psnr": _psnr(restored.detach(), clean)}
    return kl + MKL_WEIGHT * l1, metrics


# the validation number that picks the exported step (lower is better)
VAL_KEY = {"recipe": "psnr_loss", "histogram": "l1"}


def _copy_state(model: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


LOSSES: dict[str, Callable[..., tuple[Tensor, dict[str, float]]]] = {
    "recipe": recipe_loss,
    "histogram": histogram_loss,
}


# ---- data -----------------------------------------------------------------------------------


def _load(names_and_loaders: Sequence[photo_sources.PhotoSource], side: int, what: str) -> list[Tensor]:
    def skipped(name: str, exc: Exception) -> None:
        print(f"  skipping {what} photo {name}: {exc}", file=sys.stderr)

    photos = photo_sources.load_photos(names_and_loaders, side, on_skip=skipped)
    return photos_to_tensors([p.image for p in photos]), [p.name for p in photos]


def validation_set(photos: Sequence[Tensor], cfg: TrainConfig) -> tuple[Tensor, Tensor]:
    """Fixed degraded samples of the validation photos (same for every run with the same seed)."""
    gen = torch.Generator().manual_seed(cfg.seed + 10_007)
    degraded, clean, _ = make_batch(photos, cfg.val_samples, SynthConfig(side=_side(cfg)), gen)
    return degraded, clean


# ---- checkpoints ------------------------------------------------------------------------------


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / 50)
    return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))


# ---- the loop ---------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    train_sources: Sequence[photo_sources.PhotoSource],
    val_sources: Sequence[photo_sources.PhotoSource],
    *,
    resume: bool = True,
    command: str = "",
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) a model; returns the model card, also written next to the weights.

    ``stop_after`` (steps in this call) and ``cfg.time_budget`` (seconds in all) end a run early:
    the checkpoint is saved and the weights so far are exported; the same call again resumes.
    Ctrl-C saves the checkpoint too.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_photos, train_names = _load(train_sources, cfg.photo_side, "training")
    val_photos, val_names = _load(val_sources, cfg.photo_side, "validation")
    if not train_photos:
        raise ValueError("no training photos could be read")
    cfg.train_photos, cfg.val_photos = train_names, val_names
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: dict[str, list[Any]] = {"step": [], "loss": [], "val_step": [], "val": []}
    best: dict[str, Any] = {"step": 0, "score": math.inf, "model": None}
    start, elapsed = 0, 0.0
    checkpoint = out / f"{cfg.kind}.checkpoint.pt"
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state["config"]["kind"] != cfg.kind:
            raise ValueError(f"{checkpoint} is a {state['config']['kind']} checkpoint, not {cfg.kind}")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start, elapsed, best = state["history"], state["step"], state["elapsed"], state["best"]
        print(f"resuming {cfg.kind} from step {start} ({checkpoint})", file=sys.stderr)
    val = validation_set(val_photos or train_photos, cfg)
    synth = SynthConfig(side=_side(cfg))
    loss_fn = LOSSES[cfg.kind]
    bar = _progress(cfg.steps, start, f"train {cfg.kind}", progress)
    t0 = time.perf_counter() - elapsed

    def snapshot(done: int) -> None:
        state = {
            "config": asdict(cfg),
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout
            "history": history,
            "best": best,
            "step": done,
            "elapsed": time.perf_counter() - t0,
        }
        _save_checkpoint(checkpoint, state)

    done = start
    try:
        for step in range(start, cfg.steps):
            model.train()
            degraded, clean, _ = make_batch(train_photos, cfg.batch, synth, gen)
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, cfg)
            loss, _ = loss_fn(model, degraded, clean, cfg.param_l2)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            done = step + 1
            history["step"].append(done)
            history["loss"].append(loss.item())
            if done % cfg.val_every == 0 or done == cfg.steps:
                metrics = evaluate(model, val, cfg)
                history["val_step"].append(done)
                history["val"].append(metrics)
                if metrics[VAL_KEY[cfg.kind]] < best["score"]:
                    best = {"step": done, "score": metrics[VAL_KEY[cfg.kind]], "model": _copy_state(model)}
                bar.set_postfix(loss=f"{loss.item():.4f}", **{k: f"{v:.3f}" for k, v in metrics.items()})
            bar.update(1)
            out_of_time = cfg.time_budget is not None and time.perf_counter() - t0 >= cfg.time_budget
            stop = out_of_time or (stop_after is not None and done - start >= stop_after)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
                snapshot(done)
            if stop:
                print(
                    f"stopped at step {done} of {cfg.steps}; run the same command again to resume",
                    file=sys.stderr,
                )
                break
    except KeyboardInterrupt:
        snapshot(done)
        print(f"\ninterrupted at step {done}: checkpoint saved to {checkpoint}", file=sys.stderr)
        raise
    bar.close()
    seconds = time.perf_counter() - t0
    name = FILE_NAMES[cfg.kind]
    if best["model"] is not None:  # export the step that did best on the validation photos
        model.load_state_dict(best["model"])
    history["best_step"] = best["step"]
    weights = save_model(model, model.config, out / f"{name}.safetensors")
    plot_history(history, out / f"{name}_loss.png", title=f"{cfg.kind}: training loss and validation")
    card = model_card(cfg, model, history, seconds, command)
    write_json(out / f"{name}.json", card)
    print(
        f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) in {seconds / 60:.1f} min", file=sys.stderr
    )
    return card


@torch.no_grad()
def evaluate(model: torch.nn.Module, val: tuple[Tensor, Tensor], cfg: TrainConfig) -> dict[str, float]:
    """Validation metrics on the fixed held-out samples."""
    model.eval()
    degraded, clean = val
    _, metrics = LOSSES[cfg.kind](model, degraded, clean, 0.0)
    metrics["l1_input"] = float((degraded - clean).abs().mean())
    metrics["psnr_input"] = _psnr(degraded, clean)
    metrics["psnr_loss"] = -metrics["psnr"]
    return metrics


def model_card(
    cfg: TrainConfig, model: torch.nn.Module, history: dict[str, list[Any]], seconds: float, command: str
) -> dict[str, Any]:
    chosen = history.get("best_step")
    picked = [v for s, v in zip(history["val_step"], history["val"], strict=False) if s == chosen]
    last = picked[0] if picked else (history["val"][-1] if history["val"] else {})
    return {
        "model": FILE_NAMES[cfg.kind],
        "kind": cfg.kind,
        "config": model.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained_with": command or "lib_enhancer.learned.train.train()",
        "training_photos": cfg.train_photos,
        "validation_photos": cfg.val_photos,
        "edits": list(EDITS),
        "steps": cfg.steps,
        "steps_done": history["step"][-1] if history["step"] else 0,
        "exported_step": history.get("best_step", cfg.steps),
        "batch": cfg.batch,
        "samples_seen": cfg.steps * cfg.batch,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "thumb_side": _side(cfg),
        "train_minutes": round(seconds / 60, 2),
        "final_train_loss": round(float(np.mean(history["loss"][-50:])), 5) if history["loss"] else None,
        "validation": {k: round(v, 4) for k, v in last.items()},
        "torch": torch.__version__,
    }


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    try:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True)
    except ImportError:  # tqdm is optional

        class _Bar:
            def update(self, n: int) -> None: ...
            def set_postfix(self, **kw: Any) -> None: ...
            def close(self) -> None: ...

        return _Bar()


# ---- a loss curve without matplotlib ----------------------------------------------------------


def plot_history(history: dict[str, list[Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Training loss (smoothed, grey + black) and the first validation metric (red) as a PNG."""
    from PIL import Image, ImageDraw

    width, height, pad = 720, 360, 48
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([pad, pad, width - pad, height - pad], outline=(160, 160, 160))
    draw.text((pad, 12), title, fill=(0, 0, 0))
    steps = np.asarray(history["step"], dtype=float)
    loss = np.asarray(history["loss"], dtype=float)
    if len(steps) < 2:
        img.save(path)
        return Path(path)
    kernel = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(kernel) / kernel, mode="valid")
    val_key = next(iter(history["val"][0])) if history["val"] else None
    val = np.asarray([v[val_key] for v in history["val"]], dtype=float) if val_key else np.array([])

    def scaler(values: np.ndarray) -> Callable[[np.ndarray, np.ndarray], list[tuple[float, float]]]:
        lo, hi = float(np.percentile(values, 1)), float(np.percentile(values, 99.5))
        hi = hi if hi > lo else lo + 1e-6

        def xy(s: np.ndarray, v: np.ndarray) -> list[tuple[float, float]]:
            x = pad + (s - steps[0]) / max(steps[-1] - steps[0], 1) * (width - 2 * pad)
            y = height - pad - (np.clip(v, lo, hi) - lo) / (hi - lo) * (height - 2 * pad)
            return list(zip(x.tolist(), y.tolist(), strict=True))

        return xy

    xy = scaler(loss)
    draw.line(xy(steps, loss), fill=(200, 200, 200))
    draw.line(xy(steps[kernel - 1 :], smooth), fill=(0, 0, 0), width=2)
    draw.text((pad, height - pad + 8), f"step {int(steps[0])} .. {int(steps[-1])}", fill=(0, 0, 0))
    draw.text((pad + 200, height - pad + 8), f"loss {loss.min():.4g} .. {loss.max():.4g}", fill=(0, 0, 0))
    label = "black: training loss (smoothed)"
    if len(val) > 1:  # its own vertical scale
        pts = scaler(val)(np.asarray(history["val_step"], dtype=float), val)
        draw.line(pts, fill=(220, 30, 30), width=2)
        for x, y in pts:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(220, 30, 30))
        label += f"; red: validation {val_key} ({val.min():.4g} .. {val.max():.4g}, own scale)"
    draw.text((pad, pad + 6), label, fill=(0, 0, 0))
    tmp = Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}.png")
    img.save(tmp)
    os.replace(tmp, path)
    return Path(path)
