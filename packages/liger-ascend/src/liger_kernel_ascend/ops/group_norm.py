"""GroupNorm on the NPU: the portable Triton kernel, unchanged.

Math: :mod:`liger_kernel.ops.group_norm`. The portable kernel already meets
the NPU's limits when sized by the NPU profile: its persistent grid is
``profile.grid(rows)`` (at most one program per vector core, far below the
65535 limit), and its tiles are at most ``profile.max_block`` elements, which
the profile derives from the unified-buffer budget; it uses no atomics. It
passes the strict NPU mock, so no NPU variant is needed. The subclass exists
so that the route is reported as this backend's and importing it runs the
environment checks of :mod:`liger_kernel_ascend.ops`.
"""

from __future__ import annotations

from liger_kernel.triton.group_norm import GroupNormFunction as PortableGroupNormFunction


class GroupNormFunction(PortableGroupNormFunction):
    """The portable GroupNorm kernel, routed by liger-ascend."""
