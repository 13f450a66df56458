"""Op implementations of liger-xpu, one module per op (``swiglu.py``,
``rms_norm.py``, ...), each holding the ``torch.autograd.Function`` that
``liger_kernel_xpu.OPS`` names. Class names follow the other backends:
``RMSNormFunction``, ``FusedAddRMSNormFunction``, ``LayerNormFunction``,
``RopeFunction``, ``SiLUMulFunction``, ``GELUMulFunction``,
``CrossEntropyFunction``, ``FusedLinearCrossEntropyFunction``.
"""
