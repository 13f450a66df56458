"""mHC on the NPU: the PyTorch form of :mod:`liger_kernel.backends.torch.mhc`
(math: :mod:`liger_kernel.ops.mhc`), whose matrix products are torch_npu's
cube-unit kernels.

The portable kernels of :mod:`liger_kernel.triton.mhc` load 2-D tiles whose
row pitch the A3 vector cores fault on for most shapes: a token's M = HC*HC + 2*HC
float32 logits (96 bytes at HC = 4), its HC coefficients (16 bytes), phi's rows
of M 16-bit values. NPU kernels with one-row steps for those tiles are not
written yet, so every call runs the PyTorch form.
"""

from __future__ import annotations

from liger_kernel.backends.torch.mhc import MHCCoeffsFunction, MHCPostResFunction, MHCPreFunction

__all__ = ["MHCCoeffsFunction", "MHCPostResFunction", "MHCPreFunction"]
