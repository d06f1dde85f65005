"""``modules.devices``: the main device, CPU, ``torch_gc``; Forge's ``get_device_for`` ignores --use-cpu."""

import torch

import modules

cpu = torch.device("cpu")
device = cpu
gc_calls = 0


def torch_gc():
    global gc_calls
    gc_calls += 1


def get_device_for(task):
    if modules.FLAVOR == "forge":
        return device
    from modules import shared

    if task in shared.cmd_opts.use_cpu or "all" in shared.cmd_opts.use_cpu:
        return cpu
    return device
