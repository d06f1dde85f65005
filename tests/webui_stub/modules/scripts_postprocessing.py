"""``modules.scripts_postprocessing``: the Extras-tab step API."""


class PostprocessedImageSharedInfo:
    target_width = None
    target_height = None


class PostprocessedImage:
    def __init__(self, image):
        self.image = image
        self.info = {}
        self.shared = PostprocessedImageSharedInfo()
        self.extra_images = []
        self.nametags = []
        self.disable_processing = False
        self.caption = None


class ScriptPostprocessing:
    filename = None
    controls = None
    args_from = None
    args_to = None
    order = 1000
    name = None

    def ui(self):
        pass

    def process(self, pp, **args):
        pass

    def process_firstpass(self, pp, **args):
        pass

    def image_changed(self):
        pass


def api_args_for(control_names):
    """What ``create_args_for_run`` gives a non-built-in script from the Extras API: None per control."""
    return {name: None for name in control_names}
