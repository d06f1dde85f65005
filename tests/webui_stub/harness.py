"""Test harness: load the extension's scripts file into the stub webui, and clean up afterwards."""

import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

STUB_DIR = Path(__file__).resolve().parent
REPO = STUB_DIR.parents[1]
SCRIPT_FILE = REPO / "scripts" / "neural_image_enhancer.py"
STUB_TOP = ("modules", "launch")


def _is_stub_module(name):
    top = name.split(".", 1)[0]
    return top in STUB_TOP or (top == "fastapi" and not _real_fastapi)


_real_fastapi = importlib.util.find_spec("fastapi") is not None


@contextlib.contextmanager
def webui_env(flavor="a1111", models_path=None, load_script=True):
    """The stub webui on ``sys.path`` (first), optionally with the scripts file loaded like the webui does.

    Yields a namespace with the stub modules, the loaded script module and the registered classes.
    Everything the stub added to ``sys.modules`` / ``sys.path`` is removed afterwards.
    """
    saved_path = list(sys.path)
    before = set(sys.modules)
    sys.path.insert(0, str(STUB_DIR))
    if not _real_fastapi:
        sys.path.append(str(STUB_DIR / "_fallback"))
    try:
        import modules

        modules.set_flavor(flavor)
        from modules import (
            call_queue,
            devices,
            errors,
            images,
            infotext_utils,
            paths,
            processing,
            script_callbacks,
            scripts,
            scripts_postprocessing,
            shared,
        )

        if models_path is not None:
            paths.models_path = str(models_path)
            shared.models_path = str(models_path)
        env = SimpleNamespace(
            modules=modules,
            call_queue=call_queue,
            devices=devices,
            errors=errors,
            images=images,
            infotext_utils=infotext_utils,
            paths=paths,
            processing=processing,
            script_callbacks=script_callbacks,
            scripts=scripts,
            scripts_postprocessing=scripts_postprocessing,
            shared=shared,
            script_module=None,
        )
        if load_script:
            env.script_module = scripts.load_scripts_file(str(SCRIPT_FILE), str(REPO))
        yield env
    finally:
        # gradio 4 writes a .pyi beside every Component subclass (the stub's InputAccordion)
        (STUB_DIR / "modules" / "ui_components.pyi").unlink(missing_ok=True)
        sys.path[:] = saved_path
        for name in set(sys.modules) - before:
            if _is_stub_module(name):
                del sys.modules[name]
        if "lib_enhancer.webui.host" in sys.modules:
            host = sys.modules["lib_enhancer.webui.host"]
            host.set_host(host.StandaloneHost())
        if "lib_enhancer.webui.engine" in sys.modules:
            sys.modules["lib_enhancer.webui.engine"]._SCORERS.clear()
