"""Memory stays bounded by the chunk: no tensor the size of the whole batch's logits ever exists.

A TorchDispatchMode sees every tensor each ATen op produces during forward and
backward (the chunks' local autograd graphs included) and records the largest.
The shapes make one chunk's logits the largest legitimate tensor (hidden << vocab,
so input, weight and their gradients are smaller).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from liger_kernel.chunked_loss import (
    LigerFusedLinearCosineSimilarityLoss,
    LigerFusedLinearCPOLoss,
    LigerFusedLinearDPOLoss,
    LigerFusedLinearGRPOLoss,
    LigerFusedLinearJSDLoss,
    LigerFusedLinearKTOLoss,
    LigerFusedLinearORPOLoss,
    LigerFusedLinearSimPOLoss,
)

SEQ, HIDDEN, VOCAB = 8, 4, 512


class LargestTensor(TorchDispatchMode):
    """Records the element count of the largest tensor any op returns while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel())
        return out


def hidden(rows: int, *shape: int) -> torch.Tensor:
    return torch.randn(rows, *shape, HIDDEN, requires_grad=True)


def lm_head() -> torch.Tensor:
    return (torch.randn(VOCAB, HIDDEN) * 0.1).requires_grad_(True)


def tokens(rows: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (rows, *shape))


def paired(module) -> Callable[[int], torch.Tensor]:
    def run(rows: int) -> torch.Tensor:
        return module(lm_head(), hidden(rows, SEQ), tokens(rows, SEQ))[0]

    return run


def dpo_with_reference(rows: int) -> torch.Tensor:
    loss_fn = LigerFusedLinearDPOLoss(chunk_size=1, use_ref_model=True)
    return loss_fn(lm_head(), hidden(rows, SEQ), tokens(rows, SEQ), None, hidden(rows, SEQ), lm_head())[0]


def kto(rows: int) -> torch.Tensor:
    loss_fn = LigerFusedLinearKTOLoss(chunk_size=2, use_ref_model=True)
    labels = torch.arange(rows) % 2 == 0
    return loss_fn(hidden(rows, SEQ), lm_head(), tokens(rows, SEQ), None, labels, hidden(rows, SEQ), lm_head())[0]


def grpo(rows: int) -> torch.Tensor:
    loss_fn = LigerFusedLinearGRPOLoss(chunk_size=2, beta=0.1)
    mask = torch.ones(rows, SEQ)
    return loss_fn(
        hidden(rows, SEQ), lm_head(), tokens(rows, SEQ), mask, torch.randn(rows),
        ref_input=hidden(rows, SEQ), ref_weight=lm_head(),
    )[0]  # fmt: skip


def distill(module) -> Callable[[int], torch.Tensor]:
    def run(rows: int) -> torch.Tensor:
        # rows here are tokens: SEQ of them per sequence, chunked 2 * SEQ at a time
        n = rows * SEQ
        return module(hidden(n), lm_head(), hidden(n), lm_head(), tokens(n))

    return run


# loss, rows per chunk (in sequences), batch sizes (in sequences)
CASES = {
    "dpo": (dpo_with_reference, 2),
    "orpo": (paired(LigerFusedLinearORPOLoss(chunk_size=1)), 2),
    "cpo": (paired(LigerFusedLinearCPOLoss(chunk_size=1)), 2),
    "simpo": (paired(LigerFusedLinearSimPOLoss(chunk_size=1)), 2),
    "kto": (kto, 2),
    "grpo": (grpo, 2),
    "jsd": (distill(LigerFusedLinearJSDLoss(chunk_size=2 * SEQ)), 2),
    "cosine": (distill(LigerFusedLinearCosineSimilarityLoss(chunk_size=2 * SEQ)), 2),
}


def largest_tensor(run: Callable[[int], torch.Tensor], rows: int) -> int:
    torch.manual_seed(0)
    with LargestTensor() as tracker:
        run(rows).backward()
    return tracker.largest


@pytest.mark.parametrize("name", CASES)
def test_largest_tensor_is_one_chunk_of_logits_whatever_the_batch(name):
    run, chunk_rows = CASES[name]
    chunk_logits = chunk_rows * SEQ * VOCAB
    small, large = largest_tensor(run, 8), largest_tensor(run, 16)
    assert small == large, f"the largest tensor grew with the batch: {small} -> {large} elements"
    assert large <= chunk_logits, f"a tensor of {large} elements exceeds one chunk's logits ({chunk_logits})"
    assert large < 16 * SEQ * VOCAB // 4


def test_largest_tensor_grows_with_the_chunk():
    def dpo(chunk_size: int) -> Callable[[int], torch.Tensor]:
        return paired(LigerFusedLinearDPOLoss(chunk_size=chunk_size, use_ref_model=False))

    one_pair, four_pairs = largest_tensor(dpo(1), 16), largest_tensor(dpo(4), 16)
    assert one_pair == 2 * SEQ * VOCAB
    assert four_pairs == 8 * SEQ * VOCAB


def test_the_tracker_sees_whole_batch_logits_when_they_exist():
    """Guards the measurement itself: a plain unchunked loss does trip it."""

    def unchunked(rows: int) -> torch.Tensor:
        logits = hidden(rows, SEQ) @ lm_head().t()
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens(rows, SEQ).flatten())

    assert largest_tensor(unchunked, 16) >= 16 * SEQ * VOCAB


class MatmulCount(TorchDispatchMode):
    """Counts the matrix products run while active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_evaluation_under_no_grad_runs_only_the_forward_products():
    torch.manual_seed(0)
    loss_fn = LigerFusedLinearSimPOLoss(chunk_size=1)
    x, w, target = hidden(8, SEQ), lm_head(), tokens(8, SEQ)
    with MatmulCount() as training:
        loss_fn(w, x, target)
    with torch.no_grad(), MatmulCount() as evaluation:
        loss_fn(w, x, target)
    # 4 chunks of one pair: the logits product each, plus dinput and dweight products when training
    assert evaluation.count == 4
    assert training.count == 12
