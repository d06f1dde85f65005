"""Print the `natural` scorer's statistics on real photographs, to place its bands.

Run: .venv/bin/python bench/calibrate_natural.py [--photos DIR]
The percentiles printed here are where lib_enhancer/scorers/natural.py's BANDS come from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quality import load_photos
from lib_enhancer.render import array_to_tensor
from lib_enhancer.scorers.natural import BANDS, natural_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=Path, default=None)
    args = parser.parse_args()
    rows = {}
    for photo in load_photos(str(args.photos) if args.photos else None, None, 0.25):
        stats = natural_stats(array_to_tensor(photo.image))
        rows[photo.name] = {k: float(v[0]) for k, v in stats.items()}
    keys = list(BANDS)
    print(f"{len(rows)} photos")
    print("| statistic | band | p10 | p50 | p90 | min | max |")
    print("|---|---|---|---|---|---|---|")
    for k in keys:
        vals = np.array([r[k] for r in rows.values()])
        band = BANDS[k]
        print(
            f"| {k} | [{band.low:g}, {band.high:g}] | {np.percentile(vals, 10):.3f} | {np.median(vals):.3f} "
            f"| {np.percentile(vals, 90):.3f} | {vals.min():.3f} | {vals.max():.3f} |"
        )


if __name__ == "__main__":
    main()
