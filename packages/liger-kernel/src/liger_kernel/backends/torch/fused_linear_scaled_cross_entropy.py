"""Fused linear scaled cross-entropy in pure PyTorch (math:
:mod:`liger_kernel.ops.fused_linear_scaled_cross_entropy`): the shared chunked
Function of :mod:`liger_kernel.vocab_shards` over the PyTorch shard passes."""

from __future__ import annotations

from liger_kernel.backends.torch.vocab_shards import TorchShardKernels
from liger_kernel.vocab_shards import fused_linear_scaled_ce_function

FusedLinearScaledCrossEntropyFunction = fused_linear_scaled_ce_function(
    TorchShardKernels(), "FusedLinearScaledCrossEntropyFunction"
)
