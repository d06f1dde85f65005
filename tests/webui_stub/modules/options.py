"""``modules.options``: OptionInfo and Options with A1111's semantics (defaults until set)."""


class OptionInfo:
    def __init__(
        self,
        default=None,
        label="",
        component=None,
        component_args=None,
        onchange=None,
        section=None,
        refresh=None,
        comment_before="",
        comment_after="",
        infotext=None,
        restrict_api=False,
        category_id=None,
    ):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api

    def link(self, label, url):
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html):
        self.comment_after += html
        return self

    def needs_restart(self):
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self):
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


class Options:
    def __init__(self, data_labels, restricted_opts=()):
        super().__setattr__("data_labels", dict(data_labels))
        super().__setattr__("data", {k: v.default for k, v in data_labels.items() if not v.do_not_save})
        super().__setattr__("restricted_opts", set(restricted_opts))

    def __setattr__(self, key, value):
        if key in self.data or key in self.data_labels:
            self.data[key] = value
            return
        super().__setattr__(key, value)

    def __getattr__(self, item):
        data = super().__getattribute__("data")
        if item in data:
            return data[item]
        labels = super().__getattribute__("data_labels")
        if item in labels:
            return labels[item].default
        return super().__getattribute__(item)

    def add_option(self, key, info):
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def dumpjson(self):
        # A1111: item.section[0] for every option -> TypeError when a section is None
        return {k: (v.default, v.section[0], v.label) for k, v in self.data_labels.items()}


def options_section(section_identifier, options_dict):
    for v in options_dict.values():
        v.section = section_identifier
    return options_dict
