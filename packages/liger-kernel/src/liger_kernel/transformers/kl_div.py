"""KL-divergence loss module, ``torch.nn.KLDivLoss`` computed by
:class:`liger_kernel.ops.LigerKLDivLossFunction` (see that op for the math).

``eps`` comes first, then torch's own arguments, passed on to
``torch.nn.KLDivLoss`` as given (0.8.5's ``(eps, *args, **kwargs)``):
``LigerKLDIVLoss(1e-10, reduction="batchmean")``. As with torch, the input is log-probabilities and the
target probabilities (or log-probabilities with ``log_target=True``); unlike
torch, the target takes no gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerKLDivLossFunction
from liger_kernel.ops.kl_div import check_scalar_options


class LigerKLDIVLoss(nn.KLDivLoss):
    def __init__(self, eps: float = 1e-10, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # after torch's init: it turns legacy size_average/reduce into self.reduction
        check_scalar_options(self.reduction, self.log_target, eps)
        self.eps = eps

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return LigerKLDivLossFunction.apply(y_pred, y_true, self.reduction, self.log_target, self.eps)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, log_target={self.log_target}, eps={self.eps}"
