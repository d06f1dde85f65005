"""Adam on one tensor, without ``torch.optim``.

The first ``torch.optim`` optimizer a process builds imports ``torch._dynamo`` (1.7 s on this
machine's torch 2.x): more than a whole enhancement of a 1 MP photo. The optimizer moves one small
tensor, so it uses this (as does ``bench/recipe_fit.py``'s baseline): the same update as
``torch.optim.Adam``'s single-tensor path (tested against it), nothing imported.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


class Adam:
    """``torch.optim.Adam([param], lr, betas, eps)`` for a single tensor (no weight decay)."""

    def __init__(
        self, param: Tensor, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        if not param.requires_grad:
            raise ValueError("Adam needs a tensor that requires grad")
        self.param = param
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)

    def zero_grad(self) -> None:
        """Drop the gradient (``set_to_none``)."""
        self.param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update from ``param.grad`` (nothing happens without a gradient)."""
        grad = self.param.grad
        if grad is None:
            return
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1**self.steps
        bias_correction2_sqrt = (1 - self.beta2**self.steps) ** 0.5
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-self.lr / bias_correction1)
