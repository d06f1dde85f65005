"""Shared fixtures: small synthetic images and (optional) real photographs available offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"
MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")


def synthetic_photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth, colourful uint8 test image with gradients, a bright patch and some texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 0.2 + 0.6 * x / max(width - 1, 1)
    g = 0.3 + 0.5 * y / max(height - 1, 1)
    b = 0.5 + 0.3 * np.sin(x / 5.0) * np.cos(y / 7.0)
    img = np.stack([r, g, b], axis=-1)
    img[height // 4 : height // 2, width // 4 : width // 2] = [0.9, 0.85, 0.8]
    img += rng.normal(0.0, 0.02, img.shape)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def real_photos(limit: int = 3, long_side: int = 512) -> list[tuple[str, np.ndarray]]:
    """Real photographs available offline (skimage.data CC0 photos, mate backgrounds), downscaled."""
    from PIL import Image

    out: list[tuple[str, np.ndarray]] = []
    try:
        from skimage import data

        for name in ("coffee", "astronaut", "chelsea"):
            out.append((name, getattr(data, name)()))
    except Exception:
        pass
    for path in sorted(MATE_NATURE.glob("*.jpg"))[:limit]:
        out.append((path.stem, np.asarray(Image.open(path).convert("RGB"))))
    if not out:
        pytest.skip("no real photographs available offline (install scikit-image or mate-backgrounds)")
    resized = []
    for name, img in out[:limit]:
        h, w = img.shape[:2]
        s = min(1.0, long_side / max(h, w))
        if s < 1.0:
            img = np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.LANCZOS))
        resized.append((name, np.ascontiguousarray(img[..., :3])))
    return resized


@pytest.fixture
def photo() -> np.ndarray:
    return synthetic_photo()


@pytest.fixture
def image_tensor() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(2, 3, 16, 20, dtype=torch.float64) * 0.8 + 0.1
