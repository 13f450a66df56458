"""Multi-token attention on the NPU: the PyTorch form of
:mod:`liger_kernel.backends.torch.multi_token_attention` (math:
:mod:`liger_kernel.ops.multi_token_attention`), its convolutions torch_npu's.

bishengir, the NPU's Triton compiler, stops before memory planning on the
portable convolution kernel (``_mta_conv_kernel``: one masked gather of every
kernel tap of a column block), so no portable MTA kernel is launched here;
an NPU kernel taking one tap per step is not written yet. fp64 is refused, as
on every NPU route: the vector and cube units have no fp64 arithmetic.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch import multi_token_attention as torch_form
from liger_kernel_ascend.ops._common import check_npu_dtype

__all__ = ["MultiTokenAttentionFunction"]


class MultiTokenAttentionFunction(torch_form.MultiTokenAttentionFunction):
    @staticmethod
    def forward(
        ctx: Any,
        scores: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        sparse: bool = False,
    ) -> torch.Tensor:
        check_npu_dtype("multi_token_attention", scores.dtype)
        return torch_form.MultiTokenAttentionFunction.forward(
            ctx, scores, weight, bias, stride, padding, dilation, groups, sparse
        )
