"""Helpers shared by the pure-PyTorch op implementations."""

from __future__ import annotations

import math

import torch


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """The dtype the math runs in: float64 if any input is float64, else float32.

    Half inputs are upcast so that reductions and transcendental functions keep
    fp32 accuracy; float64 inputs keep their own precision.
    """
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` seen as (rows, last dimension); copies only when no such view exists."""
    # the row count spelt out: reshape cannot infer it (-1) when the last dimension is 0
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
