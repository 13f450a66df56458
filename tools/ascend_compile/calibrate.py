"""Fit the unified-buffer cost of every kernel the NPU backend launches, from bishengir's memory plan.

Runs in the toolchain environment (see ``run.py``), on the configurations
``capture.py`` recorded. The configurations of one kernel that differ only in
their tile sizes form a *variant*: same kernel, same dtype of its first pointer
argument (the dtype the launcher plans for), same other constexprs. Each
variant is compiled at a handful of tile sizes spread over the planner's
range, and the bytes the compiler allocates are fitted, least squares on the
relative error, by

    bytes(outer, inner) = per_element * outer * inner + per_inner * inner + per_outer * outer + fixed

(outer: rows or heads of the tile, 1 for kernels with one tile axis; inner:
columns), and a single row by the compiler's bytes interpolated between
the measured blocks; tiles past the point where the compiler stops
multi-buffering to fit are left out (``unsaturated``). The fit is written as ``liger_kernel_ascend/ub_calibration.json``,
which the planner and the strict NPU mock both read, together with each
kernel's ``source_key`` (a hash of its source and of the jit functions it can
call, see ``compile.source_key``), so the compile lane can tell a table that no longer matches the kernels.

    python tools/ascend_compile/run.py --calibrate
"""

from __future__ import annotations

import copy
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import compile as ascend_compile
import numpy as np
from run import WHEELS

from liger_kernel_ascend import ub_calibration
from liger_kernel_ascend.tiling import UBCost

TABLE = Path(__file__).resolve().parents[2] / "packages/liger-ascend/src/liger_kernel_ascend/ub_calibration.json"

#: kernels the NPU backend launches -> (outer tile axis or None, inner tile axis, single-block flag or None);
#: the single-block flag is the constexpr that is true when the whole row is one tile
KERNEL_TILES: dict[str, tuple[str | None, str, str | None]] = {
    "liger_kernel_ascend.ops.rms_norm._rms_norm_forward": ("ROWS", "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel_ascend.ops.rms_norm._rms_norm_backward": ("ROWS", "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel_ascend.ops.layer_norm._layer_norm_forward": ("ROWS", "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel_ascend.ops.layer_norm._layer_norm_backward": ("ROWS", "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel_ascend.ops.cross_entropy._cross_entropy_kernel": (None, "BLOCK", None),
    "liger_kernel_ascend.ops.rope._rope_kernel": ("HEADS", "HALF", None),
    "liger_kernel_ascend.ops.qwen2vl_mrope._mrope_kernel": ("HEADS", "HALF", None),
    "liger_kernel_ascend.ops.gates._gate_forward": (None, "BLOCK", None),
    "liger_kernel_ascend.ops.gates._gate_backward": (None, "BLOCK", None),
    "liger_kernel_ascend.ops.group_norm._group_norm_forward": ("BLOCK_C", "BLOCK_S", "SINGLE_TILE"),
    "liger_kernel_ascend.ops.group_norm._group_norm_backward": ("BLOCK_C", "BLOCK_S", "SINGLE_TILE"),
    # the portable kernels the NPU backend runs (sized by the NPU profile, see liger_kernel_ascend.portable)
    "liger_kernel.triton.dyt._dyt_forward_kernel": ("BLOCK_ROWS", "BLOCK_COLS", None),
    "liger_kernel.triton.dyt._dyt_backward_kernel": ("BLOCK_ROWS", "BLOCK_COLS", None),
    "liger_kernel.triton.poly_norm._poly_norm_forward_kernel": (None, "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel.triton.poly_norm._poly_norm_backward_kernel": (None, "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel.triton.softmax._softmax_forward_kernel": (None, "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel.triton.softmax._softmax_backward_kernel": (None, "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel.triton.sparsemax._sparsemax_forward_kernel": (None, "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel.triton.sparsemax._sparsemax_backward_kernel": (None, "BLOCK", "SINGLE_BLOCK"),
    # the deterministic sum of per-program partial rows (modulated_rms_norm's dscale / dshift)
    "liger_kernel.triton._partials._sum_partials_kernel": ("ROWS", "COLS", None),
    "liger_kernel.triton.jsd._jsd_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.kl_div._kl_div_forward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.kl_div._kl_div_backward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.tvd._tvd_forward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.tvd._tvd_backward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.cross_entropy._scale_rows_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.modulated_rms_norm._modulated_rms_norm_forward_kernel": (None, "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel.triton.modulated_rms_norm._modulated_rms_norm_backward_kernel": (None, "BLOCK", "SINGLE_BLOCK"),
    "liger_kernel.triton.relu_squared._relu_squared_forward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.relu_squared._relu_squared_backward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.selective_log_softmax._selected_logp_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.selective_log_softmax._selected_logp_backward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.embedding._embedding_forward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.embedding._embedding_backward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.fused_linear_kl_div._kl_rows_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.fused_ce_tvd._fused_ce_tvd_forward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.fused_ce_tvd._fused_ce_tvd_backward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.vocab_shards._shard_stats_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.vocab_shards._shard_grad_kernel": (None, "BLOCK", None),
    # the clamped SwiGLU kernels, launched as the planner sizes them (liger_kernel_ascend.ops.clamped_swiglu)
    "liger_kernel.triton.clamped_swiglu._clamped_swiglu_forward_kernel": (None, "BLOCK", None),
    "liger_kernel.triton.clamped_swiglu._clamped_swiglu_backward_kernel": (None, "BLOCK", None),
    # q's head tile; k's (BLOCK_HK) is one of the variant's constexprs
    "liger_kernel.triton.llama4_rope._llama4_rope_kernel": ("BLOCK_HQ", "BLOCK_D", None),
    # the MoE experts' grouped GEMMs, launched at liger_kernel.triton.fused_moe's fixed product tile
    # (rows x columns; the reduction block BLOCK_K is one of the variant's constexprs)
    "liger_kernel.triton.fused_moe._gate_up_kernel": ("BLOCK_M", "BLOCK_N", None),
    "liger_kernel.triton.fused_moe._down_kernel": ("BLOCK_M", "BLOCK_N", None),
    "liger_kernel.triton.fused_moe._down_backward_kernel": ("BLOCK_M", "BLOCK_N", None),
    "liger_kernel.triton.fused_moe._input_grad_kernel": ("BLOCK_M", "BLOCK_N", None),
    "liger_kernel.triton.fused_moe._down_weight_grad_kernel": ("BLOCK_M", "BLOCK_N", None),
    "liger_kernel.triton.fused_moe._gate_up_weight_grad_kernel": ("BLOCK_M", "BLOCK_N", None),
}

#: tile sizes (outer, inner) each variant is compiled at, over the range the planner picks from:
#: single rows at widening blocks, and several-row tiles of various shapes
SINGLE_ROWS = [(1, 16), (1, 64), (1, 256), (1, 1024), (1, 2048), (1, 4096), (1, 8192)]
ROW_POINTS = [
    *SINGLE_ROWS,
    *[(2, 64), (4, 16), (2, 256), (8, 64), (16, 64), (64, 16), (4, 512), (8, 256)],
    *[(2, 1024), (2, 2048), (4, 1024), (2, 4096), (4, 2048)],
]
HEAD_POINTS = [
    *[(1, 4), (1, 16), (1, 64), (1, 128)],
    *[(2, 4), (4, 4), (8, 4), (16, 16), (8, 32), (4, 64), (16, 64), (32, 64), (8, 128), (64, 32)],
]
FLAT_POINTS = [*SINGLE_ROWS, (1, 16384)]
#: product tiles of the tl.dot kernels: both sides at least 16 (the cube unit's fractal), around the
#: launched 64 x 64 and 64 x 32
MATMUL_POINTS = [(16, 16), (16, 64), (32, 32), (32, 64), (64, 16), (64, 32), (64, 64), (64, 128), (128, 64), (128, 128)]
#: channels x positions of a group (group_norm): also the narrow position runs of small spatial sizes
GROUP_POINTS = [*ROW_POINTS, (1, 1), (1, 8), (4, 1), (8, 8), (64, 1), (8, 64)]
#: a fit must follow every measurement it keeps this closely (the compile lane allows 5%)
FIT_TOLERANCE = 0.03
#: a single-row block whose marginal bytes per column fall below this share of the
#: previous step's: the compiler stopped multi-buffering to make it fit
SATURATION = 0.75


def qualified(config: dict[str, Any]) -> str:
    return f"{config['module']}.{config['kernel']}"


def first_pointer_dtype(signature: dict[str, str]) -> str:
    return next(t[1:] for t in signature.values() if t.startswith("*"))


def variant_key(config: dict[str, Any]) -> tuple[str, str, str]:
    outer, inner, _ = KERNEL_TILES[qualified(config)]
    variant = {k: v for k, v in config["constants"].items() if k not in (outer, inner)}
    return qualified(config), first_pointer_dtype(config["signature"]), json.dumps(variant, sort_keys=True)


def points_of(kernel: str) -> list[tuple[int, int]]:
    outer, _, _ = KERNEL_TILES[kernel]
    if outer is None:
        return FLAT_POINTS
    return {"HEADS": HEAD_POINTS, "BLOCK_C": GROUP_POINTS, "BLOCK_M": MATMUL_POINTS}.get(outer, ROW_POINTS)


def at_tile(config: dict[str, Any], outer: int, inner: int) -> dict[str, Any]:
    outer_name, inner_name, _ = KERNEL_TILES[qualified(config)]
    moved = copy.deepcopy(config)
    moved["constants"][inner_name] = inner
    if outer_name is not None:
        moved["constants"][outer_name] = outer
    return moved


def unsaturated(row: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Single-row measurements (by increasing inner) split where the compiler gave up
    multi-buffering (bytes per added column drop): those past it lie outside what the planner may
    pick (their double-buffered size would not fit), so they are not part of the cost."""
    for k in range(2, len(row)):
        (i0, b0), (i1, b1), (i2, b2) = row[k - 2], row[k - 1], row[k]
        if (b2 - b1) / (i2 - i1) < SATURATION * (b1 - b0) / (i1 - i0):
            return row[:k], row[k:]
    return row, []


def fit_polynomial(points: list[tuple[int, int, int]], two_axes: bool) -> list[float]:
    """[per_element, per_inner, per_outer, fixed], least squares on bytes relative to each point's own."""
    used = [0, 1, 2, 3] if two_axes else [0, 3]
    features = np.array([[o * i, i, o, 1.0] for o, i, _ in points], dtype=float)[:, used]
    y = np.array([b for _, _, b in points], dtype=float)
    solution, *_ = np.linalg.lstsq(features / y[:, None], np.ones_like(y), rcond=None)
    coefficients = [0.0, 0.0, 0.0, 0.0]
    for index, value in zip(used, solution):
        coefficients[index] = round(float(value), 4)
    return coefficients


def calibrate(points: list[tuple[int, int, int]], two_axes: bool) -> dict[str, Any]:
    """A variant's table entry from its measurements (outer, inner, bytes)."""
    row, saturated = unsaturated(sorted((i, b) for o, i, b in points if o == 1))
    saturated_points = [(1, i, b) for i, b in saturated]
    stacked = [p for p in points if p[0] > 1]
    kept: list[tuple[int, int, int]] = []
    if two_axes:
        fitted = list(stacked)
        # several-row tiles: set aside the point the fit misses most until it follows the rest, keeping
        # enough to determine the four coefficients; a point set aside costs what it measured if that is
        # more than the fit says (never estimate below the compiler), else (the compiler dropped double
        # buffers to fit it) the fit's larger figure
        while True:
            coefficients = fit_polynomial(fitted, True)
            cost = UBCost(*coefficients)
            worst = max(fitted, key=lambda p: abs(cost.bytes(p[0], p[1]) / p[2] - 1))
            if len(fitted) <= 6 or abs(cost.bytes(worst[0], worst[1]) / worst[2] - 1) <= FIT_TOLERANCE:
                break
            fitted.remove(worst)
        kept = [p for p in stacked if p in fitted or p[2] > cost.bytes(p[0], p[1])]
        saturated_points += [p for p in stacked if p not in kept]
    else:
        coefficients = fit_polynomial([(1, i, b) for i, b in row], False)
    return {
        "cost": coefficients,
        "single_row": [list(p) for p in row],
        "stacked": [list(p) for p in sorted(kept)],
        "measured": [list(p) for p in sorted(points) if tuple(p) not in set(saturated_points)],
        "saturated": [list(p) for p in sorted(saturated_points)],
    }


def previous_measurements() -> dict[tuple[str, str, str, int, int], int | None]:
    """The compiler's bytes per (variant, outer, inner) the current table holds for kernels whose
    source has not changed since (None: the tile overflowed), so a recalibration compiles only what is new."""
    if not TABLE.exists():
        return {}
    known: dict[tuple[str, str, str, int, int], int | None] = {}
    for kernel, entry in json.loads(TABLE.read_text())["kernels"].items():
        if kernel not in KERNEL_TILES or entry.get("source_key") != ascend_compile.source_key(kernel):
            continue
        for v in entry["variants"]:
            key = (kernel, v["dtype"], json.dumps(v["constants"], sort_keys=True))
            for o, i, b in v["measured"] + v.get("saturated", []):
                known[(*key, o, i)] = b
            for o, i in v.get("overflowed", []):
                known[(*key, o, i)] = None
    return known


def main(configs_path: str, workers: int) -> int:
    ascend_compile._install_stand_ins()
    configs = [c for c in json.loads(Path(configs_path).read_text()) if qualified(c) in KERNEL_TILES]
    variants: dict[tuple[str, str, str], dict[str, Any]] = {}
    for config in configs:
        variants.setdefault(variant_key(config), config)
        single = KERNEL_TILES[qualified(config)][2]
        if single is not None:
            # the planner may choose either: a row held in one block or walked in sub-blocks
            sibling = copy.deepcopy(config)
            sibling["constants"][single] = not config["constants"][single]
            variants.setdefault(variant_key(sibling), sibling)
    known = previous_measurements()
    jobs = [(*key, o, i) for key in variants for o, i in points_of(key[0])]
    todo = [job for job in jobs if job not in known]
    print(
        f"{len(jobs)} tile sizes of {len(variants)} variants: {len(jobs) - len(todo)} measured before, {len(todo)} to compile"
    )
    os.environ.setdefault("TRITON_ALWAYS_COMPILE", "1")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(ascend_compile.compile_one, [at_tile(variants[j[:3]], j[3], j[4]) for j in todo]))
    for job, result in zip(todo, results):
        if result["error"] and not ascend_compile.UB_OVERFLOW.search(result["error"]):
            print(f"{job}: {result['error']}", file=sys.stderr)
            return 1
        # None: the compiler cannot fit the tile (UB overflow); it lies outside what the planner may pick
        known[job] = None if result["error"] else result["ub_bytes"]
    measured: dict[tuple[str, str, str], list[tuple[int, int, int]]] = {key: [] for key in variants}
    overflowed: dict[tuple[str, str, str], list[tuple[int, int]]] = {key: [] for key in variants}
    for job in jobs:
        key, o, i = job[:3], job[3], job[4]
        if known[job] is None:
            overflowed[key].append((o, i))
        else:
            measured[key].append((o, i, known[job]))
    kernels: dict[str, Any] = {}
    for (kernel, dtype, variant), points in sorted(measured.items()):
        outer, inner, single = KERNEL_TILES[kernel]
        if len(points) < 4:
            print(f"{kernel} {dtype} {variant}: only {len(points)} tile sizes compiled", file=sys.stderr)
            return 1
        entry = kernels.setdefault(
            kernel,
            {
                "source_key": ascend_compile.source_key(kernel),
                "tile": [outer, inner],
                "single_block": single,
                "variants": [],
            },
        )
        fitted = calibrate(points, outer is not None)
        fitted["overflowed"] = [list(p) for p in overflowed[kernel, dtype, variant]]
        entry["variants"].append({"dtype": dtype, "constants": json.loads(variant), **fitted})
        cost = ub_calibration.variant_cost(fitted)
        worst = max(abs(cost.bytes(o, i) / b - 1) for o, i, b in fitted["measured"])
        print(
            f"{kernel.rsplit('.', 1)[1]:<24} {dtype:<5} {variant:<70} within {worst:.1%} of "
            f"{len(fitted['measured'])} compiles, {len(fitted['saturated'])} saturated"
        )
    toolchain = {"wheels": WHEELS, "target": ascend_compile.TARGET}
    TABLE.write_text(json.dumps({"toolchain": toolchain, "kernels": kernels}, indent=1, sort_keys=True) + "\n")
    print(f"{sum(len(k['variants']) for k in kernels.values())} variants of {len(kernels)} kernels -> {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(os.environ.get("ASCEND_COMPILE_WORKERS", "2"))))
