"""Policy-gradient (PPO-style) losses over a fused LM head, chunk by chunk over the batch's rows.

Inputs: hidden states ``_input`` (B, T, H) of the completion tokens
``selected_token_ids`` (B, T), ``attention_mask`` (B, T) of the tokens that
count, ``advantages`` (B,). For each chunk of ``chunk_size`` rows the base
computes the per-token log-probabilities of the selected tokens,
    logp = log softmax((x_t @ W.T + b) / temperature)[y_t]        (:meth:`chunk_forward`)
takes the chunk's rows of ``old_per_token_logps`` and of the reference
log-probabilities (``ref_per_token_logps``, else from the reference model
``ref_input``/``ref_weight``/``ref_bias`` without gradients, else None), and
hands them to the subclass's ``ppo_loss_fn``, whose chunk terms already carry
the whole batch's normalisation (it gets the full ``attention_mask`` as
``full_attention_mask``, and the token normaliser of :meth:`_compute_dapo_normalizer`
as ``token_normalizer``). The loss is the sum of the chunk terms; 0-dim metrics
are summed over the chunks. See :mod:`liger_kernel.chunked_loss._chunking` for
the walk and its gradients (to ``_input``, ``weight`` and ``bias`` only).

Subclasses (GRPO) define ``ppo_loss_fn(per_token_logps, attention_mask, advantages,
full_attention_mask, ref_per_token_logps, old_per_token_logps, **options) -> (loss, metrics)``
and a ``forward`` that calls ``LigerFusedLinearPPOBase.forward(cls, ctx, ...)``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import (
    check_linear_head,
    linear_logits,
    row_chunks,
    save_walk,
    walk_chunks,
    walk_gradients,
)
from liger_kernel.ops.grpo_loss import dapo_normalizer

#: positions of _input, weight and bias among forward's arguments (after ctx)
_INPUT, _WEIGHT, _BIAS = 0, 1, 5


def _check_shapes(
    _input: torch.Tensor,
    selected_token_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    advantages: torch.Tensor,
    vllm_is_ratio: torch.Tensor | None,
) -> None:
    if _input.dim() != 3 or selected_token_ids.shape != _input.shape[:2] or attention_mask.shape != _input.shape[:2]:
        raise ValueError(
            f"input must be (batch, seq, hidden), selected_token_ids and attention_mask (batch, seq); got "
            f"{tuple(_input.shape)}, {tuple(selected_token_ids.shape)}, {tuple(attention_mask.shape)}"
        )
    batch, seq = attention_mask.shape
    if advantages.shape != (batch,):
        raise ValueError(f"advantages must be ({batch},), one per row, got {tuple(advantages.shape)}")
    if vllm_is_ratio is not None and tuple(vllm_is_ratio.shape) not in ((batch,), (batch, 1), (batch, seq)):
        raise ValueError(
            f"vllm_is_ratio must be (batch,), (batch, 1) or (batch, seq) = {(batch, seq)}, "
            f"got {tuple(vllm_is_ratio.shape)}"
        )


class LigerFusedLinearPPOBase(torch.autograd.Function):
    """The chunked walk of the module docstring; subclasses supply ``ppo_loss_fn``."""

    @staticmethod
    @abstractmethod
    def ppo_loss_fn(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One chunk's loss term and metrics (see the module docstring)."""
        raise NotImplementedError("a PPO loss defines ppo_loss_fn")

    @staticmethod
    def forward(
        cls,
        ctx,
        _input,
        weight,
        selected_token_ids,
        attention_mask,
        advantages,
        bias=None,
        ref_per_token_logps=None,
        old_per_token_logps=None,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        epsilon_low=0.2,
        epsilon_high=0.2,
        beta=0.04,
        loss_type="dapo",
        max_completion_length=None,
        importance_sampling_level="token",
        temperature=1.0,
        compiled=True,
        use_ref_model=False,
        chunk_size=1,
        sapo_temperature_pos=1.0,
        sapo_temperature_neg=1.05,
        vllm_is_ratio=None,
        delta=None,
        use_bias_correction_kl=False,
        vespo_k_pos=2.0,
        vespo_lambda_pos=3.0,
        vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
        num_items_in_batch=None,
    ):
        """Walk the chunks; with ``ctx`` None (evaluation) no gradients are taken or saved.

        ``compiled`` is accepted for compatibility (the math is eager PyTorch)."""
        check_linear_head(_input, weight, bias)
        _check_shapes(_input, selected_token_ids, attention_mask, advantages, vllm_is_ratio)
        with_ref_model = use_ref_model and ref_per_token_logps is None and ref_input is not None
        if with_ref_model and ref_weight is None:
            raise ValueError("a reference model needs ref_weight with ref_input")
        if loss_type == "dr_grpo" and max_completion_length is None:
            raise ValueError("loss_type='dr_grpo' needs max_completion_length")
        batch = _input.shape[0]
        # (B,) and (B, 1) broadcast over the tokens alike
        is_ratio = None if vllm_is_ratio is None else vllm_is_ratio.reshape(batch, -1)
        token_normalizer = LigerFusedLinearPPOBase._compute_dapo_normalizer(attention_mask, num_items_in_batch)
        options = dict(
            epsilon_low=epsilon_low,
            epsilon_high=epsilon_high,
            beta=beta,
            loss_type=loss_type,
            max_completion_length=max_completion_length,
            importance_sampling_level=importance_sampling_level,
            sapo_temperature_pos=sapo_temperature_pos,
            sapo_temperature_neg=sapo_temperature_neg,
            delta=delta,
            use_bias_correction_kl=use_bias_correction_kl,
            vespo_k_pos=vespo_k_pos,
            vespo_lambda_pos=vespo_lambda_pos,
            vespo_k_neg=vespo_k_neg,
            vespo_lambda_neg=vespo_lambda_neg,
            num_items_in_batch=num_items_in_batch,
            token_normalizer=token_normalizer,
        )

        def rows_of(t: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
            return None if t is None else t.index_select(0, rows)

        def term(rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
            token_ids = selected_token_ids.index_select(0, rows)
            logps = cls.chunk_forward(x, w, token_ids, b, temperature)
            ref_logps = rows_of(ref_per_token_logps, rows) if use_ref_model else None
            if with_ref_model:
                with torch.no_grad():
                    ref_logps = cls.chunk_forward(
                        ref_input.index_select(0, rows), ref_weight, token_ids, ref_bias, temperature
                    )
            return cls.ppo_loss_fn(
                per_token_logps=logps,
                attention_mask=attention_mask.index_select(0, rows).to(logps.dtype),
                advantages=advantages.index_select(0, rows).to(logps.dtype),
                full_attention_mask=attention_mask,
                ref_per_token_logps=ref_logps,
                old_per_token_logps=rows_of(old_per_token_logps, rows),
                vllm_is_ratio=rows_of(is_ratio, rows),
                **options,
            )

        needs = (False, False, False)
        if ctx is not None:
            needs = tuple(ctx.needs_input_grad[i] for i in (_INPUT, _WEIGHT, _BIAS))
        walk = walk_chunks(_input, weight, bias, row_chunks(batch, chunk_size, _input.device), term, needs)
        if ctx is not None:
            save_walk(ctx, walk, _input, weight, bias)
        return walk.loss, tuple(walk.metrics)

    @staticmethod
    def _compute_dapo_normalizer(
        attention_mask: torch.Tensor, num_items_in_batch: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        """Tokens per process that the token-summed losses (dapo, cispo, vespo) divide by, at least 1
        (:func:`liger_kernel.ops.grpo_loss.dapo_normalizer`, shared with the GRPO op)."""
        return dapo_normalizer(attention_mask, num_items_in_batch)

    @staticmethod
    def chunk_forward(
        input_chunk: torch.Tensor,
        weight: torch.Tensor,
        selected_token_ids: torch.Tensor,
        bias: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Log-probability of each selected token under ``softmax((input_chunk @ weight.T + bias) / temperature)``."""
        logits = linear_logits(input_chunk, weight, bias)
        return F.log_softmax(logits / temperature, dim=-1).gather(-1, selected_token_ids.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def backward(ctx, grad_output, *grad_metrics):  # type: ignore[override]
        """Gradients for _input, weight and bias at their positions; None for every other argument."""
        dinput, dweight, dbias = walk_gradients(ctx, grad_output)
        grads: list[torch.Tensor | None] = [None] * len(ctx.needs_input_grad)
        grads[_INPUT], grads[_WEIGHT], grads[_BIAS] = dinput, dweight, dbias
        return tuple(grads)
