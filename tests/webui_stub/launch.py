"""Stand-in for the webui's ``launch`` module (``launch_utils.is_installed`` / ``run_pip``)."""

import importlib.metadata
import importlib.util

#: Tests set this to a set of names to fake what is installed; None = ask importlib like the webui.
installed = None
pip_calls = []


def is_installed(package):
    if installed is not None:
        return package in installed
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        try:
            return importlib.util.find_spec(package) is not None
        except ModuleNotFoundError:
            return False
    return True


def run_pip(command, desc=None, live=False):
    pip_calls.append((command, desc))
