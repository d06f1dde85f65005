"""Neural Image Enhancer — the extension's only entry point for AUTOMATIC1111 1.10 and Forge.

The webui imports this file and registers every ``Script`` / ``ScriptPostprocessing`` subclass in
its namespace, so the base classes are reached through their modules, never imported by name.
All logic lives in :mod:`lib_enhancer.webui` (see docs/webui.md for the API argument order).
"""

import importlib.util
import os
import sys

import modules.scripts as scripts
from modules import script_callbacks, scripts_postprocessing

EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if importlib.util.find_spec("lib_enhancer") is None:  # the webui puts EXTENSION_DIR on sys.path while
    sys.path.insert(0, EXTENSION_DIR)  # importing this file; other loaders may not

import lib_enhancer.webui.extras as nie_extras  # noqa: E402
import lib_enhancer.webui.generation as nie_generation  # noqa: E402
import lib_enhancer.webui.setup as nie_setup  # noqa: E402


class NeuralImageEnhancer(nie_generation.AlwaysOnMixin, scripts.Script):
    """txt2img / img2img accordion: enhance every generated image (API: ``alwayson_scripts``)."""


class NeuralImageEnhancerImg2Img(nie_generation.Img2ImgMixin, scripts.Script):
    """img2img Script dropdown: enhance the results, or the init image first (API: ``script_name``)."""


class NeuralImageEnhancerExtras(nie_extras.ExtrasMixin, scripts_postprocessing.ScriptPostprocessing):
    """Extras tab step; ``None`` arguments (Extras API) mean "use the settings"."""


nie_setup.install(script_callbacks)
