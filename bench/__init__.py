"""Benchmarks for lib_enhancer (not part of the installed package). Run them as scripts, e.g.
``.venv/bin/python bench/quality.py --quick``."""
