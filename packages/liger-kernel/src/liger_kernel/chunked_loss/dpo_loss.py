"""Direct Preference Optimization and its variants over a fused LM head, chunked
(see :mod:`.fused_linear_preference`).

With the log-ratios against the reference model (the policy's log-probabilities
alone without one)
    c = logp_chosen - ref_logp_chosen,   r = logp_rejected - ref_logp_rejected,   z = beta (c - r)
and, for the length-normalised types, c' = c / n_chosen, r' = r / n_rejected (the
rows' counted tokens; c' = c and r' = r when ``average_log_prob`` already averages),
the per-pair loss, by ``loss_type`` (s is ``label_smoothing``, tau ``discopop_tau``), is
    sigmoid       -log sigmoid(z)                                         (DPO)
    hinge         max(0, 1 - z)                                           (SLiC)
    ipo           (c' - r' - 1 / (2 beta))^2                              (IPO, beta is its tau)
    sigmoid_norm  -log sigmoid(beta (c' - r'))
    exo_pair      sigmoid(z) (log sigmoid(z) - log(1 - s)) + sigmoid(-z) (log sigmoid(-z) - log s)   (EXO, s > 0)
    robust        (-(1 - s) log sigmoid(z) + s log sigmoid(-z)) / (1 - 2 s)                          (cDPO, 0 <= s < 1/2)
    bco_pair      -log sigmoid(beta c) - log sigmoid(-beta r)
    nca_pair      -log sigmoid(beta c) - log sigmoid(-beta c) / 2 - log sigmoid(-beta r) / 2
    sppo_hard     (c - 1 / (2 beta))^2 + (r + 1 / (2 beta))^2
    apo_zero      (1 - sigmoid(beta c)) + sigmoid(beta r)
    apo_down      sigmoid(beta c) + 1 - sigmoid(z)
    discopop      (1 - sigmoid(z / tau)) (-log sigmoid(z)) + sigmoid(z / tau) exp(-z)
    sft           0 (the loss is the chosen rows' NLL alone, computed whatever ``compute_nll_loss`` says)
averaged over pairs, plus ``alpha`` times the chosen rows' NLL with ``compute_nll_loss``.
Extra outputs: the rewards ``beta c`` and ``beta r`` per pair.

liger-kernel 0.8.5 rejects ``ipo``, ``sigmoid_norm`` and ``sft``; they are the
length-normalised and SFT losses of TRL's DPO trainer. ``aot`` and ``aot_unpaired``
sort the log-ratios across the whole batch, which a chunk cannot see, and are refused.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import apply_or_evaluate
from liger_kernel.chunked_loss.fused_linear_preference import LigerFusedLinearPreferenceBase, preference_forward

DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "sigmoid_norm",
    "exo_pair",
    "robust",
    "bco_pair",
    "nca_pair",
    "sppo_hard",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
)
BATCH_SORTED_LOSS_TYPES = ("aot", "aot_unpaired")


def check_dpo_options(loss_type: str, label_smoothing: float, discopop_tau: float) -> None:
    """Raise a ValueError naming the bad option unless the loss type and its parameters go together."""
    if loss_type in BATCH_SORTED_LOSS_TYPES:
        raise ValueError(
            f"DPO loss_type {loss_type!r} sorts log-ratios across the whole batch, which the chunked loss "
            f"cannot do; use one of {DPO_LOSS_TYPES}"
        )
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {DPO_LOSS_TYPES}")
    if loss_type == "exo_pair" and not 0.0 < label_smoothing < 1.0:
        raise ValueError(
            f"loss_type='exo_pair' needs 0 < label_smoothing < 1 (the paper uses 1e-3), got {label_smoothing}"
        )
    if loss_type == "robust" and not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"loss_type='robust' needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
    if loss_type == "discopop" and discopop_tau <= 0:
        raise ValueError(f"loss_type='discopop' needs discopop_tau > 0, got {discopop_tau}")


def dpo_pair_losses(
    chosen_ratio: torch.Tensor,
    rejected_ratio: torch.Tensor,
    beta: float,
    loss_type: str,
    label_smoothing: float = 0.0,
    discopop_tau: float = 0.05,
    chosen_tokens: torch.Tensor | None = None,
    rejected_tokens: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pair loss of ``loss_type`` (module docstring) from the log-ratios c and r.

    ``chosen_tokens``/``rejected_tokens`` divide the ratios for the length-normalised
    types (None: already per-token means)."""
    c, r = chosen_ratio, rejected_ratio
    z = beta * (c - r)
    s = label_smoothing
    if loss_type in ("ipo", "sigmoid_norm"):
        c_mean = c if chosen_tokens is None else c / chosen_tokens
        r_mean = r if rejected_tokens is None else r / rejected_tokens
        if loss_type == "ipo":
            return (c_mean - r_mean - 1 / (2 * beta)) ** 2
        return -F.logsigmoid(beta * (c_mean - r_mean))
    if loss_type == "sigmoid":
        return -F.logsigmoid(z)
    if loss_type == "hinge":
        return torch.relu(1 - z)
    if loss_type == "exo_pair":
        return torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-s)) + torch.sigmoid(-z) * (
            F.logsigmoid(-z) - math.log(s)
        )
    if loss_type == "robust":
        return (-(1 - s) * F.logsigmoid(z) + s * F.logsigmoid(-z)) / (1 - 2 * s)
    if loss_type == "bco_pair":
        return -F.logsigmoid(beta * c) - F.logsigmoid(-beta * r)
    if loss_type == "nca_pair":
        return -F.logsigmoid(beta * c) - 0.5 * F.logsigmoid(-beta * c) - 0.5 * F.logsigmoid(-beta * r)
    if loss_type == "sppo_hard":
        return (c - 1 / (2 * beta)) ** 2 + (r + 1 / (2 * beta)) ** 2
    if loss_type == "apo_zero":
        return (1 - torch.sigmoid(beta * c)) + torch.sigmoid(beta * r)
    if loss_type == "apo_down":
        return torch.sigmoid(beta * c) + 1 - torch.sigmoid(z)
    if loss_type == "discopop":
        modulation = torch.sigmoid(z / discopop_tau)
        return (1 - modulation) * -F.logsigmoid(z) + modulation * torch.exp(-z)
    if loss_type == "sft":
        return torch.zeros_like(z)
    raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {DPO_LOSS_TYPES}")


class LigerFusedLinearDPOFunction(LigerFusedLinearPreferenceBase):
    """DPO as an autograd Function: ``.apply`` takes ``forward``'s arguments after ctx, positionally."""

    @classmethod
    def forward(
        cls,
        ctx,
        _input,
        weight,
        target,
        bias=None,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        ignore_index=-100,
        beta=0.1,
        compute_nll_loss=False,
        compiled=True,
        use_ref_model=True,
        average_log_prob=False,
        chunk_size=1,
        loss_type="sigmoid",
        label_smoothing=0.0,
        discopop_tau=0.05,
        alpha=1.0,
    ):
        """The DPO loss of the module docstring; ``compiled`` is accepted for compatibility."""
        check_dpo_options(loss_type, label_smoothing, discopop_tau)

        def pair_loss(chosen, rejected, ref_chosen, ref_rejected, chosen_tokens, rejected_tokens):
            chosen_ratio = chosen - ref_chosen if ref_chosen is not None else chosen
            rejected_ratio = rejected - ref_rejected if ref_rejected is not None else rejected
            counts = (None, None) if average_log_prob else (chosen_tokens, rejected_tokens)
            losses = dpo_pair_losses(
                chosen_ratio, rejected_ratio, beta, loss_type, label_smoothing, discopop_tau, *counts
            )
            return losses, (beta * chosen_ratio, beta * rejected_ratio)

        return preference_forward(
            ctx,
            _input,
            weight,
            target,
            bias,
            pair_loss,
            ignore_index=ignore_index,
            alpha=alpha,
            compute_nll_loss=compute_nll_loss or loss_type == "sft",
            average_log_prob=average_log_prob,
            chunk_size=chunk_size,
            use_ref_model=use_ref_model and ref_input is not None,
            ref_input=ref_input,
            ref_weight=ref_weight,
            ref_bias=ref_bias,
        )


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
    label_smoothing: float = 0.0,
    discopop_tau: float = 0.05,
    alpha: float = 1.0,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``LigerFusedLinearDPOFunction.apply``; without gradients to take it only evaluates."""
    return apply_or_evaluate(
        LigerFusedLinearDPOFunction, (_input, weight, bias),
        _input, weight, target, bias, ref_input, ref_weight, ref_bias, ignore_index, beta, compute_nll_loss,
        compiled, use_ref_model, average_log_prob, chunk_size, loss_type, label_smoothing, discopop_tau, alpha,
    )  # fmt: skip


class LigerFusedLinearDPOLoss(torch.nn.Module):
    """DPO over the LM head: ``loss_fn(lin_weight, _input, target, bias=None, ref_input=None, ref_weight=None, ref_bias=None)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        beta: float = 0.1,
        alpha: float = 1.0,
        compute_nll_loss: bool = False,
        compiled: bool = True,
        use_ref_model: bool = True,
        average_log_prob: bool = False,
        chunk_size: int = 1,
        loss_type: str = "sigmoid",
        label_smoothing: float = 0.0,
        discopop_tau: float = 0.05,
    ):
        super().__init__()
        check_dpo_options(loss_type, label_smoothing, discopop_tau)
        self.ignore_index = ignore_index
        self.beta = beta
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.discopop_tau = discopop_tau
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
            self.label_smoothing,
            self.discopop_tau,
            self.alpha,
        )
