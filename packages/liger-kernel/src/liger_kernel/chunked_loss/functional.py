"""Functional forms of the chunked losses, called with the loss Functions' positional arguments."""

from liger_kernel.chunked_loss.cosine_similarity_loss import liger_fused_linear_cosine
from liger_kernel.chunked_loss.cpo_loss import liger_fused_linear_cpo
from liger_kernel.chunked_loss.dpo_loss import liger_fused_linear_dpo
from liger_kernel.chunked_loss.grpo_loss import liger_fused_linear_grpo
from liger_kernel.chunked_loss.jsd_loss import liger_fused_linear_jsd
from liger_kernel.chunked_loss.kto_loss import liger_fused_linear_kto
from liger_kernel.chunked_loss.orpo_loss import liger_fused_linear_orpo
from liger_kernel.chunked_loss.simpo_loss import liger_fused_linear_simpo

__all__ = [
    "liger_fused_linear_cosine",
    "liger_fused_linear_cpo",
    "liger_fused_linear_dpo",
    "liger_fused_linear_grpo",
    "liger_fused_linear_jsd",
    "liger_fused_linear_kto",
    "liger_fused_linear_orpo",
    "liger_fused_linear_simpo",
]
