"""One rank of test_megatron's tensor-parallel loss check: Megatron's unfused
vocabulary-parallel cross-entropy against LigerMegatronCrossEntropy, over gloo."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist


def main(rank: int, world: int, store: str, label_smoothing: float) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel.cross_entropy import vocab_parallel_cross_entropy

    from liger_kernel.megatron import LigerMegatronCrossEntropy

    parallel_state.initialize_model_parallel(tensor_model_parallel_size=world)
    group = parallel_state.get_tensor_model_parallel_group()
    generator = torch.Generator().manual_seed(0)
    seq, batch, vocab = 6, 2, 40
    logits = torch.randn(seq, batch, vocab, generator=generator) * 2
    target = torch.randint(0, vocab, (seq, batch), generator=generator)
    shard = logits.chunk(world, dim=-1)[rank].contiguous()
    ours_in, ref_in = shard.clone().requires_grad_(), shard.clone().requires_grad_()
    ours = LigerMegatronCrossEntropy(label_smoothing=label_smoothing)(ours_in, target, tp_group=group)
    expected = vocab_parallel_cross_entropy(ref_in * 1.0, target, label_smoothing)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    dloss = torch.rand(seq, batch, generator=generator)
    ours.backward(dloss), expected.backward(dloss)
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-5, atol=1e-6)
    parallel_state.destroy_model_parallel()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
