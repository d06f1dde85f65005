"""Real photographs available offline, and folders of the user's own photos.

The built-in set is the one the shipped models were trained on and the quality benchmark reads:
the MATE desktop's nature photographs (``apt-get install mate-backgrounds``), the colour photos of
``skimage.data``, sklearn's two sample images and the photographs among the Lomiri (Ubuntu Touch)
wallpapers (``apt-get install lomiri-wallpapers-16.04 lomiri-wallpapers-20.04``) and among KDE
Plasma's (``apt-get install plasma-workspace-wallpapers``); the illustrations and heavily stylised
pictures in those packages are left out. Each source is optional; missing ones are skipped.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MATE_NATURE = "/usr/share/backgrounds/mate/nature"
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # real colour photographs only
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
LOMIRI_DIR = "/usr/share/backgrounds"
LOMIRI_PHOTOS = (  # the real photographs of lomiri-wallpapers-16.04 / -20.04
    "Bridge_by_Sander_Klootwijk",
    "Dragonfly_by_Bolly",
    "Kleiber_by_Lukas_Baubkus",
    "Picture_0B_by_freespace",
    "Picture_1A_by_freespace",
    "Wine_by_Jakkub_Mede",
    "aitzgorri_by_Aitzol_Berasategi",
    "free_by_Peter_Nerlich",
    "friends_by_Aitzol_Berasategi",
    "greentock_by_Peter_Nerlich",
    "life_by_Aitzol_Berasategi",
    "picosdeeuropa_by_Aitzol_Berasategi",
    "seeding_by_Clements_Engelhardt",
    "sunset_by_Aitzol_Berasategi",
)
PLASMA_DIR = "/usr/share/wallpapers"
PLASMA_PHOTOS = (  # the natural-looking photographs of plasma-workspace-wallpapers
    "ColorfulCups",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "Volna",
    "summer_1am",
)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# Photos the shipped models never saw: the quality benchmark scores the learned modes on these only.
HELD_OUT = (
    "mate/Aqua",
    "mate/GreenMeadow",
    "mate/Storm",
    "mate/Wood",
    "mate/YellowFlower",
    "skimage/coffee",
    "sklearn/flower",
)
# Photos that pick the training run's best step (model selection); never trained on either.
VALIDATION = ("mate/LadyBird", "lomiri/sunset_by_Aitzol_Berasategi", "lomiri/Wine_by_Jakkub_Mede")

PhotoSource = tuple[str, Callable[[], np.ndarray]]


@dataclass
class Photo:
    """A named uint8 ``(H, W, 3)`` photograph."""

    name: str
    image: np.ndarray


def to_rgb_uint8(im: Image.Image) -> np.ndarray:
    """EXIF orientation applied once, converted to 8-bit RGB."""
    im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def folder_photos(folder: str | os.PathLike[str], recursive: bool = False) -> list[PhotoSource]:
    """``(name, loader)`` for every image file in ``folder`` (sorted; name = stem)."""
    root = Path(os.path.expanduser(str(folder)))
    if not root.is_dir():
        raise FileNotFoundError(f"photo folder not found: {root}")
    pattern = "**/*" if recursive else "*"
    paths = sorted(p for p in root.glob(pattern) if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    return [(str(p.relative_to(root).with_suffix("")), _file_loader(str(p))) for p in paths]


def _file_loader(path: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        with Image.open(path) as im:
            return to_rgb_uint8(im)

    return load


# where each group of the built-in set comes from, for the note on a partial set
SOURCE_PACKAGES = {
    "mate": "apt-get install mate-backgrounds",
    "lomiri": "apt-get install lomiri-wallpapers-16.04 lomiri-wallpapers-20.04",
    "plasma": "apt-get install plasma-workspace-wallpapers",
    "skimage": "pip install scikit-image",
    "sklearn": "pip install scikit-learn",
}


def missing_sources(found: Sequence[PhotoSource]) -> list[str]:
    """The install commands of the built-in set's groups with no photo in ``found`` (its
    :func:`builtin_photos`): training on a partial set runs, but on fewer photos than the shipped
    models' cards list, and the validation photos may be missing."""
    groups = {name.split("/", 1)[0] for name, _ in found}
    return [command for group, command in SOURCE_PACKAGES.items() if group not in groups]


def builtin_photos() -> list[PhotoSource]:
    """``(name, loader)`` for the offline photo set (names like ``mate/Aqua``, ``skimage/coffee``)."""
    found: list[PhotoSource] = []
    for path in sorted(glob.glob(os.path.join(MATE_NATURE, "*.jpg"))):
        found.append((f"mate/{Path(path).stem}", _file_loader(path)))
    for stem in LOMIRI_PHOTOS:
        path = os.path.join(LOMIRI_DIR, f"{stem}.jpg")
        if os.path.isfile(path):
            found.append((f"lomiri/{stem}", _file_loader(path)))
    for stem in PLASMA_PHOTOS:
        images = glob.glob(os.path.join(PLASMA_DIR, stem, "contents", "images", "*x*.*"))
        if images:  # the largest rendition
            found.append((f"plasma/{stem}", _file_loader(max(images, key=os.path.getsize))))
    try:
        from skimage import data as skdata
    except ImportError:
        skdata = None
    if skdata is not None:
        for name in SKIMAGE_PHOTOS:
            if hasattr(skdata, name):
                found.append(
                    (f"skimage/{name}", lambda name=name: np.ascontiguousarray(getattr(skdata, name)()))
                )
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        load_sample_image = None
    if load_sample_image is not None:
        for name in SKLEARN_PHOTOS:
            found.append((f"sklearn/{Path(name).stem}", lambda name=name: load_sample_image(name)))
    return found


def select(
    sources: Iterable[PhotoSource], *, exclude: Sequence[str] = (), only: Sequence[str] = ()
) -> list[PhotoSource]:
    """Keep sources whose name is in ``only`` (when given) and not in ``exclude``."""
    return [(n, f) for n, f in sources if n not in exclude and (not only or n in only)]


def resize_long_side(img: np.ndarray, long_side: int | None) -> np.ndarray:
    """Downscale (never upscale) so the long side is at most ``long_side`` (Lanczos)."""
    h, w = img.shape[:2]
    if not long_side or max(h, w) <= long_side:
        return img
    scale = long_side / max(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def resize_to_megapixels(img: np.ndarray, megapixels: float | None) -> np.ndarray:
    """Downscale (never upscale) a uint8 RGB image to about ``megapixels`` million pixels."""
    h, w = img.shape[:2]
    if not megapixels or megapixels <= 0 or h * w <= megapixels * 1e6:
        return img
    scale = math.sqrt(megapixels * 1e6 / (h * w))
    size = (max(16, round(w * scale)), max(16, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def load_photos(
    sources: Iterable[PhotoSource],
    long_side: int | None = None,
    on_skip: Callable[[str, Exception], None] | None = None,
) -> list[Photo]:
    """Load sources as RGB uint8 (alpha dropped), downscaled to ``long_side``; unreadable ones skipped."""
    photos = []
    for name, loader in sources:
        try:
            img = loader()
        except Exception as exc:  # a photo that can't be read (e.g. data not shipped) is skipped
            if on_skip is not None:
                on_skip(name, exc)
            continue
        if img.ndim != 3 or img.shape[2] < 3:
            continue
        photos.append(Photo(name, resize_long_side(np.ascontiguousarray(img[..., :3]), long_side)))
    return photos
