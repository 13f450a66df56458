"""Fused linear JSD (distillation loss over two LM heads) on the NPU: the
portable implementation of :mod:`liger_kernel.triton.fused_linear_jsd`,
unchanged (math: :mod:`liger_kernel.ops.fused_linear_jsd`).

The GEMMs run through torch.mm (torch_npu's cube-unit kernels); the loss and
the gradient through log_softmax run as the portable JSD kernel in logits
mode, which fits the vector cores' unified buffer and the grid limit as
described in :mod:`liger_kernel_ascend.ops.jsd`. Chunks of rows keep device
memory bounded as the vocabulary grows; the strict NPU mock runs it.
Importing it through this package first runs the environment checks of
:mod:`liger_kernel_ascend.safety`.
"""

from liger_kernel.triton.fused_linear_jsd import FusedLinearJSDFunction

__all__ = ["FusedLinearJSDFunction"]
