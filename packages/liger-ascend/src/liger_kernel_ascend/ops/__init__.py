"""NPU kernels of liger-ascend, one module per op.

Importing this package (which the dispatcher does on an op's first NPU call,
never when it merely discovers or probes the backend) first checks that the
``triton`` module is triton-ascend and that torch and torch_npu match; see
:mod:`liger_kernel_ascend.safety`.
"""

from liger_kernel_ascend.safety import check_environment

check_environment()
