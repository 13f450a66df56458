"""TRL's ORPO trainer with the ORPO loss computed over the LM head in chunks
(:class:`~liger_kernel.chunked_loss.LigerFusedLinearORPOLoss`), so that the
logits of the concatenated chosen and rejected sequences are never formed.

The loss is TRL's: the NLL of the chosen sequences (prompt and response, every
attended token) minus ``beta`` times the mean log-sigmoid of the log odds ratio
of the per-token-averaged response log-probabilities. Decoder-only models only.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

try:  # TRL 1.x keeps ORPO among its experimental trainers
    from trl.experimental.orpo import ORPOTrainer
except ImportError:  # earlier TRL
    from trl.trainer import ORPOTrainer

from liger_kernel.chunked_loss import LigerFusedLinearORPOLoss
from liger_kernel.transformers.fsdp import _FSDPForwardRedirection

_IGNORE_INDEX = -100  # the label padding of TRL's ORPO collator and concatenated_inputs


class LigerORPOTrainer(ORPOTrainer):
    """``ORPOTrainer`` whose ``concatenated_forward`` runs the decoder stack and
    the chunked Liger ORPO loss in place of the full model and its logits."""

    def concatenated_forward(
        self, model: nn.Module, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """``(loss, outputs of the Liger ORPO loss)`` for the chosen and
        rejected sequences of ``batch``, run as one concatenated batch."""
        if self.is_encoder_decoder:
            raise NotImplementedError("LigerORPOTrainer supports decoder-only models")
        concatenated = self.concatenated_inputs(
            batch, is_encoder_decoder=False, padding_value=self.padding_value, device=self.accelerator.device
        )
        input_ids = concatenated["concatenated_input_ids"]
        attention_mask = concatenated["concatenated_attention_mask"]
        if isinstance(model, nn.DataParallel):
            model = model.module
        causal_lm = getattr(model, "_fsdp_wrapped_module", model)
        decoder_kwargs: dict[str, Any] = {"attention_mask": attention_mask, "use_cache": False}
        if self.aux_loss_enabled:
            decoder_kwargs["output_router_logits"] = True
        redirect = _FSDPForwardRedirection()
        outputs = redirect(model, causal_lm.model, input_ids, **decoder_kwargs)

        ignore_index = getattr(self, "label_pad_token_id", _IGNORE_INDEX)
        # TRL's NLL term covers the whole chosen sequence: every attended token
        nll_labels = torch.where(attention_mask == 1, input_ids, ignore_index)
        orpo_loss = LigerFusedLinearORPOLoss(ignore_index=ignore_index, beta=self.beta)

        def head_loss(lm_head: nn.Linear, hidden: torch.Tensor, target: torch.Tensor, nll_target: torch.Tensor):
            return orpo_loss(lm_head.weight, hidden, target, lm_head.bias, nll_target=nll_target)

        loss, aux_outputs = redirect(
            model,
            head_loss,
            causal_lm.lm_head,
            outputs.last_hidden_state[:, :-1],
            concatenated["concatenated_labels"][:, 1:],
            nll_labels[:, 1:],
        )
        if self.aux_loss_enabled:
            aux_loss = getattr(outputs, "aux_loss", None)
            if aux_loss is None:
                raise ValueError("aux loss is enabled but the decoder stack returned no aux_loss")
            loss = loss + self.aux_loss_coef * aux_loss
        return loss, aux_outputs

    def get_batch_loss_metrics(
        self, model: nn.Module, batch: dict[str, Any], train_eval: Literal["train", "eval"] = "train"
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The ORPO loss and TRL's ORPO metrics, from the Liger loss outputs."""
        loss, aux_outputs = self.concatenated_forward(model, batch)
        chosen_logps, rejected_logps, chosen_logits, rejected_logits, nll_loss = aux_outputs[:5]
        chosen_rewards, rejected_rewards, log_odds_ratio, log_odds_chosen = aux_outputs[5:]
        prefix = "eval_" if train_eval == "eval" else ""
        values = {
            "rewards/chosen": chosen_rewards,
            "rewards/rejected": rejected_rewards,
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float(),
            "rewards/margins": chosen_rewards - rejected_rewards,
            "logps/rejected": rejected_logps,
            "logps/chosen": chosen_logps,
            "logits/rejected": rejected_logits,
            "logits/chosen": chosen_logits,
            "nll_loss": nll_loss,
            "log_odds_ratio": log_odds_ratio,
            "log_odds_chosen": log_odds_chosen,
        }
        gather = self.accelerator.gather_for_metrics
        metrics = {f"{prefix}{name}": gather(value.detach()).mean().item() for name, value in values.items()}
        return loss, metrics
