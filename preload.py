"""sd-webui preload hook: the extension's command-line flags (read back from ``shared.cmd_opts``)."""

from __future__ import annotations

import argparse

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def preload(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--enhancer-models-dir",
        type=str,
        default=None,
        help="Neural Image Enhancer: folder for scorer weights (default: <models>/lib_enhancer); overrides the setting",
    )
    parser.add_argument(
        "--enhancer-offline",
        action="store_true",
        default=False,
        help="Neural Image Enhancer: never download weights; a missing file fails with where to put it",
    )
    parser.add_argument(
        "--enhancer-log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        help="Neural Image Enhancer: log level of its messages (default: the webui's)",
    )
