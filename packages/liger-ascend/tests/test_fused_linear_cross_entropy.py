"""The NPU fused linear cross-entropy: chunks sized from the cube cores of the
device profile, and a weight gradient accumulated without (V, H) temporaries."""

from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import liger_kernel.ops as public
from liger_conformance.mocks import npu as npu_mock
from liger_kernel_ascend.profile import ROWS_PER_CUBE_CORE

#: One cube core (a chunk of ROWS_PER_CUBE_CORE rows) keeps the walk small
#: while V x H stays far above a chunk's logits and its dW slices.
ONE_CUBE_CORE = replace(npu_mock.ASCEND_910B3, cube_core_num=1)
VOCAB, HIDDEN = 4096, 256


def test_chunk_rows_come_from_the_cube_cores():
    with npu_mock.active():
        from liger_kernel.dispatch import device_profile
        from liger_kernel_ascend.ops import fused_linear_cross_entropy as flce

        device = torch.device("cpu")
        profile = device_profile(device)
        cube_cores = npu_mock.ASCEND_910B3.cube_core_num
        assert profile.lm_head_min_rows == cube_cores * ROWS_PER_CUBE_CORE
        rows = flce.rows_per_chunk(8192, 4096, 128256, device)
        assert rows % 16 == 0
        # 2**24-element chunks held 130 rows at this vocabulary: a read-modify-write of dW every 130 tokens
        assert rows == cube_cores * ROWS_PER_CUBE_CORE >= 4 * ((1 << 24) // 128256)
        assert flce.rows_per_chunk(300, 4096, 128256, device) == 300


class AllocationLog(TorchDispatchMode):
    """Records the size and dtype of every tensor an aten op returns in new
    storage (views of, and writes into, existing tensors are not allocations)."""

    def __init__(self):
        super().__init__()
        self.outputs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        existing = {t.untyped_storage().data_ptr() for t in inputs}
        out = func(*args, **(kwargs or {}))
        for value in torch.utils._pytree.tree_leaves(out):
            if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() not in existing:
                self.outputs.append((value.numel(), value.dtype, str(func)))
        return out


def weight_sized_outputs(tokens):
    """Chunks walked, and the dtypes of the tensors of at least V x H elements
    made by one forward and backward over ``tokens`` bf16 rows."""
    generator = torch.Generator().manual_seed(tokens)
    x = torch.randn(tokens, HIDDEN, generator=generator).bfloat16().requires_grad_()
    w = (torch.randn(VOCAB, HIDDEN, generator=generator) * HIDDEN**-0.5).bfloat16().requires_grad_()
    target = torch.randint(0, VOCAB, (tokens,), generator=generator)
    with npu_mock.active(ONE_CUBE_CORE):
        from liger_kernel_ascend.ops import fused_linear_cross_entropy as flce

        rows = flce.rows_per_chunk(tokens, HIDDEN, VOCAB, torch.device("cpu"))
        assert rows * VOCAB < VOCAB * HIDDEN
        log = AllocationLog()
        with log:
            loss, *_ = public.LigerFusedLinearCrossEntropyFunction.apply(x, w, target)
            loss.backward()
    assert w.grad is not None and w.grad.dtype == torch.bfloat16
    return -(-tokens // rows), [(dtype, op) for numel, dtype, op in log.outputs if numel >= VOCAB * HIDDEN]


@pytest.mark.parametrize("chunks", [2, 4])
def test_no_weight_sized_temporary_per_chunk(chunks):
    """Only the dW accumulator (the weight's dtype: accum_dtype=None) and its
    scaling by grad_output in backward are weight-sized: a chunk adds its
    product in place."""
    walked, weight_sized = weight_sized_outputs(chunks * ROWS_PER_CUBE_CORE)
    assert walked == chunks
    assert sorted(str(dtype) for dtype, _ in weight_sized) == ["torch.bfloat16", "torch.bfloat16"], weight_sized
