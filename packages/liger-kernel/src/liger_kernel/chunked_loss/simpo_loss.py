"""Simple Preference Optimization over a fused LM head, chunked (see :mod:`.fused_linear_preference`).

With per-token-averaged log-probabilities c, r and z = beta (c - r) - gamma,
    loss = alpha * NLL(chosen) + mean over pairs of [-(1 - s) log sigmoid(z) - s log sigmoid(-z)]
(s the label smoothing). No reference model. Extra outputs: rewards ``beta c``
and ``beta r`` per pair.
"""

from __future__ import annotations

import torch

from liger_kernel.chunked_loss._chunking import apply_or_evaluate
from liger_kernel.chunked_loss.cpo_loss import smoothed_sigmoid_loss
from liger_kernel.chunked_loss.fused_linear_preference import LigerFusedLinearPreferenceBase, preference_forward


class LigerFusedLinearSimPOFunction(LigerFusedLinearPreferenceBase):
    """SimPO as an autograd Function: ``.apply`` takes ``forward``'s arguments after ctx, positionally."""

    @classmethod
    def forward(
        cls,
        ctx,
        _input,
        weight,
        target,
        bias=None,
        ignore_index=-100,
        beta=0.1,
        alpha=1.0,
        label_smoothing=0.0,
        compute_nll_loss=False,
        compiled=True,
        gamma=0.5,
        chunk_size=1,
    ):
        """The SimPO loss of the module docstring; ``compiled`` is accepted for compatibility."""

        def pair_loss(chosen, rejected, *_):
            z = beta * (chosen - rejected) - gamma
            return smoothed_sigmoid_loss(z, label_smoothing), (beta * chosen, beta * rejected)

        return preference_forward(
            ctx,
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


def liger_fused_linear_simpo(
    _input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    beta: float = 0.1,
    alpha: float = 1.0,
    label_smoothing: float = 0.0,
    compute_nll_loss: bool = False,
    compiled: bool = True,
    gamma: float = 0.5,
    chunk_size: int = 1,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``LigerFusedLinearSimPOFunction.apply``; without gradients to take it only evaluates."""
    return apply_or_evaluate(
        LigerFusedLinearSimPOFunction, (_input, weight, bias),
        _input, weight, target, bias, ignore_index, beta, alpha, label_smoothing, compute_nll_loss, compiled,
        gamma, chunk_size,
    )  # fmt: skip


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
