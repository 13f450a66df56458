"""The LM head and its loss in one step: cross-entropy of
``_input @ lin_weight.T + bias`` against ``target``, computed chunk by chunk so
the logits are never held whole, through
:class:`liger_kernel.ops.LigerFusedLinearCrossEntropyFunction`.

Called as ``loss_fn(lin_weight, _input, target, bias=None)`` with ``_input``
(tokens, hidden) and ``target`` (tokens,). Returns the loss alone unless extra
outputs are requested (see :mod:`liger_kernel.transformers.cross_entropy`).
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops._contract import FLOAT_DTYPES, require_dtype_choice
from liger_kernel.ops.cross_entropy import check_scalar_options
from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy


class LigerFusedLinearCrossEntropyLoss(nn.Module):
    def __init__(
        self,
        ce_weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        lse_square_scale: float = 0.0,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        softcap: float | None = None,
        return_z_loss: bool = False,
        accum_dtype: torch.dtype | None = None,
        use_token_scaling: bool = False,
        return_token_accuracy: bool = False,
        return_predicted_tokens: bool = False,
    ) -> None:
        super().__init__()
        check_scalar_options(label_smoothing, reduction, softcap, lse_square_scale)
        require_dtype_choice("accum_dtype", accum_dtype, FLOAT_DTYPES)
        self.ce_weight = ce_weight
        self.ignore_index = ignore_index
        self.lse_square_scale = lse_square_scale
        self.label_smoothing = label_smoothing
        self.reduction = reduction
        self.softcap = softcap
        self.return_z_loss = return_z_loss
        self.accum_dtype = accum_dtype
        self.use_token_scaling = use_token_scaling
        self.return_token_accuracy = return_token_accuracy
        self.return_predicted_tokens = return_predicted_tokens

    def forward(
        self,
        lin_weight: torch.Tensor,
        _input: torch.Tensor,
        target: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple:
        return liger_fused_linear_cross_entropy(
            _input,
            lin_weight,
            target,
            bias=bias,
            ce_weight=self.ce_weight,
            ignore_index=self.ignore_index,
            lse_square_scale=self.lse_square_scale,
            label_smoothing=self.label_smoothing,
            reduction=self.reduction,
            softcap=self.softcap,
            return_z_loss=self.return_z_loss,
            accum_dtype=self.accum_dtype,
            use_token_scaling=self.use_token_scaling,
            return_token_accuracy=self.return_token_accuracy,
            return_predicted_tokens=self.return_predicted_tokens,
        )
