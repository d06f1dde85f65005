"""CLIP-based scorers: LAION aesthetic heads, CLIP-IQA and a text target, on one shared backbone.

* **Backbone cache.** :func:`get_clip_backbone` returns one :class:`ClipBackbone` per (model name,
  pretrained tag or weights file, device, dtype); every scorer on that model shares it.
  :meth:`ClipBackbone.offload` moves the weights to the CPU (they come back on the next use),
  :meth:`ClipBackbone.free` drops them. Half/bfloat16 weights run under ``torch.autocast``.
* **One pass per batch.** Inside :func:`shared_pass` (the ensemble opens it around its members), a
  backbone memoises the embeddings of the last batch, keyed by the input tensor's identity and
  version and by the crop settings, so ``laion`` + ``clip-iqa`` on ViT-L/14 cost one image-tower
  pass and one backward.
* **Aspect-aware crops** (:mod:`lib_enhancer.scorers.preprocess`): each crop is embedded, every
  head scores each crop, and the scores are averaged.
* **Weights.** OpenAI CLIP checkpoints are found locally (our cache, caller-given folders, OpenAI's
  ``~/.cache/clip``, open_clip/Hugging Face hub caches) or fetched by open_clip with
  ``pretrained='openai'`` into the model cache. Offline and missing, a clear error names the file,
  its URL and where to put it. Heads come from :mod:`lib_enhancer.models`.

open_clip is imported only inside the functions that build models.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import os
import weakref
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lib_enhancer import models
from lib_enhancer.scorers.preprocess import (
    CropSpec,
    autocast_context,
    multi_crop,
    normalize,
    resolve_device,
    resolve_dtype,
)
from lib_enhancer.scorers.registry import ScorerInfo, register_scorer

logger = logging.getLogger(__name__)

Tensor = torch.Tensor
PathLike = str | os.PathLike[str]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
#: Tokenizer used for injected models that bring none (OpenAI BPE, context 77).
DEFAULT_TOKENIZER = "ViT-B-32"


@dataclass(frozen=True)
class ClipArch:
    """Where the OpenAI weights of one open_clip architecture can be found."""

    openai_file: str  # model-manager name of the OpenAI TorchScript archive
    hf_repo: str  # open_clip's Hugging Face mirror of the same weights
    embed_dim: int


CLIP_ARCHS: dict[str, ClipArch] = {
    "ViT-L-14": ClipArch("ViT-L-14.pt", "timm/vit_large_patch14_clip_224.openai", 768),
    "ViT-B-32": ClipArch("ViT-B-32.pt", "timm/vit_base_patch32_clip_224.openai", 512),
    "ViT-B-16": ClipArch("ViT-B-16.pt", "timm/vit_base_patch16_clip_224.openai", 512),
}
_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_OPENAI_META_KEYS = ("input_resolution", "context_length", "vocab_size")


# ---------------------------------------------------------------------------------------------
# Finding and loading CLIP weights


def hub_cache_dirs(cache_dir: PathLike | None = None) -> list[Path]:
    """Hugging Face hub caches to search: ours, ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, the default."""
    dirs = [models.models_dir(cache_dir)]
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]).expanduser())
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    dirs.append(Path.home() / ".cache" / "huggingface" / "hub")
    return dirs


def find_clip_weights(
    model_name: str, *, cache_dir: PathLike | None = None, search_dirs: Sequence[PathLike] = ()
) -> Path | None:
    """A local copy of the OpenAI weights of ``model_name``, or ``None``.

    Looks for the OpenAI archive (``ViT-L-14.pt``...) where :func:`lib_enhancer.models.find_file`
    looks (cache, caller folders, ``~/.cache/clip``), then for open_clip's Hugging Face files
    (``open_clip_model.safetensors`` / ``open_clip_pytorch_model.bin``) in the hub caches.
    """
    arch = CLIP_ARCHS.get(model_name)
    if arch is None:
        return None
    found = models.find_file(arch.openai_file, cache_dir, search_dirs)
    if found is not None:
        return found
    repo_dir = "models--" + arch.hf_repo.replace("/", "--")
    for base in hub_cache_dirs(cache_dir):
        for file_name in _HF_FILES:
            hits = sorted((base / repo_dir / "snapshots").glob(f"*/{file_name}"))
            if hits:
                return hits[-1]
    return None


def _is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (a zip with ``code/`` or ``constants.pkl`` entries)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def _load_openai_archive(path: Path) -> nn.Module:
    """Load an OpenAI TorchScript ``.pt`` through open_clip (QuickGELU, fp32, CPU, not scripted)."""
    import open_clip

    kwargs: dict[str, Any] = {"precision": "fp32", "device": "cpu"}
    if "jit" in inspect.signature(open_clip.load_openai_model).parameters:  # open_clip 2.x
        kwargs["jit"] = False
    return open_clip.load_openai_model(str(path), **kwargs)


def _build_open_clip(model_name: str, quick_gelu: bool) -> nn.Module:
    """An open_clip architecture with random weights (no network)."""
    import open_clip

    return open_clip.create_model(
        model_name, pretrained=None, precision="fp32", device="cpu", force_quick_gelu=quick_gelu
    )


def _load_state_file(model_name: str, path: Path, quick_gelu: bool) -> nn.Module:
    """Build ``model_name`` and load an open_clip/OpenAI-format state dict (safetensors or weights-only pickle)."""
    state = models.load_state_dict(path, key="state_dict", ignore=_OPENAI_META_KEYS)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = _build_open_clip(model_name, quick_gelu)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RuntimeError(f"{path} does not fit the open_clip architecture {model_name!r}: {exc}") from exc
    return model


def load_clip_file(model_name: str, path: PathLike, *, quick_gelu: bool = True) -> nn.Module:
    """Load CLIP weights from a file: an OpenAI TorchScript archive, or a state dict.

    OpenAI archives go through ``open_clip.load_openai_model`` (the only non-``weights_only``
    path, TorchScript rather than pickle); everything else is loaded with safetensors or
    ``torch.load(weights_only=True)`` into ``open_clip.create_model(model_name)`` built with
    QuickGELU (OpenAI weights need it; a file path does not make open_clip switch it on).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP weights file not found: {path}")
    if _is_torchscript(path):
        return _load_openai_archive(path)
    return _load_state_file(model_name, path, quick_gelu)


def load_clip_model(
    model_name: str = "ViT-L-14",
    pretrained: str | None = "openai",
    *,
    cache_dir: PathLike | None = None,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    weights: PathLike | None = None,
    quick_gelu: bool = True,
) -> nn.Module:
    """An open_clip CLIP model on the CPU in fp32, eval mode, parameters frozen.

    Args:
        model_name: open_clip architecture name (``ViT-L-14``, ``ViT-B-32``, ``ViT-B-16``...).
        pretrained: ``"openai"`` (local copies first, then open_clip's download into the model
            cache), another open_clip tag (downloaded by open_clip), or ``None`` for random weights.
        cache_dir: model cache directory (see :func:`lib_enhancer.models.models_dir`).
        offline: never download (default ``$LIB_ENHANCER_OFFLINE``).
        search_dirs: extra folders to look in (e.g. the webui's ``models/``).
        weights: an explicit weights file; overrides ``pretrained``.
        quick_gelu: build with QuickGELU (right for OpenAI weights).

    Raises:
        lib_enhancer.models.ModelNotAvailableError: weights missing offline or download failed.
    """
    if weights is not None:
        model = load_clip_file(model_name, weights, quick_gelu=quick_gelu)
    elif pretrained is None:
        model = _build_open_clip(model_name, quick_gelu)
    else:
        model = _load_pretrained(model_name, pretrained, cache_dir, offline, search_dirs, quick_gelu)
    model.eval()
    model.requires_grad_(False)
    return model


def _load_pretrained(
    model_name: str,
    pretrained: str,
    cache_dir: PathLike | None,
    offline: bool | None,
    search_dirs: Sequence[PathLike],
    quick_gelu: bool,
) -> nn.Module:
    arch = CLIP_ARCHS.get(model_name)
    entry = models.get_model_file(arch.openai_file) if arch and pretrained == "openai" else None
    if entry is not None:
        found = find_clip_weights(model_name, cache_dir=cache_dir, search_dirs=search_dirs)
        if found is not None:
            if found.name == entry.name:
                models.check_file(found, entry, cache_dir)
            logger.info("loading %s weights from %s", model_name, found)
            return load_clip_file(model_name, found, quick_gelu=quick_gelu)
    dest = models.models_dir(cache_dir) / (entry.name if entry else f"{model_name}-{pretrained}")
    if models.is_offline(offline):
        if entry is None:
            raise models.ModelNotAvailableError(
                f"open_clip weights {model_name!r}/{pretrained!r} are not available offline "
                f"({models.ENV_OFFLINE}); pass an explicit weights file instead"
            )
        raise models.ModelNotAvailableError(
            models.missing_message(entry, dest, f"(CLIP {model_name} backbone) is not available offline")
        )
    import open_clip

    cache = models.models_dir(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        return open_clip.create_model(
            model_name,
            pretrained=pretrained,
            precision="fp32",
            device="cpu",
            force_quick_gelu=quick_gelu and pretrained == "openai",
            cache_dir=str(cache),
        )
    except (RuntimeError, OSError, ValueError) as exc:
        why = f"(CLIP {model_name} backbone) could not be downloaded by open_clip: {exc}"
        if entry is None:
            raise models.ModelNotAvailableError(
                f"open_clip weights {model_name!r}/{pretrained!r} {why}"
            ) from exc
        raise models.ModelNotAvailableError(models.missing_message(entry, dest, why)) from exc


# ---------------------------------------------------------------------------------------------
# Shared backbone


_SHARING: contextvars.ContextVar[list[ClipBackbone] | None] = contextvars.ContextVar(
    "lib_enhancer_clip_sharing", default=None
)


@contextlib.contextmanager
def shared_pass() -> Iterator[None]:
    """Within the block, backbones reuse the embeddings of the same input tensor.

    Scorers sharing a backbone and called on the very same tensor (same object, unmodified) with
    the same crop settings get the embeddings computed once, autograd graph included, so one
    backward serves every head. The memo is dropped when the outermost block exits. Outside a
    block nothing is memoised (a second forward on the same tensor recomputes).
    """
    if _SHARING.get() is not None:
        yield
        return
    owners: list[ClipBackbone] = []
    token = _SHARING.set(owners)
    try:
        yield
    finally:
        _SHARING.reset(token)
        for backbone in owners:
            backbone._memo = None


class ClipBackbone:
    """One CLIP model shared by every scorer that uses it (not an ``nn.Module``: scorers do not own it).

    Attributes:
        name: cache key description.
        device: where the model runs.
        dtype: weight dtype (float32, or float16/bfloat16 under autocast).
        image_passes: number of image-tower passes run so far (for tests and benchmarks).
    """

    def __init__(
        self,
        loader: Callable[[], nn.Module],
        *,
        name: str,
        device: torch.device,
        dtype: torch.dtype,
        tokenizer_name: str = DEFAULT_TOKENIZER,
        tokenizer: Callable[[Sequence[str]], Tensor] | None = None,
        key: tuple[Any, ...] | None = None,
    ) -> None:
        self.name = name
        self.device = device
        self.dtype = dtype
        self.key = key
        self._loader = loader
        self._model: nn.Module | None = None
        self._on_device = False
        self._tokenizer = tokenizer
        self._tokenizer_name = tokenizer_name
        self._text_cache: dict[str, Tensor] = {}
        self._memo: tuple[Any, weakref.ref[Tensor], int, Tensor] | None = None
        self.image_passes = 0

    def __repr__(self) -> str:
        state = "freed" if self._model is None else ("on device" if self._on_device else "offloaded")
        return f"ClipBackbone({self.name!r}, device={self.device}, dtype={self.dtype}, {state})"

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def model(self) -> nn.Module:
        """The CLIP model on :attr:`device` (loaded on first use, brought back after offload)."""
        if self._model is None:
            model = self._loader()
            model.eval()
            model.requires_grad_(False)
            self._model = model
            self._on_device = False
        if not self._on_device:
            self._model.to(device=self.device, dtype=self.dtype)
            self._on_device = True
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def offload(self) -> None:
        """Move the weights to the CPU; the next use moves them back to :attr:`device`."""
        self._memo = None
        self._text_cache.clear()
        if self._model is not None and self.device.type != "cpu":
            self._model.to("cpu")
            self._on_device = False

    def free(self) -> None:
        """Drop the model and forget this backbone in the cache (a later use reloads it)."""
        self._memo = None
        self._text_cache.clear()
        self._model = None
        self._on_device = False
        if self.key is not None and _BACKBONES.get(self.key) is self:
            del _BACKBONES[self.key]

    # -- metadata -----------------------------------------------------------------------------

    @property
    def image_size(self) -> int:
        size = getattr(self.model.visual, "image_size", 224)
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(getattr(self.model.visual, "image_mean", None) or OPENAI_MEAN)

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(getattr(self.model.visual, "image_std", None) or OPENAI_STD)

    @property
    def embed_dim(self) -> int:
        return int(self.model.visual.output_dim)

    @property
    def logit_scale(self) -> float:
        """CLIP's softmax temperature ``exp(logit_scale)``, capped at 100 as in training."""
        return float(self.model.logit_scale.detach().float().exp().clamp(max=100.0))

    @property
    def tokenizer(self) -> Callable[[Sequence[str]], Tensor]:
        if self._tokenizer is None:
            import open_clip

            self._tokenizer = open_clip.get_tokenizer(self._tokenizer_name)
        return self._tokenizer

    # -- encoding -----------------------------------------------------------------------------

    def crop_spec(self, mode: str = "cover", max_crops: int = 4) -> CropSpec:
        """The crop settings for this model's input size."""
        return CropSpec(size=self.image_size, mode=mode, max_crops=max_crops)  # type: ignore[arg-type]

    def encode_images(self, images: Tensor, spec: CropSpec) -> Tensor:
        """L2-normalised float32 image embeddings of every crop, differentiable w.r.t. ``images``.

        Shape:
            ``(B, 3, H, W) -> (B, N, D)`` with ``N`` crops per image.
        """
        owners = _SHARING.get()
        key = (spec, torch.is_grad_enabled())
        if owners is not None and self._memo is not None:
            memo_key, ref, version, emb = self._memo
            if memo_key == key and ref() is images and version == images._version:
                return emb
        model = self.model
        x = images.to(device=self.device, dtype=torch.float32)
        crops, n = multi_crop(x, spec, fill=self.mean)
        crops = normalize(crops, self.mean, self.std)
        with autocast_context(self.device, self.dtype):
            feats = model.encode_image(crops)
        self.image_passes += 1
        emb = F.normalize(feats.float(), dim=-1).view(images.shape[0], n, -1)
        if owners is not None:
            self._memo = (key, weakref.ref(images), images._version, emb)
            if self not in owners:
                owners.append(self)
        return emb

    @torch.no_grad()
    def encode_texts(self, prompts: Sequence[str]) -> Tensor:
        """L2-normalised float32 text embeddings ``(P, D)``, cached per prompt."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            tokens = self.tokenizer(missing).to(self.device)
            with autocast_context(self.device, self.dtype):
                feats = self.model.encode_text(tokens)
            for prompt, feat in zip(missing, F.normalize(feats.float(), dim=-1), strict=True):
                self._text_cache[prompt] = feat
        return torch.stack([self._text_cache[p] for p in prompts])


_BACKBONES: dict[tuple[Any, ...], ClipBackbone] = {}


def get_clip_backbone(
    model_name: str = "ViT-L-14",
    pretrained: str | None = "openai",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: PathLike | None = None,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    weights: PathLike | None = None,
    clip_model: nn.Module | None = None,
    tokenizer: Callable[[Sequence[str]], Tensor] | None = None,
) -> ClipBackbone:
    """The shared backbone for (model, pretrained tag or weights file, device, dtype).

    Args:
        model_name: open_clip architecture.
        pretrained: open_clip tag (``"openai"``) or ``None`` for random weights.
        device: ``None`` means CPU.
        dtype: weight dtype; default float16 on CUDA, float32 elsewhere.
        cache_dir, offline, search_dirs, weights: see :func:`load_clip_model`.
        clip_model: an already built model (any module with ``encode_image``, ``encode_text``,
            ``logit_scale`` and ``visual.output_dim``); it is cached by identity. Used by tests and
            by hosts that already hold a CLIP.
        tokenizer: text tokenizer for ``clip_model`` (default: open_clip's for ``model_name``).

    The model itself is loaded on first use, not here.
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dev, dtype)
    if clip_model is not None:
        key: tuple[Any, ...] = ("injected", id(clip_model), str(dev), str(dt))
        loader: Callable[[], nn.Module] = lambda: clip_model  # noqa: E731
        name = f"{type(clip_model).__name__}@{id(clip_model):x}"
        tokenizer_name = model_name if model_name in CLIP_ARCHS else DEFAULT_TOKENIZER
    else:
        source = str(Path(weights).expanduser().resolve()) if weights is not None else pretrained
        key = (model_name, source, str(dev), str(dt))
        loader = functools.partial(
            load_clip_model,
            model_name,
            pretrained,
            cache_dir=cache_dir,
            offline=offline,
            search_dirs=tuple(search_dirs),
            weights=weights,
        )
        name = f"{model_name}/{source}"
        tokenizer_name = model_name
    backbone = _BACKBONES.get(key)
    if backbone is None:
        backbone = ClipBackbone(
            loader,
            name=name,
            device=dev,
            dtype=dt,
            tokenizer_name=tokenizer_name,
            tokenizer=tokenizer,
            key=key,
        )
        _BACKBONES[key] = backbone
    return backbone


def cached_backbones() -> list[ClipBackbone]:
    """Every backbone currently in the cache."""
    return list(_BACKBONES.values())


def offload_backbones() -> None:
    """Move every cached backbone's weights to the CPU (e.g. before image generation)."""
    for backbone in list(_BACKBONES.values()):
        backbone.offload()


def free_backbones() -> None:
    """Drop every cached backbone."""
    for backbone in list(_BACKBONES.values()):
        backbone.free()


# ---------------------------------------------------------------------------------------------
# Heads


class LaionMLP(nn.Module):
    """The improved aesthetic predictor head (``layers.{0,2,4,6,7}``; no activations, so affine in eval)."""

    def __init__(self, input_size: int = 768) -> None:
        super().__init__()
        self.input_size = input_size
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def load_laion_head(path: PathLike) -> nn.Module:
    """Load a LAION head file: the MLP (``layers.*``) or a V1 linear head (``weight``, ``bias``).

    Raises:
        ValueError: the keys fit neither layout.
    """
    state = models.load_state_dict(path)
    keys = set(state)
    if keys == {"weight", "bias"}:
        out_features, in_features = state["weight"].shape
        head: nn.Module = nn.Linear(in_features, out_features)
    elif keys == {f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")}:
        head = LaionMLP(int(state["layers.0.weight"].shape[1]))
    else:
        raise ValueError(f"{path}: not a LAION aesthetic head (keys: {', '.join(sorted(keys))})")
    head.load_state_dict(state, strict=True)
    head.eval()
    return head


def head_input_size(head: nn.Module) -> int:
    """Embedding size a head expects."""
    first = (
        head if isinstance(head, nn.Linear) else next(m for m in head.modules() if isinstance(m, nn.Linear))
    )
    return int(first.in_features)


@torch.no_grad()
def collapse_affine(head: nn.Module) -> tuple[Tensor, float]:
    """The ``(w, b)`` with ``head(e) == w·e + b`` for a head without activations (eval mode)."""
    was_training = head.training
    head.eval()
    dim = head_input_size(head)
    param = next(head.parameters())
    zero = head(torch.zeros(1, dim, dtype=param.dtype, device=param.device))
    eye = head(torch.eye(dim, dtype=param.dtype, device=param.device))
    head.train(was_training)
    return (eye - zero).squeeze(-1).float().cpu(), float(zero.item())


# ---------------------------------------------------------------------------------------------
# Scorers


class ClipScorer(nn.Module):
    """Base class: crops -> shared backbone embeddings ``(B, N, D)`` -> per-crop scores -> mean."""

    def __init__(self, backbone: ClipBackbone, crop: CropSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.crop = crop

    def embed(self, images: Tensor) -> Tensor:
        """Normalised embeddings ``(B, N, D)`` of every crop."""
        return self.backbone.encode_images(images, self.crop)

    def score_embeddings(self, embeddings: Tensor) -> Tensor:
        """Per-crop scores ``(B, N)`` from embeddings ``(B, N, D)``."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        """Scores ``(B,)`` for ``(B, 3, H, W)`` sRGB images in [0, 1] of any size."""
        return self.score_embeddings(self.embed(images)).mean(dim=1).to(images.device)


class LaionAestheticScorer(ClipScorer):
    """A LAION aesthetic head on the L2-normalised CLIP image embedding (1-10 rating scale)."""

    def __init__(self, backbone: ClipBackbone, head: nn.Module, crop: CropSpec) -> None:
        super().__init__(backbone, crop)
        dim = backbone.embed_dim
        if head_input_size(head) != dim:
            raise ValueError(
                f"the aesthetic head expects {head_input_size(head)}-d embeddings but the backbone "
                f"{backbone.name} produces {dim}-d ones"
            )
        self.head = head.to(backbone.device).float()

    def score_embeddings(self, embeddings: Tensor) -> Tensor:
        return self.head(embeddings.to(self.head_device)).squeeze(-1)

    @property
    def head_device(self) -> torch.device:
        return next(self.head.parameters()).device


#: CLIP-IQA antonym prompt pairs (positive, negative): the paper's pair first, then pyiqa-style extras.
CLIP_IQA_PROMPTS: tuple[tuple[str, str], ...] = (
    ("Good photo.", "Bad photo."),
    ("Sharp photo.", "Blurry photo."),
    ("Noise-free photo.", "Noisy photo."),
    ("High contrast photo.", "Low contrast photo."),
    ("Aesthetic photo.", "Not aesthetic photo."),
)


class PromptPairScorer(ClipScorer):
    """Mean over prompt pairs of ``softmax(logit_scale · cos(e, [pos, neg]))[pos]``, in [0, 1]."""

    def __init__(self, backbone: ClipBackbone, pairs: Sequence[tuple[str, str]], crop: CropSpec) -> None:
        super().__init__(backbone, crop)
        if not pairs:
            raise ValueError("at least one (positive, negative) prompt pair is needed")
        pairs = [(str(p), str(n)) for p, n in pairs]
        self.pairs = tuple(pairs)
        flat = [t for pair in pairs for t in pair]
        anchors = backbone.encode_texts(flat).view(len(pairs), 2, -1)
        self.register_buffer("anchors", anchors, persistent=False)
        self.scale = backbone.logit_scale

    def score_embeddings(self, embeddings: Tensor) -> Tensor:
        anchors = self.anchors.to(embeddings.device)
        logits = self.scale * torch.einsum("bnd,pkd->bnpk", embeddings, anchors)
        return logits.softmax(dim=-1)[..., 0].mean(dim=-1)


#: Negative prompt of the ``text`` scorer when none is given: "more like the text than a plain photo".
NEUTRAL_PROMPT = "a photo."


class TextTargetScorer(PromptPairScorer):
    """How much more the image matches ``text`` than ``negative`` (default: a neutral photo), in [0, 1]."""

    def __init__(self, backbone: ClipBackbone, text: str, negative: str | None, crop: CropSpec) -> None:
        if not text or not text.strip():
            raise ValueError("the text scorer needs a non-empty `text` option, e.g. text='golden hour light'")
        self.text = text
        self.negative = negative if negative else NEUTRAL_PROMPT
        super().__init__(backbone, [(text, self.negative)], crop)


# ---------------------------------------------------------------------------------------------
# Factories


def _backbone(
    model_name: str,
    *,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
    cache_dir: PathLike | None,
    offline: bool | None,
    search_dirs: Sequence[PathLike],
    clip_weights: PathLike | None,
    clip_model: nn.Module | None,
    tokenizer: Callable[[Sequence[str]], Tensor] | None,
) -> ClipBackbone:
    return get_clip_backbone(
        model_name,
        "openai",
        device=device,
        dtype=dtype,
        cache_dir=cache_dir,
        offline=offline,
        search_dirs=search_dirs,
        weights=clip_weights,
        clip_model=clip_model,
        tokenizer=tokenizer,
    )


def _laion_factory(default_head: str, model_name: str) -> Callable[..., LaionAestheticScorer]:
    def factory(
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        cache_dir: PathLike | None = None,
        head: str = default_head,
        crop_mode: str = "cover",
        max_crops: int = 4,
        offline: bool | None = None,
        search_dirs: Sequence[PathLike] = (),
        head_weights: PathLike | None = None,
        clip_weights: PathLike | None = None,
        clip_model: nn.Module | None = None,
    ) -> LaionAestheticScorer:
        """Options: ``head`` (model-manager file), ``crop_mode``, ``max_crops``, ``offline``,
        ``search_dirs``; ``head_weights``/``clip_weights`` explicit files; ``clip_model`` injection."""
        if head_weights is None:
            head_path = models.ensure_file(head, cache_dir, offline, search_dirs=search_dirs)
        else:
            head_path = Path(head_weights)
        head_module = load_laion_head(head_path)
        backbone = _backbone(
            model_name,
            device=device,
            dtype=dtype,
            cache_dir=cache_dir,
            offline=offline,
            search_dirs=search_dirs,
            clip_weights=clip_weights,
            clip_model=clip_model,
            tokenizer=None,
        )
        return LaionAestheticScorer(backbone, head_module, backbone.crop_spec(crop_mode, max_crops))

    factory.__name__ = f"create_{default_head.split('.')[0]}"
    return factory


_CLIP_LICENSE = "MIT (OpenAI CLIP weights)"
_AESTHETIC_NOTE = "AVA-derived training data: research-use terms may apply."

create_laion = register_scorer(
    ScorerInfo(
        name="laion",
        description=(
            "LAION improved aesthetic predictor (sac+logos+ava1 MLP head) on the L2-normalised OpenAI "
            "CLIP ViT-L/14 (QuickGELU) embedding; mean rating on a 1-10 scale, photos mostly 4-7. "
            "Aspect-aware multi-crop. ~1.2 s/image forward on 2 CPU cores; use a GPU or laion-v1-b32. "
            + _AESTHETIC_NOTE
        ),
        score_range=(1.0, 10.0),
        input_size=224,
        weights=("sac+logos+ava1-l14-linearMSE.pth", "ViT-L-14.pt"),
        license="Apache-2.0 (head) + MIT (OpenAI CLIP)",
        tags=("aesthetic", "clip", "laion"),
    )
)(_laion_factory("sac+logos+ava1-l14-linearMSE.pth", "ViT-L-14"))

for _name, _file, _arch, _label in (
    ("laion-v1-l14", "sa_0_4_vit_l_14_linear.pth", "ViT-L-14", "ViT-L/14"),
    ("laion-v1-b32", "sa_0_4_vit_b_32_linear.pth", "ViT-B-32", "ViT-B/32"),
    ("laion-v1-b16", "sa_0_4_vit_b_16_linear.pth", "ViT-B-16", "ViT-B/16"),
):
    register_scorer(
        ScorerInfo(
            name=_name,
            description=(
                f"LAION-Aesthetics predictor V1: linear head on the L2-normalised OpenAI CLIP {_label} "
                "embedding, trained on ~4k SAC ratings (0-10)."
                + (
                    " The fastest CLIP aesthetic scorer (~11x cheaper than ViT-L/14)."
                    if _arch == "ViT-B-32"
                    else ""
                )
            ),
            score_range=(0.0, 10.0),
            input_size=224,
            weights=(_file, CLIP_ARCHS[_arch].openai_file),
            license="MIT (head and OpenAI CLIP)",
            tags=("aesthetic", "clip", "laion"),
        )
    )(_laion_factory(_file, _arch))


@register_scorer(
    ScorerInfo(
        name="clip-iqa",
        description=(
            "CLIP-IQA zero-shot technical quality: mean over antonym prompt pairs ('Good photo.'/'Bad photo.', "
            "sharp/blurry, noise-free/noisy, high/low contrast, aesthetic/not) of softmax(logit_scale·cos), "
            "in [0, 1]. No extra weights; on ViT-L/14 it shares the image pass with `laion`."
        ),
        score_range=(0.0, 1.0),
        input_size=224,
        weights=("ViT-L-14.pt",),
        license=_CLIP_LICENSE,
        tags=("quality", "clip"),
    )
)
def create_clip_iqa(
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: PathLike | None = None,
    backbone: str = "ViT-L-14",
    prompts: Sequence[tuple[str, str]] = CLIP_IQA_PROMPTS,
    crop_mode: str = "cover",
    max_crops: int = 4,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    clip_weights: PathLike | None = None,
    clip_model: nn.Module | None = None,
    tokenizer: Callable[[Sequence[str]], Tensor] | None = None,
) -> PromptPairScorer:
    """Options: ``backbone`` (open_clip name), ``prompts`` (pairs), crops, weights, injection."""
    bb = _backbone(
        backbone,
        device=device,
        dtype=dtype,
        cache_dir=cache_dir,
        offline=offline,
        search_dirs=search_dirs,
        clip_weights=clip_weights,
        clip_model=clip_model,
        tokenizer=tokenizer,
    )
    return PromptPairScorer(bb, prompts, bb.crop_spec(crop_mode, max_crops))


@register_scorer(
    ScorerInfo(
        name="text",
        description=(
            "Text target: steer the edit with words. softmax(logit_scale·cos) of the image against "
            "`text` versus `negative` (default 'a photo.'), in [0, 1]. Options: text, negative, "
            "backbone (default ViT-B-32)."
        ),
        score_range=(0.0, 1.0),
        input_size=224,
        weights=("ViT-B-32.pt",),
        license=_CLIP_LICENSE,
        tags=("text", "clip"),
    )
)
def create_text(
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: PathLike | None = None,
    text: str = "",
    negative: str | None = None,
    backbone: str = "ViT-B-32",
    crop_mode: str = "cover",
    max_crops: int = 4,
    offline: bool | None = None,
    search_dirs: Sequence[PathLike] = (),
    clip_weights: PathLike | None = None,
    clip_model: nn.Module | None = None,
    tokenizer: Callable[[Sequence[str]], Tensor] | None = None,
) -> TextTargetScorer:
    """Options: ``text`` (required), ``negative``, ``backbone``, crops, weights, injection."""
    if not text or not str(text).strip():
        raise ValueError(
            "the text scorer needs a non-empty `text` option, e.g. text='warm golden hour light'"
        )
    bb = _backbone(
        backbone,
        device=device,
        dtype=dtype,
        cache_dir=cache_dir,
        offline=offline,
        search_dirs=search_dirs,
        clip_weights=clip_weights,
        clip_model=clip_model,
        tokenizer=tokenizer,
    )
    return TextTargetScorer(bb, str(text), negative, bb.crop_spec(crop_mode, max_crops))
