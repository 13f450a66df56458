"""Attention residuals on the NPU: the PyTorch form of
:mod:`liger_kernel.backends.torch.attn_res` (math: :mod:`liger_kernel.ops.attn_res`).

The portable kernels of :mod:`liger_kernel.triton.attn_res` load a token's N
blocks as one 2-D tile, whose row pitch (tokens * D elements) the A3 vector
cores fault on unless it is a multiple of 32 bytes. An NPU kernel taking one
block per step is not written yet, so every call runs the PyTorch form.
"""

from __future__ import annotations

from liger_kernel.backends.torch.attn_res import AttnResFunction

__all__ = ["AttnResFunction"]
