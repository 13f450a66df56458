"""Qwen2-VL multimodal rotary position embedding (M-RoPE) on the NPU: the
portable kernel of :mod:`liger_kernel.triton.qwen2vl_mrope`, unchanged
(math in :mod:`liger_kernel.ops.qwen2vl_mrope`).

It already meets the NPU's constraints, so it needs no variant of its own:
its grid is ``profile.grid(tokens)``, one program per vector core here (never
above 65535, however long the sequence), each looping over its tokens; its
(heads x head_dim / 2) tiles are capped by ``profile.max_block``, which the NPU
profile sizes to the unified buffer less its safety margin. Under the strict
NPU mock, forward plus backward of (28 or 64 heads, head_dim 128) and
(128 heads, head_dim 256) in bf16 and fp32 peak at about 50 KiB of live
floating-point values, a quarter of the 192 KiB UB, which leaves room for the
compiler's double-buffered DMA tiles. Correctness does not depend on the
num_warps and num_stages hints it passes (the NPU compiler may ignore them).
Importing it through this package runs the environment checks of
:mod:`liger_kernel_ascend.safety` first.
"""

from liger_kernel.triton.qwen2vl_mrope import Qwen2VLMRopeFunction

__all__ = ["Qwen2VLMRopeFunction"]
