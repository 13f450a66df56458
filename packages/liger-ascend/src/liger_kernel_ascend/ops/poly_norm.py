"""PolyNorm on the NPU: the portable Triton kernel, unchanged.

Math: :mod:`liger_kernel.ops.poly_norm`. The portable kernel already meets the
NPU's limits when sized by the NPU profile: its persistent grids are at most
one program per vector core (far below the 65535 limit), its row blocks are at
most ``profile.max_block`` elements, which the profile derives from the
unified-buffer budget, and its dW/dB partial sums use no atomics. It passes
the strict NPU mock, so no NPU variant is needed. The subclass exists so that
the route is reported as this backend's and importing it runs the environment
checks of :mod:`liger_kernel_ascend.ops`.
"""

from __future__ import annotations

from liger_kernel.triton.poly_norm import PolyNormFunction as PortablePolyNormFunction


class PolyNormFunction(PortablePolyNormFunction):
    """The portable PolyNorm kernel, routed by liger-ascend."""
