"""Vocab-parallel cross-entropy module, through
:class:`liger_kernel.ops.LigerVocabParallelCEFunction` (see that op for the
math, the two label-smoothing formulas and the two averaging modes): the
per-token loss (seq, batch) of logits (seq, batch, V_local) whose vocabulary
is split across ``tp_group``, with targets of global class indices.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerVocabParallelCEFunction
from liger_kernel.ops.vocab_parallel_cross_entropy import check_scalar_options


class LigerVocabParallelCrossEntropy(nn.Module):
    """``reduction`` must be "none": the loss is per token and reduced by the caller.
    ``forward(vocab_parallel_logits, target, tp_group=None)``: None (or a group
    of one rank) for an unsharded vocabulary."""

    def __init__(
        self,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "none",
        label_smoothing_formula: str = "pytorch",
        label_smoothing_mode: str = "global",
    ) -> None:
        super().__init__()
        if reduction != "none":
            raise ValueError(
                f"reduction must be 'none' (vocab-parallel cross-entropy returns the per-token loss), got {reduction!r}"
            )
        check_scalar_options(ignore_index, label_smoothing, label_smoothing_formula, label_smoothing_mode)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.reduction = reduction
        self.label_smoothing_formula = label_smoothing_formula
        self.label_smoothing_mode = label_smoothing_mode

    def forward(self, vocab_parallel_logits: torch.Tensor, target: torch.Tensor, tp_group: Any = None) -> torch.Tensor:
        return LigerVocabParallelCEFunction.apply(
            vocab_parallel_logits,
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
            f"reduction={self.reduction!r}, label_smoothing_formula={self.label_smoothing_formula!r}, "
            f"label_smoothing_mode={self.label_smoothing_mode!r}"
        )
