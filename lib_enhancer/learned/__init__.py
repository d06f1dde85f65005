"""Feed-forward learned modes: a recipe predictor and a histogram network, trained here.

* :mod:`~lib_enhancer.learned.predictor` — thumbnail -> recipe parameters in one pass (``predict``).
* :mod:`~lib_enhancer.learned.histogram` — RGB histogram -> "good" histogram, transported into a
  smooth 3-D LUT (``histogram``).
* :mod:`~lib_enhancer.learned.synth` — seeded synthetic degradations of real photos (training data).
* :mod:`~lib_enhancer.learned.train` — the training command (``python -m lib_enhancer train``).

Nothing here is imported by ``import lib_enhancer``; torch loads only when a model is used.
"""
