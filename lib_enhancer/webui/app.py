"""Standalone Enhancer tab: ``python -m lib_enhancer.webui.app`` (needs ``pip install gradio``).

Serves the same tab as the webui extension with plain gradio, on 127.0.0.1 by default. The
comparison slider's JavaScript and CSS are read from the repository's ``javascript/`` and
``style.css`` when present (a source checkout / extension folder).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib_enhancer.webui import gradio_compat as compat
from lib_enhancer.webui import tab_logic
from lib_enhancer.webui.host import StandaloneHost, set_host
from lib_enhancer.webui.options import EnhancerSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_FILE = REPO_ROOT / "javascript" / "neural_image_enhancer.js"
CSS_FILE = REPO_ROOT / "style.css"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib_enhancer.webui.app", description="Neural Image Enhancer tab without the webui."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7861, help="port (default 7861)")
    parser.add_argument(
        "--models-dir", default="", help="folder for scorer weights (default: the library cache)"
    )
    parser.add_argument("--offline", action="store_true", help="never download weights")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--scorer", default="natural", help="default scorer (default natural)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--image", default=None, help="open the tab with this image as input")
    parser.add_argument("--enhance", action="store_true", help="with --image: enhance it before serving")
    parser.add_argument("--steps", type=int, default=40, help="default optimizer steps (default 40)")
    return parser


def assets() -> tuple[str | None, str | None]:
    """``(css, head)`` for the page: the extension's style.css and its JavaScript in a script tag."""
    css = CSS_FILE.read_text(encoding="utf-8") if CSS_FILE.is_file() else None
    head = f"<script>\n{JS_FILE.read_text(encoding='utf-8')}\n</script>" if JS_FILE.is_file() else None
    return css, head


def build_app(args: argparse.Namespace) -> Any:
    """The tab as a standalone ``gr.Blocks``."""
    import gradio as gr

    from lib_enhancer.webui.tab import build_tab

    host = set_host(
        StandaloneHost(
            EnhancerSettings(
                scorer=args.scorer,
                models_dir=args.models_dir,
                offline=args.offline,
                device=args.device,
                steps=args.steps,
            )
        )
    )
    image, initial = None, None
    if args.image:
        image = tab_logic.to_pil(args.image)
        if args.enhance:
            request = tab_logic.TabRequest(scorer=args.scorer, steps=args.steps)
            *_, initial = tab_logic.enhance_stream(image, request, host)
    css, head = assets()
    blocks = build_tab(
        host,
        blocks_kwargs=compat.blocks_kwargs(gr, css=css, head=head, title="Neural Image Enhancer"),
        image=image,
        initial=initial,
    )
    blocks.nie_assets = {"css": css, "head": head}
    return blocks


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(message)s")
    try:
        import gradio as gr
    except ImportError:
        print("error: the standalone tab needs gradio: pip install gradio", file=sys.stderr)
        return 2
    blocks = build_app(args)
    assets_ = blocks.nie_assets
    launch = compat.launch_kwargs(
        gr,
        blocks,
        server_name=args.host,
        server_port=args.port,
        show_api=False,
        # gradio >= 6 takes css/head in launch() instead of Blocks()
        css=assets_["css"] if "css" not in compat.blocks_kwargs(gr, css="x") else None,
        head=assets_["head"] if "head" not in compat.blocks_kwargs(gr, head="x") else None,
    )
    blocks.queue().launch(**launch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
