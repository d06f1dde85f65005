"""The one-tensor Adam is torch.optim.Adam's update, without importing torch.optim."""

from __future__ import annotations

import subprocess
import sys

import torch

from lib_enhancer.adam import Adam


def _run(make, steps: int = 25) -> torch.Tensor:
    torch.manual_seed(0)
    target = torch.randn(4, 7, dtype=torch.float64)
    z = torch.zeros(4, 7, dtype=torch.float64, requires_grad=True)
    opt = make(z)
    for i in range(steps):
        opt.zero_grad()
        loss = ((z - target) ** 2 * (1 + i % 3)).sum() + z.abs().sum()
        loss.backward()
        opt.step()
    return z.detach()


def test_matches_torch_adam():
    ours = _run(lambda z: Adam(z, lr=0.05))
    theirs = _run(lambda z: torch.optim.Adam([z], lr=0.05))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    assert ours.abs().sum() > 0  # it moved


def test_no_gradient_no_step_and_needs_grad():
    z = torch.ones(3, requires_grad=True)
    opt = Adam(z)
    opt.step()
    assert opt.steps == 0 and torch.equal(z.detach(), torch.ones(3))
    try:
        Adam(torch.ones(3))
    except ValueError as exc:
        assert "requires grad" in str(exc)
    else:
        raise AssertionError("a tensor without requires_grad was accepted")


def test_enhancing_does_not_import_torch_optim():
    """torch.optim's first optimizer imports torch._dynamo (seconds): the gradient mode and the
    learned modes' recipe fit must not pay it."""
    code = (
        "import sys, numpy as np\n"
        "from lib_enhancer import enhance\n"
        "img = (np.random.default_rng(0).random((48, 64, 3)) * 120 + 40).astype(np.uint8)\n"
        "enhance(img, steps=3)\n"
        "enhance(img, mode='histogram')\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
