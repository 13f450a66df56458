"""Portable Triton kernels, forward and backward, one module per op.

Written once for every Triton backend (NVIDIA, AMD, Ascend) and sized at launch
from the backend's :class:`liger_kernel.backend.DeviceProfile`. Only a Triton
backend imports this package: importing it imports ``triton``, which liger-core
does not depend on. Kernels use ``tl.*`` math only, so they also run under the
Triton interpreter (``TRITON_INTERPRET=1``) on CPU tensors.
"""
