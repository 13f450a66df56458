"""Fused linear scaled cross-entropy on Triton (math:
:mod:`liger_kernel.ops.fused_linear_scaled_cross_entropy`): the GEMMs in torch,
the vocabulary passes in the shard kernels of :mod:`liger_kernel.triton.vocab_shards`,
walked in token chunks sized by the device profile (``lm_head_chunk_ratio``, as the
fused linear cross-entropy), by the shared Function of :mod:`liger_kernel.vocab_shards`.

Memory: one chunk of logits in the input dtype (dlogits are written over it in
backward), dinput, and dweight in the weight's dtype; no (V, H) temporary.
Forward forms each chunk's logits once, backward once more (the per-token
incoming gradients are known only there)."""

from __future__ import annotations

from liger_kernel.triton.vocab_shards import TritonShardKernels
from liger_kernel.vocab_shards import fused_linear_scaled_ce_function

FusedLinearScaledCrossEntropyFunction = fused_linear_scaled_ce_function(
    TritonShardKernels(), "FusedLinearScaledCrossEntropyFunction"
)
