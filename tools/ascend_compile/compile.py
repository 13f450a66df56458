"""Compile captured kernel configurations with the Ascend toolchain, for an A2 target.

Runs in an environment where ``triton`` is triton-ascend (see ``run.py``).
Each configuration goes through triton-ascend's front end (TTIR), its
TTIR->Linalg adapter (``triton-adapter-opt``) and ``bishengir-compile`` up to
and including HIVM memory planning (``hivm-plan-memory``) for ``Ascend910B3``.
The last step, CANN's ``hivmc``, is not installed here; bishengir reports
that after memory planning, which is as far as this check goes.

A configuration fails on any compile error, an unsupported type, or a UB
overflow. The UB bytes a kernel needs are read from the planned IR: the end
of the furthest ``hivm.hir.pointer_cast`` into the ``ub`` address space.

    python tools/ascend_compile/compile.py CONFIGS.json
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

TARGET = "Ascend910B3"
UB_BYTES = 192 * 1024
#: bishengir's own words when the kernel's buffers do not fit
UB_OVERFLOW = re.compile(r"ub overflow", re.IGNORECASE)
MISSING_HIVMC = "External hivmc run fails"
BYTES = {"f32": 4, "f16": 2, "bf16": 2, "i64": 8, "i32": 4, "i16": 2, "i8": 1, "i1": 1, "f64": 8, "index": 8}


def ub_bytes(planned_ir: str) -> int:
    """The UB bytes the planned IR uses: max over ub pointer casts of offset + size."""
    constants = {
        m.group(1): int(m.group(2)) for m in re.finditer(r"(%[\w]+) = arith\.constant (-?\d+) : i64", planned_ir)
    }
    peak = 0
    cast = re.compile(
        r"hivm\.hir\.pointer_cast\(([^)]*)\)[^:]*: memref<([^>]*?)x?(\w+), [^\n]*#hivm\.address_space<ub>>"
    )
    for match in cast.finditer(planned_ir):
        offsets = [constants.get(o.strip(), 0) for o in match.group(1).split(",") if o.strip()]
        dims = [int(d) for d in re.findall(r"(\d+)x", match.group(2) + "x")]
        elem = BYTES.get(match.group(3), 4)
        size = elem
        for d in dims:
            size *= d
        peak = max(peak, max(offsets or [0]) + size)
    return peak


def _install_stand_ins() -> None:
    """Let the kernel modules import without a device: nothing is launched here."""
    import torch

    stand_in = types.ModuleType("torch_npu")
    stand_in.__version__ = torch.__version__.split("+")[0]
    sys.modules.setdefault("torch_npu", stand_in)


def _constant(value: Any) -> Any:
    import triton.language as tl

    if isinstance(value, dict) and "dtype" in value:
        return getattr(
            tl,
            {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp64": "float64"}.get(
                value["dtype"], value["dtype"]
            ),
        )
    return value


class _Pointer:
    """Stands for a tensor argument: the launcher looks only at its address's alignment."""

    def __init__(self, aligned: bool) -> None:
        self.address = 0 if aligned else 8

    def data_ptr(self) -> int:
        return self.address


def specialise(fn: Any, config: dict[str, Any], backend: Any) -> tuple[dict[str, str], dict[str, Any], Any]:
    """Signature, constants and attributes as triton-ascend's launcher builds
    them for this launch (integers equal to 1 become constants, 16-divisible
    integers and aligned pointers get the divisibility hint)."""
    bound = []
    for param in fn.params:
        if param.is_constexpr:
            bound.append(_constant(config["constants"][param.name]))
            continue
        value = config["values"][param.name]
        bound.append(_Pointer(value["aligned"]) if isinstance(value, dict) else value)
    attrs = backend.get_attrs_descriptor(fn.params, bound)
    constant_nums = attrs.get_constants()
    constants = {
        p.name: value for value, p in zip(bound, fn.params) if p.is_constexpr or p.num in constant_nums or value is None
    }
    signature = {}
    for value, p in zip(bound, fn.params):
        if p.is_constexpr:
            signature[p.name] = "constexpr"
        elif value is None:
            signature[p.name] = "*i8"
        else:
            signature[p.name] = config["signature"][p.name]
    return signature, constants, attrs


# A compiler crash (LLVM's crash banner), as opposed to a diagnostic about the kernel.
COMPILER_CRASH = "PLEASE submit a bug report"
CRASH_ATTEMPTS = 3


def compile_one(config: dict[str, Any]) -> dict[str, Any]:
    _install_stand_ins()
    import triton
    from triton.backends import backends
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    result: dict[str, Any] = {"error": None, "ub_bytes": None}
    workdir = Path(tempfile.mkdtemp(prefix="ascend-compile-"))
    bishengir = shutil.which("bishengir-compile")

    def plan_memory(linalg: str, metadata: dict[str, Any], options: Any) -> bytes:
        linalg, metadata = parse_linalg(linalg, metadata)
        source = workdir / "kernel.ttadapter.mlir"
        source.write_text(linalg)
        command = [
            bishengir,
            str(source),
            f"--target={TARGET}",
            "--enable-auto-multi-buffer=true",
            "--enable-hfusion-compile=true",
            "--enable-hivm-compile=true",
            "--enable-triton-kernel-compile=true",
            "--mlir-print-ir-after=hivm-plan-memory",
            "-o",
            str(workdir / "kernel"),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        if UB_OVERFLOW.search(output):
            raise RuntimeError("Ub overflow detected: " + output[-800:])
        if "hivm.hir.pointer_cast" not in output:
            raise RuntimeError(
                f"bishengir-compile stopped before memory planning (rc {done.returncode}): {output[-1500:]}"
            )
        if done.returncode != 0 and MISSING_HIVMC not in output:
            raise RuntimeError(f"bishengir-compile failed (rc {done.returncode}): {output[-1500:]}")
        result["ub_bytes"] = ub_bytes(output)
        return b""

    compiler_globals = backends["ascend"].compiler.add_stages.__globals__
    parse_linalg = compiler_globals["_parse_linalg_metadata"]
    compiler_globals["linalg_to_bin_enable_npu_compile_A2_A3"] = plan_memory
    module = importlib.import_module(config["module"])
    fn = getattr(module, config["kernel"])
    target = GPUTarget("npu", TARGET, 0)
    try:
        for attempt in range(1, CRASH_ATTEMPTS + 1):
            try:
                signature, constants, attrs = specialise(fn, config, backends["ascend"].compiler(target))
                triton.compile(ASTSource(fn=fn, signature=signature, constants=constants, attrs=attrs), target=target)
                result["error"] = None
                break
            except Exception as exc:  # every failure is reported in the table
                text = " ".join(str(exc).split())
                result["error"] = text[:600] or type(exc).__name__
                # The adapter occasionally segfaults on a kernel it compiles on the next try (seen once in CI
                # on a configuration that compiles everywhere else); a deterministic error is not retried.
                if COMPILER_CRASH not in text:
                    break
                result["crashes"] = attempt
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def label(config: dict[str, Any]) -> str:
    keep = {k: v for k, v in config["constants"].items() if v is not None}
    dtypes = sorted({t for t in config["signature"].values() if t.startswith("*fp") or t.startswith("*bf")})
    return f"{config['kernel']} {'/'.join(dtypes)} {json.dumps(keep, separators=(',', ':'))}"


#: how far the planner's estimate may lie from the compiler's allocation
TOLERANCE = 0.05


def source_key(kernel: str) -> str:
    """What a calibration of ``kernel`` (``module.name``) is valid for: a hash of its source and of
    every ``@triton.jit`` function its module can call (the module's globals, imported ones too).
    Triton's ``cache_key`` would also do, but it holds the kernel's line number, so an edited
    docstring above a kernel would make its calibration stale."""
    from triton.runtime.jit import JITFunction

    module = importlib.import_module(kernel.rsplit(".", 1)[0])
    digest = hashlib.sha256(getattr(module, kernel.rsplit(".", 1)[1]).src.encode())
    for name, value in sorted(vars(module).items()):
        if isinstance(value, JITFunction):
            digest.update(f"\0{name}\0{value.src}".encode())
    return digest.hexdigest()


def calibration_problems(configs: list[dict[str, Any]]) -> list[str]:
    """Why liger-ascend's UB calibration does not describe these kernels, if it does not: a kernel
    whose source changed since (:func:`source_key`), a launched variant it never fitted."""
    _install_stand_ins()
    from liger_kernel_ascend import ub_calibration

    problems = []
    for kernel, entry in sorted(ub_calibration.table().items()):
        if source_key(kernel) != entry.get("source_key"):
            problems.append(f"{kernel} changed since it was calibrated")
    for config in configs:
        kernel = f"{config['module']}.{config['kernel']}"
        axes = ub_calibration.tiles(kernel)
        if axes is None:
            problems.append(f"{kernel} is launched but not calibrated")
            continue
        dtype = next(t[1:] for t in config["signature"].values() if t.startswith("*"))
        variant = {k: v for k, v in config["constants"].items() if k not in (axes.outer, axes.inner)}
        if ub_calibration.calibrated_cost(kernel, dtype, variant) is None:
            problems.append(f"{kernel} {dtype} {json.dumps(variant, sort_keys=True)} is launched but not calibrated")
    return sorted(set(problems))


def main(path: str, workers: int) -> int:
    from liger_kernel_ascend.tiling import UB_BYTES_A2, onchip_budget

    budget = onchip_budget(UB_BYTES_A2)
    configs = json.loads(Path(path).read_text())
    os.environ.setdefault("TRITON_ALWAYS_COMPILE", "1")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(compile_one, configs))
    Path(path).with_suffix(".results.json").write_text(
        json.dumps([{**config, **result} for config, result in zip(configs, results)], indent=1)
    )
    failures = over_budget = off = under = unestimated = 0
    print(f"{'kernel configuration':<110} {'compiler UB':>11} {'planner':>9} {'diff':>7}")
    for config, result in zip(configs, results):
        planner = config.get("planner_bytes")
        name = label(config)[:110]
        if result["error"]:
            failures += 1
            print(f"{name:<110} {'FAILED':>11} {planner or '-':>9}        | {result['error']}")
            continue
        compiled = result["ub_bytes"]
        diff, flags = "-", []
        if compiled > budget:
            over_budget += 1
            flags.append(f"ABOVE THE {budget}-BYTE BUDGET")
        if planner:
            ratio = planner / compiled - 1 if compiled else float("inf")
            diff = f"{ratio:+.1%}"
            under += compiled > planner
            if abs(ratio) > TOLERANCE:
                off += 1
                flags.append(f"PLANNER OFF BY MORE THAN {TOLERANCE:.0%}")
        else:
            unestimated += 1
            flags.append("NO PLANNER ESTIMATE")
        if result.get("crashes"):
            flags.append(f"compiler crashed {result['crashes']}x, then compiled")
        note = f"  ({'; '.join(flags)})" if flags else ""
        print(f"{name:<110} {compiled:>11} {planner or '-':>9} {diff:>7}{note}")
    planned = sum(1 for c in configs if c.get("planner_bytes"))
    print(
        f"\n{len(configs)} configurations: {len(configs) - failures} compiled to memory planning, {failures} failed; "
        f"{over_budget} above the planner's budget of {budget} bytes; {planned} with a planner estimate, "
        f"{len(configs) - planned} without; {off} estimates differ from the compiler by more than {TOLERANCE:.0%} "
        f"({under} need more than estimated)"
    )
    problems = calibration_problems(configs)
    for problem in problems:
        print(f"stale UB calibration: {problem}")
    if problems:
        print("regenerate it: python tools/ascend_compile/run.py --calibrate")
    return 1 if failures or over_budget or off or unestimated or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(os.environ.get("ASCEND_COMPILE_WORKERS", "2"))))
