"""Vocab-parallel cross-entropy on Triton (math: :mod:`liger_kernel.ops.vocab_parallel_cross_entropy`):
the shared Function of :mod:`liger_kernel.vocab_shards` over the shard kernels of
:mod:`liger_kernel.triton.vocab_shards`. Forward reads the shard once and keeps one
lse per row; backward reads it again and writes the gradient, over the logits'
storage where the contract allows."""

from __future__ import annotations

from liger_kernel.triton.vocab_shards import TritonShardKernels
from liger_kernel.vocab_shards import vocab_parallel_ce_function

VocabParallelCEFunction = vocab_parallel_ce_function(TritonShardKernels(), "VocabParallelCEFunction")
