"""Preference, RL and distillation losses computed chunk by chunk over the batch from hidden
states and the LM head, so that the full (rows, vocab) logits never exist at once.

Vendor-neutral PyTorch; the chunking lives once in :mod:`liger_kernel.chunked_loss._chunking`.
"""

from liger_kernel.chunked_loss.cosine_similarity_loss import LigerFusedLinearCosineSimilarityLoss
from liger_kernel.chunked_loss.cpo_loss import LigerFusedLinearCPOLoss
from liger_kernel.chunked_loss.dpo_loss import LigerFusedLinearDPOLoss
from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOLoss
from liger_kernel.chunked_loss.jsd_loss import LigerFusedLinearJSDLoss
from liger_kernel.chunked_loss.kto_loss import LigerFusedLinearKTOLoss
from liger_kernel.chunked_loss.orpo_loss import LigerFusedLinearORPOLoss
from liger_kernel.chunked_loss.simpo_loss import LigerFusedLinearSimPOLoss

__all__ = [
    "LigerFusedLinearCPOLoss",
    "LigerFusedLinearCosineSimilarityLoss",
    "LigerFusedLinearDPOLoss",
    "LigerFusedLinearGRPOLoss",
    "LigerFusedLinearJSDLoss",
    "LigerFusedLinearKTOLoss",
    "LigerFusedLinearORPOLoss",
    "LigerFusedLinearSimPOLoss",
]
