"""Simple Preference Optimization over a fused LM head, chunked (see :mod:`.fused_linear_preference`).

With per-token-averaged log-probabilities c, r and z = beta (c - r) - gamma,
    loss = alpha * NLL(chosen) + mean over pairs of [-(1 - s) log sigmoid(z) - s log sigmoid(-z)]
(s the label smoothing). No reference model. Extra outputs: rewards ``beta c``
and ``beta r`` per pair.
"""

from __future__ import annotations

import torch

from liger_kernel.chunked_loss.cpo_loss import smoothed_sigmoid_loss
from liger_kernel.chunked_loss.fused_linear_preference import fused_linear_preference_loss


def liger_fused_linear_simpo(
    _input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    beta: float = 0.1,
    alpha: float = 1.0,
    label_smoothing: float = 0.0,
    compute_nll_loss: bool = True,
    compiled: bool = True,
    gamma: float = 0.5,
    chunk_size: int = 1,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """SimPO loss; ``compiled`` is accepted for compatibility (the math is eager PyTorch)."""

    def pair_loss(chosen, rejected, *_):
        z = beta * (chosen - rejected) - gamma
        return smoothed_sigmoid_loss(z, label_smoothing), (beta * chosen, beta * rejected)

    return fused_linear_preference_loss(
        _input,
        weight,
        target,
        bias,
        pair_loss,
        ignore_index=ignore_index,
        alpha=alpha,
        compute_nll_loss=compute_nll_loss,
        average_log_prob=True,
        chunk_size=chunk_size,
    )


class LigerFusedLinearSimPOFunction:
    """Function-style entry point: ``.apply(...)`` takes ``liger_fused_linear_simpo``'s arguments."""

    apply = staticmethod(liger_fused_linear_simpo)


class LigerFusedLinearSimPOLoss(torch.nn.Module):
    """SimPO over the LM head: ``loss_fn(lin_weight, _input, target, bias=None)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        beta: float = 0.1,
        alpha: float = 1.0,
        label_smoothing: float = 0.0,
        compute_nll_loss: bool = True,
        compiled: bool = True,
        gamma: float = 0.5,
        chunk_size: int = 1,
    ):
        super().__init__()
        self.ignore_index = ignore_index
        self.beta = beta
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.compute_nll_loss = compute_nll_loss
        self.compiled = compiled
        self.gamma = gamma
        self.chunk_size = chunk_size

    def forward(self, lin_weight, _input, target, bias=None):
        return liger_fused_linear_simpo(
            _input,
            lin_weight,
            target,
            bias,
            self.ignore_index,
            self.beta,
            self.alpha,
            self.label_smoothing,
            self.compute_nll_loss,
            self.compiled,
            self.gamma,
            self.chunk_size,
        )
