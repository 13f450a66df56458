"""Tiling planner for the NPU kernels: pure functions, no torch or triton.

An Ascend vector core works on tiles that it moves from global memory into its
unified buffer (UB), so a launch must respect two limits the GPU kernels never
meet:

* the grid: at most 65535 programs (the runtime's ``coreDim``), and programs
  beyond the number of cores only queue behind each other, so the planner
  launches at most one program per core and lets each program loop over its
  share of the rows;
* the UB: every buffer the compiler places in it at one time (tiles staged
  by DMA and their double buffers, fp32 working copies, index tiles, masks,
  scratch) must fit together.

What a tile costs is not counted here by hand: each kernel variant's
:class:`UBCost` is fitted to the bytes bishengir's memory planning allocates
(``tools/ascend_compile/calibrate.py``, stored in ``ub_calibration.json``).
For an op over ``rows`` rows of ``width`` elements the plan is:

    block        = the whole row (next power of two) if it fits the budget,
                   else the widest power of two (>= MIN_BLOCK) that fits
    sub_blocks   = ceil(width / block)         (>1: the kernel loops over the
                                               row in sub-blocks)
    rows_per_step= largest power of two whose (rows_per_step x block) tile
                   still fits, no more than rows / cores (so every core has work)
    grid         = min(ceil(rows / rows_per_step), cores, max_grid)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

#: The runtime refuses a launch of more programs than this.
MAX_GRID = 65535
#: Unified buffer of one vector core on Atlas A2 (910B) parts.
UB_BYTES_A2 = 192 * 1024
#: Part of the UB the planner leaves free: what the fitted costs miss (their
#: fit error, anything the binary step after memory planning adds).
UB_SAFETY_MARGIN = 1 / 8
#: UB accesses are 32-byte aligned; narrower blocks waste DMA bandwidth.
MIN_BLOCK = 16
#: Rows per step are capped: beyond this the gain is nil and masked tails grow.
MAX_ROWS_PER_STEP = 64


@dataclass(frozen=True)
class UBCost:
    """Unified-buffer bytes one kernel variant allocates for a tile of
    ``outer`` x ``inner`` elements (rows or heads x columns; ``outer`` is 1
    for a kernel with one tile axis), as bishengir's memory planning places
    its buffers: 2-D tiles (inputs, their DMA double buffers, fp32 working
    copies, index tiles and masks), per-column tiles (weights, accumulators),
    per-row values, and a fixed part (scalars, alignment).

    A tile of one row costs what the compiler allocated, ``single_row``
    ((inner, bytes) pairs measured at increasing ``inner``), interpolated
    linearly between measurements and extrapolated from the outermost two: a
    single row compiles differently (no broadcast of per-column tiles across
    rows). A tile of several rows costs what the compiler allocated where
    ``stacked`` holds a measurement of it ((outer, inner, bytes)), else

        per_element * outer * inner + per_inner * inner + per_outer * outer + fixed

    Both are fitted to the compiler per kernel, dtype and constexpr variant by
    ``tools/ascend_compile/calibrate.py`` (see :mod:`liger_kernel_ascend.ub_calibration`)."""

    per_element: float
    per_inner: float = 0.0
    per_outer: float = 0.0
    fixed: float = 0.0
    single_row: tuple[tuple[int, int], ...] = ()
    stacked: tuple[tuple[int, int, int], ...] = ()

    def bytes(self, outer: int, inner: int) -> int:
        for measured_outer, measured_inner, measured in self.stacked:
            if (measured_outer, measured_inner) == (outer, inner):
                return measured
        row = self.single_row
        if outer == 1 and len(row) >= 2:
            segments = list(itertools.pairwise(row))
            (low, low_bytes), (high, high_bytes) = next(
                (segment for segment in segments if inner <= segment[1][0]), segments[-1]
            )
            return max(0, math.ceil(low_bytes + (high_bytes - low_bytes) * (inner - low) / (high - low)))
        if outer == 1 and row and inner == row[0][0]:
            return row[0][1]
        return math.ceil(
            self.per_element * outer * inner + self.per_inner * inner + self.per_outer * outer + self.fixed
        )


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


def _widest(fits: Callable[[int], bool], start: int, most: int) -> int:
    """The largest power of two in [start, most] up to which ``fits`` holds (tried from ``start``
    upwards, doubling), or 0 when even ``start`` does not fit."""
    best = 0
    size = start
    while size <= most and fits(size):
        best, size = size, size * 2
    return best


def _too_small(budget_bytes: int, needed: int) -> ValueError:
    return ValueError(
        f"the smallest tile needs {needed} bytes of unified buffer, more than the {budget_bytes}-byte budget"
    )


def plan_rows(
    rows: int,
    width: int,
    cost: UBCost,
    *,
    cores: int,
    budget_bytes: int,
    single_block_cost: UBCost | None = None,
    max_grid: int = MAX_GRID,
    max_rows_per_step: int = MAX_ROWS_PER_STEP,
) -> TilePlan:
    """Plan a row-wise op (one row's result depends on that whole row).

    ``cost`` is the kernel's when it walks a row in sub-blocks;
    ``single_block_cost`` (default ``cost``) its cost when the whole row is
    one block, for kernels compiled differently then."""
    if rows < 0 or width < 1:
        raise ValueError(f"cannot plan rows={rows}, width={width}")
    if cores < 1 or max_grid < 1:
        raise ValueError(f"cores and max_grid must be positive, got {cores} and {max_grid}")
    single = single_block_cost or cost
    whole_row = max(MIN_BLOCK, next_power_of_2(width))
    if single.bytes(1, whole_row) <= budget_bytes:
        block, chosen = whole_row, single
    else:
        # walked in sub-blocks: at most half the row, so the kernel is the walking variant
        block = _widest(lambda b: cost.bytes(1, b) <= budget_bytes, MIN_BLOCK, whole_row // 2)
        chosen = cost
        if not block:
            raise _too_small(budget_bytes, cost.bytes(1, MIN_BLOCK))
    sub_blocks = math.ceil(width / block)
    rows_per_core = prev_power_of_2(max(1, rows // cores))
    most_rows = max(1, min(rows_per_core, max_rows_per_step))
    rows_per_step = _widest(lambda r: chosen.bytes(r, block) <= budget_bytes, 1, most_rows) or 1
    steps = max(1, math.ceil(rows / rows_per_step))
    grid = max(1, min(steps, cores, max_grid))
    return TilePlan(
        grid=grid,
        rows_per_step=rows_per_step,
        block=block,
        sub_blocks=sub_blocks,
        bytes_per_step=chosen.bytes(rows_per_step, block),
        steps=steps,
    )


def plan_stacked(
    items: int,
    stack: int,
    inner: int,
    cost: UBCost,
    *,
    cores: int,
    budget_bytes: int,
    max_grid: int = MAX_GRID,
) -> TilePlan:
    """Plan an op whose program takes one work item at a time and walks a
    stack of ``stack`` rows of ``inner`` columns each (``inner`` fixed by the
    data, e.g. half a head dimension) in tiles of ``rows_per_step`` rows
    (``block`` is ``inner``, ``sub_blocks`` the tiles per item)."""
    if items < 0 or stack < 1 or inner < 1:
        raise ValueError(f"cannot plan items={items}, stack={stack}, inner={inner}")
    if cores < 1 or max_grid < 1:
        raise ValueError(f"cores and max_grid must be positive, got {cores} and {max_grid}")
    rows_per_step = _widest(lambda r: cost.bytes(r, inner) <= budget_bytes, 1, next_power_of_2(stack))
    if not rows_per_step:
        raise _too_small(budget_bytes, cost.bytes(1, inner))
    steps = max(1, items)
    return TilePlan(
        grid=max(1, min(steps, cores, max_grid)),
        rows_per_step=rows_per_step,
        block=inner,
        sub_blocks=math.ceil(stack / rows_per_step),
        bytes_per_step=cost.bytes(rows_per_step, inner),
        steps=steps,
    )


def plan_elementwise(
    numel: int,
    cost: UBCost,
    *,
    cores: int,
    budget_bytes: int,
    max_grid: int = MAX_GRID,
) -> TilePlan:
    """Plan an element-wise op over a flat range: tiles of ``block`` elements,
    ``grid`` programs striding over the tiles."""
    per_core = max(MIN_BLOCK, next_power_of_2(max(1, math.ceil(numel / cores))))
    block = _widest(lambda b: cost.bytes(1, b) <= budget_bytes, MIN_BLOCK, per_core)
    if not block:
        raise _too_small(budget_bytes, cost.bytes(1, MIN_BLOCK))
    tiles = max(1, math.ceil(numel / block))
    grid = max(1, min(tiles, cores, max_grid))
    return TilePlan(
        grid=grid,
        rows_per_step=1,
        block=block,
        sub_blocks=tiles,
        bytes_per_step=cost.bytes(1, block),
        steps=tiles,
    )
