"""What each kernel the planner sizes costs in unified buffer, as the Ascend compiler allocates it.

``ub_calibration.json`` (next to this module) holds, per kernel (``module.name``),
its tile axes (outer, inner: the constexprs the planner chooses), the
constexpr that marks a row held in one block, a hash of the kernel's source
(and of the jit functions it can call) when it was calibrated, and per variant (dtype of the kernel's first
pointer argument + its other constexprs) the fitted :class:`UBCost` with the
compiler's bytes it was fitted to. It is generated, never edited by hand:

    python tools/ascend_compile/run.py --calibrate

(triton-ascend's front end and bishengir's memory planning for an A2 part;
see ``tools/ascend_compile/calibrate.py``). The planner
(:mod:`liger_kernel_ascend.ops._common`) and the strict NPU mock
(``liger_conformance.mocks.npu``) both read their bytes from here, and the
``compile-ascend`` lane fails when the table no longer matches the kernels.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from liger_kernel_ascend.tiling import UBCost

logger = logging.getLogger("liger_kernel")

#: The cost of a kernel with no calibration at all (one just written, not yet
#: calibrated): sixteen fp32 tiles' worth per element, enough for the compile
#: lane's capture to run and the calibration to follow.
UNCALIBRATED = UBCost(per_element=64.0, per_inner=0.0, per_outer=0.0, fixed=4096.0)

#: torch dtype names -> Triton's, as kernel signatures spell them
_TRITON_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


@dataclass(frozen=True)
class KernelTiles:
    """The constexprs of a kernel's tile: ``outer`` (rows, heads; None when
    the tile is one-dimensional), ``inner`` (columns) and ``single_block``
    (true when the whole row is one tile; None when the kernel has no such flag)."""

    outer: str | None
    inner: str
    single_block: str | None


def triton_dtype(dtype: Any) -> str:
    """``torch.bfloat16`` (or its name) as Triton's signature names it (``bf16``)."""
    name = str(dtype).removeprefix("torch.")
    return _TRITON_DTYPES.get(name, name)


def kernel_name(kernel: Any) -> str:
    """``module.name`` of a ``@triton.jit`` kernel (compiled or interpreted) or of its Python function."""
    fn = getattr(kernel, "fn", kernel)
    return f"{fn.__module__}.{fn.__name__}"


@functools.cache
def table() -> dict[str, Any]:
    text = resources.files("liger_kernel_ascend").joinpath("ub_calibration.json").read_text()
    return json.loads(text)["kernels"]


def _json_constant(value: Any) -> Any:
    # a launch passes a Triton dtype constexpr (the accumulator's) as the object; the table spells it
    # as the capture records it
    return {"dtype": str(value)} if type(value).__name__ == "dtype" else value


def _key(constants: Mapping[str, Any]) -> str:
    return json.dumps({k: _json_constant(v) for k, v in constants.items()}, sort_keys=True)


def tiles(kernel: str) -> KernelTiles | None:
    """The tile constexprs of ``kernel`` (``module.name``); None if it is not calibrated."""
    entry = table().get(kernel)
    if entry is None:
        return None
    outer, inner = entry["tile"]
    return KernelTiles(outer, inner, entry["single_block"])


def variant_cost(entry: Mapping[str, Any]) -> UBCost:
    """The :class:`UBCost` of one variant entry of the table."""
    return UBCost(
        *entry["cost"],
        single_row=tuple((int(i), int(b)) for i, b in entry["single_row"]),
        stacked=tuple((int(o), int(i), int(b)) for o, i, b in entry.get("stacked", [])),
    )


def calibrated_cost(kernel: str, dtype: str, variant: Mapping[str, Any]) -> UBCost | None:
    """The fitted cost of this exact variant (constexprs other than the tile axes), or None."""
    for entry in table().get(kernel, {}).get("variants", []):
        if entry["dtype"] == dtype and _key(entry["constants"]) == _key(variant):
            return variant_cost(entry)
    return None


def cost(kernel: str, dtype: str, variant: Mapping[str, Any]) -> UBCost:
    """The cost the planner sizes ``kernel``'s tiles by.

    A variant the calibration never compiled (an option combination the
    compile lane's capture does not launch) gets, coefficient by coefficient
    and single-row measurement by measurement, the largest of the kernel's
    calibrated variants of that dtype (of any dtype if none): never below a
    known variant's cost, and logged."""
    found = calibrated_cost(kernel, dtype, variant)
    if found is not None:
        return found
    return _fallback_cost(kernel, dtype, _key(variant))


@functools.cache
def _fallback_cost(kernel: str, dtype: str, variant: str) -> UBCost:
    variants = table().get(kernel, {}).get("variants", [])
    if not variants:
        logger.warning(
            "liger-ascend: kernel %s has no unified-buffer calibration; sizing it at %s bytes per tile element "
            "(calibrate it with `python tools/ascend_compile/run.py --calibrate`)",
            kernel,
            UNCALIBRATED.per_element,
        )
        return UNCALIBRATED
    logger.warning(
        "liger-ascend: %s %s %s has no unified-buffer calibration; sizing it as the most expensive of the "
        "kernel's calibrated variants (regenerate with `python tools/ascend_compile/run.py --calibrate`)",
        kernel,
        dtype,
        variant,
    )
    return worst_cost(kernel, dtype)


@functools.cache
def worst_cost(kernel: str, dtype: str | None = None) -> UBCost:
    """Coefficient by coefficient and measurement by measurement, the largest cost of ``kernel``'s
    calibrated variants of ``dtype`` (of every dtype when None or none is calibrated): what sizes a
    launch whose variant is not known in advance (:data:`UNCALIBRATED` for a kernel not calibrated)."""
    variants = table().get(kernel, {}).get("variants", [])
    if not variants:
        return UNCALIBRATED
    same_dtype = [v for v in variants if v["dtype"] == dtype] or variants
    costs = [variant_cost(v) for v in same_dtype]
    # single rows only where every variant measured them
    inners = sorted(set.intersection(*({i for i, _ in c.single_row} for c in costs)))
    return UBCost(
        per_element=max(c.per_element for c in costs),
        per_inner=max(c.per_inner for c in costs),
        per_outer=max(c.per_outer for c in costs),
        fixed=max(c.fixed for c in costs),
        single_row=tuple((i, max(c.bytes(1, i) for c in costs)) for i in inners),
        stacked=tuple(
            (o, i, max(c.bytes(o, i) for c in costs))
            for o, i in sorted(set.intersection(*({(o, i) for o, i, _ in c.stacked} for c in costs)))
        ),
    )


def launch_bytes(kernel: str, dtype: str, constants: Mapping[str, Any]) -> int | None:
    """UB bytes a launch of ``kernel`` with these constexprs (tile axes
    included) allocates per the calibration; None if the kernel is not calibrated."""
    axes = tiles(kernel)
    if axes is None:
        return None
    variant = {k: v for k, v in constants.items() if k not in (axes.outer, axes.inner)}
    outer = 1 if axes.outer is None else int(constants[axes.outer])
    return cost(kernel, dtype, variant).bytes(outer, int(constants[axes.inner]))
