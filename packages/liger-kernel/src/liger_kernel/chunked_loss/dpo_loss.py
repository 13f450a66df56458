"""Direct Preference Optimization over a fused LM head, chunked (see :mod:`.fused_linear_preference`).

With log-ratios against the reference model (zero without one)
    c = logp_chosen - ref_logp_chosen,   r = logp_rejected - ref_logp_rejected
the per-pair loss, by ``loss_type``, is
    sigmoid    -log sigmoid(beta (c - r))
    apo_zero   (1 - sigmoid(beta c)) + sigmoid(beta r)
    apo_down   sigmoid(beta c) + 1 - sigmoid(beta (c - r))
    sppo_hard  (c - 1 / (2 beta))^2 + (r + 1 / (2 beta))^2
    nca_pair   -log sigmoid(beta c) - log sigmoid(-beta c) / 2 - log sigmoid(-beta r) / 2
averaged over pairs. Extra outputs: the rewards ``beta c`` and ``beta r`` per pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss.fused_linear_preference import fused_linear_preference_loss

DPO_LOSS_TYPES = ("sigmoid", "apo_zero", "apo_down", "sppo_hard", "nca_pair")


def dpo_pair_losses(
    chosen_ratio: torch.Tensor, rejected_ratio: torch.Tensor, beta: float, loss_type: str
) -> torch.Tensor:
    """Per-pair DPO loss from the policy/reference log-ratios, for one ``loss_type``."""
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    if loss_type == "apo_zero":
        return (1 - torch.sigmoid(beta * chosen_ratio)) + torch.sigmoid(beta * rejected_ratio)
    if loss_type == "apo_down":
        return torch.sigmoid(beta * chosen_ratio) + 1 - torch.sigmoid(beta * (chosen_ratio - rejected_ratio))
    if loss_type == "sppo_hard":
        return (chosen_ratio - 1 / (2 * beta)) ** 2 + (rejected_ratio + 1 / (2 * beta)) ** 2
    if loss_type == "nca_pair":
        return (
            -F.logsigmoid(beta * chosen_ratio)
            - 0.5 * F.logsigmoid(-beta * chosen_ratio)
            - 0.5 * F.logsigmoid(-beta * rejected_ratio)
        )
    raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {DPO_LOSS_TYPES}")


def liger_fused_linear_dpo(
    _input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ref_input: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
    ref_bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    beta: float = 0.1,
    compute_nll_loss: bool = False,
    compiled: bool = True,
    use_ref_model: bool = True,
    average_log_prob: bool = False,
    chunk_size: int = 1,
    loss_type: str = "sigmoid",
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """DPO loss; ``compiled`` is accepted for compatibility (the math is eager PyTorch)."""
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {DPO_LOSS_TYPES}")

    def pair_loss(chosen, rejected, ref_chosen, ref_rejected):
        chosen_ratio = chosen - ref_chosen if ref_chosen is not None else chosen
        rejected_ratio = rejected - ref_rejected if ref_rejected is not None else rejected
        losses = dpo_pair_losses(chosen_ratio, rejected_ratio, beta, loss_type)
        return losses, (beta * chosen_ratio, beta * rejected_ratio)

    return fused_linear_preference_loss(
        _input,
        weight,
        target,
        bias,
        pair_loss,
        ignore_index=ignore_index,
        compute_nll_loss=compute_nll_loss,
        average_log_prob=average_log_prob,
        chunk_size=chunk_size,
        use_ref_model=use_ref_model and ref_input is not None,
        ref_input=ref_input,
        ref_weight=ref_weight,
        ref_bias=ref_bias,
    )


class LigerFusedLinearDPOFunction:
    """Function-style entry point: ``LigerFusedLinearDPOFunction.apply(...)`` takes ``liger_fused_linear_dpo``'s arguments."""

    apply = staticmethod(liger_fused_linear_dpo)


class LigerFusedLinearDPOLoss(torch.nn.Module):
    """DPO over the LM head: ``loss_fn(lin_weight, _input, target, bias=None, ref_input=None, ref_weight=None, ref_bias=None)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        beta: float = 0.1,
        compute_nll_loss: bool = False,
        compiled: bool = True,
        use_ref_model: bool = True,
        average_log_prob: bool = False,
        chunk_size: int = 1,
        loss_type: str = "sigmoid",
    ):
        super().__init__()
        if loss_type not in DPO_LOSS_TYPES:
            raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {DPO_LOSS_TYPES}")
        self.ignore_index = ignore_index
        self.beta = beta
        self.compute_nll_loss = compute_nll_loss
        self.compiled = compiled
        self.use_ref_model = use_ref_model
        self.average_log_prob = average_log_prob
        self.chunk_size = chunk_size
        self.loss_type = loss_type

    def forward(self, lin_weight, _input, target, bias=None, ref_input=None, ref_weight=None, ref_bias=None):
        return liger_fused_linear_dpo(
            _input,
            lin_weight,
            target,
            bias,
            ref_input,
            ref_weight,
            ref_bias,
            self.ignore_index,
            self.beta,
            self.compute_nll_loss,
            self.compiled,
            self.use_ref_model,
            self.average_log_prob,
            self.chunk_size,
            self.loss_type,
        )
