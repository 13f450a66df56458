"""The tiling planner: pure functions, checked against the limits they exist for."""

import math

import pytest

from liger_kernel_ascend.tiling import (
    FOOTPRINTS,
    MAX_GRID,
    MIN_BLOCK,
    UB_BYTES_A2,
    Footprint,
    onchip_budget,
    plan,
    plan_elementwise,
    plan_rows,
)

BUDGET = onchip_budget(UB_BYTES_A2)
CORES = 40


def test_budget_leaves_a_margin_below_the_unified_buffer():
    assert 0 < BUDGET < UB_BYTES_A2


@pytest.mark.parametrize("op", sorted(FOOTPRINTS))
@pytest.mark.parametrize("width", [1, 7, 128, 4096, 5000, 151_936])
@pytest.mark.parametrize("dtype_bytes", [2, 4])
def test_every_plan_fits_the_budget_and_covers_the_row(op, width, dtype_bytes):
    p = plan(op, 1000, width, dtype_bytes, cores=CORES, budget_bytes=BUDGET)
    assert p.bytes_per_step <= BUDGET
    assert p.block * p.sub_blocks >= width
    assert (p.sub_blocks - 1) * p.block < width, "no sub-block lies wholly past the row"
    assert p.block & (p.block - 1) == 0 and p.block >= MIN_BLOCK
    assert 1 <= p.grid <= CORES


def test_a_vocabulary_row_is_walked_in_sub_blocks():
    p = plan("cross_entropy", 8, 151_936, 2, cores=CORES, budget_bytes=BUDGET)
    assert p.sub_blocks > 1
    assert p.block * FOOTPRINTS["cross_entropy"].bytes_per_element(2) <= BUDGET
    # the widest block that fits: doubling it would overflow
    assert 2 * p.block * FOOTPRINTS["cross_entropy"].bytes_per_element(2) > BUDGET


def test_a_narrow_row_is_one_block_and_rows_are_batched():
    p = plan("rms_norm", 10_000, 64, 2, cores=CORES, budget_bytes=BUDGET)
    assert p.sub_blocks == 1 and p.block == 64
    assert p.rows_per_step > 1
    assert p.rows_per_step * p.block * FOOTPRINTS["rms_norm"].bytes_per_element(2) <= BUDGET


def test_rows_that_would_naively_need_more_than_65535_programs():
    rows = 8 * 131_072  # one program per row would be 1M programs
    p = plan("rms_norm", rows, 4096, 2, cores=CORES, budget_bytes=BUDGET)
    assert p.grid == CORES
    assert p.grid * p.steps_per_program * p.rows_per_step >= rows


def test_grid_never_exceeds_the_runtime_limit_even_with_more_cores():
    p = plan_rows(10**7, 16, 4, Footprint(1, 1), cores=10**6, budget_bytes=BUDGET)
    assert p.grid == MAX_GRID


def test_more_work_items_than_cores_gives_one_program_per_core():
    p = plan_rows(41, 100, 4, FOOTPRINTS["layer_norm"], cores=CORES, budget_bytes=BUDGET)
    assert p.grid == CORES and p.rows_per_step == 1 and p.steps_per_program == 2


def test_fewer_rows_than_cores_launches_one_program_per_row():
    p = plan("rms_norm", 3, 100, 4, cores=CORES, budget_bytes=BUDGET)
    assert p.grid == 3


def test_a_smaller_unified_buffer_gives_smaller_tiles():
    big = plan("layer_norm", 64, 8192, 4, cores=CORES, budget_bytes=BUDGET)
    small = plan("layer_norm", 64, 8192, 4, cores=CORES, budget_bytes=BUDGET // 4)
    assert small.block < big.block
    assert small.sub_blocks > big.sub_blocks


def test_a_budget_too_small_for_any_tile_is_refused():
    with pytest.raises(ValueError, match="unified buffer"):
        plan("rms_norm", 4, 4096, 4, cores=CORES, budget_bytes=64)


def test_unknown_op_is_named():
    with pytest.raises(KeyError, match="no footprint for op 'nope'"):
        plan("nope", 1, 1, 4, cores=CORES, budget_bytes=BUDGET)


def test_elementwise_plan_covers_a_huge_tensor_within_the_grid_limit():
    numel = 3 * 2**31
    p = plan_elementwise(numel, 2, FOOTPRINTS["gate"], cores=CORES, budget_bytes=BUDGET)
    assert p.grid == CORES <= MAX_GRID
    assert p.bytes_per_step <= BUDGET
    assert p.steps == math.ceil(numel / p.block)


def test_elementwise_plan_of_a_small_tensor_spreads_over_cores():
    p = plan_elementwise(1000, 4, FOOTPRINTS["gate"], cores=CORES, budget_bytes=BUDGET)
    assert p.block == 32 and p.grid == math.ceil(1000 / 32)
