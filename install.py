"""sd-webui installer hook: run by the webui's launcher at every start (keep it idempotent).

Installs only what is missing, never upgrades or pins down what the webui already has, and never
touches torch (A1111 ships open_clip_torch 2.20.0 from its own source; that copy is kept).
"""

from __future__ import annotations

import launch

#: (distribution names any of which satisfies the need, pip requirement, why)
REQUIREMENTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("open_clip_torch", "open_clip"),
        "open_clip_torch",
        "open_clip_torch for the CLIP scorers of Neural Image Enhancer",
    ),
    (("safetensors",), "safetensors", "safetensors for Neural Image Enhancer"),
    (("tqdm",), "tqdm", "tqdm for Neural Image Enhancer"),
)


def missing(requirements=REQUIREMENTS) -> list[tuple[str, str]]:
    """``(requirement, why)`` for every need none of whose names is installed."""
    return [(req, why) for names, req, why in requirements if not any(launch.is_installed(n) for n in names)]


def main() -> None:
    for requirement, why in missing():
        launch.run_pip(f"install {requirement}", why)


main()
