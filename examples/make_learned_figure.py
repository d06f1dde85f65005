"""Rebuild ``docs/learned_coffee.jpg``: the bundled example through the default and learned modes.

Panels (each 300 px wide): the input ``examples/coffee_dull.jpg`` (a held-out photo, dulled by
``make_example.py``), ``gradient`` with the built-in scorer, ``predict`` and ``histogram`` (both with
the scorer check, the default), and the undulled original (needs scikit-image). Run from the repo:
``.venv/bin/python examples/make_learned_figure.py``.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lib_enhancer.api import enhance

HERE = Path(__file__).resolve().parent
PANEL = 300


def panel(image: Image.Image, label: str) -> Image.Image:
    small = image.resize((PANEL, round(image.height * PANEL / image.width)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(small)
    draw.rectangle((0, 0, 8 + 7 * len(label), 16), fill=(0, 0, 0))
    draw.text((4, 2), label, fill=(255, 255, 255))
    return small


def main() -> None:
    dull = Image.open(HERE / "coffee_dull.jpg").convert("RGB")
    panels = [panel(dull, "input")]
    for mode in ("gradient", "predict", "histogram"):
        result = enhance(dull, scorer="natural", mode=mode)
        fraction = result.recipe.info.get("fraction")
        kept = "" if fraction is None else " (kept the start)" if not fraction else f" (kept {fraction:.0%})"
        panels.append(panel(result.image, mode + kept))
    try:
        from skimage import data

        panels.append(panel(Image.fromarray(data.coffee()), "original"))
    except ImportError:
        pass
    sheet = Image.new("RGB", (PANEL * len(panels), max(p.height for p in panels)), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, (i * PANEL, 0))
    out = HERE.parent / "docs" / "learned_coffee.jpg"
    sheet.save(out, quality=88)
    print(f"wrote {out} ({np.prod(sheet.size) / 1e6:.2f} MP)")


if __name__ == "__main__":
    main()
