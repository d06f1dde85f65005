"""``modules.ui_components.InputAccordion``: an accordion whose header is a checkbox input."""

import gradio as gr


class InputAccordion(gr.Checkbox):
    global_index = 0

    def __init__(self, value, **kwargs):
        self.accordion_id = kwargs.get("elem_id") or f"input-accordion-{InputAccordion.global_index}"
        InputAccordion.global_index += 1
        super().__init__(value, **{**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False})
        self.accordion = gr.Accordion(
            label=kwargs.get("label", "Accordion"), elem_id=self.accordion_id, open=value
        )

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)
