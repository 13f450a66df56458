"""The vocabulary-sharded losses across a real process group: two CPU processes
(torch.multiprocessing spawn, gloo), each holding one half of the vocabulary,
against the unsharded losses computed from the contracts' formulas, all in float64
(so that the tolerance is tight).

Covers the all-reduces of liger_kernel.vocab_shards (max, then sum-exp, target
logit, logit sum and entropy sums) for the vocab-parallel cross-entropy (both
label-smoothing formulas, both averaging modes) and the tensor-parallel fused
linear scaled cross-entropy (NLL, entropy, the group-summed input gradient and
each rank's weight-shard gradient), on the torch backend and on the portable
Triton kernels under the CUDA mock (interpreter).
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
SEQ, BATCH, VOCAB = 3, 2, 14  # each rank holds 7 classes
TOKENS, HIDDEN = 6, 8
IGNORE = -100


def _targets(rows: int) -> torch.Tensor:
    target = torch.arange(rows) * 5 % VOCAB  # targets on both shards
    target[1] = IGNORE
    return target


def _close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(got.double(), want, rtol=1e-9, atol=1e-10, msg=lambda m: f"{what}: {m}")


def _smoothed_reference(logits, target, alpha, formula, mode, rank):
    """Every rank's loss from the full float64 logits (the contract's formula)."""
    shard = VOCAB // WORLD
    classes = VOCAB if mode == "global" else shard
    a = alpha if formula == "pytorch" else alpha * classes / (classes - 1)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    averaged = logp if mode == "global" else logp[..., rank * shard : (rank + 1) * shard]
    loss = (1 - a) * nll - a * averaged.mean(dim=-1) if alpha else nll
    return torch.where(target == IGNORE, 0.0, loss)


def _vocab_parallel(rank: int) -> None:
    from liger_kernel.transformers import LigerVocabParallelCrossEntropy

    gen = torch.Generator().manual_seed(0)
    full = torch.randn(SEQ, BATCH, VOCAB, generator=gen, dtype=torch.float64) * 3
    target = _targets(SEQ * BATCH).view(SEQ, BATCH)
    cotangent = torch.randn(SEQ, BATCH, generator=gen, dtype=torch.float64)
    shard = VOCAB // WORLD
    columns = slice(rank * shard, (rank + 1) * shard)
    for alpha, formula, mode in [(0.0, "pytorch", "global"), (0.1, "pytorch", "global"), (0.2, "megatron", "global"),
                                 (0.1, "pytorch", "partition"), (0.2, "megatron", "partition")]:  # fmt: skip
        what = f"rank {rank}, smoothing {alpha} {formula}/{mode}"
        ce = LigerVocabParallelCrossEntropy(label_smoothing=alpha, label_smoothing_formula=formula,
                                            label_smoothing_mode=mode)  # fmt: skip
        leaf = full[..., columns].clone().requires_grad_()
        loss = ce(leaf * 1.0, target, tp_group=dist.group.WORLD)
        assert loss.shape == (SEQ, BATCH) and loss.dtype == torch.float64
        loss.backward(cotangent)
        reference_logits = full.clone().requires_grad_()
        want = _smoothed_reference(reference_logits, target, alpha, formula, mode, rank)
        _close(loss.detach(), want.detach(), f"{what}: loss")
        (grad,) = torch.autograd.grad(want, reference_logits, cotangent)
        _close(leaf.grad, grad[..., columns], f"{what}: gradient of the shard")
        if (formula, mode) == ("pytorch", "global"):
            stock = torch.nn.functional.cross_entropy(
                full.reshape(-1, VOCAB), target.reshape(-1), ignore_index=IGNORE, reduction="none",
                label_smoothing=alpha,
            )  # fmt: skip
            _close(loss.detach().reshape(-1), stock, f"{what}: against torch's cross_entropy")


def _scaled_tp(rank: int) -> None:
    from liger_kernel.transformers.functional import liger_fused_linear_scaled_cross_entropy_tp

    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(TOKENS, HIDDEN, generator=gen, dtype=torch.float64)
    weight = torch.randn(VOCAB, HIDDEN, generator=gen, dtype=torch.float64)
    target = _targets(TOKENS)
    g_nll, g_entropy = torch.randn(2, TOKENS, generator=gen, dtype=torch.float64)
    temperature = 0.7
    shard = VOCAB // WORLD
    rows = slice(rank * shard, (rank + 1) * shard)

    x = hidden.clone().requires_grad_()
    w = weight[rows].clone().requires_grad_()
    nll, entropy = liger_fused_linear_scaled_cross_entropy_tp(
        x, w, target, None, temperature=temperature, return_entropy=True
    )
    assert nll.dtype == entropy.dtype == torch.float64
    torch.autograd.backward((nll, entropy), (g_nll, g_entropy))

    ref_x, ref_w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    logp = torch.log_softmax(ref_x @ ref_w.t() / temperature, dim=-1)
    kept = target != IGNORE
    ref_nll = torch.where(kept, -logp.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1), 0.0)
    ref_entropy = torch.where(kept, -(logp.exp() * logp).sum(dim=1), 0.0)
    what = f"rank {rank}, scaled TP"
    _close(nll.detach(), ref_nll.detach(), f"{what}: nll")
    _close(entropy.detach(), ref_entropy.detach(), f"{what}: entropy")
    dx, dw = torch.autograd.grad((ref_nll, ref_entropy), (ref_x, ref_w), (g_nll, g_entropy))
    _close(x.grad, dx, f"{what}: input gradient (summed over the group)")
    _close(w.grad, dw[rows], f"{what}: gradient of the weight shard")
    nll_only = liger_fused_linear_scaled_cross_entropy_tp(x.detach(), w.detach(), target, dist.group.WORLD, temperature)
    _close(nll_only, ref_nll.detach(), f"{what}: nll alone")


def _worker(rank: int, init_file: str, backend: str) -> None:
    import contextlib

    mock = contextlib.nullcontext()
    if backend == "cuda":
        os.environ["TRITON_INTERPRET"] = "1"
        from liger_conformance.mocks import cuda, prepare_interpreter

        prepare_interpreter()
        mock = cuda.active()
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        with mock:
            import liger_kernel
            from liger_kernel.ops import LigerVocabParallelCEFunction

            liger_kernel.set_backend(backend)
            route = LigerVocabParallelCEFunction.route("cpu")
            assert route.__module__.startswith("liger_kernel.triton" if backend == "cuda" else "liger_kernel.backends")
            _vocab_parallel(rank)
            _scaled_tp(rank)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("backend", ["torch", "cuda"])
def test_two_shards_match_the_unsharded_loss(backend):
    with tempfile.TemporaryDirectory() as directory:
        mp.spawn(_worker, args=(os.path.join(directory, "store"), backend), nprocs=WORLD, join=True)


def test_tensor_parallel_call_needs_an_initialized_group():
    from liger_kernel.ops import LigerFusedLinearScaledCrossEntropyTPFunction

    assert not dist.is_initialized()
    x, w = torch.randn(2, 4), torch.randn(6, 4)
    with pytest.raises(RuntimeError, match="init_process_group"):
        LigerFusedLinearScaledCrossEntropyTPFunction.apply(x, w, torch.tensor([0, 1]), None)
    with pytest.raises(ValueError, match="tiles_per_reduce"):
        LigerFusedLinearScaledCrossEntropyTPFunction.apply(x, w, torch.tensor([0, 1]), None, 1.0, -100, 3)
