"""Names of the enhancement modes — light (no torch), so the CLI and the webui can list them cheaply.

* ``gradient`` — the optimizer (:mod:`lib_enhancer.optimize`), the default.
* search modes — best-first search over edits and its hybrids (:mod:`lib_enhancer.search`).
* learned modes — one feed-forward pass, no scorer loop (:mod:`lib_enhancer.learned`).
"""

from __future__ import annotations

GRADIENT = "gradient"
SEARCH_MODES = ("best-first", "beam", "hybrid", "hybrid-reverse")
LEARNED_MODES = ("predict", "histogram")
MODES = (GRADIENT, *SEARCH_MODES, *LEARNED_MODES)
