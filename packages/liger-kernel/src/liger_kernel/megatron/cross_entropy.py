"""Megatron-Core's vocabulary-parallel cross-entropy, on this project's ops.

Megatron calls its loss on logits laid out ``[seq, batch, vocab / tp]`` (each
tensor-parallel rank holds one contiguous slice of the vocabulary) with global
target ids ``[seq, batch]``, and takes back the per-token loss ``[seq, batch]``
in fp32, reduced later by its loss mask.

Label smoothing has two definitions that share one form,
``loss = (1 - a) * nll + a * mean_j(-log p_j)`` over the vocabulary:

- ``label_smoothing_formula="megatron"`` (Megatron's own, from NeMo): the smoothed
  mass ``alpha`` is spread over the classes other than the target, which is the
  form above with ``a = alpha * V / (V - 1)``;
- ``"pytorch"``: ``torch.nn.functional.cross_entropy``'s, ``a = alpha``.

``label_smoothing_mode`` says which V the mean (and Megatron's ``V / (V - 1)``)
runs over when the vocabulary is split: ``"partition"`` the rank's own slice
(what Megatron does), ``"global"`` the whole vocabulary. At one rank the two
coincide.

At tensor-parallel size 1 (``tp_group`` None or a group of one rank) the loss is
:class:`liger_kernel.ops.LigerCrossEntropyFunction` with ``label_smoothing = a``
(the two forms are the same function), so it runs on whichever backend that op
routes to. Larger groups need the all-reductions of the vocabulary-parallel op,
:class:`liger_kernel.ops.vocab_parallel_cross_entropy.LigerVocabParallelCEFunction`.

Differences from Megatron's kernel, all where Megatron's loss mask zeroes the
token anyway or where Megatron is unsafe: a target equal to ``ignore_index`` gets
loss 0 and gradient 0 (Megatron has no ignore index); a target outside the
vocabulary is refused (IndexError on the CPU; a NaN loss on a device, see
:func:`liger_kernel.ops._contract.require_indices_in_range`) where Megatron
reads it as a zero logit; and the logits are never written in the forward
(Megatron's unfused kernel subtracts the max in place from fp32 logits). The
logits' gradient comes back in their dtype, where Megatron's fused kernel
rounds it to bf16 whatever the logits are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops._contract import require_choice, require_real, require_tensor
from liger_kernel.ops.cross_entropy import LigerCrossEntropyFunction

LABEL_SMOOTHING_FORMULAS = ("pytorch", "megatron")
LABEL_SMOOTHING_MODES = ("global", "partition")


def group_size(tp_group: Any) -> int:
    """The number of ranks of ``tp_group``; None is a single rank."""
    if tp_group is None:
        return 1
    import torch.distributed as dist

    return dist.get_world_size(group=tp_group)


def effective_smoothing(label_smoothing: float, formula: str, vocab: int) -> float:
    """The ``a`` of ``(1 - a) * nll + a * mean_j(-log p_j)`` for ``label_smoothing``
    under ``formula`` over a vocabulary (or slice) of ``vocab`` classes."""
    if label_smoothing == 0.0 or formula == "pytorch":
        return label_smoothing
    if vocab < 2:
        raise ValueError(
            f"label_smoothing_formula='megatron' spreads the smoothing over the other classes, "
            f"but the vocabulary has {vocab}"
        )
    smoothing = label_smoothing * vocab / (vocab - 1)
    if smoothing > 1.0:
        raise ValueError(
            f"label_smoothing={label_smoothing} over {vocab} classes gives Megatron's smoothing "
            f"{smoothing:.6g} > 1 (a negative weight on the target); use at most {(vocab - 1) / vocab:.6g}"
        )
    return smoothing


class LigerMegatronCrossEntropy(nn.Module):
    """Megatron-Core's ``fused_vocab_parallel_cross_entropy(logits, target, tp_group)``
    as a module, with Megatron's defaults (see the module docstring).

    Args:
        ignore_index: target id that gets no loss and no gradient.
        label_smoothing: the smoothing ``alpha``, in [0, 1).
        reduction: ``"none"`` only: the loss is per token, ``[seq, batch]``, and
            Megatron reduces it with its loss mask.
        label_smoothing_formula: ``"megatron"`` or ``"pytorch"``.
        label_smoothing_mode: ``"partition"`` or ``"global"``.
    """

    def __init__(
        self,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "none",
        label_smoothing_formula: str = "megatron",
        label_smoothing_mode: str = "partition",
    ) -> None:
        super().__init__()
        if reduction != "none":
            raise ValueError(
                f"reduction must be 'none' (the per-token loss, which Megatron reduces with its loss mask), "
                f"got {reduction!r}"
            )
        require_real("label_smoothing", label_smoothing, minimum=0.0)
        if label_smoothing >= 1.0:
            raise ValueError(f"label_smoothing must be < 1, got {label_smoothing}")
        require_choice("label_smoothing_formula", label_smoothing_formula, LABEL_SMOOTHING_FORMULAS)
        require_choice("label_smoothing_mode", label_smoothing_mode, LABEL_SMOOTHING_MODES)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__} {ignore_index!r}")
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.reduction = reduction
        self.label_smoothing_formula = label_smoothing_formula
        self.label_smoothing_mode = label_smoothing_mode

    def forward(self, vocab_parallel_logits: torch.Tensor, target: torch.Tensor, tp_group: Any = None) -> torch.Tensor:
        require_tensor("vocab_parallel_logits", vocab_parallel_logits)
        if vocab_parallel_logits.dim() != 3:
            raise ValueError(
                f"vocab_parallel_logits must be 3-D [seq, batch, vocab / tp], got shape "
                f"{tuple(vocab_parallel_logits.shape)} (transpose [batch, seq, vocab] logits first)"
            )
        if not isinstance(target, torch.Tensor) or tuple(target.shape) != tuple(vocab_parallel_logits.shape[:2]):
            shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
            raise ValueError(
                f"target has shape {shape}; expected {tuple(vocab_parallel_logits.shape[:2])} "
                "(one global token id per [seq, batch] position of the logits)"
            )
        if group_size(tp_group) > 1:
            return self._vocab_parallel(vocab_parallel_logits, target, tp_group)
        vocab = vocab_parallel_logits.shape[-1]
        loss = LigerCrossEntropyFunction.apply(
            vocab_parallel_logits.reshape(-1, vocab),
            target.reshape(-1),
            None,
            ignore_index=self.ignore_index,
            label_smoothing=effective_smoothing(self.label_smoothing, self.label_smoothing_formula, vocab),
            reduction="none",
        )[0]
        return loss.view(target.shape)

    def _vocab_parallel(self, logits: torch.Tensor, target: torch.Tensor, tp_group: Any) -> torch.Tensor:
        try:
            from liger_kernel.ops.vocab_parallel_cross_entropy import LigerVocabParallelCEFunction
        except ImportError as exc:
            raise NotImplementedError(
                f"a tensor-parallel group of {group_size(tp_group)} ranks needs the vocabulary-parallel "
                "cross-entropy op (liger_kernel.ops.vocab_parallel_cross_entropy), which this install lacks"
            ) from exc
        return LigerVocabParallelCEFunction.apply(
            logits,
            target,
            tp_group,
            self.ignore_index,
            self.label_smoothing,
            self.label_smoothing_formula,
            self.label_smoothing_mode,
        )

    def extra_repr(self) -> str:
        return (
            f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}, "
            f"label_smoothing_formula={self.label_smoothing_formula!r}, "
            f"label_smoothing_mode={self.label_smoothing_mode!r}"
        )
