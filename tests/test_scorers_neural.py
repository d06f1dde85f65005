"""Neural scorers: LAION heads, CLIP-IQA, text target, NIMA, ensembles, fidelity, crops, backbone cache.

All offline and fast: CLIP backbones are tiny open_clip ``CLIP`` models built from a small config
(real architecture and key names, random weights); the LAION heads are the real files from
../shared/weights when present (a same-format synthetic head otherwise); NIMA is the real VGG16
with a random checkpoint written in pyiqa's exact key layout.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from lib_enhancer import models
from lib_enhancer.scorers import clip as clip_mod
from lib_enhancer.scorers import create_scorer, get_scorer_info, list_scorers, registry
from lib_enhancer.scorers.clip import (
    OPENAI_MEAN,
    OPENAI_STD,
    cached_backbones,
    collapse_affine,
    free_backbones,
    get_clip_backbone,
    load_clip_model,
    load_laion_head,
    shared_pass,
)
from lib_enhancer.scorers.ensemble import EnsembleScorer, ssim
from lib_enhancer.scorers.nima import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NimaVGG16,
    dist_to_mean,
    map_pyiqa_nima_vgg16,
)
from lib_enhancer.scorers.preprocess import CropSpec, multi_crop, normalize

REPO = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"

LAION_HEADS = {  # scorer -> (file, embedding size, published collapsed |w|, b)
    "laion": ("sac+logos+ava1-l14-linearMSE.pth", 768, 18.00, 5.24),
    "laion-v1-l14": ("sa_0_4_vit_l_14_linear.pth", 768, 28.44, 3.53),
    "laion-v1-b32": ("sa_0_4_vit_b_32_linear.pth", 512, 27.57, 3.42),
    "laion-v1-b16": ("sa_0_4_vit_b_16_linear.pth", 512, 28.20, 3.15),
}
NEURAL = ["laion", "laion-v1-l14", "laion-v1-b32", "laion-v1-b16", "clip-iqa", "text", "nima", "fidelity"]
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def tiny_clip(embed_dim: int = 768, image_size: int = 32) -> nn.Module:
    """A real open_clip CLIP (QuickGELU, OpenAI key layout), shrunk: 2 layers, width 64, patch 8."""
    import open_clip

    torch.manual_seed(embed_dim)
    model = open_clip.model.CLIP(
        embed_dim=embed_dim,
        vision_cfg={"image_size": image_size, "patch_size": 8, "width": 64, "layers": 2, "head_width": 64},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
        quick_gelu=True,
    )
    return model.eval()


@pytest.fixture(scope="module")
def clips() -> dict[int, nn.Module]:
    return {768: tiny_clip(768), 512: tiny_clip(512)}


@pytest.fixture(autouse=True)
def _fresh_backbones() -> Iterator[None]:
    yield
    free_backbones()


@pytest.fixture(scope="module")
def head_options(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Per LAION scorer: options loading the real head through the model cache (SHA-checked,
    offline), or a synthetic head in the same format when ../shared/weights is absent."""
    cache = tmp_path_factory.mktemp("models")
    options: dict[str, dict[str, object]] = {}
    for name, (file, dim, _, _) in LAION_HEADS.items():
        if (SHARED_WEIGHTS / file).is_file():
            shutil.copy(SHARED_WEIGHTS / file, cache / file)
            options[name] = {"cache_dir": str(cache), "offline": True}
        else:
            head = nn.Linear(dim, 1) if "v1" in name else clip_mod.LaionMLP(dim)
            path = cache / ("synthetic-" + file)
            torch.save(head.state_dict(), path)
            options[name] = {"head_weights": str(path)}
    return options


def pyiqa_nima_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the keys and shapes of pyiqa's NIMA_VGG16_ava checkpoint."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    index, channels = 0, 3
    for v in VGG16_CFG:
        if v == "M":
            index += 1
            continue
        fan_in = channels * 9
        state[f"base_model.features_{index}.weight"] = (
            torch.randn(v, channels, 3, 3, generator=gen) * (2 / fan_in) ** 0.5
        )
        state[f"base_model.features_{index}.bias"] = torch.randn(v, generator=gen) * 0.01
        index, channels = index + 2, v
    state["classifier.2.weight"] = torch.randn(10, 512, generator=gen) * 0.05
    state["classifier.2.bias"] = torch.randn(10, generator=gen) * 0.05
    return state


@pytest.fixture(scope="module")
def nima_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = pyiqa_nima_state()
    path = tmp_path_factory.mktemp("nima") / "NIMA_VGG16_ava-test.pth"
    torch.save({"params": state}, path)
    return path, state


def build(name: str, clips: dict[int, nn.Module], head_options: dict, nima_checkpoint: tuple) -> nn.Module:
    if name in LAION_HEADS:
        return create_scorer(name, clip_model=clips[LAION_HEADS[name][1]], **head_options[name])
    if name == "clip-iqa":
        return create_scorer(name, clip_model=clips[768])
    if name == "text":
        return create_scorer(name, text="a bright sunny beach", clip_model=clips[512])
    if name == "nima":
        return create_scorer(name, weights=nima_checkpoint[0], input_size=32)
    scorer = create_scorer(name)
    scorer.set_reference(torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(3)))
    return scorer


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_metadata() -> None:
    names = {i.name for i in list_scorers()}
    assert set(NEURAL) <= names
    for name in ("laion", "laion-v1-l14", "laion-v1-b32", "laion-v1-b16"):
        info = get_scorer_info(name)
        assert info.higher_is_better and info.differentiable and info.input_size == 224
        assert LAION_HEADS[name][0] in info.weights
    assert get_scorer_info("laion").score_range == (1.0, 10.0)
    assert "ViT-L-14.pt" in get_scorer_info("laion").weights
    assert "ViT-B-32.pt" in get_scorer_info("laion-v1-b32").weights
    nima = get_scorer_info("nima")
    assert "non-commercial" in nima.license.lower() and "NON-COMMERCIAL" in nima.description
    assert nima.weights == ("NIMA_VGG16_ava-dc4e8265.pth",)
    assert get_scorer_info("clip-iqa").score_range == (0.0, 1.0)
    assert get_scorer_info("fidelity").weights == ()


@pytest.mark.parametrize("name", NEURAL)
def test_forward_shape_and_input_gradient(name: str, clips, head_options, nima_checkpoint) -> None:
    scorer = build(name, clips, head_options, nima_checkpoint)
    assert not scorer.training and all(not p.requires_grad for p in scorer.parameters())
    images = torch.rand(3, 3, 40, 60, generator=torch.Generator().manual_seed(1), requires_grad=True)
    scores = scorer(images)
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    lo, hi = scorer.info.score_range
    if (
        name not in LAION_HEADS and name != "fidelity"
    ):  # affine heads are unbounded; SSIM of unrelated images dips below 0
        assert (scores >= lo - 1e-4).all() and (scores <= hi + 1e-4).all()
    scores.sum().backward()
    grad = images.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert (grad.abs().flatten(1).sum(1) > 0).all(), "every image of the batch must get a gradient"


# ---------------------------------------------------------------------------------------------
# LAION heads


@pytest.mark.parametrize("name", list(LAION_HEADS))
def test_real_laion_head_collapses_to_published_affine_map(name: str, tmp_path: Path) -> None:
    file, dim, norm_w, bias = LAION_HEADS[name]
    source = SHARED_WEIGHTS / file
    if not source.is_file():
        pytest.skip(f"real head not present at {source}")
    shutil.copy(source, tmp_path / file)
    path = models.ensure_file(file, tmp_path, offline=True)  # SHA-256 checked against the table
    head = load_laion_head(path)
    w, b = collapse_affine(head)
    assert w.shape == (dim,)
    assert w.norm().item() == pytest.approx(norm_w, abs=0.01)
    assert b == pytest.approx(bias, abs=0.01)
    e = torch.nn.functional.normalize(torch.randn(4, dim), dim=-1)
    assert torch.allclose(head(e).squeeze(-1), e @ w + b, atol=1e-4)


def test_laion_scores_the_l2_normalised_embedding(clips, head_options) -> None:
    scorer = create_scorer(
        "laion-v1-b32", clip_model=clips[512], crop_mode="center", **head_options["laion-v1-b32"]
    )
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        raw = clips[512].encode_image(normalize(images, OPENAI_MEAN, OPENAI_STD))
        w, b = collapse_affine(scorer.head)
        expected = torch.nn.functional.normalize(raw, dim=-1) @ w + b
        unnormalised = raw @ w + b
        got = scorer(images)
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, unnormalised, atol=1e-2)


def test_head_dimension_mismatch_is_explained(clips, head_options) -> None:
    with pytest.raises(ValueError, match="768-d embeddings"):
        create_scorer("laion", clip_model=clips[512], **head_options["laion"])


# ---------------------------------------------------------------------------------------------
# Crops


def _column_and_row_gradient(scorer: nn.Module, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(4), requires_grad=True)
    scorer(images).sum().backward()
    g = images.grad.abs().sum(dim=(0, 1))
    return g.sum(dim=0), g.sum(dim=1)


def test_cover_crops_use_every_pixel_of_wide_and_tall_images(clips, head_options) -> None:
    scorer = create_scorer("laion-v1-b32", clip_model=clips[512], **head_options["laion-v1-b32"])
    assert scorer.crop.mode == "cover"
    columns, rows = _column_and_row_gradient(scorer, 40, 120)  # 3:1
    assert (columns > 0).all() and (rows > 0).all()
    columns, rows = _column_and_row_gradient(scorer, 120, 40)  # 1:3
    assert (columns > 0).all() and (rows > 0).all()
    # the test can fail: a centre crop ignores the edges of the same image
    centre = create_scorer(
        "laion-v1-b32", clip_model=clips[512], crop_mode="center", **head_options["laion-v1-b32"]
    )
    columns, _ = _column_and_row_gradient(centre, 40, 120)
    assert columns[:10].sum() == 0 and columns[-10:].sum() == 0


def test_multi_crop_geometry() -> None:
    images = torch.rand(2, 3, 100, 300)
    crops, n = multi_crop(images, CropSpec(50))  # 50 x 150 after the resize: three tiles
    assert crops.shape == (6, 3, 50, 50) and n == 3
    crops, n = multi_crop(torch.rand(1, 3, 100, 260), CropSpec(50))  # 50 x 130: three overlapping
    assert n == 3
    crops, n = multi_crop(images, CropSpec(50, max_crops=2))  # capped: shrink, pad the short side
    assert crops.shape == (4, 3, 50, 50) and n == 2
    assert torch.equal(crops[0, :, :8], torch.zeros_like(crops[0, :, :8]))  # padded band
    crops, n = multi_crop(images, CropSpec(50, "five_crop"))
    assert crops.shape == (10, 3, 50, 50) and n == 5
    assert torch.equal(crops[0], images[0, :, :50, :50]) and torch.equal(crops[3], images[0, :, 50:, 250:])
    crops, n = multi_crop(images, CropSpec(60, "pad"), fill=(0.5, 0.5, 0.5))
    assert crops.shape == (2, 3, 60, 60) and n == 1
    assert torch.allclose(crops[:, :, :19], torch.full_like(crops[:, :, :19], 0.5))  # letterbox bars
    crops, n = multi_crop(torch.rand(1, 3, 64, 64), CropSpec(64))
    assert n == 1 and crops.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="crop mode"):
        CropSpec(32, "squash")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Text target and CLIP-IQA on a backbone whose towers are tied by construction


class _TiedVisual(nn.Module):
    image_size = 16
    output_dim = 4
    image_mean = OPENAI_MEAN
    image_std = OPENAI_STD


class TiedColourCLIP(nn.Module):
    """Images embed as (centred mean RGB, 0.1); the words red/green/blue embed along the same axes."""

    def __init__(self) -> None:
        super().__init__()
        import open_clip

        tokenizer = open_clip.get_tokenizer("ViT-B-32")
        self.visual = _TiedVisual()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))
        table = torch.zeros(49408, 4)
        for word, vec in {"red": (1, -0.5, -0.5), "green": (-0.5, 1, -0.5), "blue": (-0.5, -0.5, 1)}.items():
            table[int(tokenizer([word])[0, 1])] = torch.tensor((*vec, 0.0))
        self.register_buffer("table", table)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
        rgb = (x * std + mean).mean(dim=(2, 3))
        centred = rgb - rgb.mean(dim=1, keepdim=True)
        return torch.cat([centred, torch.full_like(centred[:, :1], 0.1)], dim=1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens].sum(dim=1) + torch.tensor([0.0, 0.0, 0.0, 0.2])


def _flat(rgb: tuple[float, float, float], h: int = 24, w: int = 40) -> torch.Tensor:
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, h, w).clone()


def test_text_target_steers_towards_the_words() -> None:
    tied = TiedColourCLIP()
    blue_target = create_scorer("text", text="blue", clip_model=tied)
    red_target = create_scorer("text", text="red", clip_model=tied)
    blue, red = _flat((0.1, 0.15, 0.8)), _flat((0.8, 0.15, 0.1))
    assert blue_target(blue).item() > red_target(blue).item()
    assert red_target(red).item() > blue_target(red).item()
    assert blue_target(blue).item() > 0.5 > blue_target(red).item()
    # an explicit negative prompt: "blue rather than red"
    versus = create_scorer("text", text="blue", negative="red", clip_model=tied)
    assert versus(blue).item() > 0.99 and versus(red).item() < 0.01
    # the gradient of a grey image points towards blue
    grey = _flat((0.5, 0.5, 0.5)).requires_grad_(True)
    blue_target(grey).sum().backward()
    g = grey.grad.mean(dim=(0, 2, 3))
    assert g[2] > 0 > g[0]
    with pytest.raises(ValueError, match="text"):
        create_scorer("text", clip_model=tied)


def test_clip_iqa_is_the_softmax_over_the_pair() -> None:
    tied = TiedColourCLIP()
    scorer = create_scorer("clip-iqa", prompts=[("blue photo", "red photo")], clip_model=tied)
    blue = _flat((0.1, 0.15, 0.8))
    e = torch.nn.functional.normalize(
        tied.encode_image(normalize(blue[..., :16, :16], OPENAI_MEAN, OPENAI_STD)), dim=-1
    )
    anchors = torch.nn.functional.normalize(
        tied.encode_text(scorer.backbone.tokenizer(["blue photo", "red photo"])), dim=-1
    )
    expected = (100 * e @ anchors.T).softmax(dim=-1)[0, 0]
    assert scorer(blue).item() == pytest.approx(expected.item(), abs=1e-5)
    assert scorer(_flat((0.8, 0.15, 0.1))).item() < 0.5
    default = create_scorer("clip-iqa", clip_model=tied)
    assert default.pairs[0] == ("Good photo.", "Bad photo.") and len(default.pairs) >= 3


# ---------------------------------------------------------------------------------------------
# Shared backbone and its cache


def test_ensemble_runs_one_backbone_pass_for_laion_and_clip_iqa(clips, head_options) -> None:
    spec = "laion:0.7,clip-iqa:0.3"
    ensemble = create_scorer(spec, clip_model=clips[768], **head_options["laion"])
    laion, iqa = ensemble.members
    assert laion.backbone is iqa.backbone
    backbone = laion.backbone
    images = torch.rand(2, 3, 40, 60, generator=torch.Generator().manual_seed(5), requires_grad=True)
    before = backbone.image_passes
    total = ensemble(images)
    assert backbone.image_passes - before == 1
    total.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    with torch.no_grad():
        separate = 0.7 * (laion(images) - 1) / 9 + 0.3 * iqa(images)
    assert backbone.image_passes - before == 3  # outside the ensemble nothing is memoised
    assert torch.allclose(total.detach(), separate / 1.0, atol=1e-5)


def test_memo_is_keyed_by_identity_and_version(clips, head_options) -> None:
    scorer = create_scorer("laion-v1-b32", clip_model=clips[512], **head_options["laion-v1-b32"])
    backbone = scorer.backbone
    images = torch.rand(1, 3, 32, 48)
    with torch.no_grad(), shared_pass():
        n = backbone.image_passes
        a = scorer(images)
        scorer(images)
        assert backbone.image_passes - n == 1
        scorer(images.clone())  # equal values, another tensor
        assert backbone.image_passes - n == 2
        images.mul_(0.5)  # in-place edit bumps the version
        b = scorer(images)
        assert backbone.image_passes - n == 3 and not torch.equal(a, b)
    assert backbone._memo is None


def test_backbone_cache_offload_and_free(clips) -> None:
    a = get_clip_backbone("ViT-B-32", clip_model=clips[512])
    assert get_clip_backbone("ViT-B-32", clip_model=clips[512]) is a
    assert get_clip_backbone("ViT-B-32", clip_model=clips[512], dtype=torch.bfloat16) is not a
    assert a.device == torch.device("cpu") and a.dtype == torch.float32  # device=None -> CPU
    assert a.embed_dim == 512 and a.image_size == 32
    a.offload()  # CPU: nothing to move, still usable
    assert a.loaded
    a.free()
    assert not a.loaded and a not in cached_backbones()
    assert get_clip_backbone("ViT-B-32", clip_model=clips[512]) is not a
    with pytest.raises(ValueError, match="float16"):
        get_clip_backbone("ViT-B-32", clip_model=clips[512], dtype=torch.float16)


def test_bfloat16_autocast_path(clips, head_options) -> None:
    model = tiny_clip(512)
    scorer = create_scorer(
        "laion-v1-b32", clip_model=model, dtype=torch.bfloat16, **head_options["laion-v1-b32"]
    )
    images = torch.rand(2, 3, 32, 40, requires_grad=True)
    scores = scorer(images)
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    scores.sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# CLIP weights: offline errors and local files


def test_offline_backbone_error_names_file_url_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(models.ModelNotAvailableError) as err:
        load_clip_model("ViT-L-14", cache_dir=tmp_path / "cache", offline=True)
    message = str(err.value)
    assert "ViT-L-14.pt" in message and models.MODEL_FILES["ViT-L-14.pt"].url in message
    assert str(tmp_path / "cache" / "ViT-L-14.pt") in message


def test_found_openai_archive_is_hash_checked_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    clip_cache = tmp_path / "home" / ".cache" / "clip"  # where OpenAI's clip package keeps it
    clip_cache.mkdir(parents=True)
    (clip_cache / "ViT-B-32.pt").write_bytes(b"not an archive")
    with pytest.raises(models.ChecksumMismatchError, match=r"ViT-B-32\.pt"):
        load_clip_model("ViT-B-32", cache_dir=tmp_path / "cache", offline=True)


def test_hub_cache_file_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snap = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "open_clip_model.safetensors").write_bytes(b"")
    assert (
        clip_mod.find_clip_weights("ViT-B-32", cache_dir=tmp_path / "cache")
        == snap / "open_clip_model.safetensors"
    )


def _parameter_tree(state: dict[str, torch.Tensor]) -> nn.Module:
    """A module holding ``state`` under the same dotted names (stands in for OpenAI's JIT archive)."""
    root = nn.Module()
    for key, value in state.items():
        *path, leaf = key.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, nn.Parameter(value.clone()))
    return root


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_clip_weight_files_load(tmp_path: Path) -> None:
    """safetensors, a weights-only state dict and an OpenAI-style TorchScript archive all load."""
    import json

    import open_clip
    from safetensors.torch import save_file

    config = {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
    }
    (tmp_path / "TinyTest-ViT.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "TinyTest-ViT.json")
    reference = load_clip_model("TinyTest-ViT", pretrained=None)
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_file(state, str(tmp_path / "open_clip_model.safetensors"))
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "checkpoint.pt")
    x = torch.rand(2, 3, 32, 32)
    expected = reference.encode_image(x)
    for file in ("open_clip_model.safetensors", "checkpoint.pt"):
        loaded = load_clip_model("TinyTest-ViT", weights=tmp_path / file)
        assert torch.allclose(loaded.encode_image(x), expected, atol=1e-5), file
        assert not any(p.requires_grad for p in loaded.parameters())
    torch.jit.save(torch.jit.script(_parameter_tree(state)), str(tmp_path / "ViT-tiny.pt"))
    assert clip_mod._is_torchscript(tmp_path / "ViT-tiny.pt")
    from_archive = load_clip_model("TinyTest-ViT", weights=tmp_path / "ViT-tiny.pt")
    # OpenAI archives are fp16; open_clip's loader rounds through fp16 like the real ones
    assert torch.allclose(from_archive.encode_image(x), expected, atol=2e-2)
    assert isinstance(from_archive, open_clip.model.CLIP)


# ---------------------------------------------------------------------------------------------
# NIMA


def test_nima_key_mapping_covers_every_tensor(nima_checkpoint) -> None:
    path, state = nima_checkpoint
    # same tensors and key names as the published file -> about the same size on disk
    assert abs(path.stat().st_size - models.MODEL_FILES["NIMA_VGG16_ava-dc4e8265.pth"].size) < 20_000
    mapped = map_pyiqa_nima_vgg16(state)
    target = NimaVGG16().state_dict()
    assert set(mapped) == set(target) and len(mapped) == len(state) == 28
    assert all(mapped[k].shape == target[k].shape for k in target)
    scorer = create_scorer("nima", weights=path, input_size=32)
    loaded = scorer.model.state_dict()
    assert torch.equal(loaded["features.28.weight"], state["base_model.features_28.weight"])
    assert torch.equal(loaded["classifier.weight"], state["classifier.2.weight"])
    # timm's unflattened naming and a DataParallel prefix map too
    legacy = {("module." + k).replace("features_", "features."): v for k, v in state.items()}
    assert set(map_pyiqa_nima_vgg16(legacy)) == set(target)


def test_nima_rejects_foreign_checkpoints(nima_checkpoint) -> None:
    _, state = nima_checkpoint
    with pytest.raises(ValueError, match=r"unknown keys: base_model\.pre_logits"):
        map_pyiqa_nima_vgg16({**state, "base_model.pre_logits.fc1.weight": torch.zeros(1)})
    missing = dict(state)
    del missing["base_model.features_0.bias"]
    with pytest.raises(ValueError, match=r"missing: features\.0\.bias"):
        map_pyiqa_nima_vgg16(missing)


def test_nima_uses_imagenet_normalisation_and_distribution_mean(nima_checkpoint) -> None:
    scorer = create_scorer("nima", weights=nima_checkpoint[0], input_size=32, crop_mode="center")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        dist = scorer.model(normalize(images, IMAGENET_MEAN, IMAGENET_STD))
        expected = (dist * torch.arange(1.0, 11.0)).sum(-1)
        assert torch.allclose(scorer(images), expected, atol=1e-5)
        assert torch.allclose(dist.sum(-1), torch.ones(2), atol=1e-5)
        assert not torch.allclose(
            scorer.model(images).mul(torch.arange(1.0, 11.0)).sum(-1), expected, atol=1e-3
        )
    assert dist_to_mean(torch.eye(10)).tolist() == list(range(1, 11))


# ---------------------------------------------------------------------------------------------
# Ensembles and fidelity


class _Constant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.value + 0 * images.mean(dim=(1, 2, 3))


@pytest.fixture
def constant_scorers(monkeypatch: pytest.MonkeyPatch) -> None:
    registry._ensure_loaded()
    for name, value, score_range, higher in (
        ("test-ten", 7.0, (1.0, 10.0), True),  # -> 2/3
        ("test-loss", 0.2, (0.0, 1.0), False),  # lower is better -> 0.8
    ):
        info = registry.ScorerInfo(
            name=name, description="test", score_range=score_range, higher_is_better=higher
        )

        def factory(*, device=None, dtype=None, cache_dir=None, value=value) -> nn.Module:
            return _Constant(value)

        monkeypatch.setitem(registry._REGISTRY, name, (info, factory))


def test_ensemble_arithmetic(constant_scorers) -> None:
    images = torch.rand(2, 3, 8, 8)
    ensemble = create_scorer("test-ten:0.7,test-loss:0.3")
    assert isinstance(ensemble, EnsembleScorer)
    assert torch.allclose(ensemble(images), torch.full((2,), 0.7 * 2 / 3 + 0.3 * 0.8))
    # weights need not sum to one, unweighted members count 1
    assert torch.allclose(
        create_scorer("test-ten:2,test-loss")(images), torch.full((2,), (2 * 2 / 3 + 0.8) / 3)
    )
    info = ensemble.info
    assert (
        info.score_range == (0.0, 1.0) and info.higher_is_better and info.name == "test-ten:0.7,test-loss:0.3"
    )
    raw = ensemble.member_scores(images)
    assert raw["test-ten"].tolist() == [7.0, 7.0]


def test_spec_parsing_and_errors(constant_scorers) -> None:
    assert registry.parse_scorer_spec("laion:0.7, natural:0.3") == [("laion", 0.7), ("natural", 0.3)]
    assert registry.parse_scorer_spec("taste:mine,laion") == [("taste:mine", 1.0), ("laion", 1.0)]
    assert registry.parse_scorer_spec("taste:mine:0.5") == [("taste:mine", 0.5)]
    assert registry.is_ensemble_spec("laion:1") and not registry.is_ensemble_spec("taste:mine")
    with pytest.raises(ValueError, match="empty member"):
        registry.parse_scorer_spec("laion,,natural")
    with pytest.raises(ValueError, match="more than once"):
        create_scorer("test-ten,test-ten:2")
    with pytest.raises(ValueError, match=">= 0"):
        create_scorer("test-ten:-1,test-loss")
    with pytest.raises(ValueError, match="all be zero"):
        create_scorer("test-ten:0,test-loss:0")
    with pytest.raises(KeyError, match="test-ten"):
        create_scorer("test-tne:1,test-loss")
    with pytest.raises(TypeError, match="no member"):
        create_scorer("test-ten,fidelity", bogus_option=1)


def test_ssim_matches_the_numpy_reference() -> None:
    from lib_enhancer.metrics import ssim as reference_ssim

    gen = torch.Generator().manual_seed(7)
    a = torch.rand(1, 3, 48, 64, generator=gen)
    b = (a + 0.1 * torch.randn(1, 3, 48, 64, generator=gen)).clamp(0, 1)
    ours = ssim(a, b, channels="rgb").item()
    theirs = reference_ssim(a[0].permute(1, 2, 0).numpy(), b[0].permute(1, 2, 0).numpy())
    assert ours == pytest.approx(theirs, abs=2e-3)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(a, b).item() < 0.95


def test_fidelity_term_through_set_reference(constant_scorers) -> None:
    original = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(8))
    ensemble = create_scorer("test-ten", fidelity=1.0)
    assert ensemble.names == ("test-ten", "fidelity")
    with pytest.raises(RuntimeError, match="set_reference"):
        ensemble(original)
    ensemble.set_reference(original)
    edited = torch.stack([original[0], (original[0] * 0.5 + 0.1)])
    scores = ensemble(edited)
    assert scores[0].item() == pytest.approx((2 / 3 + 1.0) / 2, abs=1e-5)  # untouched: SSIM 1
    assert scores[1] < scores[0]
    candidate = edited[1:].clone().requires_grad_(True)
    ensemble(candidate).sum().backward()
    assert candidate.grad.abs().sum() > 0
    spec_form = create_scorer("test-ten:1,fidelity:1", fidelity_channels="rgb")
    spec_form.set_reference(original)
    assert spec_form.members[1].channels == "rgb"
    # a preview of another size gets the reference resized
    assert torch.isfinite(spec_form(torch.rand(2, 3, 16, 24)).detach()).all()


def test_importing_scorer_modules_loads_no_heavy_dependency() -> None:
    code = (
        "import sys\n"
        "from lib_enhancer.scorers import list_scorers\n"
        "names = [i.name for i in list_scorers()]\n"
        "assert 'laion' in names and 'nima' in names, names\n"
        "bad = [m for m in ('open_clip', 'torchvision', 'timm') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
