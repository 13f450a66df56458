"""The torch-level parts of the losses over a vocabulary shard, shared by every backend.

The math is the contracts' (:mod:`liger_kernel.ops.vocab_parallel_cross_entropy`,
:mod:`liger_kernel.ops.fused_linear_scaled_cross_entropy`). Both ops reduce
rows of logits z = scale * x, whose vocabulary may be split over a
tensor-parallel group, to a few per-row statistics, combine those across the
group with two all-reduces, and get their gradient from one more pass over
the rows. A backend supplies the two passes (:class:`ShardKernels`); the
all-reduces, the per-row math and the autograd Functions are written once
here (:func:`vocab_parallel_ce_function`,
:func:`fused_linear_scaled_ce_function`). Nothing here imports triton.

Statistics of one row of a shard (the columns of :data:`STATS`), for the
shard's columns j and the target t (a global index, in the shard or not):
    MAX       m = max_j z_j
    SUM_EXP   sum_j exp(z_j - m)
    TARGET    z_t if the shard holds t, else 0
    SUM       sum_j z_j                       (label smoothing)
    SHIFTED   sum_j exp(z_j - m) * (z_j - m)  (entropy; shifted by m, so that a
              small entropy is not the difference of two large numbers)
A row whose target is ``ignore_index`` is not read: (0, 1, 0, 0, 0). A target
outside [0, classes) that is not ignored makes its row's TARGET NaN.

The gradient pass writes, for row coefficients (lse, A, E, U, T_c):
    dx_j = scale * (p_j * (A - E * z_j) - U - T_c * [j == t]),   p_j = exp(z_j - lse)
and zeros on ignored rows (not read). Cross-entropy with smoothing is
(A, E, U, T_c) = g * (1, 0, a / K, 1 - a); the scaled loss's NLL, entropy H and
selected log-probabilities are A = g_nll + g_H * (lse - H) - sum_k g_k, E = g_H,
U = 0, T_c = g_nll, plus g_k at each selected column (added by the Function).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.distributed as dist

from liger_kernel.losses import accumulate_weight_grad
from liger_kernel.ops._contract import mark_overwritten, overwritable
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.ops.vocab_parallel_cross_entropy import smoothing_weights

#: the statistics' columns, in order (see the module docstring)
STATS = ("MAX", "SUM_EXP", "TARGET", "SUM", "SHIFTED")
MAX, SUM_EXP, TARGET, SUM, SHIFTED = range(len(STATS))
#: the gradient pass's row coefficients, in order (see the module docstring)
COEFFICIENTS = ("LSE", "A", "E", "U", "T_C")


class ShardKernels(Protocol):
    """A backend's two passes over the rows of a shard of logits (2-D, unit column stride)."""

    def stats(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        vocab_start: int,
        classes: int,
        ignore_index: int,
        scale: float,
        out: torch.Tensor,
        want_sum: bool,
        want_entropy: bool,
    ) -> None:
        """Write the rows' statistics into ``out`` (rows, 5), in its dtype; SUM
        and SHIFTED only when asked (else anything)."""

    def grad(
        self,
        logits: torch.Tensor,
        out: torch.Tensor,
        target: torch.Tensor,
        vocab_start: int,
        ignore_index: int,
        scale: float,
        coefficients: torch.Tensor,
    ) -> None:
        """Write dx (the module docstring) into ``out``, which may be ``logits`` itself."""

    def chunk_rows(self, n_rows: int, hidden: int, vocab: int, device: torch.device) -> int:
        """Rows of one chunk of logits in the fused linear loss."""


def statistics_dtype(dtype: torch.dtype) -> torch.dtype:
    """What the statistics and per-row results are kept in: float32, float64 for float64 logits."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def group_info(tp_group: Any) -> tuple[Any, int, int]:
    """(group, rank, world size); (None, 0, 1) for None or a group of one rank (no communication)."""
    if tp_group is None or tp_group.size() == 1:
        return None, 0, 1
    return tp_group, dist.get_rank(tp_group), dist.get_world_size(tp_group)


class Combined:
    """Per-row results over the whole vocabulary, from every shard's statistics."""

    def __init__(self, stats: torch.Tensor, group: Any) -> None:
        row_max = stats[:, MAX].clone()
        if group is not None:
            dist.all_reduce(row_max, op=dist.ReduceOp.MAX, group=group)
        shift = stats[:, MAX] - row_max
        rescale = torch.exp(shift)
        # each shard's sum of exp(z - M) * (z - M), from its own shifted by m
        shifted = rescale * (stats[:, SHIFTED] + shift * stats[:, SUM_EXP])
        sums = torch.stack((stats[:, SUM_EXP] * rescale, stats[:, TARGET], stats[:, SUM], shifted), dim=1)
        if group is not None:
            dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=group)
        sum_exp = sums[:, 0]
        self.lse = row_max + torch.log(sum_exp)
        self.target_logit = sums[:, 1]
        self.logit_sum = sums[:, 2]
        #: H = lse - E_p[z] = log(sum_exp) - E_p[z - M]
        self.entropy = torch.log(sum_exp) - sums[:, 3] / sum_exp


def _coefficients(lse: torch.Tensor, a: Any, e: Any, u: Any, t_c: Any) -> torch.Tensor:
    columns = [c if isinstance(c, torch.Tensor) else torch.full_like(lse, c) for c in (lse, a, e, u, t_c)]
    return torch.stack(columns, dim=1).contiguous()


def _row_grad(grad: torch.Tensor | None, rows: int, kept: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A per-row incoming gradient in ``dtype``, 0 on ignored rows (and where none came)."""
    if grad is None:
        return torch.zeros(rows, dtype=dtype, device=kept.device)
    return torch.where(kept, grad.reshape(rows).to(dtype), 0.0)


def _function(kernels: ShardKernels, name: str, forward: Any, backward: Any) -> type[torch.autograd.Function]:
    """An autograd Function named for the backend whose ``kernels`` it runs."""
    namespace = {
        "forward": staticmethod(forward),
        "backward": staticmethod(backward),
        "__module__": type(kernels).__module__,
        "__qualname__": name,
    }
    return type(name, (torch.autograd.Function,), namespace)


def vocab_parallel_ce_function(kernels: ShardKernels, name: str) -> type[torch.autograd.Function]:
    """The vocab-parallel cross-entropy Function of a backend over its ``kernels``."""

    def forward(
        ctx: Any,
        vocab_parallel_logits: torch.Tensor,
        target: torch.Tensor,
        tp_group: Any,
        ignore_index: int,
        label_smoothing: float,
        label_smoothing_formula: str,
        label_smoothing_mode: str,
    ) -> torch.Tensor:
        # no defaults: the contract's (0.8.5's) signature has none, and backends take the contract's
        logits = vocab_parallel_logits
        group, rank, world = group_info(tp_group)
        seq, batch, shard = logits.shape
        rows = logits.reshape(seq * batch, shard)
        if rows.stride(1) != 1 and shard != 1:
            rows = rows.contiguous()
        flat_target = target.reshape(-1)
        dtype = statistics_dtype(logits.dtype)
        smoothing = label_smoothing > 0
        stats = torch.empty(rows.shape[0], len(STATS), dtype=dtype, device=logits.device)
        kernels.stats(rows, flat_target, rank * shard, shard * world, ignore_index, 1.0, stats, smoothing, False)
        combined = Combined(stats, group)
        classes = shard * world if label_smoothing_mode == "global" else shard
        alpha, per_class = smoothing_weights(label_smoothing, label_smoothing_formula, classes)
        loss = combined.lse - combined.target_logit
        if smoothing:
            logit_sum = combined.logit_sum if label_smoothing_mode == "global" else stats[:, SUM]
            loss = (1 - alpha) * loss + alpha * (combined.lse - logit_sum / classes)
        kept = flat_target != ignore_index
        loss = torch.where(kept, loss, 0.0)
        if ctx.needs_input_grad[0] and bool(ctx.next_functions):
            # a reshape that copied is ours to overwrite
            ctx.overwrite = rows.data_ptr() != logits.data_ptr() or overwritable(ctx, logits)
            ctx.save_for_backward(rows, flat_target, combined.lse)
            ctx.options = (rank * shard, ignore_index, alpha, per_class, logits.shape)
        return loss.reshape(seq, batch).to(loss_dtype(logits.dtype))

    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        rows, flat_target, lse = ctx.saved_tensors
        vocab_start, ignore_index, alpha, per_class, shape = ctx.options
        g = _row_grad(grad_loss, rows.shape[0], flat_target != ignore_index, lse.dtype)
        coefficients = _coefficients(lse, g, 0.0, g * per_class, g * (1 - alpha))
        grad = rows if ctx.overwrite else torch.empty_like(rows)
        kernels.grad(rows, grad, flat_target, vocab_start, ignore_index, 1.0, coefficients)
        if grad is rows:
            mark_overwritten(rows)
        return (grad.view(shape), *([None] * 6))

    return _function(kernels, name, forward, backward)


def fused_linear_scaled_ce_function(kernels: ShardKernels, name: str) -> type[torch.autograd.Function]:
    """The fused linear scaled cross-entropy Function of a backend over its ``kernels``.

    Walks the tokens in chunks of ``kernels.chunk_rows`` rows: each chunk's
    logits x_c @ weight.T are formed by one GEMM in the input dtype into one
    reused buffer. Forward keeps the statistics of every row and combines them
    across the group once (two all-reduces per call, not per chunk); backward
    forms each chunk's logits again, writes dlogits over them and adds their
    share to dinput and dweight (dweight accumulated in the weight's dtype, as
    the fused linear cross-entropy's default), then sums dinput over the group."""

    def logits_of(buffer: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        logits = buffer[: x.shape[0]]
        torch.mm(x, weight.t(), out=logits)
        return logits

    def forward(
        ctx: Any,
        _input: torch.Tensor,
        weight: torch.Tensor,
        target: torch.Tensor,
        temperature: float = 1.0,
        ignore_index: int = -100,
        m_tiles_per_cluster: int = 1,
        return_entropy: bool = False,
        selected_token_ids: torch.Tensor | None = None,
        tp_group: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        ctx.set_materialize_grads(False)
        x = _input
        group, rank, world = group_info(tp_group)
        n_rows, hidden = x.shape
        shard = weight.shape[0]
        scale = 1.0 / temperature
        dtype = statistics_dtype(x.dtype)
        stats = torch.empty(n_rows, len(STATS), dtype=dtype, device=x.device)
        selected_logits = None
        if selected_token_ids is not None:
            selected_logits = torch.empty(n_rows, selected_token_ids.numel(), dtype=dtype, device=x.device)
        step = kernels.chunk_rows(n_rows, hidden, shard, x.device)
        buffer = torch.empty(min(step, max(n_rows, 1)), shard, dtype=x.dtype, device=x.device)
        for start in range(0, n_rows, step):
            rows = slice(start, min(start + step, n_rows))
            logits = logits_of(buffer, x[rows], weight)
            kernels.stats(
                logits, target[rows], rank * shard, shard * world, ignore_index, scale, stats[rows], False,
                return_entropy,
            )  # fmt: skip
            if selected_logits is not None:
                selected_logits[rows] = logits.index_select(1, selected_token_ids).to(dtype) * scale
        del buffer
        combined = Combined(stats, group)
        kept = target != ignore_index
        nll = torch.where(kept, combined.lse - combined.target_logit, 0.0)
        entropy = torch.where(kept, combined.entropy, 0.0) if return_entropy else None
        selected = None
        if selected_logits is not None:
            selected = torch.where(kept.unsqueeze(1), selected_logits - combined.lse.unsqueeze(1), 0.0)
        out_dtype = loss_dtype(x.dtype)
        ctx.save_for_backward(x, weight, target, selected_token_ids, combined.lse, combined.entropy)
        ctx.options = (scale, ignore_index, rank * shard, group, step)
        return (
            nll.to(out_dtype),
            entropy.to(out_dtype) if entropy is not None else None,
            selected.to(torch.float32) if selected is not None else None,
        )

    def backward(ctx: Any, grad_nll: Any, grad_entropy: Any = None, grad_selected: Any = None) -> tuple[Any, ...]:
        x, weight, target, selected_token_ids, lse, entropy = ctx.saved_tensors
        scale, ignore_index, vocab_start, group, step = ctx.options
        n_rows = x.shape[0]
        kept = target != ignore_index
        g_nll = _row_grad(grad_nll, n_rows, kept, lse.dtype)
        g_entropy = _row_grad(grad_entropy, n_rows, kept, lse.dtype)
        a = g_nll + g_entropy * (lse - entropy)
        g_selected = None
        if selected_token_ids is not None and grad_selected is not None:
            g_selected = torch.where(kept.unsqueeze(1), grad_selected.to(lse.dtype), 0.0)
            a = a - g_selected.sum(dim=1)
        coefficients = _coefficients(lse, a, g_entropy, 0.0, g_nll)
        want_input, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_input = torch.empty_like(x) if want_input else None
        grad_weight = torch.zeros_like(weight) if want_weight else None
        buffer = torch.empty(min(step, max(n_rows, 1)), weight.shape[0], dtype=x.dtype, device=x.device)
        slice_rows = max(1, step * weight.shape[0] // max(x.shape[1], 1))
        for index, start in enumerate(range(0, n_rows, step)):
            rows = slice(start, min(start + step, n_rows))
            logits = logits_of(buffer, x[rows], weight)
            kernels.grad(logits, logits, target[rows], vocab_start, ignore_index, scale, coefficients[rows])
            if g_selected is not None:
                logits.index_add_(1, selected_token_ids, (g_selected[rows] * scale).to(logits.dtype))
            if grad_input is not None:
                torch.mm(logits, weight, out=grad_input[rows])
            if grad_weight is not None:
                accumulate_weight_grad(grad_weight, logits, x[rows], index == 0, slice_rows)
        if grad_input is not None and group is not None:
            dist.all_reduce(grad_input, op=dist.ReduceOp.SUM, group=group)
        return (grad_input, grad_weight, *([None] * 8))

    return _function(kernels, name, forward, backward)
