"""Manifold-constrained hyper-connections around a layer (math: :mod:`liger_kernel.ops.mhc`)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from liger_kernel.ops.mhc import coefficient_count
from liger_kernel.transformers.functional import liger_mhc_forward

#: above this many streams the coefficient kernels hold wide rows (M = HC*HC + 2*HC logits) at once
RECOMMENDED_MAX_STREAMS = 16


class LigerMHC(nn.Module):
    """Wraps ``layer`` (``[..., C] -> [..., C]``) with ``hc`` residual streams of
    width ``c``: input and output are ``[..., hc, c]``. Per token, the routing
    coefficients come from the flattened streams (``liger_mhc_coeffs``), the
    layer sees their ``h_pre``-weighted sum, and the next streams are
    ``h_res @ x + h_post * layer(...)``.

    Parameters: ``phi`` (hc*c, hc*hc + 2*hc) in ``phi_dtype``, normal with
    std 0.02; ``b`` (hc*hc + 2*hc,) float32 zeros; ``alpha_pre``,
    ``alpha_post``, ``alpha_res`` float32 scalars set to 1. They are created on
    the device of the layer's first parameter (the CPU for a layer without
    parameters). float32 streams need ``allow_fp32=True``.
    """

    def __init__(
        self,
        layer: nn.Module,
        *,
        hc: int,
        c: int,
        tmax: int = 20,
        rms_eps: float = 1e-6,
        pre_eps: float = 0.0,
        sinkhorn_eps: float = 1e-6,
        post_mult: float = 2.0,
        phi_dtype: torch.dtype = torch.float16,
        allow_fp32: bool = False,
    ) -> None:
        super().__init__()
        if int(hc) < 1 or int(c) < 1:
            raise ValueError(f"hc and c must be at least 1, got hc={hc}, c={c}")
        if hc > RECOMMENDED_MAX_STREAMS:
            warnings.warn(
                f"hc={hc} is above {RECOMMENDED_MAX_STREAMS} streams: the coefficient kernels then keep "
                f"{coefficient_count(hc)} logits per token in registers, which is slow",
                stacklevel=2,
            )
        self.layer = layer
        self.hc, self.c = int(hc), int(c)
        self.tmax = int(tmax)
        self.rms_eps = float(rms_eps)
        self.pre_eps = float(pre_eps)
        self.sinkhorn_eps = float(sinkhorn_eps)
        self.post_mult = float(post_mult)
        self.allow_fp32 = bool(allow_fp32)
        first = next(iter(layer.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        m = coefficient_count(self.hc)
        self.phi = nn.Parameter(torch.randn(self.hc * self.c, m, device=device).mul_(0.02).to(phi_dtype))
        self.b = nn.Parameter(torch.zeros(m, dtype=torch.float32, device=device))
        self.alpha_pre = nn.Parameter(torch.ones((), dtype=torch.float32, device=device))
        self.alpha_post = nn.Parameter(torch.ones((), dtype=torch.float32, device=device))
        self.alpha_res = nn.Parameter(torch.ones((), dtype=torch.float32, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.hc, self.c):
            raise ValueError(f"x must end in [hc, c] = [{self.hc}, {self.c}], got shape {tuple(x.shape)}")
        return liger_mhc_forward(
            x,
            self.layer,
            self.phi,
            self.b,
            self.alpha_pre,
            self.alpha_post,
            self.alpha_res,
            allow_fp32=self.allow_fp32,
            tmax=self.tmax,
            rms_eps=self.rms_eps,
            pre_eps=self.pre_eps,
            sinkhorn_eps=self.sinkhorn_eps,
            post_mult=self.post_mult,
        )

    def extra_repr(self) -> str:
        return f"hc={self.hc}, c={self.c}, tmax={self.tmax}"
