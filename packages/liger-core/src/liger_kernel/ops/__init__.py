"""The public op Functions; each routes through :mod:`liger_kernel.dispatch`."""

from liger_kernel.ops.cross_entropy import LigerCrossEntropyFunction
from liger_kernel.ops.fused_add_rms_norm import LigerFusedAddRMSNormFunction
from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction
from liger_kernel.ops.geglu import LigerGELUMulFunction
from liger_kernel.ops.layer_norm import LigerLayerNormFunction
from liger_kernel.ops.rms_norm import LigerRMSNormFunction
from liger_kernel.ops.rope import LigerRopeFunction
from liger_kernel.ops.swiglu import LigerSiLUMulFunction

#: op name -> public Function, in the order reports list them
OPS = {
    cls.op: cls
    for cls in (
        LigerRMSNormFunction,
        LigerFusedAddRMSNormFunction,
        LigerLayerNormFunction,
        LigerRopeFunction,
        LigerSiLUMulFunction,
        LigerGELUMulFunction,
        LigerCrossEntropyFunction,
        LigerFusedLinearCrossEntropyFunction,
    )
}

__all__ = [cls.__name__ for cls in OPS.values()] + ["OPS"]
