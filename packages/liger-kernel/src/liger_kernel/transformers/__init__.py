"""Drop-in Hugging Face Transformers integration.

The modules (``LigerRMSNorm``, ``LigerSwiGLUMLP``, the losses, ...) and the
functional API need only torch; the model patching (``apply_liger_kernel_to_*``,
``AutoLigerKernelForCausalLM``) needs ``transformers`` and is imported on first
use, raising an ImportError with the install command when it is missing.
Supported Transformers: >=4.52,<6 (tested with 5.x).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from liger_kernel.transformers import monkey_patch
from liger_kernel.transformers.cross_entropy import LigerCrossEntropyLoss
from liger_kernel.transformers.dyt import LigerDyT
from liger_kernel.transformers.fused_add_rms_norm import LigerFusedAddRMSNorm
from liger_kernel.transformers.fused_ce_tvd import LigerFusedCETVDLoss
from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
from liger_kernel.transformers.fused_linear_jsd import LigerFusedLinearJSD
from liger_kernel.transformers.fused_linear_kl_div import LigerFusedLinearKLDivLoss
from liger_kernel.transformers.geglu import LigerGEGLUMLP
from liger_kernel.transformers.group_norm import LigerGroupNorm
from liger_kernel.transformers.jsd import LigerJSD
from liger_kernel.transformers.kl_div import LigerKLDIVLoss
from liger_kernel.transformers.layer_norm import LigerLayerNorm
from liger_kernel.transformers.llama4_rope import liger_llama4_text_rotary_pos_emb, liger_llama4_vision_rotary_pos_emb
from liger_kernel.transformers.mhc import LigerMHC
from liger_kernel.transformers.mlp import LigerFalconH1MLP, LigerMLP
from liger_kernel.transformers.modulated_rms_norm import LigerModulatedRMSNorm
from liger_kernel.transformers.multi_token_attention import LigerMultiTokenAttention
from liger_kernel.transformers.poly_norm import LigerPolyNorm
from liger_kernel.transformers.qwen2vl_mrope import liger_multimodal_rotary_pos_emb
from liger_kernel.transformers.relu_squared import LigerReLUSquared
from liger_kernel.transformers.rms_norm import (
    LigerRMSNorm,
    LigerRMSNormForMuseGlimmer,
    LigerRMSNormForMuseGlimmerTextCentered,
)
from liger_kernel.transformers.rope import liger_rotary_pos_emb
from liger_kernel.transformers.softmax import LigerSoftmax
from liger_kernel.transformers.sparsemax import LigerSparsemax
from liger_kernel.transformers.swiglu import (
    LigerBlockSparseTop2MLP,
    LigerExperts,
    LigerFalconH1SwiGLUMLP,
    LigerPhi3SwiGLUMLP,
    LigerQwen3MoeSwiGLUMLP,
    LigerSwiGLUMLP,
    LigerSwiGLUMLPForMuseGlimmer,
)
from liger_kernel.transformers.tiled_mlp import LigerTiledGEGLUMLP, LigerTiledSwiGLUMLP
from liger_kernel.transformers.tvd import LigerTVDLoss
from liger_kernel.transformers.vocab_parallel_cross_entropy import LigerVocabParallelCrossEntropy

# The model patching names. monkey_patch needs only torch to import (the table
# of families); Transformers is required when a name is first used.
_PATCHING = (
    "MODEL_TYPE_TO_APPLY_LIGER_FN",
    "_apply_liger_kernel",
    "_apply_liger_kernel_to_instance",
    *sorted(monkey_patch.PATCH_FUNCTIONS),
    "revert_liger_kernel_patches",
)


def is_transformers_available() -> bool:
    """Whether the ``transformers`` package is installed (the model patching needs it)."""
    return importlib.util.find_spec("transformers") is not None


def __getattr__(name: str) -> Any:
    if name in _PATCHING:
        monkey_patch._require_transformers()
        return getattr(monkey_patch, name)
    if name == "AutoLigerKernelForCausalLM":
        return importlib.import_module("liger_kernel.transformers.auto_model").AutoLigerKernelForCausalLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AutoLigerKernelForCausalLM",
    "LigerCrossEntropyLoss",
    "LigerDyT",
    "LigerFusedAddRMSNorm",
    "LigerFusedLinearCrossEntropyLoss",
    "LigerFusedLinearJSD",
    "LigerFusedLinearKLDivLoss",
    "LigerFusedCETVDLoss",
    "LigerGEGLUMLP",
    "LigerGroupNorm",
    "LigerJSD",
    "LigerKLDIVLoss",
    "LigerLayerNorm",
    "LigerModulatedRMSNorm",
    "LigerMHC",
    "LigerPhi3SwiGLUMLP",
    "LigerBlockSparseTop2MLP",
    "LigerExperts",
    "LigerQwen3MoeSwiGLUMLP",
    "LigerPolyNorm",
    "LigerReLUSquared",
    "LigerRMSNorm",
    "LigerRMSNormForMuseGlimmer",
    "LigerRMSNormForMuseGlimmerTextCentered",
    "LigerSoftmax",
    "LigerSparsemax",
    "LigerSwiGLUMLP",
    "LigerSwiGLUMLPForMuseGlimmer",
    "LigerTiledGEGLUMLP",
    "LigerTiledSwiGLUMLP",
    "LigerTVDLoss",
    "LigerVocabParallelCrossEntropy",
    "LigerMLP",
    "LigerMultiTokenAttention",
    "LigerFalconH1MLP",
    "LigerFalconH1SwiGLUMLP",
    "liger_multimodal_rotary_pos_emb",
    "liger_llama4_text_rotary_pos_emb",
    "liger_llama4_vision_rotary_pos_emb",
    "is_transformers_available",
    "liger_rotary_pos_emb",
    *_PATCHING,
]
