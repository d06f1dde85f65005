"""Histogram network: the RGB histogram of a photo in, the histogram it *should* have out.

bipolaroid's idea (a 3-D conv net over the joint RGB histogram, trained with KL divergence to map
an edited photo's histogram back to the original's), made fast and shippable:

* soft (trilinear-splat) ``bins³`` histograms, a small 3-D U-Net whose output is the input histogram
  plus a learned correction (zero-initialised: an untrained net changes nothing);
* the predicted histogram is applied by transporting the *bins*, not the pixels: iterative
  distribution transfer (Pitié's IDT, weighted 1-D CDF matching along rotated axes) between the
  occupied input bins and the predicted bins, whose 1-D maps are replayed on a ``33³`` lattice — a
  smooth 3-D LUT applied at full resolution by the core's LUT path. The linear Monge–Kantorovich
  closed form is the fast option (``transfer="mkl"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lib_enhancer.learned.common import WEIGHTS_DIR, apply_prior, checked_prior, load_model
from lib_enhancer.lut import identity_lattice

Tensor = torch.Tensor

DEFAULT_FILE = WEIGHTS_DIR / "histogram_net.safetensors"
DEFAULT_BINS = 16
LUT_SIZE = 33
IDT_ITERATIONS = 20
MKL_JITTER = 1e-4  # added to colour covariances (a 0.01 standard deviation) before square roots
EMPTY = 1e-4  # floor added to a histogram before its log (relative to 1/bins³ = 2.4e-4 at 16³)


def soft_histogram(image: Tensor, bins: int = DEFAULT_BINS) -> Tensor:
    """Joint RGB histogram of float ``(N, 3, H, W)`` by trilinear splatting: ``(N, bins, bins, bins)``.

    Indexed ``[r, g, b]``; bin ``i`` is centred on ``(i + 0.5) / bins``; each histogram sums to 1.
    The 8 corners' bins and weights are formed by broadcasting and added in one ``scatter_add_``,
    corner by corner in the order a loop over them would (bit-identical to it, tested; ~4x faster).
    """
    n = image.shape[0]
    pos = image.reshape(n, 3, -1).clamp(0.0, 1.0) * bins - 0.5
    low = pos.floor()
    frac = pos - low
    low = low.long()
    near = torch.stack([low.clamp(0, bins - 1), (low + 1).clamp(0, bins - 1)], 2)  # (N, 3, 2, P)
    weights = torch.stack([1.0 - frac, frac], 2)
    # corner o_r + 2 o_g + 4 o_b, the corners along axes (o_b, o_g, o_r) of (N, 2, 2, 2, P)
    r, g, b = (near[:, c] for c in range(3))
    index = (r[:, None, None] * bins + g[:, None, :, None]) * bins + b[:, :, None, None]
    w_r, w_g, w_b = (weights[:, c] for c in range(3))
    weight = w_r[:, None, None] * w_g[:, None, :, None] * w_b[:, :, None, None]
    hist = torch.zeros(n, bins**3, dtype=image.dtype, device=image.device)
    hist.scatter_add_(1, index.reshape(n, -1), weight.reshape(n, -1))
    hist = hist / hist.sum(1, keepdim=True).clamp_min(1e-12)
    return hist.reshape(n, bins, bins, bins)


def bin_centres(bins: int) -> Tensor:
    """``(bins³, 3)`` RGB centres in the histogram's flattened ``[r, g, b]`` order (float64)."""
    axis = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    r, g, b = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([r, g, b], -1).reshape(-1, 3)


class Conv3x3x3(nn.Conv3d):
    """``nn.Conv3d(cin, cout, 3, stride, padding=1)`` (same weights and state dict) that, while
    ``as_2d`` is set (by :meth:`HistogramNet.predict`, the inference entry point), runs as **one** 2-D
    convolution over the depth slices with the three depth taps stacked as input channels: the same
    sums in another order (within ~1e-6 relative), 2-3x faster on this CPU than torch's 3-D
    convolution of these small volumes (the net's forward 9 -> ~4 ms). Training and its validation
    keep ``nn.Conv3d``'s own path, so ``train histogram`` reproduces the shipped weights."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(cin, cout, 3, stride=stride, padding=1)
        self.as_2d = False

    def forward(self, x: Tensor) -> Tensor:
        if self.as_2d and not torch.is_grad_enabled():
            return conv3x3x3_as_2d(x, self.weight, self.bias, self.stride[0])
        return super().forward(x)


def conv3x3x3_as_2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int = 1) -> Tensor:
    """``F.conv3d(x, weight, bias, stride, padding=1)`` for a ``(Cout, Cin, 3, 3, 3)`` ``weight``,
    computed as one ``F.conv2d`` of the output's depth slices, each with its three input slices
    stacked as channels (``(N·D', 3·Cin, H, W)``)."""
    n, c, d, h, w = x.shape
    depth = (d - 1) // stride + 1  # output slices (padding 1, kernel 3)
    padded = F.pad(x, (0, 0, 0, 0, 1, 1))
    taps = [padded[:, :, k : k + stride * (depth - 1) + 1 : stride] for k in range(3)]
    cols = torch.cat(taps, 1).transpose(1, 2).reshape(n * depth, 3 * c, h, w)
    flat = weight.transpose(1, 2).reshape(weight.shape[0], 3 * c, 3, 3)
    out = F.conv2d(cols, flat, bias, stride=stride, padding=1)
    return out.reshape(n, depth, *out.shape[1:]).transpose(1, 2)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(Conv3x3x3(cin, cout, stride), nn.GroupNorm(min(4, cout), cout), nn.GELU())


class HistogramNet(nn.Module):
    """``(N, bins, bins, bins)`` histograms -> log-probabilities of the predicted histograms."""

    def __init__(
        self,
        bins: int = DEFAULT_BINS,
        widths: Sequence[int] = (8, 16, 32),
        side: int = 128,
        prior: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.prior = checked_prior(prior)  # applied to the photo before its histogram is read
        self.bins = bins
        self.side = side  # the (square) thumbnail its histograms are counted on
        self.widths = tuple(widths)
        c1, c2, c3 = self.widths
        axis = torch.linspace(-1.0, 1.0, bins)
        self.register_buffer(
            "coords", torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij")), persistent=False
        )
        self.enc1 = nn.Sequential(_block(4, c1), _block(c1, c1))
        self.enc2 = nn.Sequential(_block(c1, c2, 2), _block(c2, c2))
        self.enc3 = nn.Sequential(_block(c2, c3, 2), _block(c3, c3))
        self.context = nn.Linear(c3, c3)
        self.dec2 = _block(c3 + c2, c2)
        self.dec1 = _block(c2 + c1, c1)
        self.out = nn.Conv3d(c1, 1, 1)
        nn.init.zeros_(self.out.weight)  # untrained: prediction == input histogram
        nn.init.zeros_(self.out.bias)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": "histogram",
            "bins": self.bins,
            "widths": list(self.widths),
            "side": self.side,
            "prior": dict(self.prior),
        }

    def prepare(self, images: Tensor) -> Tensor:
        """``images`` with the prior applied: whose histogram the network reads and the LUT maps."""
        return apply_prior(images, self.prior)

    def forward(self, hist: Tensor) -> Tensor:
        n = hist.shape[0]
        log_in = torch.log(hist + EMPTY).unsqueeze(1)
        x = torch.cat(
            [torch.log1p(hist * self.bins**3).unsqueeze(1), self.coords.expand(n, -1, -1, -1, -1)], 1
        )
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e3 = e3 + self.context(e3.mean(dim=(2, 3, 4))).view(n, -1, 1, 1, 1)
        up = F.interpolate(e3, size=e2.shape[-3:], mode="trilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up, e2], 1))
        up = F.interpolate(d2, size=e1.shape[-3:], mode="trilinear", align_corners=False)
        d1 = self.dec1(torch.cat([up, e1], 1))
        logits = (self.out(d1) + log_in).reshape(n, -1)
        return F.log_softmax(logits, 1).reshape(hist.shape)

    @torch.no_grad()
    def predict(self, hist: Tensor) -> Tensor:
        """Predicted histograms (probabilities), same shape as ``hist``."""
        was = self.training
        if was:  # (switching modes walks every submodule: ~0.35 ms each way)
            self.eval()
        convs = [m for m in self.modules() if isinstance(m, Conv3x3x3)]
        for conv in convs:
            conv.as_2d = True
        try:
            return self(hist).exp()
        finally:
            for conv in convs:
                conv.as_2d = False
            if was:
                self.train()


def kl_divergence(target: Tensor, log_pred: Tensor) -> Tensor:
    """Mean over the batch of KL(target ‖ pred) for histograms ``(N, ...)``."""
    t = target.reshape(target.shape[0], -1)
    lp = log_pred.reshape(t.shape)
    return (t * (torch.log(t.clamp_min(1e-12)) - lp)).sum(1).mean()


# ---- transport ----------------------------------------------------------------------------------


def _rotations(count: int, seed: int = 0) -> list[np.ndarray]:
    """Seeded orthonormal 3×3 bases; the first is the RGB axes themselves."""
    rng = np.random.default_rng(seed)
    out = [np.eye(3)]
    while len(out) < count:
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        out.append(q * np.sign(np.diag(r)))
    return out


def _quantiles(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cdf = np.cumsum(w) - 0.5 * w
    return v, cdf / max(float(w.sum()), 1e-12)


def _extend(x: np.ndarray, knots: np.ndarray, mapped: np.ndarray) -> np.ndarray:
    """Piecewise-linear map through ``(knots, mapped)``, extended by constant shifts past the ends."""
    y = np.interp(x, knots, mapped)
    y = np.where(x < knots[0], x + (mapped[0] - knots[0]), y)
    return np.where(x > knots[-1], x + (mapped[-1] - knots[-1]), y)


def _merge_ties(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots with equal positions averaged, so ``np.interp`` sees strictly increasing knots."""
    uniq, inverse = np.unique(v, return_inverse=True)
    if len(uniq) == len(v):
        return v, f
    sums = np.bincount(inverse, weights=f)
    return uniq, sums / np.bincount(inverse)


def idt_lut(
    source: np.ndarray,
    source_weights: np.ndarray,
    target: np.ndarray,
    target_weights: np.ndarray,
    *,
    size: int = LUT_SIZE,
    iterations: int = IDT_ITERATIONS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterative distribution transfer of weighted colour samples, replayed on a LUT lattice.

    Returns ``(table, moved)``: the ``(size, size, size, 3)`` LUT (``[b, g, r]`` indexed, as
    :mod:`lib_enhancer.lut` expects) and the transported source samples ``(M, 3)``.
    """
    x = source.astype(np.float64).copy()
    lattice = identity_lattice(size).reshape(-1, 3)
    t = target.astype(np.float64)
    for i, rot in enumerate(_rotations(iterations, seed)):
        step = 1.0 - (i / iterations) ** 2  # relax the late passes: they only polish
        xs, ts, ls = x @ rot, t @ rot, lattice @ rot
        for axis in range(3):
            sv, scdf = _quantiles(xs[:, axis], source_weights)
            tv, tcdf = _quantiles(ts[:, axis], target_weights)
            knots, mapped = _merge_ties(sv, np.interp(scdf, tcdf, tv))
            xs[:, axis] += step * (_extend(xs[:, axis], knots, mapped) - xs[:, axis])
            ls[:, axis] += step * (_extend(ls[:, axis], knots, mapped) - ls[:, axis])
        x, lattice = xs @ rot.T, ls @ rot.T
    return lattice.reshape(size, size, size, 3).astype(np.float32), x


def weighted_moments(points: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(N, 3)`` and covariance ``(N, 3, 3)`` of colours ``(K, 3)`` under weights ``(N, K)``."""
    w = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    mean = w @ points
    centred = points.unsqueeze(0) - mean.unsqueeze(1)  # (N, K, 3)
    cov = (centred * w.unsqueeze(-1)).transpose(1, 2) @ centred
    return mean, cov


def _sqrtm(m: Tensor, inverse: bool = False) -> Tensor:
    vals, vecs = torch.linalg.eigh((m + m.transpose(-1, -2)) / 2)
    vals = vals.clamp_min(1e-10)
    vals = vals.rsqrt() if inverse else vals.sqrt()
    return (vecs * vals.unsqueeze(-2)) @ vecs.transpose(-1, -2)


def mkl_transform(
    mean_s: Tensor, cov_s: Tensor, mean_t: Tensor, cov_t: Tensor, jitter: float = MKL_JITTER
) -> tuple[Tensor, Tensor]:
    """Linear Monge–Kantorovich map ``u -> A u + b`` (Pitié & Kokaram 2007, closed form), batched.

    ``A = Σs^-½ (Σs^½ Σt Σs^½)^½ Σs^-½`` is the unique symmetric positive-definite solution, so the
    map is monotone (the brightest colours stay brightest). ``jitter`` (added to both covariances)
    keeps near-grey images, whose covariance is almost rank one, from exploding. Differentiable.
    """
    eye = torch.eye(3, dtype=cov_s.dtype, device=cov_s.device)
    cov_s, cov_t = cov_s + jitter * eye, cov_t + jitter * eye
    s_half, s_inv = _sqrtm(cov_s), _sqrtm(cov_s, inverse=True)
    a = s_inv @ _sqrtm(s_half @ cov_t @ s_half) @ s_inv
    b = mean_t - (a @ mean_s.unsqueeze(-1)).squeeze(-1)
    return a, b


def histogram_mkl(source_hist: Tensor, target_hist: Tensor) -> tuple[Tensor, Tensor]:
    """The MKL map ``(A, b)`` between two batches of ``(N, b, b, b)`` histograms (bin-centre colours)."""
    n, bins = source_hist.shape[0], source_hist.shape[-1]
    centres = bin_centres(bins).to(source_hist.dtype).to(source_hist.device)
    ms, cs = weighted_moments(centres, source_hist.reshape(n, -1))
    mt, ct = weighted_moments(centres, target_hist.reshape(n, -1))
    return mkl_transform(ms, cs, mt, ct)


def apply_affine(image: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``A u + b`` on every pixel of ``(N, 3, H, W)`` (``a`` ``(N, 3, 3)``, ``b`` ``(N, 3)``)."""
    n = image.shape[0]
    flat = image.reshape(n, 3, -1)
    return (a @ flat + b.unsqueeze(-1)).reshape(image.shape)


def mkl_lut(
    source: np.ndarray,
    source_weights: np.ndarray,
    target: np.ndarray,
    target_weights: np.ndarray,
    *,
    size: int = LUT_SIZE,
) -> np.ndarray:
    """Linear Monge–Kantorovich transfer of weighted colour samples as a LUT (``[b, g, r]`` indexed)."""
    return affine_lut(*mkl_affine(source, source_weights, target, target_weights), size)


def mkl_affine(
    source: np.ndarray, source_weights: np.ndarray, target: np.ndarray, target_weights: np.ndarray
) -> tuple[Tensor, Tensor]:
    """The linear Monge–Kantorovich map ``u -> A u + b`` of weighted colour samples ``(K, 3)``:
    float64 ``A`` ``(3, 3)`` and ``b`` ``(3,)``."""
    ms, cs = weighted_moments(
        torch.from_numpy(source).double(), torch.from_numpy(source_weights).double()[None]
    )
    mt, ct = weighted_moments(
        torch.from_numpy(target).double(), torch.from_numpy(target_weights).double()[None]
    )
    a, b = mkl_transform(ms, cs, mt, ct)
    return a[0], b[0]


def affine_lut(a: Tensor, b: Tensor, size: int = LUT_SIZE) -> np.ndarray:
    """The map ``u -> A u + b`` on the ``size``³ lattice, float32 ``[b, g, r]`` indexed (unclamped)."""
    lattice = torch.from_numpy(identity_lattice(size).reshape(-1, 3))
    out = lattice @ a.T + b
    return out.reshape(size, size, size, 3).float().numpy()


def transfer_lut(
    source_hist: Tensor, target_hist: Tensor, transfer: str = "idt", size: int = LUT_SIZE
) -> np.ndarray:
    """A LUT that moves colours distributed as ``source_hist`` to ``target_hist`` (``(b, b, b)`` each)."""
    if transfer == "mkl":
        return affine_lut(*mkl_map(source_hist, target_hist), size)
    if transfer != "idt":
        raise ValueError(f"unknown transfer {transfer!r}; choose 'idt' or 'mkl'")
    table, _ = idt_lut(*_occupied_bins(source_hist, target_hist), size=size)
    return table


def mkl_map(source_hist: Tensor, target_hist: Tensor) -> tuple[Tensor, Tensor]:
    """The linear Monge–Kantorovich map ``(A, b)`` (float64) moving the colours of ``source_hist``'s
    occupied bins to ``target_hist``'s (``(b, b, b)`` each): the ``mkl`` transfer without its LUT."""
    return mkl_affine(*_occupied_bins(source_hist, target_hist))


def _occupied_bins(
    source_hist: Tensor, target_hist: Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The centres and weights of the bins holding mass (> 1e-7) in each histogram."""
    centres = bin_centres(source_hist.shape[-1]).numpy()
    ws = source_hist.reshape(-1).double().numpy()
    wt = target_hist.reshape(-1).double().numpy()
    keep_s, keep_t = ws > 1e-7, wt > 1e-7
    return centres[keep_s], ws[keep_s], centres[keep_t], wt[keep_t]


def load_histogram_net(path: str | os.PathLike[str] | None = None) -> HistogramNet:
    """Load a network written by ``train histogram`` (default: the shipped weights)."""
    return load_model(str(Path(path) if path else DEFAULT_FILE), "histogram", _build)


def _build(config: dict[str, Any]) -> HistogramNet:
    return HistogramNet(config["bins"], config["widths"], config.get("side", 128), config.get("prior"))
