"""Multi-token attention on the NPU: the PyTorch form of
:mod:`liger_kernel.backends.torch.multi_token_attention` (math:
:mod:`liger_kernel.ops.multi_token_attention`), its convolutions torch_npu's.

bishengir, the NPU's Triton compiler, stops before memory planning on the
portable convolution kernel (``_mta_conv_kernel``: one masked gather of every
kernel tap of a column block), so no portable MTA kernel is launched here;
an NPU kernel taking one tap per step is not written yet.
"""

from __future__ import annotations

from liger_kernel.backends.torch.multi_token_attention import MultiTokenAttentionFunction

__all__ = ["MultiTokenAttentionFunction"]
