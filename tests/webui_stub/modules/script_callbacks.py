"""``modules.script_callbacks``: named registrations, run by the tests where the webui would."""

from collections import namedtuple

ScriptCallback = namedtuple("ScriptCallback", ["script", "callback", "name"])

callback_map = {
    "callbacks_app_started": [],
    "callbacks_ui_tabs": [],
    "callbacks_ui_settings": [],
    "callbacks_before_image_saved": [],
    "callbacks_image_saved": [],
    "callbacks_infotext_pasted": [],
    "callbacks_script_unloaded": [],
    "callbacks_model_loaded": [],
    "callbacks_before_ui": [],
}


def clear_callbacks():
    for callbacks in callback_map.values():
        callbacks.clear()


def _add(category, callback, name):
    if not callable(callback):
        raise TypeError(f"{category}: callback is not callable")
    callback_map["callbacks_" + category].append(ScriptCallback("<script>", callback, name))


def on_app_started(callback, *, name=None):
    _add("app_started", callback, name)


def on_ui_tabs(callback, *, name=None):
    _add("ui_tabs", callback, name)


def on_ui_settings(callback, *, name=None):
    _add("ui_settings", callback, name)


def on_before_image_saved(callback, *, name=None):
    _add("before_image_saved", callback, name)


def on_image_saved(callback, *, name=None):
    _add("image_saved", callback, name)


def on_infotext_pasted(callback, *, name=None):
    _add("infotext_pasted", callback, name)


def on_script_unloaded(callback, *, name=None):
    _add("script_unloaded", callback, name)


def on_model_loaded(callback, *, name=None):
    _add("model_loaded", callback, name)


def on_before_ui(callback, *, name=None):
    _add("before_ui", callback, name)


def app_started_callback(demo, app):
    for c in callback_map["callbacks_app_started"]:
        c.callback(demo, app)


def ui_tabs_callback():
    res = []
    for c in callback_map["callbacks_ui_tabs"]:
        res += c.callback() or []
    return res


def ui_settings_callback():
    for c in callback_map["callbacks_ui_settings"]:
        c.callback()


def script_unloaded_callback():
    for c in callback_map["callbacks_script_unloaded"]:
        c.callback()
