"""Vocab-parallel cross-entropy in pure PyTorch (math: :mod:`liger_kernel.ops.vocab_parallel_cross_entropy`):
the shared Function of :mod:`liger_kernel.vocab_shards` over the PyTorch shard passes."""

from __future__ import annotations

from liger_kernel.backends.torch.vocab_shards import TorchShardKernels
from liger_kernel.vocab_shards import vocab_parallel_ce_function

VocabParallelCEFunction = vocab_parallel_ce_function(TorchShardKernels(), "VocabParallelCEFunction")
