"""``modules.scripts``: Script, AlwaysVisible, PostprocessImageArgs, the loader and a ScriptRunner.

Faithful to A1111 v1.10.1 where the glue can tell: every class in a loaded file's namespace that is
a ``Script`` or ``ScriptPostprocessing`` subclass is registered (base classes included, if imported
by name); hooks run only for always-on scripts that override them, each wrapped in try/except.
"""

import importlib.util
import inspect
import os
import re
import sys
from collections import namedtuple

from modules import errors, scripts_postprocessing

AlwaysVisible = object()


class A1111PostprocessImageArgs:
    def __init__(self, image):
        self.image = image


class ForgePostprocessImageArgs:
    def __init__(self, image, index):
        self.image = image
        self.index = index


PostprocessImageArgs = A1111PostprocessImageArgs


class PostprocessBatchListArgs:
    def __init__(self, images):
        self.images = images


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        pass

    def postprocess_image(self, p, pp, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"


ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data = []
postprocessing_scripts_data = []
current_basedir = os.getcwd()


def basedir():
    return current_basedir


def load_module(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_scripts_file(path, extension_dir):
    """Import one scripts file like ``load_scripts``: extension dir on sys.path during the import."""
    global current_basedir
    from modules import script_callbacks

    script_callbacks.clear_callbacks()
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    syspath = list(sys.path)
    current_basedir = extension_dir
    try:
        sys.path.insert(0, extension_dir)
        module = load_module(path)
    finally:
        sys.path[:] = syspath
        current_basedir = os.getcwd()
    for script_class in module.__dict__.values():
        if not inspect.isclass(script_class):
            continue
        if issubclass(script_class, Script):
            scripts_data.append(ScriptClassData(script_class, path, extension_dir, module))
        elif issubclass(script_class, scripts_postprocessing.ScriptPostprocessing):
            postprocessing_scripts_data.append(ScriptClassData(script_class, path, extension_dir, module))
    return module


class ScriptRunner:
    def __init__(self, is_img2img=False):
        self.is_img2img = is_img2img
        self.scripts = []
        self.alwayson_scripts = []
        self.selectable_scripts = []
        self.initialize_scripts(is_img2img)

    def initialize_scripts(self, is_img2img):
        for data in scripts_data:
            script = data.script_class()
            script.filename = data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            visibility = script.show(is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)

    def set_args(self, script, args):
        """What ``setup_ui`` does for one script: its slice of ``p.script_args``."""
        script.args_from = 0
        script.args_to = len(args)

    def _call(self, name, p, *head, **kwargs):
        for script in self.alwayson_scripts:
            if getattr(type(script), name) is getattr(Script, name):
                continue
            try:
                args = p.script_args_by_script.get(script, ())
                getattr(script, name)(p, *head, *args, **kwargs)
            except Exception:
                errors.report(f"Error running {name}: {script.filename}", exc_info=True)

    def process(self, p):
        self._call("process", p)

    def process_batch(self, p, **kwargs):
        self._call("process_batch", p, **kwargs)

    def postprocess_image(self, p, pp):
        self._call("postprocess_image", p, pp)

    def postprocess(self, p, processed):
        self._call("postprocess", p, processed)

    def run(self, p, script, args):
        return script.run(p, *args)
