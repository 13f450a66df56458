"""Odds Ratio Preference Optimization over a fused LM head, chunked (see :mod:`.fused_linear_preference`).

With per-token-averaged log-probabilities c (chosen) and r (rejected),
    log_odds = (c - r) - (log(1 - exp(c)) - log(1 - exp(r)))
    loss     = NLL(chosen) - beta * mean over pairs of log sigmoid(log_odds)
Extra outputs: rewards ``beta c`` and ``beta r`` per pair, the batch means of
``log sigmoid(log_odds)`` and of ``log_odds``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import apply_or_evaluate
from liger_kernel.chunked_loss.fused_linear_preference import LigerFusedLinearPreferenceBase, preference_forward


class LigerFusedLinearORPOFunction(LigerFusedLinearPreferenceBase):
    """ORPO as an autograd Function: ``.apply`` takes ``forward``'s arguments after ctx, positionally."""

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
        compute_nll_loss=True,
        nll_target=None,
        compiled=True,
        chunk_size=1,
    ):
        """The ORPO loss; ``nll_target`` (same shape as ``target``) replaces the chosen rows' NLL labels when given."""

        def pair_loss(chosen, rejected, *_):
            log_odds = (chosen - rejected) - (torch.log1p(-torch.exp(chosen)) - torch.log1p(-torch.exp(rejected)))
            ratio = F.logsigmoid(log_odds)
            return -beta * ratio, (beta * chosen, beta * rejected, ratio.sum(), log_odds.sum())

        return preference_forward(
            ctx,
            _input,
            weight,
            target,
            bias,
            pair_loss,
            ignore_index=ignore_index,
            compute_nll_loss=compute_nll_loss,
            average_log_prob=True,
            chunk_size=chunk_size,
            nll_target=nll_target,
        )


def liger_fused_linear_orpo(
    _input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    beta: float = 0.1,
    compute_nll_loss: bool = True,
    nll_target: torch.Tensor | None = None,
    compiled: bool = True,
    chunk_size: int = 1,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``LigerFusedLinearORPOFunction.apply``; without gradients to take it only evaluates."""
    return apply_or_evaluate(
        LigerFusedLinearORPOFunction, (_input, weight, bias),
        _input, weight, target, bias, ignore_index, beta, compute_nll_loss, nll_target, compiled, chunk_size,
    )  # fmt: skip


class LigerFusedLinearORPOLoss(torch.nn.Module):
    """ORPO over the LM head: ``loss_fn(lin_weight, _input, target, bias=None, nll_target=None)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        beta: float = 0.1,
        compute_nll_loss: bool = True,
        compiled: bool = True,
        chunk_size: int = 1,
    ):
        super().__init__()
        self.ignore_index = ignore_index
        self.beta = beta
        self.compute_nll_loss = compute_nll_loss
        self.compiled = compiled
        self.chunk_size = chunk_size

    def forward(self, lin_weight, _input, target, bias=None, nll_target=None):
        return liger_fused_linear_orpo(
            _input,
            lin_weight,
            target,
            bias,
            self.ignore_index,
            self.beta,
            self.compute_nll_loss,
            nll_target,
            self.compiled,
            self.chunk_size,
        )
