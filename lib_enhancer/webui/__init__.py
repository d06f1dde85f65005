"""sd-webui glue for Neural Image Enhancer (AUTOMATIC1111 1.10 and Forge) and a standalone tab.

Only ``scripts/neural_image_enhancer.py`` imports this package, and nothing here is imported by the
``lib_enhancer`` core. Importing the package (or any module in it) loads neither ``modules``,
``launch`` nor ``gradio``: those are imported inside the functions that need them.

Modules:

* :mod:`~lib_enhancer.webui.options` — the argument table of the generation script (UI order, API
  ``alwayson_scripts`` order, infotext keys) and the settings table; pure Python.
* :mod:`~lib_enhancer.webui.host` — where the glue meets its host: the webui (``shared.opts``,
  ``devices``, ``shared.state``, the queue lock) or a plain process (:class:`StandaloneHost`).
* :mod:`~lib_enhancer.webui.engine` — runs one enhancement for the glue: scorer cache, modes,
  progress, cancellation, memory hand-back and the "never break a generation" wrapper.
* :mod:`~lib_enhancer.webui.generation`, :mod:`~lib_enhancer.webui.extras` — mixins for the webui's
  ``Script`` and ``ScriptPostprocessing`` classes defined in the scripts file.
* :mod:`~lib_enhancer.webui.tab` / :mod:`~lib_enhancer.webui.tab_logic` — the Enhance tab (gradio
  layout / gradio-free handlers).
* :mod:`~lib_enhancer.webui.routes` — the ``/enhancer/v1/`` REST API (pydantic 1 and 2).
* :mod:`~lib_enhancer.webui.settings` — the settings page section.
* :mod:`~lib_enhancer.webui.gradio_compat` — the few differences between gradio 3, 4 and later.
* :mod:`~lib_enhancer.webui.setup` — registers the callbacks (called by the scripts file).
* :mod:`~lib_enhancer.webui.app` — ``python -m lib_enhancer.webui.app``: the tab outside the webui.
"""

LOG_PREFIX = "[Enhancer]"
LOGGER_NAME = "lib_enhancer.webui"
