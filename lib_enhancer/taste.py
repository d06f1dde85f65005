"""Personal taste: learn "OK" versus "not OK" from two folders, use it as a scorer (``taste:<name>``).

``python -m lib_enhancer train taste --ok DIR --nok DIR --name mine`` embeds every image with a
frozen backbone, fits a small head on the embeddings, reports cross-validated accuracy and saves the
model in the model cache (``<cache>/taste/<name>.safetensors`` + ``<name>.json``). The model is
then a registry scorer, ``taste:mine``: its score is the probability that an image is "OK", in
[0, 1], differentiable with respect to the pixels, so it works for ``score --threshold 0.5
--move-to rejects/``, for ``enhance --scorer taste:mine`` and in ensembles
(``taste:mine:0.7,natural:0.3``).

* **Backbones.** CLIP (ViT-B/32, ViT-L/14 or ViT-B/16, the L2-normalised image embedding averaged
  over the aspect-aware crops of :mod:`lib_enhancer.scorers.clip`) when its weights are on disk;
  otherwise the built-in, download-free statistics of :mod:`lib_enhancer.features` (colour, tone,
  layout, texture). ``backbone="auto"`` picks the first available.
* **Heads.** ``logistic`` (a linear layer on standardised embeddings) or ``mlp`` (one hidden layer),
  trained full-batch with class-balanced cross-entropy and an L2 penalty chosen by an inner
  cross-validation. The reported accuracy is from an outer stratified k-fold cross-validation that
  never sees its test fold (nested), next to the majority-class baseline.
* **Embedding cache.** Embeddings are stored per backbone in
  ``<cache>/taste/embeddings/<backbone key>.safetensors``, keyed by the SHA-256 of the image file,
  so re-training (other head, more images) embeds only new files, and a moved or renamed file is
  still a cache hit.
* **Incremental.** ``add=True`` (CLI ``--add``) keeps the samples of the existing model of that
  name (by file hash, their embeddings come from the cache) and adds the new folders' images; a
  file given again with another label takes the new label.

The model card (the JSON) records the backbone, head, L2 strength, class counts, the file hashes
and labels it was trained on, the cross-validation results and the training time.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lib_enhancer import models
from lib_enhancer.scorers.registry import ScorerFamily, ScorerInfo, register_scorer_family

logger = logging.getLogger(__name__)

Tensor = torch.Tensor
PathLike = str | os.PathLike[str]

CARD_FORMAT = "lib_enhancer.taste"
CARD_VERSION = 1
SUBDIR = "taste"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HEAD_KINDS = ("logistic", "mlp")
#: CLIP backbones tried by ``backbone="auto"``, cheapest first.
AUTO_CLIP_ORDER = ("ViT-B-32", "ViT-B-16", "ViT-L-14")
#: L2 strengths tried by the inner cross-validation (penalty on the mean loss, standardised inputs).
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
#: Long side images are decoded to before embedding (the scorer sees previews of this order).
EMBED_SIDE = 512
#: Long side for five-crop embeddings (crops are taken at native resolution, capped here).
FIVE_CROP_SIDE = 4096


# ---------------------------------------------------------------------------------------------
# Paths


def taste_dir(cache_dir: PathLike | None = None) -> Path:
    """``<model cache>/taste`` (not created here)."""
    return models.models_dir(cache_dir) / SUBDIR


def check_name(name: str) -> str:
    """A taste model name: letters, digits, ``_ . -``, 1-64 characters, starting alphanumeric."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid taste model name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def model_paths(name: str, cache_dir: PathLike | None = None) -> tuple[Path, Path]:
    """``(weights .safetensors, card .json)`` of taste model ``name``."""
    base = taste_dir(cache_dir) / check_name(name)
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def list_taste_models(cache_dir: PathLike | None = None) -> list[dict[str, Any]]:
    """Cards of every saved taste model, sorted by name (unreadable cards are skipped with a warning)."""
    folder = taste_dir(cache_dir)
    if not folder.is_dir():
        return []
    cards = []
    for path in sorted(folder.glob("*.json")):
        try:
            card = read_card(path)
        except (OSError, ValueError) as exc:
            logger.warning("skipping unreadable taste model card %s: %s", path, exc)
            continue
        if path.with_suffix(".safetensors").is_file():
            cards.append(card)
    return cards


def read_card(path: PathLike) -> dict[str, Any]:
    """Load and check a taste model card."""
    card = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ValueError(f"{path} is not a taste model card (format {CARD_FORMAT!r})")
    if int(card.get("version", 0)) > CARD_VERSION:
        raise ValueError(
            f"{path}: card version {card.get('version')} is newer than this code ({CARD_VERSION})"
        )
    return card


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    _atomic_write_bytes(path, data)


def _load_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


# ---------------------------------------------------------------------------------------------
# Backbones (feature extractors)


class ClipExtractor(nn.Module):
    """Mean over crops of the L2-normalised CLIP image embedding, ``(B, 3, H, W) -> (B, D)``."""

    def __init__(self, backbone: Any, model_name: str, crop_mode: str, max_crops: int, source: str) -> None:
        super().__init__()
        from lib_enhancer.scorers.preprocess import CROP_MODES

        if crop_mode not in CROP_MODES:
            raise ValueError(f"unknown crop mode {crop_mode!r} for CLIP; use one of {', '.join(CROP_MODES)}")
        self.backbone = backbone
        self.model_name = model_name
        self.crop_mode = crop_mode
        self.max_crops = max_crops
        self.source = source
        self._crop: Any = None

    @property
    def crop(self) -> Any:
        """The crop settings (needs the model's input size, so the model loads on first use)."""
        if self._crop is None:
            self._crop = self.backbone.crop_spec(self.crop_mode, self.max_crops)
        return self._crop

    @property
    def key(self) -> str:
        return f"clip-{self.model_name}-{self.source}-{self.crop_mode}-{self.max_crops}"

    @property
    def dim(self) -> int:
        return int(self.backbone.embed_dim)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "clip",
            "model": self.model_name,
            "pretrained": "openai",
            "crop_mode": self.crop_mode,
            "max_crops": self.max_crops,
            "key": self.key,
        }

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone.encode_images(images, self.crop).mean(dim=1).to(images.device)


def _builtin(crop_mode: str | None) -> nn.Module:
    from lib_enhancer.features import BuiltinFeatures

    return BuiltinFeatures(crop_mode or "whole")


def available_clip_backbones(
    cache_dir: PathLike | None = None, search_dirs: Sequence[PathLike] = ()
) -> list[str]:
    """CLIP architectures whose weights are already on disk (nothing is downloaded)."""
    from lib_enhancer.scorers.clip import find_clip_weights

    return [m for m in AUTO_CLIP_ORDER if find_clip_weights(m, cache_dir=cache_dir, search_dirs=search_dirs)]


def make_extractor(
    backbone: str = "auto",
    *,
    crop_mode: str | None = None,
    max_crops: int = 4,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: PathLike | None = None,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    clip_model: nn.Module | None = None,
    clip_weights: PathLike | None = None,
    embedding_key: str | None = None,
) -> nn.Module:
    """The frozen feature extractor for ``backbone``.

    Args:
        backbone: ``"auto"`` (CLIP if its weights are on disk or ``clip_model`` is given, else the
            built-in features), ``"builtin"``, or a CLIP architecture (``"ViT-B-32"``, ``"clip:ViT-L-14"``).
        crop_mode: built-in: ``whole`` (default) or ``five_crop``; CLIP: ``cover`` (default),
            ``five_crop``, ``pad`` or ``center``.
        clip_model: an already built CLIP (tests, hosts holding one); its embeddings are cached on
            disk only under an explicit ``embedding_key``.
        clip_weights: an explicit CLIP weights file.
        embedding_key: overrides the cache key of the embedding space.

    Returns:
        A module mapping ``(B, 3, H, W)`` in [0, 1] to ``(B, D)`` with attributes ``key``, ``dim``,
        ``crop_mode`` and a ``spec()`` for the model card.
    """
    name = backbone.removeprefix("clip:")
    if backbone == "auto":
        if clip_model is not None:
            name = "ViT-B-32"
        else:
            found = available_clip_backbones(cache_dir, search_dirs)
            if clip_weights is None and not found:
                return _builtin(crop_mode)
            name = found[0] if found else "ViT-B-32"
    elif backbone == "builtin":
        return _builtin(crop_mode)
    from lib_enhancer.scorers.clip import CLIP_ARCHS, get_clip_backbone

    if name not in CLIP_ARCHS and clip_model is None and clip_weights is None:
        raise ValueError(
            f"unknown backbone {backbone!r}; use auto, builtin or one of {', '.join(CLIP_ARCHS)}"
        )
    bb = get_clip_backbone(
        name,
        "openai",
        device=device,
        dtype=dtype,
        cache_dir=cache_dir,
        offline=offline,
        search_dirs=search_dirs,
        weights=clip_weights,
        clip_model=clip_model,
    )
    if clip_model is not None:
        source = embedding_key or f"injected{id(clip_model):x}"
    elif clip_weights is not None:
        source = "file-" + models.sha256_file(clip_weights)[:16]
    else:
        source = "openai"
    extractor = ClipExtractor(bb, name, crop_mode or "cover", max_crops, source)
    extractor.cacheable = clip_model is None or embedding_key is not None  # type: ignore[attr-defined]
    return extractor


def _extractor_from_spec(spec: dict[str, Any], crop_mode: str | None, **options: Any) -> nn.Module:
    if spec.get("kind") == "builtin":
        if crop_mode is not None and crop_mode != spec["crop_mode"]:
            raise ValueError(
                f"this taste model was trained on built-in features with crop mode {spec['crop_mode']!r}; "
                f"it cannot score with {crop_mode!r} (train it again with --crop-mode {crop_mode})"
            )
        return _builtin(spec["crop_mode"])
    if spec.get("kind") != "clip":
        raise ValueError(f"unknown taste backbone {spec!r}")
    return make_extractor(
        spec["model"],
        crop_mode=crop_mode or spec.get("crop_mode"),
        max_crops=int(spec.get("max_crops", 4)),
        **options,
    )


# ---------------------------------------------------------------------------------------------
# Embedding cache


class EmbeddingCache:
    """Embeddings of one backbone keyed by image-file SHA-256, in one safetensors file.

    ``get``/``put`` work in memory; :meth:`save` writes the file atomically (merging entries that
    another process saved meanwhile).
    """

    def __init__(self, key: str, cache_dir: PathLike | None = None, *, enabled: bool = True) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        self.path = taste_dir(cache_dir) / "embeddings" / f"{safe}.safetensors"
        self.enabled = enabled
        self._entries: dict[str, Tensor] = {}
        self._dirty = False
        self.hits = 0
        self.misses = 0
        if enabled and self.path.is_file():
            self._entries = dict(_load_tensors(self.path))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> Tensor | None:
        found = self._entries.get(digest)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, digest: str, embedding: Tensor) -> None:
        self._entries[digest] = embedding.detach().float().cpu().reshape(-1).contiguous()
        self._dirty = True

    def save(self) -> None:
        if not (self.enabled and self._dirty):
            return
        merged = dict(_load_tensors(self.path)) if self.path.is_file() else {}
        merged.update(self._entries)
        _save_tensors(self.path, merged)
        self._entries = merged
        self._dirty = False


# ---------------------------------------------------------------------------------------------
# Samples


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})


def image_files(folder: PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (sorted)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"folder not found: {root}")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass
class Sample:
    digest: str
    label: int  # 1 = OK, 0 = not OK
    path: str
    embedding: Tensor | None = None


def _load_for_embedding(path: Path, crop_mode: str) -> Tensor:
    from lib_enhancer.imageio import load_image
    from lib_enhancer.render import downscale

    rgb = load_image(path).rgb
    side = FIVE_CROP_SIDE if crop_mode == "five_crop" else EMBED_SIDE
    return downscale(rgb, side)


def embed_images(extractor: nn.Module, images: Iterable[Tensor], *, batch: int = 1) -> list[Tensor]:
    """Embeddings ``(D,)`` of ``(1, 3, H, W)`` tensors, without gradients."""
    out = []
    with torch.no_grad():
        for image in images:
            out.append(extractor(image).reshape(-1).float().cpu())
    return out


def collect_samples(
    folders: Sequence[tuple[PathLike, int]],
    extractor: nn.Module,
    cache: EmbeddingCache,
    *,
    recursive: bool = False,
    previous: Sequence[dict[str, Any]] = (),
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Sample], dict[str, Any]]:
    """Hash, embed (or fetch from the cache) every image of the labelled folders.

    Args:
        folders: ``(folder, label)`` pairs, label 1 = OK, 0 = not OK.
        previous: samples of an earlier model (``{"sha256", "label", "path"}``) to keep.

    Returns:
        ``(samples, report)``; the report counts images, cache hits, newly embedded files, files
        that failed to load (with reasons), duplicates and relabelled files.
    """
    by_digest: dict[str, Sample] = {}
    report: dict[str, Any] = {
        "failed": [],
        "relabelled": 0,
        "duplicates": 0,
        "kept_previous": 0,
        "missing_previous": 0,
    }
    for item in previous:
        by_digest[item["sha256"]] = Sample(item["sha256"], int(item["label"]), str(item.get("path", "")))
    report["kept_previous"] = len(by_digest)
    seen_new: dict[str, int] = {}
    started = time.perf_counter()
    embedded = 0
    for folder, label in folders:
        for path in image_files(folder, recursive):
            try:
                digest = models.sha256_file(path)
            except OSError as exc:
                report["failed"].append(f"{path}: {exc}")
                continue
            if digest in seen_new:
                report["duplicates"] += 1
                if seen_new[digest] != label:
                    logger.warning("%s is in both classes; keeping the last label (%d)", path, label)
            elif digest in by_digest and by_digest[digest].label != label:
                report["relabelled"] += 1
            seen_new[digest] = label
            by_digest[digest] = Sample(digest, label, str(path))
    samples = list(by_digest.values())
    for sample in samples:
        cached = cache.get(sample.digest)
        if cached is not None and cached.numel() == extractor.dim:
            sample.embedding = cached
            continue
        path = Path(sample.path)
        if not path.is_file():
            report["missing_previous"] += 1
            continue
        try:
            image = _load_for_embedding(path, getattr(extractor, "crop_mode", "whole"))
        except Exception as exc:  # a bad file is reported and skipped, the others are used
            report["failed"].append(f"{path}: {exc}")
            continue
        (sample.embedding,) = embed_images(extractor, [image])
        cache.put(sample.digest, sample.embedding)
        embedded += 1
        if progress is not None:
            progress(f"embedded {path.name} ({embedded})")
    cache.save()
    usable = [s for s in samples if s.embedding is not None]
    report.update(
        images=len(usable),
        ok=sum(s.label == 1 for s in usable),
        nok=sum(s.label == 0 for s in usable),
        embedded=embedded,
        cache_hits=len(usable) - embedded,
        embed_seconds=round(time.perf_counter() - started, 3),
    )
    return usable, report


# ---------------------------------------------------------------------------------------------
# Head


class TasteHead(nn.Module):
    """Standardise the embedding, then a linear layer (``logistic``) or a one-hidden-layer MLP -> logit."""

    def __init__(self, dim: int, kind: str = "logistic", hidden: int = 64) -> None:
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown head {kind!r}; use one of {', '.join(HEAD_KINDS)}")
        self.kind = kind
        self.hidden = hidden
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        if kind == "logistic":
            self.net: nn.Module = nn.Linear(dim, 1)
        else:
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, embeddings: Tensor) -> Tensor:
        z = (embeddings.to(self.mean.dtype) - self.mean) / self.std
        return self.net(z).squeeze(-1)

    def weight_penalty(self) -> Tensor:
        return sum((m.weight**2).sum() for m in self.net.modules() if isinstance(m, nn.Linear))  # type: ignore[return-value]


def fit_head(
    x: Tensor,
    y: Tensor,
    *,
    kind: str = "logistic",
    l2: float = 1e-2,
    hidden: int = 64,
    seed: int = 0,
    steps: int = 200,
) -> TasteHead:
    """Fit a head on embeddings ``x`` ``(N, D)`` and labels ``y`` ``(N,)`` in {0, 1}.

    Class-balanced binary cross-entropy + ``l2`` · squared weights, minimised full-batch:
    Newton's method for the (convex) logistic head, L-BFGS for the MLP (smooth tanh units).
    """
    x = x.double()
    y = y.double()
    torch.manual_seed(seed)
    head = TasteHead(x.shape[1], kind, hidden).double()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    head.mean.copy_(mean)
    head.std.copy_(std)
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("both classes need at least one image")
    weights = torch.where(y > 0.5, len(y) / (2 * n_pos), len(y) / (2 * n_neg))

    if kind == "logistic":
        _newton_logistic(head, (x - mean) / std, y, weights, l2)
    else:
        loss_fn = nn.BCEWithLogitsLoss(weight=weights)

        def objective() -> Tensor:
            return loss_fn(head(x), y) + l2 * head.weight_penalty()

        opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        opt.step(closure)
    head.eval()
    for p in head.parameters():
        p.requires_grad_(False)
    return head.float()


@torch.no_grad()
def _newton_logistic(
    head: TasteHead, z: Tensor, y: Tensor, weights: Tensor, l2: float, iters: int = 50
) -> None:
    """Exact minimiser of the weighted, L2-penalised logistic loss (Newton / IRLS, bias unpenalised)."""
    n, d = z.shape
    a = torch.cat([z, torch.ones(n, 1, dtype=z.dtype)], 1)
    theta = torch.zeros(d + 1, dtype=z.dtype)
    penalty = torch.full((d + 1,), 2.0 * l2, dtype=z.dtype)
    penalty[-1] = 0.0
    for _ in range(iters):
        p = torch.sigmoid(a @ theta)
        grad = a.t() @ (weights * (p - y)) / n + penalty * theta
        hess = (a.t() * (weights * p * (1 - p))) @ a / n + torch.diag(penalty + 1e-9)
        step = torch.linalg.solve(hess, grad)
        theta -= step
        if float(step.abs().max()) < 1e-8:
            break
    linear = head.net
    assert isinstance(linear, nn.Linear)
    linear.weight.copy_(theta[:-1].view(1, -1))
    linear.bias.copy_(theta[-1:])


def _folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Stratified fold assignment: test indices of each of ``k`` folds."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for label in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == label))
        for i, j in enumerate(idx):
            folds[i % k].append(int(j))
    return [np.array(sorted(f)) for f in folds]


def _auc(scores: np.ndarray, y: np.ndarray) -> float:
    pos, neg = scores[y == 1], scores[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def _choose_l2(
    x: Tensor, y: Tensor, kind: str, hidden: int, k: int, seed: int, grid: Sequence[float]
) -> tuple[float, dict[str, float]]:
    """L2 strength with the best (inner) cross-validated log-loss."""
    yn = y.numpy().astype(int)
    k = max(2, min(k, int(min((yn == 0).sum(), (yn == 1).sum()))))
    folds = _folds(yn, k, seed + 1)
    results = {}
    for l2 in grid:
        losses = []
        for test in folds:
            train = np.setdiff1d(np.arange(len(yn)), test)
            head = fit_head(x[train], y[train], kind=kind, l2=l2, hidden=hidden, seed=seed)
            with torch.no_grad():
                p = torch.sigmoid(head(x[test])).double().clamp(1e-6, 1 - 1e-6)
            t = y[test].double()
            losses.append(float(-(t * p.log() + (1 - t) * (1 - p).log()).mean()))
        results[f"{l2:g}"] = float(np.mean(losses))
    best = min(grid, key=lambda v: results[f"{v:g}"])
    return best, results


def cross_validate(
    x: Tensor,
    y: Tensor,
    *,
    kind: str = "logistic",
    hidden: int = 64,
    folds: int = 5,
    seed: int = 0,
    grid: Sequence[float] = L2_GRID,
) -> dict[str, Any]:
    """Nested stratified k-fold cross-validation: outer folds measure, inner folds pick the L2 strength.

    Returns:
        ``accuracy`` (mean over outer folds), ``accuracy_std``, ``balanced_accuracy``, ``auc``
        (pooled out-of-fold probabilities), ``baseline`` (majority class share), ``per_fold``,
        ``folds`` and the L2 chosen in each fold.
    """
    yn = y.numpy().astype(int)
    smallest = int(min((yn == 0).sum(), (yn == 1).sum()))
    if smallest < 2:
        raise ValueError(
            f"cross-validation needs at least 2 images per class (got {int((yn == 1).sum())} OK, "
            f"{int((yn == 0).sum())} not OK); 20+ per class give a useful model"
        )
    k = max(2, min(folds, smallest))
    outer = _folds(yn, k, seed)
    probs = np.zeros(len(yn))
    per_fold, chosen = [], []
    for test in outer:
        train = np.setdiff1d(np.arange(len(yn)), test)
        l2, _ = _choose_l2(x[train], y[train], kind, hidden, k, seed, grid)
        head = fit_head(x[train], y[train], kind=kind, l2=l2, hidden=hidden, seed=seed)
        with torch.no_grad():
            p = torch.sigmoid(head(x[test])).double().numpy()
        probs[test] = p
        per_fold.append(float(((p >= 0.5).astype(int) == yn[test]).mean()))
        chosen.append(l2)
    pred = (probs >= 0.5).astype(int)
    tpr = float((pred[yn == 1] == 1).mean())
    tnr = float((pred[yn == 0] == 0).mean())
    return {
        "folds": k,
        "accuracy": float(np.mean(per_fold)),
        "accuracy_std": float(np.std(per_fold)),
        "balanced_accuracy": 0.5 * (tpr + tnr),
        "ok_recall": tpr,
        "nok_recall": tnr,
        "auc": _auc(probs, yn),
        "baseline": float(max(yn.mean(), 1 - yn.mean())),
        "per_fold": per_fold,
        "l2_per_fold": chosen,
    }


# ---------------------------------------------------------------------------------------------
# Scorer


class TasteScorer(nn.Module):
    """P(OK) of ``(B, 3, H, W)`` sRGB images in [0, 1] -> ``(B,)`` in [0, 1], differentiable."""

    def __init__(self, extractor: nn.Module, head: TasteHead, card: dict[str, Any]) -> None:
        super().__init__()
        self.extractor = extractor
        self.head = head
        self.card = card

    def logits(self, images: Tensor) -> Tensor:
        emb = self.extractor(images)
        return self.head(emb.to(self.head.mean.device))

    def forward(self, images: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(images)).to(images.device)


def _card_description(card: dict[str, Any]) -> str:
    bb = card["backbone"]
    backbone = "built-in features" if bb["kind"] == "builtin" else f"CLIP {bb['model']}"
    cv = card.get("cv", {})
    acc = f"; cross-validated accuracy {100 * cv['accuracy']:.1f}%" if "accuracy" in cv else ""
    return (
        f"Personal taste model {card['name']!r}: P(OK) from a {card['head']['kind']} head on {backbone} "
        f"({bb['crop_mode']}), trained on {card['counts']['ok']} OK / {card['counts']['nok']} not-OK images{acc}."
    )


def taste_info(card: dict[str, Any]) -> ScorerInfo:
    bb = card["backbone"]
    weights: tuple[str, ...] = ()
    if bb["kind"] == "clip":
        from lib_enhancer.scorers.clip import CLIP_ARCHS

        arch = CLIP_ARCHS.get(bb["model"])
        weights = (arch.openai_file,) if arch else ()
    return ScorerInfo(
        name=f"taste:{card['name']}",
        description=_card_description(card),
        score_range=(0.0, 1.0),
        higher_is_better=True,
        differentiable=True,
        input_size=224 if bb["kind"] == "clip" else None,
        weights=weights,
        license="yours (trained locally)" + (" + MIT (OpenAI CLIP)" if weights else ""),
        tags=("taste",),
    )


def load_taste(
    name: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: PathLike | None = None,
    crop_mode: str | None = None,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    clip_model: nn.Module | None = None,
    clip_weights: PathLike | None = None,
) -> TasteScorer:
    """Load taste model ``name`` from the model cache as a :class:`TasteScorer` (eval, frozen).

    Raises:
        KeyError: no such model (the message lists the available ones).
    """
    weights, card_path = model_paths(name, cache_dir)
    if not (weights.is_file() and card_path.is_file()):
        known = [c["name"] for c in list_taste_models(cache_dir)]
        raise KeyError(
            f"no taste model {name!r} in {taste_dir(cache_dir)}"
            + (f" (available: {', '.join(known)})" if known else "")
            + f"; train one with: python -m lib_enhancer train taste --ok DIR --nok DIR --name {name}"
        )
    card = read_card(card_path)
    extractor = _extractor_from_spec(
        card["backbone"],
        crop_mode,
        device=device,
        dtype=dtype,
        cache_dir=cache_dir,
        offline=offline,
        search_dirs=search_dirs,
        clip_model=clip_model,
        clip_weights=clip_weights,
    )
    if extractor.dim != int(card["dim"]):
        raise ValueError(
            f"taste model {name!r} expects {card['dim']}-d embeddings but the backbone gives {extractor.dim}"
        )
    head = TasteHead(int(card["dim"]), card["head"]["kind"], int(card["head"].get("hidden", 64)))
    head.load_state_dict(_load_tensors(weights), strict=True)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    scorer = TasteScorer(
        extractor.to(dev) if isinstance(extractor, nn.Module) else extractor, head.to(dev), card
    )
    scorer.info = taste_info(card)
    scorer.eval()
    for p in scorer.parameters():
        p.requires_grad_(False)
    return scorer


def create_taste_member(
    member: str = "",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: PathLike | None = None,
    crop_mode: str | None = None,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    clip_model: nn.Module | None = None,
    clip_weights: PathLike | None = None,
) -> TasteScorer:
    """Registry factory of ``taste:<member>``."""
    return load_taste(
        member,
        device=device,
        dtype=dtype,
        cache_dir=cache_dir,
        crop_mode=crop_mode,
        offline=offline,
        search_dirs=search_dirs,
        clip_model=clip_model,
        clip_weights=clip_weights,
    )


def _resolve(member: str, cache_dir: str | None) -> tuple[ScorerInfo, Any] | None:
    if not NAME_PATTERN.match(member):
        return None
    _, card_path = model_paths(member, cache_dir)
    if not card_path.is_file():
        return None
    card = read_card(card_path)

    def factory(**options: Any) -> TasteScorer:
        return create_taste_member(member, **options)

    return taste_info(card), factory


def _token(member: str, cache_dir: str | None) -> tuple[tuple[str, int, int, int] | tuple[str], ...]:
    """``(path, mtime_ns, size, inode)`` of the model's files: retraining (an atomic rewrite) changes it."""
    if not NAME_PATTERN.match(member):
        return ()
    stamps: list[tuple[str, int, int, int] | tuple[str]] = []
    for path in model_paths(member, cache_dir):
        try:
            st = path.stat()
        except OSError:
            stamps.append((str(path.absolute()),))
            continue
        stamps.append((str(path.absolute()), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamps)


def _members() -> list[ScorerInfo]:
    return [taste_info(card) for card in list_taste_models()]


register_scorer_family(
    ScorerFamily(
        prefix="taste",
        resolve=_resolve,
        members=_members,
        factory=create_taste_member,
        hint="Train one with: python -m lib_enhancer train taste --ok DIR --nok DIR --name NAME",
        token=_token,
    )
)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainReport:
    """What :func:`train_taste` did."""

    name: str
    card: dict[str, Any]
    weights_path: Path
    card_path: Path
    samples: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        c = self.card
        cv = c["cv"]
        s = self.samples
        bb = c["backbone"]
        backbone = "built-in features" if bb["kind"] == "builtin" else f"CLIP {bb['model']}"
        out = [
            f"images: {c['counts']['ok']} OK, {c['counts']['nok']} not OK"
            f" ({s.get('embedded', 0)} embedded, {s.get('cache_hits', 0)} from the cache"
            + (
                f", {s.get('kept_previous', 0)} kept from the previous model"
                if s.get("kept_previous")
                else ""
            )
            + f"; {s.get('embed_seconds', 0):.1f} s)",
            f"backbone: {backbone} ({bb['crop_mode']}, {c['dim']}-d); head: {c['head']['kind']}, L2 {c['head']['l2']:g}",
            f"cross-validated accuracy ({cv['folds']}-fold, nested): {100 * cv['accuracy']:.1f}% "
            f"± {100 * cv['accuracy_std']:.1f}  (balanced {100 * cv['balanced_accuracy']:.1f}%, "
            f"AUC {cv['auc']:.3f}; majority-class baseline {100 * cv['baseline']:.1f}%)",
            f"training accuracy: {100 * c['train_accuracy']:.1f}%",
            f"saved taste:{self.name} -> {self.weights_path} (+ {self.card_path.name}) in {self.seconds:.1f} s",
        ]
        for failure in s.get("failed", []):
            out.append(f"skipped: {failure}")
        if s.get("missing_previous"):
            out.append(
                f"note: {s['missing_previous']} earlier sample(s) are neither cached nor on disk any more"
            )
        return out


def train_taste(
    name: str,
    ok: Sequence[PathLike] = (),
    nok: Sequence[PathLike] = (),
    *,
    backbone: str = "auto",
    head: str = "logistic",
    hidden: int = 64,
    crop_mode: str | None = None,
    folds: int = 5,
    add: bool = False,
    recursive: bool = False,
    seed: int = 0,
    cache_dir: PathLike | None = None,
    device: torch.device | str | None = None,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    clip_model: nn.Module | None = None,
    clip_weights: PathLike | None = None,
    embedding_key: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainReport:
    """Train (or re-train) taste model ``name`` from folders of OK and not-OK images.

    Args:
        name: model name; the scorer is ``taste:<name>``.
        ok, nok: folders of images you like / don't like.
        backbone: ``auto``, ``builtin`` or a CLIP architecture (see :func:`make_extractor`). With
            ``add`` the previous model's backbone is kept unless one is given explicitly.
        head: ``logistic`` or ``mlp``.
        crop_mode: how images are seen (``five_crop`` for high-resolution judgement).
        folds: outer cross-validation folds (fewer when a class is small).
        add: keep the previous model's samples and add these folders (incremental).
        seed: fold assignment and MLP initialisation.

    Returns:
        A :class:`TrainReport`; the model is saved in ``<cache>/taste/``.
    """
    started = time.perf_counter()
    check_name(name)
    if head not in HEAD_KINDS:
        raise ValueError(f"unknown head {head!r}; use one of {', '.join(HEAD_KINDS)}")
    weights_path, card_path = model_paths(name, cache_dir)
    previous: list[dict[str, Any]] = []
    if add:
        if not card_path.is_file():
            raise FileNotFoundError(f"--add: there is no taste model {name!r} yet ({card_path})")
        old = read_card(card_path)
        previous = list(old.get("samples", []))
        if backbone == "auto":
            backbone = "builtin" if old["backbone"]["kind"] == "builtin" else old["backbone"]["model"]
            crop_mode = crop_mode or old["backbone"]["crop_mode"]
    if not ok and not nok and not previous:
        raise ValueError("give at least one --ok and one --nok folder")
    extractor = make_extractor(
        backbone,
        crop_mode=crop_mode,
        device=device,
        cache_dir=cache_dir,
        offline=offline,
        search_dirs=search_dirs,
        clip_model=clip_model,
        clip_weights=clip_weights,
        embedding_key=embedding_key,
    )
    cache = EmbeddingCache(extractor.key, cache_dir, enabled=getattr(extractor, "cacheable", True))
    folders = [(f, 1) for f in ok] + [(f, 0) for f in nok]
    samples, report = collect_samples(
        folders, extractor, cache, recursive=recursive, previous=previous, progress=progress
    )
    if report["ok"] == 0 or report["nok"] == 0:
        raise ValueError(f"need images of both classes; found {report['ok']} OK and {report['nok']} not OK")
    x = torch.stack([s.embedding for s in samples]).double()  # type: ignore[misc]
    y = torch.tensor([s.label for s in samples], dtype=torch.float64)
    cv = cross_validate(x, y, kind=head, hidden=hidden, folds=folds, seed=seed)
    l2, inner = _choose_l2(x, y, head, hidden, cv["folds"], seed, L2_GRID)
    model = fit_head(x, y, kind=head, l2=l2, hidden=hidden, seed=seed)
    with torch.no_grad():
        train_acc = float(((torch.sigmoid(model(x.float())) >= 0.5).double() == y).double().mean())
    seconds = time.perf_counter() - started
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "name": name,
        "backbone": extractor.spec(),
        "dim": int(extractor.dim),
        "head": {"kind": head, "hidden": hidden, "l2": l2, "l2_inner_logloss": inner},
        "counts": {"ok": report["ok"], "nok": report["nok"]},
        "cv": cv,
        "train_accuracy": train_acc,
        "seed": seed,
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "samples": [{"sha256": s.digest, "label": s.label, "path": s.path} for s in samples],
    }
    _save_tensors(weights_path, dict(model.state_dict()), metadata={"format": CARD_FORMAT, "name": name})
    _atomic_write_bytes(card_path, (json.dumps(card, indent=1) + "\n").encode("utf-8"))
    return TrainReport(name, card, weights_path, card_path, report, time.perf_counter() - started)


def run_train_command(args: Any) -> int:
    """``train taste`` (see :func:`lib_enhancer.cli` for the options)."""
    if args.threads:
        torch.set_num_threads(args.threads)

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    report = train_taste(
        args.name,
        args.ok or (),
        args.nok or (),
        backbone=args.backbone,
        head=args.head,
        crop_mode=args.crop_mode,
        folds=args.folds,
        add=args.add,
        recursive=args.recursive,
        seed=args.seed,
        cache_dir=args.models_dir,
        device=args.device,
        progress=progress,
    )
    for line in report.lines():
        print(line)
    cv = report.card["cv"]
    if not math.isnan(cv["accuracy"]) and cv["accuracy"] <= cv["baseline"] + 0.05:
        print(
            "warning: the model is barely better than always answering the larger class; "
            "add more (and more consistently labelled) images",
            file=sys.stderr,
        )
    return 0
