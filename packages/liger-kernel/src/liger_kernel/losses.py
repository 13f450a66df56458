"""The torch-level parts of the vocabulary losses, shared by every backend.

The math is the contracts' (:mod:`liger_kernel.ops.cross_entropy`,
:mod:`liger_kernel.ops.fused_linear_cross_entropy`, :mod:`liger_kernel.ops.jsd`);
this module holds what an implementation does around its row kernel, written
once for the torch backend, the portable Triton kernels and vendor backends
(liger-ascend imports it). Nothing here imports triton.

Reductions, without a host synchronization:

``loss_divisors(target, class_weight, ignore_index, reduction, dtype)``
    (D_ce, D_z) of the cross-entropy's "mean" as a (2,) tensor (ones otherwise).
``kept_divisor(shift_labels, ignore_index, n_rows, dtype, device)``
    The kept-row count of the JSD family as a 0-d tensor, 1 when none is kept.
``reduce_rows(rows, reduction)``
    Per-row values, already divided by the divisors, reduced as asked.
``token_accuracy(predicted, target, ignore_index)``
    The contract's token accuracy.

The fused linear cross-entropy's walk over chunks of tokens:

``walk_linear_chunks(x, weight, bias, target, row_loss, ...)``
    The one chunk walker. A backend gives it its row-loss kernel (a
    :class:`RowLoss`) and how many rows a chunk holds; it forms each chunk's
    logits, lets the kernel write the loss rows and dlogits over them, and
    accumulates dinput, dweight and dbias without any (V, H) temporary.
``chunk_rows(n_rows, hidden, vocab, ratio, row_multiple, min_rows)``
    The chunk rule the Triton backends size from their device profile.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Protocol

import torch


def loss_divisors(
    target: torch.Tensor,
    class_weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(D_ce, D_z) as a (2,) tensor of ``dtype`` on target's device.

    "mean": D_ce = sum of class_weight[t] over kept rows (their count without a
    weight), D_z = the kept-row count, each 1 where it would be 0 (the mean of
    nothing is 0). "sum" and "none": ones."""
    if reduction != "mean":
        return torch.ones(2, dtype=dtype, device=target.device)
    kept = target != ignore_index
    kept_count = kept.sum(dtype=dtype)
    if class_weight is None:
        ce_divisor = kept_count
    else:
        ce_divisor = (class_weight.to(dtype)[torch.where(kept, target, 0)] * kept).sum()
    divisors = torch.stack((ce_divisor, kept_count))
    return torch.where(divisors == 0, 1.0, divisors)


def kept_divisor(
    shift_labels: torch.Tensor | None, ignore_index: int, n_rows: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The rows a JSD-family mean divides by, as a 0-d tensor of ``dtype``:
    every row without labels, else those not ignored; 1 where it would be 0."""
    if shift_labels is None:
        return torch.tensor(float(max(n_rows, 1)), dtype=dtype, device=device)
    return (shift_labels != ignore_index).sum(dtype=dtype).clamp_(min=1.0)


def reduce_rows(rows: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-row values already divided by the reduction's divisors: kept for
    "none", summed otherwise."""
    return rows if reduction == "none" else rows.sum()


def token_accuracy(predicted: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Fraction of kept rows whose argmax is the target, a float32 scalar; 0 with no kept row."""
    kept = target != ignore_index
    hits = ((predicted == target) & kept).sum(dtype=torch.float32)
    return hits / kept.sum(dtype=torch.float32).clamp(min=1.0)


# --------------------------------------------------------------------------- the chunk walker


class RowLoss(Protocol):
    """A backend's cross-entropy over the rows of one chunk of logits.

    Writes into ``loss`` each row's loss already divided by the reduction's
    divisors (and times the token scale when that option is on), into ``z`` its
    z-loss and into ``predicted`` its argmax when they are given (0, 0 and -1
    on ignored rows); with ``write_grad`` it overwrites ``logits`` with
    dloss/dlogits. The class weights, divisors and options are the kernel's
    own (bound when the backend builds it)."""

    def __call__(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        loss: torch.Tensor,
        z: torch.Tensor | None,
        predicted: torch.Tensor | None,
        write_grad: bool,
    ) -> None: ...


class LinearGrads(NamedTuple):
    dinput: torch.Tensor | None
    dweight: torch.Tensor | None
    dbias: torch.Tensor | None


#: Chunk rows are rounded down to a multiple of this by default (a GEMM tile).
CHUNK_ROW_MULTIPLE = 64


def chunk_rows(
    n_rows: int,
    hidden: int,
    vocab: int,
    ratio: int,
    row_multiple: int = CHUNK_ROW_MULTIPLE,
    min_rows: int | None = None,
) -> int:
    """Rows per chunk: the chunk's logits (rows x vocab) hold at most ``ratio``
    x (n_rows x hidden) elements, rounded down to a multiple of ``row_multiple``,
    at least ``min_rows`` (default one multiple), at most n_rows. E.g.
    (8192, 4096, 128256) at ratio 2 -> 512 rows: 125 MiB of bf16 logits."""
    rows = ratio * n_rows * hidden // max(vocab, 1) // row_multiple * row_multiple
    fewest = row_multiple if min_rows is None else min_rows
    return max(1, min(n_rows, max(rows, fewest)))


def stream_capturing(device: torch.device) -> bool:
    """Whether the current stream of ``device`` is being captured into a graph
    (``torch.cuda``'s probe, or the same one of another device module)."""
    probe = getattr(getattr(torch, device.type, None), "is_current_stream_capturing", None)
    return bool(probe()) if probe is not None else False


def kept_rows(target: torch.Tensor, ignore_index: int) -> torch.Tensor | None:
    """Indices of the rows whose target is not ignored, or None when every row
    is kept or a graph capture forbids counting them (the count is a host
    synchronization, and the GEMM sizes depend on it)."""
    if stream_capturing(target.device):
        return None
    rows = torch.nonzero(target != ignore_index).squeeze(1)
    return None if rows.numel() == target.shape[0] else rows


def _take(values: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """The selected rows: a view for a slice, a copy for an index tensor."""
    return values[rows] if isinstance(rows, slice) else values.index_select(0, rows)


def _put(values: torch.Tensor, rows: slice | torch.Tensor, chunk: torch.Tensor) -> None:
    """Write back what _take gave (a slice's view already is values itself)."""
    if not isinstance(rows, slice):
        values.index_copy_(0, rows, chunk)


#: Device types whose GEMM can add a half-precision product into a float32
#: accumulator itself (``torch.addmm(..., out_dtype=torch.float32)``); learnt
#: on first use, as torch implements that overload for some devices only.
_WIDE_GEMM: dict[str, bool] = {}


def _wide_addmm(grad_weight: torch.Tensor, dlogits: torch.Tensor, input_chunk: torch.Tensor) -> bool:
    """grad_weight += dlogits.T @ input_chunk by one GEMM with a wider output, if the device has it."""
    device_type = grad_weight.device.type
    if _WIDE_GEMM.get(device_type, True):
        try:
            torch.addmm(grad_weight, dlogits.t(), input_chunk, out_dtype=grad_weight.dtype, out=grad_weight)
        except torch.OutOfMemoryError:
            raise
        except (NotImplementedError, RuntimeError, TypeError):
            _WIDE_GEMM[device_type] = False
            return False
        _WIDE_GEMM[device_type] = True
        return True
    return False


def accumulate_weight_grad(
    grad_weight: torch.Tensor, dlogits: torch.Tensor, input_chunk: torch.Tensor, first: bool, slice_rows: int
) -> None:
    """grad_weight (+)= dlogits.T @ input_chunk, with no (V, H) temporary.

    In the GEMM's dtype the GEMM accumulates straight into grad_weight; so it
    does into a float32 accumulator of half-precision operands where the
    device's GEMM takes a wider output. Elsewhere the product is formed
    ``slice_rows`` vocabulary rows at a time (a temporary no larger than the
    chunk's logits) and added in the accumulator's dtype."""
    if grad_weight.dtype == dlogits.dtype:
        if first:
            torch.mm(dlogits.t(), input_chunk, out=grad_weight)
        else:
            grad_weight.addmm_(dlogits.t(), input_chunk)
        return
    if first:
        grad_weight.zero_()
    if grad_weight.dtype == torch.float32 and _wide_addmm(grad_weight, dlogits, input_chunk):
        return
    for start in range(0, grad_weight.shape[0], slice_rows):
        grad_weight[start : start + slice_rows].add_(torch.mm(dlogits[:, start : start + slice_rows].t(), input_chunk))


def walk_linear_chunks(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    row_loss: RowLoss,
    *,
    rows_per_chunk: int,
    ignore_index: int,
    want_grads: tuple[bool, bool, bool],
    accum_dtype: torch.dtype,
    loss_rows: torch.Tensor,
    z_rows: torch.Tensor | None = None,
    predicted: torch.Tensor | None = None,
    row_scale: torch.Tensor | None = None,
    logits_dtype: torch.dtype | None = None,
    skip_ignored: bool = True,
) -> LinearGrads:
    """One walk over the token chunks of ``x @ weight.T + bias``.

    ``x``, ``weight`` and ``bias`` come in the GEMM dtype. Per-row outputs go
    into ``loss_rows`` (and ``z_rows`` / ``predicted``); the requested
    (dinput, dweight, dbias) come back, dweight and dbias in ``accum_dtype``,
    each row's gradient times ``row_scale`` when given. One chunk of logits in
    ``logits_dtype`` (default: the GEMM dtype) is allocated once and reused.

    With ``skip_ignored`` the rows whose target is ignored (loss 0, predicted
    -1, zero gradient) are left out of the GEMMs: only the kept rows are
    chunked, gathered a chunk at a time and their results scattered back. It
    costs one host synchronization per walk (see :func:`kept_rows`)."""
    n_rows, hidden = x.shape
    vocab = weight.shape[0]
    want_input, want_weight, want_bias = want_grads
    write_grad = any(want_grads)
    logits_dtype = logits_dtype or x.dtype
    kept = kept_rows(target, ignore_index) if skip_ignored else None
    if kept is None:
        n_kept = n_rows
        selections = [slice(start, min(start + rows_per_chunk, n_rows)) for start in range(0, n_rows, rows_per_chunk)]
    else:
        n_kept = kept.numel()
        selections = [kept[start : start + rows_per_chunk] for start in range(0, n_kept, rows_per_chunk)]
        loss_rows.zero_()
        for rows, fill in ((z_rows, 0), (predicted, -1)):
            if rows is not None:
                rows.fill_(fill)
    grad_input = None
    if want_input:
        grad_input = torch.empty_like(x) if kept is None else torch.zeros_like(x)
    # The first chunk overwrites grad_weight, so only a walk without chunks needs zeros.
    allocate = torch.empty if n_kept > 0 else torch.zeros
    grad_weight = allocate(weight.shape, dtype=accum_dtype, device=x.device) if want_weight else None
    grad_bias = torch.zeros(vocab, dtype=accum_dtype, device=x.device) if want_bias else None
    logits_buffer = torch.empty(min(rows_per_chunk, max(n_kept, 1)), vocab, dtype=logits_dtype, device=x.device)
    slice_rows = max(1, rows_per_chunk * vocab // max(hidden, 1))
    for index, rows in enumerate(selections):
        input_chunk = _take(x, rows)
        logits = logits_buffer[: input_chunk.shape[0]]
        if logits_dtype == x.dtype:
            if bias is None:
                torch.mm(input_chunk, weight.t(), out=logits)
            else:
                torch.addmm(bias, input_chunk, weight.t(), out=logits)
        else:
            logits.copy_(input_chunk @ weight.t() if bias is None else torch.addmm(bias, input_chunk, weight.t()))
        loss_chunk = _take(loss_rows, rows)
        z_chunk = _take(z_rows, rows) if z_rows is not None else None
        predicted_chunk = _take(predicted, rows) if predicted is not None else None
        row_loss(logits, _take(target, rows), loss_chunk, z_chunk, predicted_chunk, write_grad)
        for values, chunk in ((loss_rows, loss_chunk), (z_rows, z_chunk), (predicted, predicted_chunk)):
            if values is not None:
                _put(values, rows, chunk)
        if not write_grad:
            continue
        if row_scale is not None:
            logits.mul_(_take(row_scale, rows).to(logits.dtype).unsqueeze(1))
        if grad_bias is not None:
            grad_bias += logits.sum(dim=0, dtype=accum_dtype)
        dlogits = logits if logits.dtype == x.dtype else logits.to(x.dtype)
        if grad_weight is not None:
            accumulate_weight_grad(grad_weight, dlogits, input_chunk, index == 0, slice_rows)
        if grad_input is not None:
            # a gathered input chunk is dead now: its buffer takes dinput
            torch.mm(dlogits, weight, out=grad_input[rows] if isinstance(rows, slice) else input_chunk)
            _put(grad_input, rows, input_chunk)
        # a gathered chunk is freed before the next one is gathered
        del input_chunk, dlogits
    return LinearGrads(grad_input, grad_weight, grad_bias)


# --------------------------------------------------------------------------- GRPO
#
# The GRPO loss (:mod:`liger_kernel.ops.grpo_loss`) is a per-token function of the
# selected token's log-probability, so a backend supplies only the two vocabulary
# passes (:class:`SelectedLogProbKernels`) and the per-token math below, on (B, L)
# tensors, is shared: :func:`selective_log_softmax_function` and
# :func:`grpo_loss_function` build each backend's autograd Functions from its passes.


class SelectedLogProbKernels(Protocol):
    """A backend's two passes over the vocabulary rows of ``logits`` (B, L + 1, V).

    ``forward`` returns (logp, lse), each (B, L) in :func:`liger_kernel.ops.grpo_loss.loss_dtype`:
    log softmax(logits[b, t] / T) at ``ids[b, t]`` and the row's log-sum-exp of logits / T,
    both 0 where ``mask`` (None, or (B, L) of any dtype) is 0, logp NaN for an id outside [0, V).
    ``backward`` writes into ``grad`` (like ``logits``; it may be ``logits`` itself, each
    element read before it is written) ``([j == ids[b, t]] - p_j) * scale[b, t]`` with p the
    softmax recomputed from ``lse``, and zeros on the rows t = L and wherever ``scale`` is 0
    (those rows are not read)."""

    def forward(
        self, logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def backward(
        self,
        logits: torch.Tensor,
        grad: torch.Tensor,
        ids: torch.Tensor,
        lse: torch.Tensor,
        scale: torch.Tensor,
        temperature: float,
    ) -> None: ...


def completion_columns(t: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """The last ``length`` columns of ``t`` (ids or a mask wider than the completion)."""
    return None if t is None else t[:, t.shape[1] - length :]


def unit_column_rows(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` with unit column stride (the kernels walk rows), a copy only when needed."""
    return logits if logits.stride(-1) == 1 or logits.shape[-1] == 1 else logits.contiguous()


class GrpoGradient(NamedTuple):
    """What the GRPO backward needs of the forward, as dlogp = g * direct (+ share * sum_t g * through).

    ``direct`` is d(l m)/dlogp with the importance ratio held fixed, plus, at token level,
    the ratio's own slope; ``through`` and ``share`` (sequence level only) carry the row's
    shared ratio c_b: d(l m)/dc_b per token, and dc_b/dlogp_t = c_b m_t / n_b."""

    direct: torch.Tensor
    through: torch.Tensor | None
    share: torch.Tensor | None

    def dlogp(self, grad: torch.Tensor) -> torch.Tensor:
        d = grad * self.direct
        if self.through is not None:
            d = d + self.share * (grad * self.through).sum(-1, keepdim=True)
        return d


class GrpoTerms(NamedTuple):
    loss: torch.Tensor
    kl: torch.Tensor | None
    clipped: torch.Tensor
    gradient: GrpoGradient


def grpo_token_terms(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor | None,
    beta: float,
    eps_low: float,
    eps_high: float,
    loss_type: str,
    importance_sampling_level: str,
    sapo_temperature_pos: float,
    sapo_temperature_neg: float,
    vllm_is_ratio: torch.Tensor | None,
    delta: float | None,
    use_bias_correction_kl: bool,
    phi_seq: torch.Tensor | None,
) -> GrpoTerms:
    """(l m, k m or None, clipped m) and their gradient's parts, each (B, L) in logp's
    dtype, from ``logp`` (0 where ``mask`` is 0): the math of :mod:`liger_kernel.ops.grpo_loss`.
    Masked tokens' old, ref and ratio values are never used (a NaN there stays out)."""
    dtype = logp.dtype
    zero = torch.zeros((), dtype=dtype, device=logp.device)
    m = torch.ones_like(logp) if mask is None else mask.to(dtype)
    keep = m != 0

    def kept(t: torch.Tensor) -> torch.Tensor:
        return torch.where(keep, t, zero)

    old = logp if old_logp is None else kept(old_logp.to(dtype))
    log_ratio = logp - old
    adv = advantages.to(dtype).unsqueeze(-1)
    sequence = importance_sampling_level == "sequence"
    if sequence:
        counted = m.sum(-1, keepdim=True).clamp(min=1.0)
        coef = torch.exp((log_ratio * m).sum(-1, keepdim=True) / counted)
    else:
        coef = torch.exp(log_ratio)

    # p, dp/dlogp at a fixed ratio, dp/dc, and the clipped flag
    direct = through = None
    if loss_type == "cispo":
        weight = coef.clamp(max=eps_high)
        policy, direct = -weight * adv * logp, -weight * adv
        clipped = (coef > eps_high) & (adv > 0)
    elif loss_type == "sapo":
        tau = torch.where(adv > 0, sapo_temperature_pos, sapo_temperature_neg).to(dtype)
        gate = torch.sigmoid(tau * (coef - 1.0))
        policy, through = -adv * (4.0 / tau) * gate, -adv * 4.0 * gate * (1.0 - gate)
        clipped = torch.zeros_like(keep)
    elif loss_type == "vespo":
        phi = phi_seq.to(dtype).reshape(-1, 1)
        policy, direct = -phi * adv * logp, -phi * adv
        clipped = torch.zeros_like(keep)
    else:
        low, high = 1.0 - eps_low, 1.0 + eps_high
        capped = coef if delta is None else coef.clamp(max=delta)
        first, second = capped * adv, coef.clamp(low, high) * adv
        take_first = first <= second
        policy = -torch.where(take_first, first, second)
        first_slope = torch.ones_like(coef) if delta is None else (coef <= delta).to(dtype)
        second_slope = ((coef >= low) & (coef <= high)).to(dtype)
        through = -adv * torch.where(take_first, first_slope, second_slope)
        clipped = ((coef < low) & (adv < 0)) | ((coef > high) & (adv > 0))
    if vllm_is_ratio is not None:
        ratio = vllm_is_ratio.to(dtype)
        ratio = ratio.unsqueeze(-1) if ratio.dim() == 1 else ratio
        policy = policy * ratio
        direct = direct * ratio if direct is not None else None
        through = through * ratio if through is not None else None
    per_token = policy.expand_as(logp)

    kl = None
    if beta != 0:
        gap = kept(ref_logp.to(dtype)) - logp
        # expm1: exp(gap) - 1 - gap cancels to nothing in fp32 for the small gaps of a policy near its reference
        growth = torch.expm1(gap)
        kl, kl_slope = growth - gap, -growth
        if use_bias_correction_kl:
            through = beta * kl if through is None else through + beta * kl
            kl_slope, kl = coef * kl_slope, kl * coef
        direct = beta * kl_slope if direct is None else direct + beta * kl_slope
        per_token = per_token + beta * kl

    zeros = torch.zeros_like(logp)
    direct = zeros if direct is None else kept(m * direct.expand_as(logp))
    through = None if through is None else kept(m * through.expand_as(logp))
    if sequence:
        share = kept(m * coef / counted)
        gradient = GrpoGradient(direct, through if through is not None else zeros, share)
    else:
        gradient = GrpoGradient(direct if through is None else direct + through * coef, None, None)
    return GrpoTerms(
        kept(m * per_token),
        None if kl is None else kept(m * kl),
        kept(m * clipped.expand_as(logp).to(dtype)),
        gradient,
    )


def _graph_recorded(ctx: Any) -> bool:
    """A backward can happen (``needs_input_grad`` looks at requires_grad only; under
    torch.no_grad() the context has no graph edges)."""
    return bool(ctx.next_functions) and bool(ctx.needs_input_grad[0])


def selective_log_softmax_function(kernels: SelectedLogProbKernels, name: str) -> type[torch.autograd.Function]:
    """A backend's Function for ``selective_log_softmax`` over its ``kernels``."""

    def forward(
        ctx: Any, logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 0.9, mask: Any = None
    ) -> torch.Tensor:
        length = logits.shape[1] - 1
        rows = unit_column_rows(logits)
        ids, mask = completion_columns(input_ids, length), completion_columns(mask, length)
        logp, lse = kernels.forward(rows, ids, mask, temperature)
        if _graph_recorded(ctx):
            ctx.save_for_backward(rows, ids, mask, lse)
            ctx.temperature = temperature
        return logp

    def backward(ctx: Any, grad_logp: torch.Tensor) -> tuple[Any, ...]:
        rows, ids, mask, lse = ctx.saved_tensors
        scale = grad_logp.to(lse.dtype) / ctx.temperature
        if mask is not None:
            scale = torch.where(mask != 0, scale, 0.0)
        grad = torch.empty_like(rows)
        kernels.backward(rows, grad, ids, lse, scale, ctx.temperature)
        return grad, None, None, None

    return type(
        name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )


def grpo_loss_function(kernels: SelectedLogProbKernels, name: str) -> type[torch.autograd.Function]:
    """A backend's Function for ``grpo_loss`` (the per-token op) over its ``kernels``."""
    from liger_kernel.ops._contract import mark_overwritten, overwritable

    def forward(
        ctx: Any,
        logits: torch.Tensor,
        old_logp: torch.Tensor | None,
        ref_logp: torch.Tensor | None,
        completion_ids: torch.Tensor,
        advantages: torch.Tensor,
        completion_mask: torch.Tensor | None,
        temperature: float,
        beta: float,
        eps_low: float,
        eps_high: float,
        inplace: bool,
        loss_type: str = "grpo",
        importance_sampling_level: str = "token",
        sapo_temperature_pos: float = 1.0,
        sapo_temperature_neg: float = 1.05,
        vllm_is_ratio: torch.Tensor | None = None,
        delta: float | None = None,
        use_bias_correction_kl: bool = False,
        phi_seq: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        rows = unit_column_rows(logits)
        logp, lse = kernels.forward(rows, completion_ids, completion_mask, temperature)
        terms = grpo_token_terms(
            logp, old_logp, ref_logp, advantages, completion_mask, beta, eps_low, eps_high, loss_type,
            importance_sampling_level, sapo_temperature_pos, sapo_temperature_neg, vllm_is_ratio, delta,
            use_bias_correction_kl, phi_seq,
        )  # fmt: skip
        if _graph_recorded(ctx):
            # a copy made for the kernels' layout is ours to overwrite
            ctx.overwrite = rows is not logits or (inplace and overwritable(ctx, logits))
            ctx.temperature = temperature
            ctx.sequence = terms.gradient.through is not None
            ctx.save_for_backward(rows, completion_ids, lse, *(t for t in terms.gradient if t is not None))
        metrics = [t for t in (terms.kl, terms.clipped) if t is not None]
        ctx.mark_non_differentiable(*metrics)
        return terms.loss, terms.kl, terms.clipped

    def backward(ctx: Any, grad_loss: torch.Tensor, *unused: Any) -> tuple[Any, ...]:
        rows, ids, lse, *parts = ctx.saved_tensors
        gradient = GrpoGradient(*parts) if ctx.sequence else GrpoGradient(parts[0], None, None)
        scale = gradient.dlogp(grad_loss.to(lse.dtype)) / ctx.temperature
        grad = rows if ctx.overwrite else torch.empty_like(rows)
        kernels.backward(rows, grad, ids, lse, scale, ctx.temperature)
        if grad is rows:
            mark_overwritten(rows)
        return (grad, *([None] * 18))

    return type(
        name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )


# --------------------------------------------------------------------------- fused linear KL divergence
#
# The fused linear KL divergence (:mod:`liger_kernel.ops.fused_linear_kl_div`) is the
# shared chunk walk above with a KL row kernel in place of the cross-entropy's: the
# walker's "targets" are each row's index into the target distribution
# (:func:`~liger_kernel.ops.fused_linear_kl_div.distribution_rows`), so it skips the
# ignored rows and hands the row kernel the target rows to read.
# :func:`fused_linear_kl_div_function` builds each backend's Function from its kernel.


class KLRowLoss(Protocol):
    """A backend's KL divergence over the rows of one chunk of student logits.

    ``rows`` (int64, one per chunk row) indexes the rows of ``target`` (rows, V),
    IGNORED_ROW for a row that is not kept (loss 0, zero gradient). Writes into
    ``loss`` each row's loss divided by ``divisor`` (a 0-d tensor whose dtype is
    the math's); with ``write_grad`` it overwrites ``logits`` with dloss/dlogits."""

    def __call__(
        self,
        logits: torch.Tensor,
        rows: torch.Tensor,
        target: torch.Tensor,
        divisor: torch.Tensor,
        loss: torch.Tensor,
        write_grad: bool,
        temperature: float,
        eps: float,
    ) -> None: ...


def linear_gemm_dtype(input: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype of an LM head's GEMM: autocast's when it is on (what a plain
    matmul would use), else the promoted dtype of the operands."""
    device_type = input.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(input.dtype, weight.dtype)


#: GEMM dtypes whose gradients are formed in backward: fp16 cannot hold a "mean"
#: KL's dlogits (about 1 / (rows * V)) until the incoming gradient (a loss scale)
#: multiplies them, so backward walks again with fp32 logits and that gradient
#: folded in before rounding (the two GEMMs of a chunk run once more).
SCALE_BEFORE_ROUNDING = (torch.float16,)


def _scale_in_place(grad: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return grad.mul_(scale.to(grad.dtype))


def fused_linear_kl_div_function(
    row_kl: KLRowLoss,
    rows_per_chunk: Any,
    name: str,
    scale_: Any = _scale_in_place,
) -> type[torch.autograd.Function]:
    """A backend's Function for ``fused_linear_kl_div`` over its row kernel.

    ``rows_per_chunk(x, weight)`` gives the chunk size; ``scale_(grad, grad_loss)``
    multiplies a gradient buffer in place by the scalar incoming gradient. The
    gradients are formed in forward (kept on ctx, scaled in backward: the graph
    supports one backward) except for SCALE_BEFORE_ROUNDING GEMM dtypes."""
    from liger_kernel.ops.fused_linear_cross_entropy import accumulation_dtype
    from liger_kernel.ops.fused_linear_kl_div import IGNORED_ROW, distribution_rows, kl_divisor
    from liger_kernel.ops.kl_div import loss_dtype

    def walk(x, w, target, rows, divisor, loss_rows, options, want, accum_dtype, row_scale=None, logits_dtype=None):
        temperature, eps, skip_ignored = options

        def row_loss(logits, chunk_rows, loss, z, predicted, write_grad):
            row_kl(logits, chunk_rows, target, divisor, loss, write_grad, temperature, eps)

        grads = walk_linear_chunks(
            x, w, None, rows, row_loss,
            rows_per_chunk=rows_per_chunk(x, w), ignore_index=IGNORED_ROW, want_grads=(*want, False),
            accum_dtype=accum_dtype, loss_rows=loss_rows, row_scale=row_scale, logits_dtype=logits_dtype,
            skip_ignored=skip_ignored,
        )  # fmt: skip
        return grads.dinput, grads.dweight

    def forward(
        ctx: Any,
        student_input: torch.Tensor,
        student_weight: torch.Tensor,
        target: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        reduction: str = "batchmean",
        ignore_index: int = -100,
        temperature: float = 1.0,
        eps: float = 1e-10,
        accum_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        gemm = linear_gemm_dtype(student_input, student_weight)
        x, w = student_input.to(gemm), student_weight.to(gemm)
        target = unit_column_rows(target)
        n_rows = x.shape[0]
        rows_dtype = loss_dtype(gemm, target.dtype)
        rows = distribution_rows(shift_labels, ignore_index, n_rows, x.device)
        divisor = kl_divisor(rows, reduction, w.shape[0], rows_dtype, shift_labels is not None)
        recorded = bool(ctx.next_functions)
        want = (recorded and ctx.needs_input_grad[0], recorded and ctx.needs_input_grad[1])
        replay = any(want) and gemm in SCALE_BEFORE_ROUNDING
        # only explicit labels can ignore rows: without them skipping costs a sync for nothing
        options = (float(temperature), float(eps), shift_labels is not None)
        accum = accumulation_dtype(student_weight.dtype, accum_dtype)
        loss_rows = torch.empty(n_rows, dtype=rows_dtype, device=x.device)
        grads = walk(x, w, target, rows, divisor, loss_rows, options, (False, False) if replay else want, accum)
        ctx.replay = replay
        ctx.input_dtypes = (student_input.dtype, student_weight.dtype)
        if replay:
            ctx.save_for_backward(x, w, target, rows, divisor)
            ctx.options, ctx.want, ctx.accum_dtype = options, want, accum
        else:
            # kept on ctx, not saved: backward scales these buffers in place and hands them on
            ctx.grad_buffers = grads
        return loss_rows.sum().to(loss_dtype(student_input.dtype, student_weight.dtype, target.dtype))

    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        if ctx.replay:
            x, w, target, rows, divisor = ctx.saved_tensors
            scratch = torch.empty(x.shape[0], dtype=divisor.dtype, device=x.device)
            scale = grad_loss.to(divisor.dtype).reshape(1).expand(x.shape[0])
            grads = walk(
                x, w, target, rows, divisor, scratch, ctx.options, ctx.want, ctx.accum_dtype,
                row_scale=scale, logits_dtype=divisor.dtype,
            )  # fmt: skip
        else:
            if getattr(ctx, "backward_done", False):
                # the first backward scaled the buffers in place and handed them on
                warnings.warn(
                    "fused_linear_kl_div: a second backward over one graph returns an already scaled gradient",
                    stacklevel=2,
                )
            ctx.backward_done = True
            grads = tuple(scale_(grad, grad_loss) if grad is not None else None for grad in ctx.grad_buffers)
        dinput, dweight = (
            grad.to(dtype).view(grad.shape) if grad is not None else None
            for grad, dtype in zip(grads, ctx.input_dtypes)
        )
        return dinput, dweight, None, None, None, None, None, None, None

    return type(
        name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )
