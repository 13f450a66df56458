"""The causal-LM loss of the patched forwards, by the fused linear cross-entropy.

:func:`LigerForCausalLMLoss` is the loss every patched causal-LM forward of
:mod:`liger_kernel.transformers.model.causal_lm` computes when the logits are
skipped. The forwards look it up as ``loss_utils.LigerForCausalLMLoss`` on each
call, so a framework that replaces the module attribute (to make the hidden
states contiguous, to drop keywords of its own) changes the loss the models
use, whether it does so before or after the models are patched.

The loss matches Transformers' ``ForCausalLMLoss``: labels are shifted left by
one and padded with ``ignore_index`` (unless ``shift_labels`` is given, already
shifted); with ``num_items_in_batch`` (gradient accumulation) it is the sum over
tokens divided by it, else the mean over the non-ignored tokens.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from liger_kernel.transformers.functional import CrossEntropyOutput, liger_fused_linear_cross_entropy

#: The keywords :func:`LigerForCausalLMLoss` passes on to the fused loss; the
#: patched forwards hand it every keyword they were given, the decoder's too.
_FUSED_LOSS_KEYWORDS = frozenset(inspect.signature(liger_fused_linear_cross_entropy).parameters)

CrossEntropyResult = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


def unpack_cross_entropy_result(result: torch.Tensor | CrossEntropyOutput | tuple) -> CrossEntropyResult:
    """``(loss, z_loss, token_accuracy, predicted_tokens)`` from whatever a
    cross-entropy function returned: the loss tensor alone, a
    :class:`CrossEntropyOutput`, or a tuple of up to four (missing ones None)."""
    if isinstance(result, CrossEntropyOutput):
        return result.loss, result.z_loss, result.token_accuracy, result.predicted_tokens
    if isinstance(result, tuple):
        if not 1 <= len(result) <= 4:
            raise ValueError(f"a cross-entropy result tuple holds 1 to 4 tensors, got {len(result)}")
        return (*result, *(None,) * (4 - len(result)))
    if isinstance(result, torch.Tensor):
        return result, None, None, None
    raise TypeError(f"not a cross-entropy result: {type(result).__name__}")


def normalize_by_items(loss: torch.Tensor, num_items_in_batch: torch.Tensor | int) -> torch.Tensor:
    """A summed loss divided by the number of items in the whole batch (gradient accumulation)."""
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def next_token_targets(
    labels: torch.Tensor | None, shift_labels: torch.Tensor | None, ignore_index: int
) -> torch.Tensor:
    """The flat next-token targets: ``shift_labels`` as given, else ``labels``
    shifted left by one and padded with ``ignore_index``."""
    if shift_labels is None:
        if labels is None:
            raise ValueError("the causal-LM loss needs labels or shift_labels")
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    return shift_labels.reshape(-1)


def fixed_fused_linear_cross_entropy(
    hidden_states: torch.Tensor,
    lm_head_weight: torch.Tensor,
    target: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    final_logit_softcapping: float | None = None,
    accum_dtype: torch.dtype | None = None,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
    **kwargs: Any,
) -> torch.Tensor | CrossEntropyOutput:
    """Fused linear cross-entropy of flat ``hidden_states`` (rows) against flat
    ``target``, reduced as Transformers' ``fixed_cross_entropy``: the mean over
    non-ignored targets, or the sum divided by ``num_items_in_batch`` when it
    is given. ``kwargs`` are further options of
    :func:`~liger_kernel.transformers.functional.liger_fused_linear_cross_entropy`
    (``bias``, ``use_token_scaling``, ``return_z_loss``, ...).

    Returns the loss alone, or a :class:`CrossEntropyOutput` when an extra
    output is requested. A requested z-loss is kept in it (and reduced as the
    loss is), where liger-kernel 0.8.5 dropped it."""
    reduction = "mean" if num_items_in_batch is None else "sum"
    result = liger_fused_linear_cross_entropy(
        hidden_states,
        lm_head_weight,
        target,
        reduction=reduction,
        ignore_index=ignore_index,
        softcap=final_logit_softcapping,
        accum_dtype=accum_dtype,
        return_token_accuracy=return_token_accuracy,
        return_predicted_tokens=return_predicted_tokens,
        **kwargs,
    )
    loss, z_loss, token_accuracy, predicted_tokens = unpack_cross_entropy_result(result)
    if num_items_in_batch is not None:
        loss = normalize_by_items(loss, num_items_in_batch)
        if z_loss is not None:
            z_loss = normalize_by_items(z_loss, num_items_in_batch)
    if return_token_accuracy or return_predicted_tokens or z_loss is not None:
        return CrossEntropyOutput(loss, z_loss, token_accuracy, predicted_tokens)
    return loss


def LigerForCausalLMLoss(
    hidden_states: torch.Tensor,
    lm_head_weight: torch.Tensor,
    labels: torch.Tensor | None,
    hidden_size: int,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: torch.Tensor | None = None,
    final_logit_softcapping: float | None = None,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
    **kwargs: Any,
) -> torch.Tensor | CrossEntropyOutput:
    """Next-token loss of ``hidden_states @ lm_head_weight.T`` (softcapped by
    ``final_logit_softcapping``) without forming the logits (module docstring).

    ``hidden_states`` is ``(..., hidden_size)``, one row per position of
    ``labels`` (or ``shift_labels``). Of ``kwargs``, those the fused loss takes
    (``bias``, ``use_token_scaling``, ``accum_dtype``, ...) are passed on and
    the rest (the decoder's keywords a forward hands over) are ignored.
    Returns what :func:`fixed_fused_linear_cross_entropy` returns."""
    if hidden_states.shape[-1] != hidden_size:
        raise ValueError(f"hidden_states end in width {hidden_states.shape[-1]}, not hidden_size={hidden_size}")
    targets = next_token_targets(labels, shift_labels, ignore_index).to(hidden_states.device)
    rows = hidden_states.reshape(-1, hidden_size)
    if rows.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{rows.shape[0]} positions are kept for the loss but the labels give {targets.shape[0]} targets; "
            "with logits_to_keep, pass labels (or shift_labels) for the kept positions only"
        )
    options = {name: value for name, value in kwargs.items() if name in _FUSED_LOSS_KEYWORDS}
    return fixed_fused_linear_cross_entropy(
        rows,
        lm_head_weight,
        targets,
        num_items_in_batch,
        ignore_index,
        final_logit_softcapping,
        return_token_accuracy=return_token_accuracy,
        return_predicted_tokens=return_predicted_tokens,
        **options,
    )
