"""The NPU device profile that sizes every launch of this backend.

Core counts come from the Triton driver, as triton-ascend exposes them:
``triton.runtime.driver.active.utils.get_device_properties(index)`` returns a
dict with ``num_vectorcore`` and ``num_aicore``. Vector-only kernels (all of
ours) are spread over the vector cores. If the driver does not answer, the
counts are read from ``torch.npu.get_device_properties(index)``
(``vector_core_num`` / ``cube_core_num`` on recent torch_npu), and failing
that the smallest Atlas A2 part is assumed (:data:`FALLBACK_VECTOR_CORES`,
:data:`FALLBACK_AI_CORES`): a smaller grid is always valid, only slower.

Environment variables:

``LIGER_ASCEND_UB_BYTES``
    Unified-buffer bytes per vector core (default 196608 = 192 KiB, Atlas
    A2/A3). Set it for parts with another UB size.
``LIGER_ASCEND_UB_MARGIN``
    Fraction of the UB left to the compiler (default 0.125).
``LIGER_ASCEND_NUM_VECTOR_CORES``
    Overrides the vector-core count (e.g. to leave cores to another stream).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from liger_kernel.backend import DeviceProfile
from liger_kernel_ascend.tiling import MAX_GRID, UB_BYTES_A2, UB_SAFETY_MARGIN, onchip_budget

logger = logging.getLogger("liger_kernel")

#: Atlas A2 910B4: 20 AI cores, each with 2 vector cores.
FALLBACK_AI_CORES = 20
FALLBACK_VECTOR_CORES = 40

#: The cube unit multiplies 16 x 16 fractals of 16-bit operands: chunks of the
#: fused linear cross-entropy hold a multiple of 16 rows, so no fractal is padded.
CUBE_FRACTAL_ROWS = 16
#: Rows of a fused-linear-cross-entropy chunk per cube core (AI core). Each chunk's
#: weight-gradient GEMM does 2 V H rows flops and reads and writes the fp32
#: gradient (8 V H bytes): rows / 4 flops per byte. One cube core does 16 x 16 x 16
#: MACs (8192 flops) a cycle, and an A2 part moves roughly 900 bytes of HBM a cycle
#: (about 1.6 TB/s at 1.8 GHz), so staying bound by the cube units takes about
#: 4 * 8192 / 900 = 36 rows per core. An estimate from published figures, not a
#: measurement: 20 cube cores -> 640 rows, where 2**24-element chunks gave 130 at
#: a 128256 vocabulary.
ROWS_PER_CUBE_CORE = 32


@dataclass(frozen=True)
class CoreCounts:
    vector: int
    ai: int
    source: str


def _positive_int(name: str, value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def _device_index(device: Any) -> int:
    import torch

    index = getattr(device, "index", None)
    if index is not None:
        return int(index)
    npu = getattr(torch, "npu", None)
    return int(npu.current_device()) if npu is not None else 0


def core_counts(index: int) -> CoreCounts:
    """Vector- and AI-core counts of NPU ``index``, with where they came from."""
    try:
        import triton

        props = triton.runtime.driver.active.utils.get_device_properties(index)
        vector, ai = int(props.get("num_vectorcore", -1)), int(props.get("num_aicore", -1))
        if vector > 0 and ai > 0:
            return CoreCounts(vector, ai, "triton driver")
    except Exception as exc:  # a driver without NPU support, or no device
        logger.debug("triton driver gave no NPU core counts: %s", exc)
    try:
        import torch

        props = torch.npu.get_device_properties(index)
        vector, ai = int(getattr(props, "vector_core_num", -1)), int(getattr(props, "cube_core_num", -1))
        if vector > 0 and ai > 0:
            return CoreCounts(vector, ai, "torch.npu.get_device_properties")
    except Exception as exc:
        logger.debug("torch.npu gave no NPU core counts: %s", exc)
    logger.warning(
        "liger-ascend: NPU core counts unavailable; assuming %d vector cores and %d AI cores",
        FALLBACK_VECTOR_CORES,
        FALLBACK_AI_CORES,
    )
    return CoreCounts(FALLBACK_VECTOR_CORES, FALLBACK_AI_CORES, "fallback")


def ub_bytes() -> int:
    """Unified-buffer bytes per vector core (``LIGER_ASCEND_UB_BYTES``)."""
    raw = os.environ.get("LIGER_ASCEND_UB_BYTES")
    return _positive_int("LIGER_ASCEND_UB_BYTES", raw) if raw else UB_BYTES_A2


def ub_margin() -> float:
    raw = os.environ.get("LIGER_ASCEND_UB_MARGIN")
    margin = float(raw) if raw else UB_SAFETY_MARGIN
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"LIGER_ASCEND_UB_MARGIN must be in [0, 1), got {raw!r}")
    return margin


def npu_profile(device: Any) -> DeviceProfile:
    """The :class:`DeviceProfile` of NPU ``device`` (a torch.device)."""
    index = _device_index(device)
    counts = core_counts(index)
    vector = counts.vector
    override = os.environ.get("LIGER_ASCEND_NUM_VECTOR_CORES")
    if override:
        vector = _positive_int("LIGER_ASCEND_NUM_VECTOR_CORES", override)
    try:
        import torch

        name = str(torch.npu.get_device_name(index))
    except Exception:
        name = "Ascend NPU"
    budget = onchip_budget(ub_bytes(), ub_margin())
    # the portable kernels' blocks (max_block, register_bytes) come from their calibrated UB costs
    from liger_kernel_ascend.portable import sized

    return sized(
        DeviceProfile(
            name=name,
            compute_units=vector,
            # The vector unit has no warps; these fields only keep generic code sane.
            warp_size=1,
            max_num_warps=1,
            max_grid=MAX_GRID,
            onchip_bytes=budget,
            # One program per vector core: extra programs only queue on the runtime.
            programs_per_unit=1,
            uses_num_warps=False,
            # The GEMMs run on the cube cores (one per AI core), not the vector cores.
            lm_head_row_multiple=CUBE_FRACTAL_ROWS,
            lm_head_min_rows=counts.ai * ROWS_PER_CUBE_CORE,
        )
    )
