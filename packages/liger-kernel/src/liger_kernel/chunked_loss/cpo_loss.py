"""Contrastive Preference Optimization over a fused LM head, chunked (see :mod:`.fused_linear_preference`).

With z = beta (logp_chosen - logp_rejected) and label smoothing s, the per-pair loss is
    sigmoid   -(1 - s) log sigmoid(z) - s log sigmoid(-z)
    hinge     max(0, 1 - z)
averaged over pairs, plus ``alpha`` times the chosen rows' NLL. No reference
model. Extra outputs: rewards ``beta logp_chosen`` and ``beta logp_rejected`` per pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import apply_or_evaluate
from liger_kernel.chunked_loss.fused_linear_preference import LigerFusedLinearPreferenceBase, preference_forward

CPO_LOSS_TYPES = ("sigmoid", "hinge")


def smoothed_sigmoid_loss(z: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """``-(1 - s) log sigmoid(z) - s log sigmoid(-z)``: the logistic preference loss with label smoothing s."""
    return -F.logsigmoid(z) * (1 - label_smoothing) - F.logsigmoid(-z) * label_smoothing


class LigerFusedLinearCPOFunction(LigerFusedLinearPreferenceBase):
    """CPO as an autograd Function: ``.apply`` takes ``forward``'s arguments after ctx, positionally.

    ``loss_type`` (after 0.8.5's arguments) adds the hinge loss to 0.8.5's sigmoid."""

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
        compute_nll_loss=True,
        compiled=True,
        average_log_prob=False,
        chunk_size=1,
        loss_type="sigmoid",
    ):
        """The CPO loss of the module docstring; ``compiled`` is accepted for compatibility."""
        check_cpo_loss_type(loss_type)

        def pair_loss(chosen, rejected, *_):
            z = beta * (chosen - rejected)
            losses = smoothed_sigmoid_loss(z, label_smoothing) if loss_type == "sigmoid" else torch.relu(1 - z)
            return losses, (beta * chosen, beta * rejected)

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
            average_log_prob=average_log_prob,
            chunk_size=chunk_size,
        )


def check_cpo_loss_type(loss_type: str) -> None:
    """Raise a ValueError unless ``loss_type`` is one of :data:`CPO_LOSS_TYPES`."""
    if loss_type not in CPO_LOSS_TYPES:
        raise ValueError(f"unknown CPO loss_type {loss_type!r}; expected one of {CPO_LOSS_TYPES}")


def liger_fused_linear_cpo(
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
    average_log_prob: bool = False,
    chunk_size: int = 1,
    loss_type: str = "sigmoid",
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``LigerFusedLinearCPOFunction.apply``; without gradients to take it only evaluates."""
    return apply_or_evaluate(
        LigerFusedLinearCPOFunction, (_input, weight, bias),
        _input, weight, target, bias, ignore_index, beta, alpha, label_smoothing, compute_nll_loss, compiled,
        average_log_prob, chunk_size, loss_type,
    )  # fmt: skip


class LigerFusedLinearCPOLoss(torch.nn.Module):
    """CPO over the LM head: ``loss_fn(lin_weight, _input, target, bias=None)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        beta: float = 0.1,
        alpha: float = 1.0,
        label_smoothing: float = 0.0,
        compute_nll_loss: bool = True,
        compiled: bool = True,
        average_log_prob: bool = False,
        chunk_size: int = 1,
        loss_type: str = "sigmoid",
    ):
        super().__init__()
        check_cpo_loss_type(loss_type)
        self.ignore_index = ignore_index
        self.beta = beta
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.compute_nll_loss = compute_nll_loss
        self.compiled = compiled
        self.loss_type = loss_type
        self.average_log_prob = average_log_prob
        self.chunk_size = chunk_size

    def forward(self, lin_weight, _input, target, bias=None):
        return liger_fused_linear_cpo(
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
            self.average_log_prob,
            self.chunk_size,
            self.loss_type,
        )
