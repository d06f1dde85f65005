"""Rebuild ``examples/coffee_dull.jpg`` (needs scikit-image for the source photo).

Source: ``skimage.data.coffee()`` — "No copyright restrictions. CC0 by the photographer (Rachel
Michetti)", courtesy of Pikolo Espresso Bar. We dull it on purpose, with plain numpy so nothing of
lib_enhancer is involved: -0.8 EV in linear light, a cool cast (R x0.85, B x1.15 in linear light),
and a washed-out tone (contrast x0.75 about mid-grey, blacks lifted by 0.06). Saved as JPEG q92.
"""

from pathlib import Path

import numpy as np
from PIL import Image


def dull(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    lin = lin * 2.0**-0.8 * np.array([0.85, 1.0, 1.15])
    x = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.clip(lin, 0.0031308, None) ** (1 / 2.4) - 0.055)
    x = 0.5 + 0.75 * (x - 0.5) + 0.06
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


if __name__ == "__main__":
    from skimage import data

    out = Path(__file__).with_name("coffee_dull.jpg")
    Image.fromarray(dull(data.coffee())).save(out, quality=92)
    print(f"wrote {out}")
