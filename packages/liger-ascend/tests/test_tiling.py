"""The tiling planner: pure functions, checked against the limits they exist for."""

import math

import pytest

from liger_kernel_ascend import ub_calibration
from liger_kernel_ascend.tiling import (
    MAX_GRID,
    MIN_BLOCK,
    UB_BYTES_A2,
    UBCost,
    onchip_budget,
    plan_elementwise,
    plan_rows,
    plan_stacked,
)

BUDGET = onchip_budget(UB_BYTES_A2)
CORES = 40
#: an illustrative cost: 24 bytes per tile element, 8 per column, 64 per row, 512 fixed
COST = UBCost(per_element=24.0, per_inner=8.0, per_outer=64.0, fixed=512.0)
#: every calibrated variant of a row kernel, as the planner sees it
ROW_VARIANTS = [
    (kernel, v["dtype"], ub_calibration.variant_cost(v))
    for kernel, entry in sorted(ub_calibration.table().items())
    if entry["tile"][1] == "BLOCK"
    for v in entry["variants"]
]


def test_budget_leaves_a_margin_below_the_unified_buffer():
    assert 0 < BUDGET < UB_BYTES_A2


def test_cost_is_the_fitted_polynomial_rounded_up():
    assert COST.bytes(1, 16) == 24 * 16 + 8 * 16 + 64 + 512
    assert UBCost(per_element=1.5).bytes(1, 3) == 5


@pytest.mark.parametrize("variant", ROW_VARIANTS, ids=lambda v: f"{v[0].rsplit('.', 1)[1]}-{v[1]}")
@pytest.mark.parametrize("width", [1, 7, 128, 4096, 5000, 151_936])
def test_every_calibrated_plan_fits_the_budget_and_covers_the_row(variant, width):
    _, _, cost = variant
    p = plan_rows(1000, width, cost, cores=CORES, budget_bytes=BUDGET)
    assert p.bytes_per_step == cost.bytes(p.rows_per_step, p.block) <= BUDGET
    assert p.block * p.sub_blocks >= width
    assert (p.sub_blocks - 1) * p.block < width, "no sub-block lies wholly past the row"
    assert p.block & (p.block - 1) == 0 and p.block >= MIN_BLOCK
    assert 1 <= p.grid <= CORES


def test_a_vocabulary_row_is_walked_in_the_widest_block_that_fits():
    p = plan_rows(8, 151_936, COST, cores=CORES, budget_bytes=BUDGET, max_rows_per_step=1)
    assert p.sub_blocks > 1
    assert COST.bytes(1, p.block) <= BUDGET < COST.bytes(1, 2 * p.block)


def test_a_narrow_row_is_one_block_and_rows_are_batched_up_to_the_budget():
    p = plan_rows(10_000, 500, COST, cores=CORES, budget_bytes=BUDGET)
    assert p.sub_blocks == 1 and p.block == 512
    assert 1 < p.rows_per_step < 64
    assert COST.bytes(p.rows_per_step, 512) <= BUDGET < COST.bytes(2 * p.rows_per_step, 512)


def test_a_row_the_single_block_variant_cannot_hold_is_walked_by_the_other():
    # the walking variant fits 4096 columns, the single-block one (dearer) does not
    single = UBCost(per_element=48.0)
    p = plan_rows(64, 4096, COST, single_block_cost=single, cores=CORES, budget_bytes=BUDGET)
    assert single.bytes(1, 4096) > BUDGET >= COST.bytes(1, 4096)
    assert p.sub_blocks == 2 and p.block == 2048
    assert p.bytes_per_step == COST.bytes(p.rows_per_step, 2048)
    held = plan_rows(64, 2048, COST, single_block_cost=single, cores=CORES, budget_bytes=BUDGET)
    assert held.sub_blocks == 1 and held.bytes_per_step == single.bytes(held.rows_per_step, 2048)


def test_rows_that_would_naively_need_more_than_65535_programs():
    rows = 8 * 131_072  # one program per row would be 1M programs
    p = plan_rows(rows, 4096, COST, cores=CORES, budget_bytes=BUDGET)
    assert p.grid == CORES
    assert p.grid * p.steps_per_program * p.rows_per_step >= rows


def test_grid_never_exceeds_the_runtime_limit_even_with_more_cores():
    p = plan_rows(10**7, 16, UBCost(per_element=4.0), cores=10**6, budget_bytes=BUDGET)
    assert p.grid == MAX_GRID


def test_more_work_items_than_cores_gives_one_program_per_core():
    p = plan_rows(41, 100, COST, cores=CORES, budget_bytes=BUDGET)
    assert p.grid == CORES and p.rows_per_step == 1 and p.steps_per_program == 2


def test_fewer_rows_than_cores_launches_one_program_per_row():
    p = plan_rows(3, 100, COST, cores=CORES, budget_bytes=BUDGET)
    assert p.grid == 3


def test_a_smaller_unified_buffer_gives_smaller_tiles():
    big = plan_rows(64, 8192, COST, cores=CORES, budget_bytes=BUDGET)
    small = plan_rows(64, 8192, COST, cores=CORES, budget_bytes=BUDGET // 4)
    assert small.block < big.block
    assert small.sub_blocks > big.sub_blocks


def test_a_budget_too_small_for_any_tile_is_refused():
    with pytest.raises(ValueError, match="unified buffer"):
        plan_rows(4, 4096, COST, cores=CORES, budget_bytes=64)
    with pytest.raises(ValueError, match="unified buffer"):
        plan_elementwise(4096, COST, cores=CORES, budget_bytes=64)
    with pytest.raises(ValueError, match="unified buffer"):
        plan_stacked(4, 32, 64, COST, cores=CORES, budget_bytes=64)


def test_stacked_plan_takes_as_many_heads_as_fit_and_one_program_per_core():
    p = plan_stacked(4096, 32, 64, COST, cores=CORES, budget_bytes=BUDGET)
    assert p.block == 64 and p.grid == CORES and p.steps == 4096
    assert COST.bytes(p.rows_per_step, 64) <= BUDGET
    assert p.rows_per_step == 32 or COST.bytes(2 * p.rows_per_step, 64) > BUDGET
    assert p.rows_per_step * p.sub_blocks >= 32


def test_stacked_plan_never_takes_more_heads_than_the_next_power_of_two():
    p = plan_stacked(2, 3, 4, COST, cores=CORES, budget_bytes=BUDGET)
    assert p.rows_per_step == 4 and p.sub_blocks == 1 and p.grid == 2


def test_elementwise_plan_covers_a_huge_tensor_within_the_grid_limit():
    numel = 3 * 2**31
    p = plan_elementwise(numel, COST, cores=CORES, budget_bytes=BUDGET)
    assert p.grid == CORES <= MAX_GRID
    assert p.bytes_per_step == COST.bytes(1, p.block) <= BUDGET < COST.bytes(1, 2 * p.block)
    assert p.steps == math.ceil(numel / p.block)


def test_elementwise_plan_of_a_small_tensor_spreads_over_cores():
    p = plan_elementwise(1000, COST, cores=CORES, budget_bytes=BUDGET)
    assert p.block == 32 and p.grid == math.ceil(1000 / 32)
