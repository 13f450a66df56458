"""Kahneman-Tversky Optimization over a fused LM head, chunked (see :mod:`.fused_linear_unpaired_preference`).

With logp the per-sequence log-probability of each row,
    ratio = logp - ref_logp          (logp alone without a reference model)
    loss  = mean over rows of 1 - sigmoid(beta (ratio - kl) m),   m = +1 desirable, -1 not
with ``kl`` an optional detached estimate of KL(policy || reference) (0 when None).
Returns ``loss, (chosen_logps_sum, rejected_logps_sum, chosen_logits_sum,
rejected_logits_sum, chosen_rewards_sum, rejected_rewards_sum)``, the last two the
sums over desirable (undesirable) rows of the reward ``beta ratio``.
"""

from __future__ import annotations

import torch

from liger_kernel.chunked_loss._chunking import apply_or_evaluate
from liger_kernel.chunked_loss.fused_linear_unpaired_preference import (
    LigerFusedLinearUnpairedPreferenceBase,
    unpaired_preference_forward,
)


class LigerFusedLinearKTOFunction(LigerFusedLinearUnpairedPreferenceBase):
    """KTO as an autograd Function: ``.apply`` takes ``forward``'s arguments after ctx, positionally."""

    @classmethod
    def forward(
        cls,
        ctx,
        _input,
        weight,
        target,
        preference_labels,
        bias=None,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        kl=None,
        ignore_index=-100,
        beta=0.1,
        compiled=True,
        use_ref_model=True,
        average_log_prob=False,
        chunk_size=1,
    ):
        """The KTO loss of the module docstring; ``compiled`` is accepted for compatibility."""
        batch = _input.shape[0]
        kl_term = kl.detach() if isinstance(kl, torch.Tensor) else (0.0 if kl is None else float(kl))

        def chunk_loss(logps, desirable, ref_logps):
            ratio = logps if ref_logps is None else logps - ref_logps
            sign = desirable.to(ratio.dtype) * 2 - 1
            loss = (1 - torch.sigmoid(beta * (ratio - kl_term) * sign)).sum() / batch
            rewards = beta * ratio.detach()
            return loss, (rewards[desirable].sum(), rewards[~desirable].sum())

        return unpaired_preference_forward(
            ctx,
            _input,
            weight,
            target,
            preference_labels,
            bias,
            chunk_loss,
            ignore_index=ignore_index,
            average_log_prob=average_log_prob,
            chunk_size=chunk_size,
            use_ref_model=use_ref_model and ref_input is not None,
            ref_input=ref_input,
            ref_weight=ref_weight,
            ref_bias=ref_bias,
        )


def liger_fused_linear_kto(
    _input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    preference_labels: torch.Tensor,
    bias: torch.Tensor | None = None,
    ref_input: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
    ref_bias: torch.Tensor | None = None,
    kl: torch.Tensor | None = None,
    ignore_index: int = -100,
    beta: float = 0.1,
    compiled: bool = True,
    use_ref_model: bool = True,
    average_log_prob: bool = False,
    chunk_size: int = 1,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``LigerFusedLinearKTOFunction.apply``; without gradients to take it only evaluates."""
    return apply_or_evaluate(
        LigerFusedLinearKTOFunction, (_input, weight, bias),
        _input, weight, target, preference_labels, bias, ref_input, ref_weight, ref_bias, kl, ignore_index, beta,
        compiled, use_ref_model, average_log_prob, chunk_size,
    )  # fmt: skip


class LigerFusedLinearKTOLoss(torch.nn.Module):
    """KTO over the LM head: ``loss_fn(_input, lin_weight, target, bias=None, preference_labels=None,
    ref_input=None, ref_weight=None, ref_bias=None, kl=None)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        beta: float = 0.1,
        compiled: bool = True,
        use_ref_model: bool = False,
        average_log_prob: bool = False,
        chunk_size: int = 1,
    ):
        super().__init__()
        self.ignore_index = ignore_index
        self.beta = beta
        self.compiled = compiled
        self.use_ref_model = use_ref_model
        self.average_log_prob = average_log_prob
        self.chunk_size = chunk_size

    def forward(
        self,
        _input,
        lin_weight,
        target,
        bias=None,
        preference_labels=None,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        kl=None,
    ):
        return liger_fused_linear_kto(
            _input,
            lin_weight,
            target,
            preference_labels,
            bias,
            ref_input,
            ref_weight,
            ref_bias,
            kl,
            self.ignore_index,
            self.beta,
            self.compiled,
            self.use_ref_model,
            self.average_log_prob,
            self.chunk_size,
        )
