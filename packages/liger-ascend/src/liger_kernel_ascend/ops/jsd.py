"""Generalized JSD on the NPU: the portable Triton kernel of
:mod:`liger_kernel.triton.jsd`, unchanged (math: :mod:`liger_kernel.ops.jsd`).

It meets the NPU's limits as it is, sized by the NPU profile: the grid is at
most one program per vector core times the profile's programs per unit (far
below the 65535-program limit), and each row is walked in vocabulary blocks
capped by the profile's unified-buffer budget at ``BYTES_PER_BLOCK_ELEMENT``
bytes per element (2048 elements on an A2 vector core: the dozen fp32 values
live per element, plus the two loads, stay within the 192 KiB UB), so any
vocabulary fits; the strict NPU mock runs it. Importing it through this
package first runs the environment checks of :mod:`liger_kernel_ascend.safety`.
"""

from liger_kernel.triton.jsd import JSDFunction

__all__ = ["JSDFunction"]
