"""How the NPU profile sizes the portable Triton kernels this backend runs unchanged.

liger-core's launchers pick those kernels' blocks from the device profile
(``max_block``, and ``register_bytes`` for the vocabulary-wide losses), each
by its own rule (the whole ``max_block``, half of it, a register budget per
column). The NPU profile's two fields are therefore not a count of live
tiles: they are the widest powers of two for which every tile those rules
yield, at their widest, fits the UB budget by the calibrated cost of its
kernel (:mod:`liger_kernel_ascend.ub_calibration`, the most expensive
variant of any dtype, as one profile serves them all). The compile-ascend
lane checks each captured launch of these kernels against the compiler.

Importing this module imports the portable kernels (and so triton): it runs
when the first kernel asks for the profile, after the backend's prepare step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from liger_kernel.backend import DeviceProfile
from liger_kernel.triton import dyt, jsd, kl_div, poly_norm, sparsemax
from liger_kernel.triton.launch import MIN_BLOCK, register_block, row_block
from liger_kernel.triton.swiglu import gate_launch
from liger_kernel_ascend import ub_calibration

#: a row wider than any block: the launchers then walk it at their widest block
WIDE = 1 << 30
#: the widest block the profile may offer (the calibration measures blocks up to 16384)
MAX_BLOCK = 1 << 16

Tiles = Callable[[DeviceProfile], Iterable[tuple[int, int]]]


def _row(block: Callable[[DeviceProfile], int]) -> Tiles:
    return lambda profile: [(1, block(profile))]


def _dyt(tile: Callable[[DeviceProfile], int]) -> Tiles:
    # every column block the launcher can choose, each with the rows it then stacks
    def tiles(profile: DeviceProfile) -> list[tuple[int, int]]:
        plans = (dyt.tile_plan(profile, WIDE, MIN_BLOCK << k, tile(profile)) for k in range(13))
        return sorted({(plan.block_rows, plan.block_cols) for plan in plans})

    return tiles


def _poly_norm(profile: DeviceProfile) -> list[tuple[int, int]]:
    # a row held in one block (up to max_block) and one walked in blocks
    return [(1, poly_norm.poly_norm_block(profile, profile.max_block)), (1, poly_norm.poly_norm_block(profile, WIDE))]


#: kernel (module.name) -> the (outer, inner) tiles its launcher takes under a profile, at their widest
MAX_BLOCK_TILES: dict[str, Tiles] = {
    "liger_kernel.triton.softmax._softmax_forward_kernel": _row(lambda p: row_block(WIDE, p)),
    "liger_kernel.triton.softmax._softmax_backward_kernel": _row(lambda p: row_block(WIDE, p)),
    "liger_kernel.triton.sparsemax._sparsemax_forward_kernel": _row(
        lambda p: sparsemax.sparsemax_launch(p, 1, WIDE).block
    ),
    "liger_kernel.triton.sparsemax._sparsemax_backward_kernel": _row(
        lambda p: sparsemax.sparsemax_launch(p, 1, WIDE).block
    ),
    "liger_kernel.triton.poly_norm._poly_norm_forward_kernel": _poly_norm,
    "liger_kernel.triton.poly_norm._poly_norm_backward_kernel": _poly_norm,
    "liger_kernel.triton.dyt._dyt_forward_kernel": _dyt(dyt.forward_tile),
    "liger_kernel.triton.dyt._dyt_backward_kernel": _dyt(dyt.backward_tile),
    # flat tiles of the gates' launch (min(gate_tile, max_block) elements)
    "liger_kernel.triton.relu_squared._relu_squared_forward_kernel": _row(lambda p: gate_launch(p, WIDE, 4)[0].block),
    "liger_kernel.triton.relu_squared._relu_squared_backward_kernel": _row(lambda p: gate_launch(p, WIDE, 4)[0].block),
}
#: the kernels sized by the register budget (within ``max_block``)
REGISTER_TILES: dict[str, Tiles] = {
    "liger_kernel.triton.jsd._jsd_kernel": _row(lambda p: register_block(p, WIDE, jsd.BYTES_PER_BLOCK_ELEMENT)),
    "liger_kernel.triton.cross_entropy._scale_rows_kernel": _row(
        lambda p: register_block(p, WIDE, jsd.BYTES_PER_BLOCK_ELEMENT)
    ),
    "liger_kernel.triton.kl_div._kl_div_forward_kernel": _row(lambda p: kl_div.streaming_launch(p, 1, WIDE).block),
    "liger_kernel.triton.kl_div._kl_div_backward_kernel": _row(lambda p: kl_div.streaming_launch(p, 1, WIDE).block),
    "liger_kernel.triton.tvd._tvd_forward_kernel": _row(lambda p: kl_div.streaming_launch(p, 1, WIDE).block),
    "liger_kernel.triton.tvd._tvd_backward_kernel": _row(lambda p: kl_div.streaming_launch(p, 1, WIDE).block),
}


def fits(profile: DeviceProfile, kernels: dict[str, Tiles]) -> bool:
    """Whether every tile ``kernels`` take under ``profile`` fits its UB budget by the calibration."""
    return all(
        ub_calibration.worst_cost(kernel).bytes(outer, inner) <= profile.onchip_bytes
        for kernel, tiles in kernels.items()
        for outer, inner in tiles(profile)
    )


def _largest(candidates: Iterable[DeviceProfile], kernels: dict[str, Tiles]) -> DeviceProfile | None:
    return next((p for p in candidates if fits(p, kernels)), None)


def sized(profile: DeviceProfile) -> DeviceProfile:
    """``profile`` with the ``max_block`` and ``register_bytes`` the portable kernels fit the UB with."""
    blocks = [dataclasses.replace(profile, max_block=MAX_BLOCK >> k) for k in range(MAX_BLOCK.bit_length())]
    widest = _largest((p for p in blocks if p.max_block >= MIN_BLOCK), MAX_BLOCK_TILES)
    if widest is None:
        raise ValueError(f"no block of the portable kernels fits the {profile.onchip_bytes}-byte unified-buffer budget")
    if fits(widest, REGISTER_TILES):
        return widest
    budgets = (dataclasses.replace(widest, register_bytes=widest.onchip_bytes >> k) for k in range(1, 32))
    within = _largest((p for p in budgets if p.register_bytes >= MIN_BLOCK), REGISTER_TILES)
    if within is None:
        raise ValueError(
            f"no block of the vocabulary kernels fits the {profile.onchip_bytes}-byte unified-buffer budget"
        )
    return within
