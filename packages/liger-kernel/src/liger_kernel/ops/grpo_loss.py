"""The GRPO policy loss over a vocabulary, and the selected-token log-probabilities it is built on.

Both take logits ``(B, L + 1, V)`` (a causal LM's output over a completion of
L tokens and one more position, whose logits predict nothing here and get a
zero gradient) and read row (b, t), t < L, against token ``ids[b, t]``:

    lse_bt  = log sum_j exp(logits[b, t, j] / T)
    logp_bt = logits[b, t, ids[b, t]] / T - lse_bt              (T: ``temperature``)

never forming the (B, L, V) log-softmax. An id outside [0, V) is an error
(IndexError where it can be checked without a host synchronization, else a
NaN for its token). Tokens whose mask ``m`` is 0 are never read: their
results and gradients are 0. Math runs in fp32 (fp64 for fp64 logits), and
so are the results.

Selected log-softmax (``LigerSelectiveLogSoftmaxFunction`` and 0.8.5's
``fused_selective_log_softmax``, the same op under ``torch.no_grad``):
``ids`` and ``mask`` may be wider than L (prompt and completion); their last L
columns are read. Returns logp (B, L), 0 where the mask is 0. Backward, with g
the incoming gradient:
    dlogits[b, t, j] = g_bt * ([j == ids_bt] - softmax(logits[b, t] / T)_j) / T.

GRPO loss (``GrpoLossFunction``), per token, with old = ``old_logp`` (logp
detached when None), ref = ``ref_logp``, A_b = ``advantages[b]``, m the
``completion_mask`` as weights (ones when None), n_b = max(sum_t m_bt, 1):
    c_bt = exp(logp_bt - old_bt)                                   importance_sampling_level="token"
    c_b  = exp(sum_t m_bt (logp_bt - old_bt) / n_b)               "sequence" (one ratio per row)
and the policy term p by ``loss_type``:
    grpo, dapo, bnpo, dr_grpo, luspo   p = -min(c' A, clamp(c, 1 - eps_low, 1 + eps_high) A),
                                       c' = min(c, delta) (c without ``delta``)
    cispo                              p = -min(c, eps_high) A logp, the ratio detached (eps_high a raw bound)
    sapo                               p = -A (4 / tau) sigmoid(tau (c - 1)),
                                       tau = sapo_temperature_pos where A > 0, else sapo_temperature_neg
    vespo                              p = -phi_b A logp, ``phi_seq`` (B,) or (B, 1) detached
p is multiplied by ``vllm_is_ratio`` ((B,), (B, 1) or (B, L)) when given (vespo
takes no ratio: it is folded into phi_seq, see ``triton_grpo_loss``). With
``beta`` != 0 the KL penalty is added:
    k_bt = exp(ref - logp) - (ref - logp) - 1,    times c (before ``delta``) with use_bias_correction_kl
    l_bt = p_bt + beta * k_bt
A token is clipped when c < 1 - eps_low with A < 0 or c > 1 + eps_high with A > 0
(cispo: c > eps_high with A > 0; sapo and vespo never clip). cispo, sapo and
vespo take token-level ratios only; ``delta`` (> 0) applies to the first group only.

``reduce=False`` returns (l * m, k * m or None when beta == 0, clipped * m), each
(B, L). ``reduce=True`` returns (loss, mean k or None, clipped fraction), scalars,
the means over the counted tokens (sum m, at least 1) and the loss, with
S = sum_bt m_bt l_bt and S_b its row sums:
    grpo, sapo           mean over b of S_b / n_b
    bnpo                 S / max(sum m, 1)
    dr_grpo              S / (B * max_completion_length), L when that is None
    dapo, cispo, vespo   S / tokens per process: ``num_items_in_batch`` / world size when
                         given, else sum m summed over the processes / world size (at least 1)
    luspo                sum over b of n_b S_b, / (B * L)
Only l carries a gradient (to ``logits``): it is the derivative of l above,
through c and logp, with min picking c' A on a tie, the ratio's slope passing
through clamp inside [1 - eps_low, 1 + eps_high] and through min(c, delta) at
c <= delta. The KL and clipped outputs are metrics, without gradient.
``old_logp``, ``ref_logp``, ``advantages``, ``vllm_is_ratio`` and ``phi_seq``
take none: passing one that requires grad while autograd records is an error.

Memory: with ``inplace`` the gradient is written over the logits' storage
where the contract allows it (``overwrites``: a non-leaf that requires grad),
so no (B, L + 1, V) buffer exists besides the caller's logits.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from liger_kernel.ops._contract import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    DispatchedFunction,
    require_choice,
    require_indices_in_range,
    require_int,
    require_ndim,
    require_no_grad,
    require_real,
    require_same_device,
    require_shape,
    require_tensor,
)

#: every loss_type and the policy term it takes (the first five share one; they differ in the reduction)
GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
#: loss types whose ratio is per token only (no importance_sampling_level="sequence", no delta)
TOKEN_LEVEL_ONLY = ("cispo", "sapo", "vespo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
MASK_DTYPES = (torch.bool, torch.uint8, torch.int32, torch.int64, *FLOAT_DTYPES)


def check_loss_type(loss_type: str) -> None:
    """Raise a ValueError naming the supported loss types unless ``loss_type`` is one."""
    if loss_type not in GRPO_LOSS_TYPES:
        raise ValueError(f"unknown GRPO loss_type {loss_type!r}; expected one of {GRPO_LOSS_TYPES}")


def check_grpo_options(
    loss_type: str,
    importance_sampling_level: str,
    sapo_temperature_pos: float,
    sapo_temperature_neg: float,
    delta: float | None,
) -> None:
    """Raise a ValueError naming the bad option unless the options go together
    (shared by this op and the chunked GRPO loss)."""
    check_loss_type(loss_type)
    require_choice("importance_sampling_level", importance_sampling_level, IMPORTANCE_SAMPLING_LEVELS)
    if importance_sampling_level == "sequence" and loss_type in TOKEN_LEVEL_ONLY:
        raise ValueError(f"loss_type={loss_type!r} takes importance_sampling_level='token' only")
    require_real("sapo_temperature_pos", sapo_temperature_pos, minimum=0.0, above_minimum=True)
    require_real("sapo_temperature_neg", sapo_temperature_neg, minimum=0.0, above_minimum=True)
    require_real("delta", delta, minimum=0.0, above_minimum=True, optional=True)


def loss_dtype(logits: torch.Tensor) -> torch.dtype:
    """What the results are computed and returned in: fp64 for fp64 logits, else fp32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _check_logits(logits: torch.Tensor) -> tuple[int, int, int]:
    require_tensor("logits", logits)
    require_ndim("logits", logits, (3,))
    batch, positions, vocab = logits.shape
    if positions < 1:
        raise ValueError(f"logits has shape {tuple(logits.shape)}: it needs L + 1 >= 1 positions (L completion tokens)")
    if vocab == 0:
        raise ValueError(f"logits has shape {tuple(logits.shape)}: the vocabulary (its last dimension) is empty")
    return batch, positions - 1, vocab


def _check_per_token(name: str, value: torch.Tensor | None, batch: int, length: int, what: str) -> None:
    if value is None:
        return
    require_tensor(name, value)
    require_shape(name, value, (batch, length), what)


def _check_ids(name: str, ids: torch.Tensor, batch: int, length: int, vocab: int, exact: bool) -> None:
    require_tensor(name, ids, INDEX_DTYPES)
    require_ndim(name, ids, (2,))
    if ids.shape[0] != batch or (ids.shape[1] != length if exact else ids.shape[1] < length):
        wanted = f"({batch}, {length})" if exact else f"({batch}, >= {length})"
        raise ValueError(f"{name} has shape {tuple(ids.shape)}; expected {wanted} (one token per completion position)")
    require_indices_in_range(name, ids[:, ids.shape[1] - length :], vocab, f"a token id of {vocab}")


def _check_mask(name: str, mask: torch.Tensor | None, batch: int, length: int, exact: bool) -> None:
    if mask is None:
        return
    require_tensor(name, mask, MASK_DTYPES)
    require_ndim(name, mask, (2,))
    if mask.shape[0] != batch or (mask.shape[1] != length if exact else mask.shape[1] < length):
        wanted = f"({batch}, {length})" if exact else f"({batch}, >= {length})"
        raise ValueError(f"{name} has shape {tuple(mask.shape)}; expected {wanted} (one flag per completion position)")


class LigerSelectiveLogSoftmaxFunction(DispatchedFunction):
    """log softmax(logits / temperature) at the selected ids (module docstring)."""

    op = "selective_log_softmax"
    backward_reads = ("logits", "input_ids", "mask")

    @staticmethod
    def check(
        logits: torch.Tensor,
        input_ids: torch.Tensor,
        temperature: float = 0.9,
        mask: torch.Tensor | None = None,
    ) -> None:
        batch, length, vocab = _check_logits(logits)
        _check_ids("input_ids", input_ids, batch, length, vocab, exact=False)
        _check_mask("mask", mask, batch, length, exact=False)
        require_real("temperature", temperature, minimum=0.0, above_minimum=True)
        require_same_device("logits", {"logits": logits, "input_ids": input_ids, "mask": mask})

    @staticmethod
    def outputs(logits, *_):
        return (((logits.shape[0], logits.shape[1] - 1), loss_dtype(logits)),)


@torch.no_grad()
def fused_selective_log_softmax(
    logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 0.9, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """logp (B, L) of ``input_ids``' last L tokens under softmax(``logits`` / ``temperature``),
    ``logits`` (B, L + 1, V), 0 where ``mask`` is 0; without gradient (the old and
    reference log-probabilities of GRPO). See the module docstring."""
    return LigerSelectiveLogSoftmaxFunction.apply(logits, input_ids, temperature, mask)


class GrpoTokenLossFunction(DispatchedFunction):
    """The per-token part of the GRPO loss, the op every backend implements:
    (l * m, k * m or None, clipped * m), each (B, L), the gradient to the
    logits from the first. ``GrpoLossFunction`` reduces it."""

    op = "grpo_loss"
    overwrites = ("logits",)
    backward_reads = ("logits", "completion_ids", "completion_mask")

    @staticmethod
    def check(
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
    ) -> None:
        batch, length, vocab = _check_logits(logits)
        _check_ids("completion_ids", completion_ids, batch, length, vocab, exact=True)
        _check_mask("completion_mask", completion_mask, batch, length, exact=True)
        _check_per_token("old_logp", old_logp, batch, length, "one log-probability per completion token")
        _check_per_token("ref_logp", ref_logp, batch, length, "one log-probability per completion token")
        require_tensor("advantages", advantages)
        require_shape("advantages", advantages, (batch,), "one advantage per row")
        require_real("temperature", temperature, minimum=0.0, above_minimum=True)
        require_real("beta", beta, minimum=0.0)
        require_real("eps_low", eps_low)
        require_real("eps_high", eps_high)
        if not isinstance(inplace, bool):
            raise TypeError(f"inplace must be a bool, got {type(inplace).__name__}")
        if not isinstance(use_bias_correction_kl, bool):
            raise TypeError(f"use_bias_correction_kl must be a bool, got {type(use_bias_correction_kl).__name__}")
        check_grpo_options(loss_type, importance_sampling_level, sapo_temperature_pos, sapo_temperature_neg, delta)
        if delta is not None and loss_type in TOKEN_LEVEL_ONLY:
            raise ValueError(f"delta (two-sided clipping) does not apply to loss_type={loss_type!r}")
        if beta != 0 and ref_logp is None:
            raise ValueError("ref_logp is required when beta != 0 (the KL penalty's reference log-probabilities)")
        if vllm_is_ratio is not None:
            require_tensor("vllm_is_ratio", vllm_is_ratio)
            if tuple(vllm_is_ratio.shape) not in ((batch,), (batch, 1), (batch, length)):
                raise ValueError(
                    f"vllm_is_ratio has shape {tuple(vllm_is_ratio.shape)}; expected ({batch},), ({batch}, 1) "
                    f"or ({batch}, {length})"
                )
            if loss_type == "vespo":
                raise ValueError("vllm_is_ratio does not apply to loss_type='vespo': fold it into phi_seq")
        if loss_type == "vespo":
            if phi_seq is None:
                raise ValueError("phi_seq is required for loss_type='vespo' (triton_grpo_loss computes it)")
            require_tensor("phi_seq", phi_seq)
            if tuple(phi_seq.shape) not in ((batch,), (batch, 1)):
                raise ValueError(f"phi_seq has shape {tuple(phi_seq.shape)}; expected ({batch},) or ({batch}, 1)")
        elif phi_seq is not None:
            raise ValueError(f"phi_seq applies to loss_type='vespo' only, not {loss_type!r}")
        tensors = {
            "logits": logits,
            "old_logp": old_logp,
            "ref_logp": ref_logp,
            "completion_ids": completion_ids,
            "advantages": advantages,
            "completion_mask": completion_mask,
            "vllm_is_ratio": vllm_is_ratio,
            "phi_seq": phi_seq,
        }
        require_same_device("logits", tensors)
        for name in ("old_logp", "ref_logp", "advantages", "vllm_is_ratio", "phi_seq"):
            if tensors[name] is not None:
                require_no_grad(name, tensors[name], "logits")

    @staticmethod
    def outputs(logits, old_logp, ref_logp, completion_ids, advantages, completion_mask, temperature, beta, *_):
        per_token = ((logits.shape[0], logits.shape[1] - 1), loss_dtype(logits))
        return per_token, (per_token if beta != 0 else None), per_token


def dapo_normalizer(mask: torch.Tensor, num_items_in_batch: torch.Tensor | float | None = None) -> torch.Tensor:
    """Tokens per process that the token-summed losses (dapo, cispo, vespo) divide by, at least 1:
    ``num_items_in_batch`` (the trainer's count over the whole generation batch and every
    process) / world size when given, else the counted tokens of ``mask`` summed over the
    processes / world size. A float32 0-d tensor on ``mask``'s device."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    world_size = torch.distributed.get_world_size() if distributed else 1
    if num_items_in_batch is not None:
        total = torch.as_tensor(num_items_in_batch, device=mask.device).to(torch.float32)
    else:
        total = mask.to(torch.float32).sum()
        if distributed:
            torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return (total / world_size).clamp(min=1.0)


def reduce_grpo_loss(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    max_completion_length: int | None,
    num_items_in_batch: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """The scalar loss of ``reduce=True`` (module docstring) from ``per_token_loss`` (l * m) and ``mask`` (m)."""
    batch, length = per_token_loss.shape
    if loss_type in ("grpo", "sapo"):
        return (per_token_loss.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return per_token_loss.sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return per_token_loss.sum() / (batch * (max_completion_length if max_completion_length is not None else length))
    if loss_type == "luspo":
        return (per_token_loss * mask.sum(-1, keepdim=True)).mean()
    return per_token_loss.sum() / dapo_normalizer(mask, num_items_in_batch).to(per_token_loss.dtype)


class GrpoLossFunction:
    """The GRPO loss of liger-kernel 0.8.5 (module docstring): ``apply(logits, old_logp,
    ref_logp, completion_ids, advantages, completion_mask, temperature, beta, eps_low,
    eps_high, inplace, loss_type="grpo", max_completion_length=None, reduce=True, ...)``.

    The per-token terms are the ``grpo_loss`` op (:class:`GrpoTokenLossFunction`, on the
    backend the logits' device routes to); the reductions are torch operations on its
    (B, L) results, which autograd differentiates."""

    @staticmethod
    def check(
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
        max_completion_length: int | None = None,
        reduce: bool = True,
        importance_sampling_level: str = "token",
        sapo_temperature_pos: float = 1.0,
        sapo_temperature_neg: float = 1.05,
        vllm_is_ratio: torch.Tensor | None = None,
        delta: float | None = None,
        use_bias_correction_kl: bool = False,
        num_items_in_batch: Any = None,
        phi_seq: torch.Tensor | None = None,
    ) -> None:
        GrpoTokenLossFunction.check(
            logits, old_logp, ref_logp, completion_ids, advantages, completion_mask, temperature, beta, eps_low,
            eps_high, inplace, loss_type, importance_sampling_level, sapo_temperature_pos, sapo_temperature_neg,
            vllm_is_ratio, delta, use_bias_correction_kl, phi_seq,
        )  # fmt: skip
        if max_completion_length is not None:
            require_int("max_completion_length", max_completion_length)
            if max_completion_length < 1:
                raise ValueError(f"max_completion_length must be >= 1, got {max_completion_length}")
        if not isinstance(reduce, bool):
            raise TypeError(f"reduce must be a bool, got {type(reduce).__name__}")
        if isinstance(num_items_in_batch, torch.Tensor):
            if num_items_in_batch.numel() != 1:
                raise ValueError(
                    f"num_items_in_batch must hold one count, got a tensor of shape {tuple(num_items_in_batch.shape)}"
                )
        else:
            require_real("num_items_in_batch", num_items_in_batch, minimum=0.0, optional=True)

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        if kwargs or len(args) < len(_GRPO_PARAMETERS):
            try:
                bound = _GRPO_SIGNATURE.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"GrpoLossFunction.apply: {exc}") from None
            bound.apply_defaults()
            args = bound.args
        cls.check(*args)
        (logits, old_logp, ref_logp, completion_ids, advantages, completion_mask, temperature, beta, eps_low,
         eps_high, inplace, loss_type, max_completion_length, reduce, importance_sampling_level,
         sapo_temperature_pos, sapo_temperature_neg, vllm_is_ratio, delta, use_bias_correction_kl,
         num_items_in_batch, phi_seq) = args  # fmt: skip
        loss, kl, clipped = GrpoTokenLossFunction.apply(
            logits, old_logp, ref_logp, completion_ids, advantages, completion_mask, temperature, beta, eps_low,
            eps_high, inplace, loss_type, importance_sampling_level, sapo_temperature_pos, sapo_temperature_neg,
            vllm_is_ratio, delta, use_bias_correction_kl, phi_seq,
        )  # fmt: skip
        if not reduce:
            return loss, kl, clipped
        if completion_mask is None:
            mask = torch.ones(loss.shape, dtype=loss.dtype, device=loss.device)
        else:
            mask = completion_mask.to(loss.dtype)
        counted = mask.sum().clamp(min=1.0)
        reduced = reduce_grpo_loss(loss, mask, loss_type, max_completion_length, num_items_in_batch)
        return reduced, (kl.sum() / counted if kl is not None else None), clipped.sum() / counted


_GRPO_SIGNATURE = inspect.signature(GrpoLossFunction.check)
_GRPO_PARAMETERS = tuple(_GRPO_SIGNATURE.parameters)
