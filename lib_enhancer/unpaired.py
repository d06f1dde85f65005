"""Unpaired enhancer: learn from two folders of unrelated photos to make source-like images target-like.

WESPE (Ignatov et al. 2018) trains a pixel-to-pixel generator against two discriminators — one
that sees colour (Gaussian-blurred images), one that sees texture (greyscale) — with a content
loss that keeps the scene and a total-variation term; it needs days of GPU time and is famously
unstable. Here the **generator is parametric**: the thumbnail -> recipe network of
:mod:`lib_enhancer.learned.predictor` (``RecipePredictor``) predicts the global-stage recipe
parameters (exposure, white balance, levels, contrast, curves, gamma, saturation...), squashed
into their ranges, and the image is produced by the exact differentiable filters
(:func:`~lib_enhancer.filters.pipeline.apply_filters`). So:

* the output can only be a global colour/tone edit of the input: no hallucinated texture, no
  checkerboards, nothing to collapse into; it trains in minutes on two CPU cores;
* the result is a recipe, applied at any resolution by :func:`lib_enhancer.render.render`
  (``apply --model unpaired:NAME`` writes it next to each output, re-applicable and editable).

WESPE's ideas kept, each a term of the generator loss (:class:`LossWeights`):

* **colour discriminator** on Gaussian-blurred images (σ relative to the crop, WESPE's σ = 3 on
  100 px patches) — says whether colours and tones look like the target set's;
* **texture discriminator** on greyscale images — contrast and tonal rendering of detail;
* **content consistency**: the structure term of SSIM between the input's and the output's luma
  (WESPE compares VGG features of the input and of its reconstruction; a global edit cannot
  move content, but it can crush shadows or clip highlights, which this catches);
* **parameter regulariser** in place of WESPE's TV term (a global recipe cannot add noise; the
  regulariser keeps edits small unless the discriminators ask for them);
* optional **colour-distribution matching** (sliced Wasserstein distance between the blurred
  colours of the outputs and of the target crops, in Lab): a dense, non-adversarial version of
  what the colour discriminator measures. It makes short CPU runs markedly more reliable; set its
  weight to 0 for the pure adversarial setting.

Discriminators are small PatchGANs with spectral normalisation (non-saturating logistic GAN
loss); the generator starts at the identity recipe (zero-initialised output layer).
Training reports, on held-out source images, how far their colour/tone statistics are from the
target folder's before and after (:func:`statistics_distance`).
"""

from __future__ import annotations

import datetime as _dt
import json
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
import torch.nn.functional as F
from torch import nn

from lib_enhancer import models
from lib_enhancer.features import image_features, srgb_to_lab
from lib_enhancer.filters.local import gaussian_blur
from lib_enhancer.filters.pipeline import apply_filters
from lib_enhancer.learned.common import read_model, save_model, thumbnail
from lib_enhancer.learned.predictor import PREDICTED, RecipePredictor

Tensor = torch.Tensor
PathLike = str | os.PathLike[str]

SUBDIR = "unpaired"
CARD_FORMAT = "lib_enhancer.unpaired"
CARD_VERSION = 1
_LUMA = (0.2126, 0.7152, 0.0722)

#: Colour/tone statistics (names from :data:`lib_enhancer.features.FEATURE_NAMES`) used to measure
#: how target-like a set of images is.
STAT_FEATURES = (
    "L_mean",
    "L_std",
    "L_q05",
    "L_q50",
    "L_q95",
    "a_mean",
    "b_mean",
    "C_mean",
    "C_q90",
    "colourfulness",
    "sat_mean",
    "local_contrast",
    "mid_contrast",
    "dark_channel",
)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator loss terms."""

    color: float = 0.2  # adversarial, colour discriminator (blurred RGB)
    texture: float = 0.1  # adversarial, texture discriminator (greyscale)
    content: float = 2.0  # 1 - structure similarity of luma (input vs output)
    params: float = 0.2  # mean squared normalised parameter (0 = neutral, ±1 = range ends)
    distribution: float = 1.0  # sliced Wasserstein distance of blurred Lab colours (0 = off)


@dataclass
class UnpairedConfig:
    """One training run (defaults: a few minutes on 2 CPU cores)."""

    steps: int = 800
    batch: int = 12
    crop: int = 112  # training crops (px) the filters and discriminators see
    thumb: int = 64  # generator thumbnail side
    width: int = 16  # generator conv width
    hidden: int = 96  # generator MLP width
    disc_width: int = 32  # discriminator conv width
    work_side: int = 384  # photos are loaded at this long side
    min_crop: float = 0.5  # crops cover 50-100 % of the short side
    lr_g: float = 5e-5  # Adam moves every weight by ~lr per step; the output saturates above ~1e-4
    lr_d: float = 2e-4
    blur_fraction: float = (
        3.0 / 100.0
    )  # colour discriminator blur sigma, fraction of the crop (WESPE: 3 px / 100 px)
    weights: LossWeights = field(default_factory=LossWeights)
    params: tuple[str, ...] = PREDICTED
    time_budget: float | None = None  # seconds
    seed: int = 0
    holdout: int = 0  # source images kept out of training for evaluation
    eval_every: int = 100


# ---------------------------------------------------------------------------------------------
# Building blocks


def _sn_conv(cin: int, cout: int, k: int, stride: int) -> nn.Module:
    return nn.utils.spectral_norm(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2))


class PatchDiscriminator(nn.Module):
    """Small spectrally normalised PatchGAN: ``(N, C, H, W)`` -> patch logits ``(N, h·w)``."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _sn_conv(channels, w, 4, 2),
            nn.LeakyReLU(0.2),
            _sn_conv(w, 2 * w, 4, 2),
            nn.LeakyReLU(0.2),
            _sn_conv(2 * w, 2 * w, 3, 2),
            nn.LeakyReLU(0.2),
            _sn_conv(2 * w, 1, 3, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x * 2.0 - 1.0).flatten(1)


def colour_view(images: Tensor, sigma: float) -> Tensor:
    """What the colour discriminator sees: the image blurred (σ in pixels), at half resolution."""
    return F.avg_pool2d(gaussian_blur(images, sigma), 2)


def texture_view(images: Tensor) -> Tensor:
    """What the texture discriminator sees: greyscale (Rec. 709 luma of the sRGB values)."""
    w = torch.tensor(_LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def structure_loss(a: Tensor, b: Tensor, window: int = 7, c: float = 1e-4) -> Tensor:
    """``1 - mean structural correlation`` of the luma of ``a`` and ``b`` (SSIM's s-term), per batch."""
    la, lb = texture_view(a), texture_view(b)
    pad = window // 2
    mu_a = F.avg_pool2d(la, window, 1, pad, count_include_pad=False)
    mu_b = F.avg_pool2d(lb, window, 1, pad, count_include_pad=False)
    va = F.avg_pool2d(la * la, window, 1, pad, count_include_pad=False) - mu_a**2
    vb = F.avg_pool2d(lb * lb, window, 1, pad, count_include_pad=False) - mu_b**2
    cov = F.avg_pool2d(la * lb, window, 1, pad, count_include_pad=False) - mu_a * mu_b
    s = (cov + c) / (torch.sqrt(va.clamp_min(0) * vb.clamp_min(0) + 1e-12) + c)
    return 1.0 - s.mean()


def sliced_wasserstein(a: Tensor, b: Tensor, projections: Tensor) -> Tensor:
    """Sliced 1-D Wasserstein-2 distance between point clouds ``a`` ``(N, D)`` and ``b`` ``(M, D)``."""
    pa = (a @ projections).sort(dim=0).values
    pb = (b @ projections).sort(dim=0).values
    if pa.shape[0] != pb.shape[0]:  # compare quantiles at the same levels
        q = torch.linspace(0, 1, min(pa.shape[0], pb.shape[0]), device=a.device, dtype=a.dtype)
        pa = torch.quantile(pa, q, dim=0)
        pb = torch.quantile(pb, q, dim=0)
    return ((pa - pb) ** 2).mean()


def _lab_cloud(images: Tensor, sigma: float, per_image: int, gen: torch.Generator) -> Tensor:
    """Blurred Lab colours of random pixels, scaled to comparable ranges, ``(B·per_image, 3)``."""
    lab = srgb_to_lab(F.avg_pool2d(gaussian_blur(images, sigma), 2)) / torch.tensor(
        [100.0, 60.0, 60.0], device=images.device, dtype=images.dtype
    ).view(1, 3, 1, 1)
    flat = lab.flatten(2)  # (B, 3, N)
    idx = torch.randint(0, flat.shape[-1], (per_image,), generator=gen).to(images.device)
    return flat[..., idx].permute(0, 2, 1).reshape(-1, 3)


# ---------------------------------------------------------------------------------------------
# Data


def load_folder(
    folders: Sequence[PathLike], side: int, recursive: bool = False
) -> tuple[list[Tensor], list[str]]:
    """Images of ``folders`` as float ``(3, H, W)`` tensors, long side ``side``; unreadable files skipped."""
    from lib_enhancer.learned import photos as photo_sources

    sources = []
    for folder in folders:
        sources += [
            (f"{Path(folder).name}/{n}", loader)
            for n, loader in photo_sources.folder_photos(folder, recursive)
        ]

    def skipped(name: str, exc: Exception) -> None:
        print(f"skipping {name}: {exc}", file=sys.stderr)

    photos = photo_sources.load_photos(sources, side, on_skip=skipped)
    return [as_tensor(p.image) for p in photos], [p.name for p in photos]


def as_tensor(rgb: np.ndarray) -> Tensor:
    """``(H, W, 3)`` uint8/uint16 -> float ``(3, H, W)`` in [0, 1]."""
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    return (
        torch.from_numpy(np.ascontiguousarray(rgb[..., :3])).float().div_(scale).permute(2, 0, 1).contiguous()
    )


def random_crops(
    images: Sequence[Tensor], count: int, size: int, min_crop: float, gen: torch.Generator
) -> Tensor:
    """``count`` random square crops (``min_crop``..1 of the short side, random flips) resized to ``size``."""
    out = []
    for _ in range(count):
        img = images[int(torch.randint(len(images), (1,), generator=gen))]
        h, w = img.shape[-2:]
        short = min(h, w)
        side = max(8, int(short * (min_crop + (1 - min_crop) * float(torch.rand(1, generator=gen)))))
        top = int(torch.randint(h - side + 1, (1,), generator=gen))
        left = int(torch.randint(w - side + 1, (1,), generator=gen))
        crop = img[:, top : top + side, left : left + side].unsqueeze(0)
        if float(torch.rand(1, generator=gen)) < 0.5:
            crop = crop.flip(-1)
        out.append(
            F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        )
    return torch.cat(out).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Statistics


def image_statistics(images: Sequence[Tensor], side: int = 256) -> Tensor:
    """:data:`STAT_FEATURES` of each image (whole image at ``side`` px), ``(N, S)``."""
    from lib_enhancer.features import FEATURE_NAMES

    idx = [FEATURE_NAMES.index(n) for n in STAT_FEATURES]
    rows = []
    with torch.no_grad():
        for img in images:
            x = img.unsqueeze(0) if img.dim() == 3 else img
            h, w = x.shape[-2:]
            s = side / max(h, w)
            if s < 1:
                x = F.interpolate(
                    x, size=(max(8, round(h * s)), max(8, round(w * s))), mode="bilinear", antialias=True
                )
            rows.append(image_features(x.float())[:, idx])
    return torch.cat(rows)


def statistics_distance(stats: Tensor, target: Tensor) -> float:
    """Mean |difference| between the mean statistics of two sets, in units of the target set's spread."""
    spread = (
        target.std(0, unbiased=False).clamp_min(1e-3) if target.shape[0] > 1 else target.abs().clamp_min(1e-3)
    )
    return float(((stats.mean(0) - target.mean(0)).abs() / spread).mean())


# ---------------------------------------------------------------------------------------------
# Model


class UnpairedModel:
    """A trained generator: predicts a recipe for any image (any size), applied by the renderer."""

    def __init__(self, generator: RecipePredictor, card: dict[str, Any]) -> None:
        self.generator = generator.eval()
        self.card = card

    @property
    def name(self) -> str:
        return str(self.card.get("name", ""))

    def predict_params(self, image: np.ndarray | Tensor) -> dict[str, float]:
        """Recipe parameters for an ``(H, W, 3)`` uint8/uint16 array or a float ``(3, H, W)`` tensor."""
        if isinstance(image, np.ndarray):
            from lib_enhancer.render import downscale

            x = downscale(np.ascontiguousarray(image[..., :3]), 4 * self.generator.side)
        else:
            x = image if image.dim() == 4 else image.unsqueeze(0)
        return self.generator.predict(x)[0]

    def predict_recipe(self, image: np.ndarray | Tensor) -> Any:
        from lib_enhancer.recipe import Recipe

        params = {n: v for n, v in self.predict_params(image).items()}
        return Recipe(params, {"model": f"unpaired:{self.name}"})


def model_paths(name: str, cache_dir: PathLike | None = None) -> tuple[Path, Path]:
    """``(weights .safetensors, card .json)`` of unpaired model ``name``."""
    from lib_enhancer.taste import check_name

    base = models.models_dir(cache_dir) / SUBDIR / check_name(name)
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def load_unpaired(name: str, cache_dir: PathLike | None = None) -> UnpairedModel:
    """Load a model written by ``train unpaired``.

    Raises:
        KeyError: no such model (the message says how to train one).
    """
    weights, card_path = model_paths(name, cache_dir)
    if not weights.is_file():
        folder = weights.parent
        known = sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []
        raise KeyError(
            f"no unpaired model {name!r} in {folder}"
            + (f" (available: {', '.join(known)})" if known else "")
            + f"; train one with: python -m lib_enhancer train unpaired --source DIR --target DIR --name {name}"
        )
    state, config = read_model(weights)
    if config.get("kind") != "recipe":
        raise ValueError(f"{weights}: not a recipe generator (kind {config.get('kind')!r})")
    generator = RecipePredictor(config["names"], config["side"], config["width"], config["hidden"])
    generator.load_state_dict(state)
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {"name": name}
    return UnpairedModel(generator, card)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    generator: RecipePredictor
    history: dict[str, list[float]]
    evaluation: dict[str, Any]
    seconds: float
    steps: int
    card: dict[str, Any] = field(default_factory=dict)
    weights_path: Path | None = None
    card_path: Path | None = None


def _bce(logits: Tensor, real: bool) -> Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def _evaluate(
    generator: RecipePredictor, images: Sequence[Tensor], target_stats: Tensor, cfg: UnpairedConfig
) -> dict[str, Any]:
    """Statistics distance to the target set before/after, and the mean |normalised parameter|."""
    if not images:
        return {}
    generator.eval()
    outs, norms = [], []
    with torch.no_grad():
        for img in images:
            x = img.unsqueeze(0)
            values = generator(thumbnail(x, generator.side))
            norms.append(generator.squash.normalised(values).abs().mean())
            outs.append(apply_filters(x, generator.as_params(values), stages=("global",)))
    generator.train()
    before = statistics_distance(image_statistics(images), target_stats)
    after = statistics_distance(image_statistics(outs), target_stats)
    return {
        "distance_before": before,
        "distance_after": after,
        "mean_abs_param": float(torch.stack(norms).mean()),
    }


def train_unpaired(
    source: Sequence[Tensor],
    target: Sequence[Tensor],
    config: UnpairedConfig | None = None,
    *,
    evaluate_on: Sequence[Tensor] = (),
    callback: Callable[[int, dict[str, float]], bool | None] | None = None,
) -> TrainResult:
    """Train a parametric generator so that recipes applied to ``source`` crops look like ``target`` crops.

    Args:
        source, target: float ``(3, H, W)`` images in [0, 1] (any sizes; unrelated scenes).
        config: steps, batch, crop size, learning rates, loss weights.
        evaluate_on: held-out source images; every ``eval_every`` steps their statistics distance to
            the target set is recorded (``history["distance"]``) and the generator of the step with
            the smallest distance is the one returned (early stopping on held-out data).
        callback: called with ``(step, losses)``; return ``True`` to stop.

    Returns:
        The generator (eval mode), the loss history and the final evaluation.
    """
    cfg = config or UnpairedConfig()
    if len(source) == 0 or len(target) == 0:
        raise ValueError("both the source and the target folder need at least one readable image")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    w = cfg.weights
    generator = RecipePredictor(cfg.params, side=cfg.thumb, width=cfg.width, hidden=cfg.hidden)
    d_colour = PatchDiscriminator(3, cfg.disc_width)
    d_texture = PatchDiscriminator(1, cfg.disc_width)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(
        [*d_colour.parameters(), *d_texture.parameters()], lr=cfg.lr_d, betas=(0.5, 0.999)
    )
    sigma = max(0.5, cfg.blur_fraction * cfg.crop)
    target_stats = image_statistics(target)
    keys = ("g_color", "g_texture", "content", "params", "distribution", "d_color", "d_texture", "g_total")
    history: dict[str, list[float]] = {k: [] for k in keys}
    history["distance"] = []
    history["distance_step"] = []
    started = time.perf_counter()
    generator.train()
    step = 0
    best: tuple[float, int, dict[str, Tensor]] | None = None
    for step in range(1, cfg.steps + 1):
        x = random_crops(source, cfg.batch, cfg.crop, cfg.min_crop, gen)
        y = random_crops(target, cfg.batch, cfg.crop, cfg.min_crop, gen)
        values = generator(thumbnail(x, generator.side))
        fake = apply_filters(x, generator.as_params(values), stages=("global",))

        # discriminators: real target crops vs generated crops
        opt_d.zero_grad(set_to_none=True)
        fd = fake.detach()
        d_c = 0.5 * (
            _bce(d_colour(colour_view(y, sigma)), True) + _bce(d_colour(colour_view(fd, sigma)), False)
        )
        d_t = 0.5 * (_bce(d_texture(texture_view(y)), True) + _bce(d_texture(texture_view(fd)), False))
        (d_c + d_t).backward()
        opt_d.step()

        # generator
        opt_g.zero_grad(set_to_none=True)
        g_c = _bce(d_colour(colour_view(fake, sigma)), True)
        g_t = _bce(d_texture(texture_view(fake)), True)
        content = structure_loss(x, fake)
        reg = (generator.squash.normalised(values) ** 2).mean()
        total = w.color * g_c + w.texture * g_t + w.content * content + w.params * reg
        dist = torch.zeros(())
        if w.distribution > 0:
            proj = F.normalize(torch.randn(3, 32, generator=gen), dim=0)
            dist = sliced_wasserstein(_lab_cloud(fake, sigma, 256, gen), _lab_cloud(y, sigma, 256, gen), proj)
            total = total + w.distribution * 10.0 * dist
        total.backward()
        torch.nn.utils.clip_grad_norm_(generator.parameters(), 5.0)
        opt_g.step()

        losses = {
            "g_color": float(g_c.detach()),
            "g_texture": float(g_t.detach()),
            "content": float(content.detach()),
            "params": float(reg.detach()),
            "distribution": float(dist.detach()),
            "d_color": float(d_c.detach()),
            "d_texture": float(d_t.detach()),
            "g_total": float(total.detach()),
        }
        if not all(math.isfinite(v) for v in losses.values()):
            raise FloatingPointError(f"training diverged at step {step}: {losses}")
        for k, v in losses.items():
            history[k].append(v)
        if evaluate_on and (step % cfg.eval_every == 0 or step == cfg.steps):
            ev = _evaluate(generator, evaluate_on, target_stats, cfg)
            history["distance"].append(ev["distance_after"])
            history["distance_step"].append(step)
            if best is None or ev["distance_after"] < best[0]:
                best = (
                    ev["distance_after"],
                    step,
                    {k: v.detach().clone() for k, v in generator.state_dict().items()},
                )
        if callback is not None and callback(step, losses):
            break
        if cfg.time_budget is not None and time.perf_counter() - started > cfg.time_budget:
            break
    if best is not None:  # keep the step whose held-out images came closest to the target set
        generator.load_state_dict(best[2])
    generator.eval()
    evaluation = _evaluate(generator, evaluate_on, target_stats, cfg) if evaluate_on else {}
    if best is not None:
        evaluation["kept_step"] = best[1]
    return TrainResult(generator, history, evaluation, time.perf_counter() - started, step)


def save_unpaired(
    name: str,
    result: TrainResult,
    config: UnpairedConfig,
    data: dict[str, Any],
    cache_dir: PathLike | None = None,
) -> tuple[Path, Path]:
    """Write ``<cache>/unpaired/<name>.safetensors`` (generator + config) and its JSON card."""
    from lib_enhancer.learned.common import write_json

    weights, card_path = model_paths(name, cache_dir)
    save_model(result.generator, result.generator.config, weights)
    cfg = asdict(config)
    cfg["params"] = list(config.params)
    card = {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "name": name,
        "config": cfg,
        "data": data,
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
        "evaluation": result.evaluation,
        "final_losses": {
            k: float(np.mean(v[-50:]))
            for k, v in result.history.items()
            if v and not k.startswith("distance")
        },
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(card_path, card)
    result.card, result.weights_path, result.card_path = card, weights, card_path
    return weights, card_path


# ---------------------------------------------------------------------------------------------
# Loss curves (PIL only)


CURVE_COLOURS = {
    "g_color": (220, 40, 40),
    "g_texture": (40, 120, 220),
    "content": (30, 160, 60),
    "distribution": (150, 60, 200),
    "d_color": (240, 150, 150),
    "d_texture": (150, 190, 240),
}


def plot_curves(history: dict[str, list[float]], path: PathLike, title: str = "") -> Path:
    """Smoothed loss curves (each scaled to its own range) and the held-out statistics distance."""
    from PIL import Image, ImageDraw

    width, height, pad = 900, 420, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    plot_w = width - 2 * pad - 170
    draw.rectangle([pad, pad, pad + plot_w, height - pad], outline=(160, 160, 160))
    draw.text((pad, 15), title, fill=(0, 0, 0))
    n = len(history.get("g_total", []))
    legend_y = pad
    if n >= 2:
        kernel = max(1, n // 60)
        for key, colour in CURVE_COLOURS.items():
            values = np.asarray(history.get(key, []), dtype=float)
            if len(values) < 2 or not np.any(values):
                continue
            smooth = np.convolve(values, np.ones(kernel) / kernel, mode="valid")
            lo, hi = float(smooth.min()), float(smooth.max())
            hi = hi if hi > lo else lo + 1e-9
            xs = pad + np.arange(len(smooth)) / max(len(smooth) - 1, 1) * plot_w
            ys = height - pad - (smooth - lo) / (hi - lo) * (height - 2 * pad)
            draw.line(list(zip(xs.tolist(), ys.tolist(), strict=False)), fill=colour, width=2)
            draw.text((pad + plot_w + 12, legend_y), f"{key} {lo:.3g}..{hi:.3g}", fill=colour)
            legend_y += 18
        dist = np.asarray(history.get("distance", []), dtype=float)
        if len(dist):
            steps = np.asarray(history["distance_step"], dtype=float)
            lo, hi = 0.0, float(max(dist.max(), 1e-6))
            xs = pad + (steps - 1) / max(n - 1, 1) * plot_w
            ys = height - pad - (dist - lo) / (hi - lo) * (height - 2 * pad)
            pts = list(zip(xs.tolist(), ys.tolist(), strict=False))
            if len(pts) > 1:
                draw.line(pts, fill=(0, 0, 0), width=3)
            for x, y in pts:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(0, 0, 0))
            draw.text(
                (pad + plot_w + 12, legend_y + 6), f"held-out distance\n0..{hi:.3g} (black)", fill=(0, 0, 0)
            )
    draw.text((pad, height - pad + 10), f"steps 1..{n}; each curve scaled to its own range", fill=(0, 0, 0))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}.png")
    img.save(tmp)
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------------------------------
# CLI


def run_train_command(args: Any) -> int:
    """``train unpaired`` (options in :mod:`lib_enhancer.cli`)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = UnpairedConfig(seed=args.seed)
    if args.steps is not None:
        cfg.steps = args.steps
    if args.batch is not None:
        cfg.batch = args.batch
    if args.time is not None:
        cfg.time_budget = args.time
    source, source_names = load_folder(args.source, cfg.work_side, args.recursive)
    target, _target_names = load_folder(args.target, cfg.work_side, args.recursive)
    if not source or not target:
        raise ValueError(
            f"found {len(source)} source and {len(target)} target images; both folders need images"
        )
    holdout = (
        args.holdout if args.holdout is not None else (min(8, len(source) // 5) if len(source) >= 10 else 0)
    )
    order = np.random.default_rng(args.seed).permutation(len(source))
    held = [source[i] for i in order[:holdout]]
    train_src = [source[i] for i in order[holdout:]]
    cfg.holdout = holdout
    print(
        f"source: {len(train_src)} images for training, {len(held)} held out; target: {len(target)} images",
        file=sys.stderr,
    )
    started = time.perf_counter()

    def progress(step: int, losses: dict[str, float]) -> None:
        if not args.quiet and (step % 100 == 0 or step == 1):
            rate = step / max(time.perf_counter() - started, 1e-9)
            print(
                f"step {step}/{cfg.steps}  colour {losses['g_color']:.3f}  texture {losses['g_texture']:.3f}  "
                f"content {losses['content']:.4f}  dist {losses['distribution']:.4f}  ({rate:.1f} steps/s)",
                file=sys.stderr,
            )

    result = train_unpaired(train_src, target, cfg, evaluate_on=held, callback=progress)
    data = {
        "source": [str(s) for s in args.source],
        "target": [str(t) for t in args.target],
        "source_images": len(source),
        "target_images": len(target),
        "held_out": [source_names[i] for i in order[:holdout]],
    }
    weights, card = save_unpaired(args.name, result, cfg, data, args.models_dir)
    print(f"trained {result.steps} steps in {result.seconds:.0f} s")
    ev = result.evaluation
    if ev:
        print(
            f"held-out source images: distance of colour/tone statistics to the target set "
            f"{ev['distance_before']:.3f} -> {ev['distance_after']:.3f} (target spreads; lower is more target-like)"
        )
    curves = args.curves or weights.with_name(f"{args.name}_curves.png")
    plot_curves(result.history, curves, f"train unpaired {args.name}")
    print(f"saved unpaired:{args.name} -> {weights} (+ {card.name}); loss curves: {curves}")
    print(f"apply it: python -m lib_enhancer apply --model unpaired:{args.name} PHOTOS -o OUT/")
    return 0
