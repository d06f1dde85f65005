"""``modules.shared``: opts, cmd_opts, state, OptionInfo (a few built-in options the glue reads)."""

import argparse

from modules import paths
from modules.options import OptionInfo, Options, options_section  # noqa: F401
from modules.shared_state import State

models_path = paths.models_path
cmd_opts = argparse.Namespace(use_cpu=[], api=False, nowebui=False, hide_ui_dir_config=False)
opts = Options(
    {
        "samples_format": OptionInfo(
            "png", "File format for images", section=("saving-images", "Saving images")
        ),
        "outdir_extras_samples": OptionInfo(
            "", "Output directory for images from extras tab", section=("saving-paths", "Paths")
        ),
        "temp_dir": OptionInfo(
            "", "Directory for temporary images", section=("saving-images", "Saving images")
        ),
        "send_seed": OptionInfo(
            True, "Send seed when sending prompt or image to other interface", section=("ui", "UI")
        ),
        "enable_pnginfo": OptionInfo(
            True,
            "Save text information about generation parameters",
            section=("saving-images", "Saving images"),
        ),
    }
)
state = State()
demo = None
