"""The public op Functions; each routes through :mod:`liger_kernel.dispatch`."""

from liger_kernel.ops import _library
from liger_kernel.ops._library import use_operators
from liger_kernel.ops.attn_res import LigerAttnResFunction, attn_res_backward, attn_res_forward
from liger_kernel.ops.clamped_swiglu import LigerClampedSwiGLUFunction
from liger_kernel.ops.cross_entropy import LigerCrossEntropyFunction
from liger_kernel.ops.dyt import LigerDyTFunction
from liger_kernel.ops.experimental.embedding import LigerEmbeddingFunction
from liger_kernel.ops.fused_add_rms_norm import LigerFusedAddRMSNormFunction
from liger_kernel.ops.fused_ce_tvd import LigerFusedCETVDFunction
from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction
from liger_kernel.ops.fused_linear_jsd import LigerFusedLinearJSDFunction
from liger_kernel.ops.fused_linear_kl_div import (
    LigerFusedLinearKLDivFunction,
    fused_linear_kl_div_backward,
    fused_linear_kl_div_forward,
)
from liger_kernel.ops.fused_linear_scaled_cross_entropy import (
    LigerFusedLinearScaledCrossEntropyFunction,
    LigerFusedLinearScaledCrossEntropyTPFunction,
)
from liger_kernel.ops.fused_moe import LigerFusedMoEFunction
from liger_kernel.ops.geglu import LigerGELUMulFunction
from liger_kernel.ops.group_norm import LigerGroupNormFunction
from liger_kernel.ops.grpo_loss import GrpoLossFunction, GrpoTokenLossFunction, LigerSelectiveLogSoftmaxFunction
from liger_kernel.ops.jsd import LigerJSDFunction
from liger_kernel.ops.kl_div import LigerKLDivLossFunction
from liger_kernel.ops.layer_norm import LigerLayerNormFunction
from liger_kernel.ops.llama4_rope import LigerLlama4RopeFunction
from liger_kernel.ops.mhc import LigerMHCCoeffsFunction, LigerMHCPostResFunction, LigerMHCPreFunction
from liger_kernel.ops.mlp import LigerMLPFunction
from liger_kernel.ops.modulated_rms_norm import LigerModulatedRMSNormFunction
from liger_kernel.ops.multi_token_attention import LigerMultiTokenAttentionFunction
from liger_kernel.ops.poly_norm import LigerPolyNormFunction
from liger_kernel.ops.qwen2vl_mrope import LigerQwen2VLMRopeFunction
from liger_kernel.ops.relu_squared import LigerReLUSquaredFunction, relu_squared_backward, relu_squared_forward
from liger_kernel.ops.rms_norm import LigerRMSNormFunction
from liger_kernel.ops.rope import LigerRopeFunction
from liger_kernel.ops.softmax import LigerSoftmaxFunction
from liger_kernel.ops.sparsemax import LigerSparsemaxFunction
from liger_kernel.ops.swiglu import LigerFusedGateUpSiLUMulFunction, LigerSiLUMulFunction
from liger_kernel.ops.tiled_mlp import LigerTiledMLPFunction, apply_tiled_mlp
from liger_kernel.ops.tvd import LigerTVDLossFunction
from liger_kernel.ops.vocab_parallel_cross_entropy import LigerVocabParallelCEFunction

#: op name -> public Function, in the order reports list them
OPS = {
    cls.op: cls
    for cls in (
        LigerRMSNormFunction,
        LigerModulatedRMSNormFunction,
        LigerFusedAddRMSNormFunction,
        LigerLayerNormFunction,
        LigerGroupNormFunction,
        LigerPolyNormFunction,
        LigerRopeFunction,
        LigerQwen2VLMRopeFunction,
        LigerSiLUMulFunction,
        LigerGELUMulFunction,
        LigerCrossEntropyFunction,
        LigerFusedLinearCrossEntropyFunction,
        LigerJSDFunction,
        LigerFusedLinearJSDFunction,
        LigerKLDivLossFunction,
        LigerTVDLossFunction,
        LigerSoftmaxFunction,
        LigerSparsemaxFunction,
        LigerDyTFunction,
        LigerFusedMoEFunction,
        LigerReLUSquaredFunction,
        LigerClampedSwiGLUFunction,
        LigerLlama4RopeFunction,
        LigerSelectiveLogSoftmaxFunction,
        GrpoTokenLossFunction,
        LigerEmbeddingFunction,
        LigerFusedLinearKLDivFunction,
        LigerFusedCETVDFunction,
        LigerVocabParallelCEFunction,
        LigerFusedLinearScaledCrossEntropyFunction,
        LigerMHCCoeffsFunction,
        LigerMHCPreFunction,
        LigerMHCPostResFunction,
        LigerAttnResFunction,
        LigerMultiTokenAttentionFunction,
    )
}

__all__ = [cls.__name__ for cls in OPS.values()] + [
    # contracts over swiglu, not ops of their own
    "LigerFusedGateUpSiLUMulFunction",
    "LigerMLPFunction",
    # the MLP over sequence tiles, a composition over any ops fn calls
    "LigerTiledMLPFunction",
    "apply_tiled_mlp",
    # 0.8.5's GRPO loss: the grpo_loss op's per-token terms, reduced
    "GrpoLossFunction",
    # 0.8.5 re-exported these halves of the ReLU² Function here
    "relu_squared_forward",
    "relu_squared_backward",
    # 0.8.5 re-exported the halves of the fused linear KL divergence here
    "fused_linear_kl_div_forward",
    "fused_linear_kl_div_backward",
    # the tensor-parallel form of fused_linear_scaled_cross_entropy (its process group cannot cross an operator)
    "LigerFusedLinearScaledCrossEntropyTPFunction",
    # 0.8.5 re-exported these AttnRes launchers here
    "attn_res_forward",
    "attn_res_backward",
    "OPS",
    "use_operators",
]

# Each op is also a pair of PyTorch operators (liger::<op>, liger::<op>_backward),
# registered now: torch.compile cannot register them while it traces.
for _cls in OPS.values():
    _library.operator(_cls)
