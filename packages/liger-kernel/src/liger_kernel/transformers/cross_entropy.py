"""Cross-entropy loss module, ``torch.nn.CrossEntropyLoss`` with Liger's options
(z-loss, softcap, token accuracy), through
:class:`liger_kernel.ops.LigerCrossEntropyFunction`. See that op for the math.

Returns the loss alone unless extra outputs are requested; then
``(loss, z_loss?, token_accuracy?, predicted_tokens?)`` with only the requested
extras, in that order.
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops.cross_entropy import (
    LigerCrossEntropyFunction,  # noqa: F401  (0.8.5 re-exports it here)
    check_scalar_options,
)
from liger_kernel.transformers.functional import liger_cross_entropy


class LigerCrossEntropyLoss(nn.Module):
    def __init__(
        self,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        lse_square_scale: float = 0.0,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        softcap: float | None = None,
        return_z_loss: bool = False,
        return_token_accuracy: bool = False,
        return_predicted_tokens: bool = False,
    ) -> None:
        super().__init__()
        check_scalar_options(label_smoothing, reduction, softcap, lse_square_scale)
        self.weight = weight
        self.ignore_index = ignore_index
        self.lse_square_scale = lse_square_scale
        self.label_smoothing = label_smoothing
        self.reduction = reduction
        self.softcap = softcap
        self.return_z_loss = return_z_loss
        self.return_token_accuracy = return_token_accuracy
        self.return_predicted_tokens = return_predicted_tokens

    def forward(self, _input: torch.Tensor, target: torch.Tensor) -> torch.Tensor | tuple:
        return liger_cross_entropy(
            _input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            lse_square_scale=self.lse_square_scale,
            softcap=self.softcap,
            return_z_loss=self.return_z_loss,
            return_token_accuracy=self.return_token_accuracy,
            return_predicted_tokens=self.return_predicted_tokens,
        )
