"""Tiling planner for the NPU kernels: pure functions, no torch or triton.

An Ascend vector core works on tiles that it moves from global memory into its
unified buffer (UB), so a launch must respect two limits the GPU kernels never
meet:

* the grid: at most 65535 programs (the runtime's ``coreDim``), and programs
  beyond the number of cores only queue behind each other, so the planner
  launches at most one program per core and lets each program loop over its
  share of the rows;
* the UB: every tile that is live at one time (inputs staged by DMA, which the
  compiler double-buffers, plus fp32 working copies) must fit together.

For an op over ``rows`` rows of ``width`` elements the plan is:

    block        = widest power of two (>= min_block) whose live tiles fit
                   the budget, no wider than the row needs;
    sub_blocks   = ceil(width / block)         (>1: the kernel loops over the
                                               row in sub-blocks)
    rows_per_step= largest power of two with rows_per_step * block still in
                   budget, no more than rows / cores (so every core has work)
    grid         = min(ceil(rows / rows_per_step), cores, max_grid)

Bytes one element of a tile costs, from :data:`FOOTPRINTS`:

    bytes_per_element = 2 * io_tiles * dtype_bytes + 4 * fp32_tiles

(``2 *`` because the compiler double-buffers DMA tiles.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The runtime refuses a launch of more programs than this.
MAX_GRID = 65535
#: Unified buffer of one vector core on Atlas A2 (910B) parts.
UB_BYTES_A2 = 192 * 1024
#: Part of the UB left to the compiler's own temporaries and alignment padding.
UB_SAFETY_MARGIN = 1 / 8
#: UB accesses are 32-byte aligned; narrower blocks waste DMA bandwidth.
MIN_BLOCK = 16
#: Rows per step are capped: beyond this the gain is nil and masked tails grow.
MAX_ROWS_PER_STEP = 64


@dataclass(frozen=True)
class Footprint:
    """How many row-tiles an op keeps live in the UB at once.

    io_tiles: tiles moved by DMA in the storage dtype (double-buffered).
    fp32_tiles: fp32 working tiles (upcast inputs, intermediates, accumulators).
    """

    io_tiles: int
    fp32_tiles: int

    def bytes_per_element(self, dtype_bytes: int) -> int:
        return 2 * self.io_tiles * dtype_bytes + 4 * self.fp32_tiles


#: Live tiles per kernel, counted from the kernels in liger_kernel_ascend.ops.
FOOTPRINTS: dict[str, Footprint] = {
    # x, w in; y out | x32, w32, n
    "rms_norm": Footprint(io_tiles=3, fp32_tiles=3),
    # dy, x, w in; dx out | dy32, x32, w32, g, n, dw partial
    "rms_norm_backward": Footprint(io_tiles=4, fp32_tiles=6),
    # x, r, w in; y, s out | s32, w32, n
    "fused_add_rms_norm": Footprint(io_tiles=5, fp32_tiles=3),
    # x, w, b in; y out | x32, centred, w32, b32
    "layer_norm": Footprint(io_tiles=4, fp32_tiles=4),
    # dy, x, w in; dx out | dy32, x32, w32, g, n, dw and db partials
    "layer_norm_backward": Footprint(io_tiles=4, fp32_tiles=7),
    # logits (and class weights) in, gradient out | x32, exp, weights, gradient
    "cross_entropy": Footprint(io_tiles=3, fp32_tiles=4),
    # q halves and cos/sin halves in, two halves out | the same in fp32
    "rope": Footprint(io_tiles=8, fp32_tiles=6),
    # a, b in; c out | a32, b32, gate
    "gate": Footprint(io_tiles=3, fp32_tiles=3),
    # dc, a, b in; da, db out | dc32, a32, b32, gate, two gradients
    "gate_backward": Footprint(io_tiles=5, fp32_tiles=6),
}


@dataclass(frozen=True)
class TilePlan:
    """A launch: ``grid`` programs, each stepping over ``rows_per_step`` rows
    at a time and over each row in ``sub_blocks`` blocks of ``block`` columns."""

    grid: int
    rows_per_step: int
    block: int
    sub_blocks: int
    bytes_per_step: int
    #: row steps (or element tiles) over the whole launch
    steps: int = 1

    @property
    def steps_per_program(self) -> int:
        """Steps the busiest program makes: the loop each program runs."""
        return math.ceil(self.steps / self.grid)


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def prev_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n.bit_length() - 1)


def onchip_budget(ub_bytes: int, margin: float = UB_SAFETY_MARGIN) -> int:
    """The part of the UB the planner may fill: UB less the safety margin."""
    return int(ub_bytes * (1 - margin))


def plan_rows(
    rows: int,
    width: int,
    dtype_bytes: int,
    footprint: Footprint,
    *,
    cores: int,
    budget_bytes: int,
    max_grid: int = MAX_GRID,
    max_rows_per_step: int = MAX_ROWS_PER_STEP,
) -> TilePlan:
    """Plan a row-wise op (one row's result depends on that whole row)."""
    if rows < 0 or width < 1:
        raise ValueError(f"cannot plan rows={rows}, width={width}")
    if cores < 1 or max_grid < 1:
        raise ValueError(f"cores and max_grid must be positive, got {cores} and {max_grid}")
    per_element = footprint.bytes_per_element(dtype_bytes)
    fitting = prev_power_of_2(max(1, budget_bytes // per_element))
    if fitting < MIN_BLOCK:
        raise ValueError(
            f"a {MIN_BLOCK}-element tile needs {MIN_BLOCK * per_element} bytes of unified buffer, "
            f"more than the {budget_bytes}-byte budget"
        )
    block = max(MIN_BLOCK, min(next_power_of_2(width), fitting))
    sub_blocks = math.ceil(width / block)
    rows_fitting = prev_power_of_2(max(1, budget_bytes // (block * per_element)))
    rows_per_core = prev_power_of_2(max(1, rows // cores))
    rows_per_step = max(1, min(rows_fitting, rows_per_core, max_rows_per_step))
    steps = max(1, math.ceil(rows / rows_per_step))
    grid = max(1, min(steps, cores, max_grid))
    return TilePlan(
        grid=grid,
        rows_per_step=rows_per_step,
        block=block,
        sub_blocks=sub_blocks,
        bytes_per_step=rows_per_step * block * per_element,
        steps=steps,
    )


def plan(
    op: str,
    rows: int,
    width: int,
    dtype_bytes: int,
    *,
    cores: int,
    budget_bytes: int,
    max_grid: int = MAX_GRID,
) -> TilePlan:
    """Plan ``op`` (a key of :data:`FOOTPRINTS`) over ``rows`` x ``width``."""
    if op not in FOOTPRINTS:
        raise KeyError(f"no footprint for op {op!r}; known: {', '.join(sorted(FOOTPRINTS))}")
    return plan_rows(
        rows, width, dtype_bytes, FOOTPRINTS[op], cores=cores, budget_bytes=budget_bytes, max_grid=max_grid
    )


def plan_elementwise(
    numel: int,
    dtype_bytes: int,
    footprint: Footprint,
    *,
    cores: int,
    budget_bytes: int,
    max_grid: int = MAX_GRID,
) -> TilePlan:
    """Plan an element-wise op over a flat range: tiles of ``block`` elements,
    ``grid`` programs striding over the tiles."""
    per_element = footprint.bytes_per_element(dtype_bytes)
    fitting = prev_power_of_2(max(1, budget_bytes // per_element))
    if fitting < MIN_BLOCK:
        raise ValueError(f"a {MIN_BLOCK}-element tile does not fit the {budget_bytes}-byte budget")
    per_core = next_power_of_2(max(1, math.ceil(numel / cores)))
    block = max(MIN_BLOCK, min(fitting, per_core))
    tiles = max(1, math.ceil(numel / block))
    grid = max(1, min(tiles, cores, max_grid))
    return TilePlan(
        grid=grid,
        rows_per_step=1,
        block=block,
        sub_blocks=tiles,
        bytes_per_step=block * per_element,
        steps=tiles,
    )
