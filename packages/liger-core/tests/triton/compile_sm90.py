"""Compile every launch the portable kernels make on an H100, for sm_90, without a GPU.

Run as a script (``python compile_sm90.py``) in a process without
``TRITON_INTERPRET``: each op runs forward and backward on CPU tensors with the
kernels replaced by recorders, so the launchers build their real argument lists
and launch options from the NVIDIA profile of the CUDA mock's H100; every
distinct launch is then compiled by Triton's NVIDIA backend (``ptxas`` ships
with the triton wheel) and its resource use printed as JSON lines. This catches
what the interpreter cannot: code the compiler rejects, register spills, and
shared memory beyond the profile's budget.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from typing import Any

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from liger_kernel.dispatch import dispatcher
from liger_kernel.triton import _partials, fused_add_rms_norm, geglu, layer_norm, rms_norm, rope, swiglu

KERNEL_MODULES = (rms_norm, layer_norm, _partials, swiglu, geglu, rope)
TYPE_NAMES = {
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float64: "fp64",
    torch.int64: "i64",
    torch.int32: "i32",
}


class Recorder:
    """Stands in for a JIT kernel: ``kernel[grid](*args, **kwargs)`` records the call."""

    def __init__(self, kernel: Any, launches: list) -> None:
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, grid: Any) -> Any:
        return lambda *args, **kwargs: self.launches.append((self.kernel, grid, args, kwargs))


def record_launches() -> list:
    launches: list = []
    for module in KERNEL_MODULES:
        for name, value in list(vars(module).items()):
            if isinstance(value, triton.runtime.jit.JITFunction) and name.endswith("_kernel"):
                setattr(module, name, Recorder(value, launches))

    def leaf(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype).requires_grad_()

    def run(outputs: Any) -> None:
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        torch.autograd.backward(outputs, [torch.zeros_like(o) for o in outputs])

    # fp32 launches differ from bf16 ones only in types; bf16 is what training runs
    run(rms_norm.RMSNormFunction.apply(leaf(8, 4096, dtype=torch.float32), leaf(4096), 1e-6, 0.0, "gemma"))
    for dtype in (torch.bfloat16,):
        for width in (4096, 40000):  # one block, and walked in blocks
            for mode in ("llama", "gemma", "none"):
                run(
                    rms_norm.RMSNormFunction.apply(
                        leaf(8, width, dtype=dtype), leaf(width, dtype=dtype), 1e-6, 0.0, mode
                    )
                )
            run(rms_norm.RMSNormFunction.apply(leaf(8, width, dtype=dtype), None, 1e-6))
            x, r, w = leaf(8, width, dtype=dtype), leaf(8, width, dtype=dtype), leaf(width, dtype=dtype)
            run(fused_add_rms_norm.FusedAddRMSNormFunction.apply(x, r, w, 1e-6))
            for bias in (leaf(width, dtype=dtype), None):
                run(
                    layer_norm.LayerNormFunction.apply(
                        leaf(8, width, dtype=dtype), leaf(width, dtype=dtype), bias, 1e-5
                    )
                )
        for function in (swiglu.SiLUMulFunction, geglu.GELUMulFunction):
            run(function.apply(leaf(8, 14336, dtype=dtype), leaf(8, 14336, dtype=dtype)))
        cos = torch.zeros(1, 16, 128, dtype=dtype)
        run(rope.RopeFunction.apply(leaf(2, 32, 16, 128, dtype=dtype), leaf(2, 8, 16, 128, dtype=dtype), cos, cos))
        table, positions = torch.zeros(64, 128, dtype=dtype), torch.zeros(2, 16, dtype=torch.int64)
        q, k = leaf(2, 16, 32, 128, dtype=dtype), leaf(2, 16, 8, 128, dtype=dtype)
        run(rope.RopeFunction.apply(q, k, table, table, positions, 2))
    return launches


def signature(kernel: Any, args: tuple, kwargs: dict) -> tuple[dict, dict, dict]:
    """Types, constants and divisibility hints as Triton's launcher would specialize them."""
    types, constants, attrs = {}, {}, {}
    for index, name in enumerate(kernel.arg_names):
        if name in kwargs:
            types[name], constants[name] = "constexpr", kwargs[name]
            continue
        value = args[index]
        if isinstance(value, torch.Tensor):
            types[name] = "*" + TYPE_NAMES[value.dtype]
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif isinstance(value, int):
            types[name] = "i64" if abs(value) >= 2**31 else "i32"
            if value and value % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
        elif isinstance(value, float):
            types[name] = "fp32"
        else:
            raise TypeError(f"{kernel.__name__}: argument {name} of type {type(value).__name__}")
    return types, constants, attrs


def resource_use(compiled: Any) -> dict:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        report = subprocess.run([tool, "-res-usage", cubin.name], capture_output=True, text=True, check=True).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", report)
    registers, stack, _, local = (int(g) for g in found.groups())
    return {"registers": registers, "stack": stack, "local": local, "shared": compiled.metadata.shared}


def main() -> None:
    from liger_conformance.mocks import cuda as cuda_mock
    from liger_kernel_cuda.profile import nvidia_profile

    with cuda_mock.active():
        profile = nvidia_profile(torch.device("cpu"))
    dispatcher.profile = lambda device: profile
    seen = set()
    for kernel, grid, args, kwargs in record_launches():
        kwargs = dict(kwargs)
        num_warps = kwargs.pop("num_warps")
        types, constants, attrs = signature(kernel, args, kwargs)
        key = (kernel.__name__, num_warps, tuple(types.items()), tuple(map(str, constants.items())))
        if key in seen:
            continue
        seen.add(key)
        source = ASTSource(kernel, types, constexprs=constants, attrs=attrs)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})
        launch = {k: str(v) for k, v in constants.items()}
        print(
            json.dumps(
                {
                    "kernel": kernel.__name__,
                    "num_warps": num_warps,
                    "grid": list(grid),
                    "constants": launch,
                    "onchip_bytes": profile.onchip_bytes,
                    "programs_per_unit": profile.programs_per_unit,
                    **resource_use(compiled),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
