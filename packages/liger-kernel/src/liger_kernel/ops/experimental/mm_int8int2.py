"""int8 activations times ternary weights packed four to a byte (BitNet-style
inference), with an exact int32 result.

Weights W (K, N) hold -1, 0 or 1. :func:`pack_weights` stores w + 1 in two bits,
four rows to a byte: with R = ceil(K / 4), byte (r, n) holds rows r, r + R,
r + 2R and r + 3R of column n in bits 0-1, 2-3, 4-5 and 6-7 (liger-kernel
0.8.5's layout, so weights packed by either load in the other).
:func:`unpack_weights` inverts it (4R rows, the padding rows as -1: a stored 0).

    matmul(a, b) = a @ unpack_weights(b),  a int8 (M, K), b uint8 (K / 4, N) -> int32 (M, N)

exact: every product is at most 128 in magnitude, summed in int32. There is no
gradient (an inference kernel over integers).

Where it runs: on the CPU in PyTorch (exact integer arithmetic); on a CUDA
device (NVIDIA, or AMD through ROCm) of compute capability 8.0 or more by the
Triton kernel of :mod:`liger_kernel.triton.mm_int8int2`, whose int8 ``tl.dot``
needs the int8 matrix units those GPUs have (NVIDIA Ampere and later; the AMD
Instinct and RDNA3 GPUs ROCm reports as 9.x / 11.x). Any other device raises
NotImplementedError: older CUDA GPUs lack int8 tensor-core dots, and the Triton
builds of the other backends (Intel's, triton-ascend) are not verified to lower
an int8 ``tl.dot``. Nothing falls back to another computation silently.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import require_ndim, require_same_device, require_tensor

#: bits per packed weight; 0.8.5's kernel handles 2 only
BITS = 2
VALUES_PER_BYTE = 8 // BITS
#: the oldest compute capability whose Triton int8 dot the kernel relies on
MIN_CAPABILITY = (8, 0)


def _check_bits(bits: int) -> None:
    if bits != BITS:
        raise ValueError(f"bits must be {BITS} (ternary weights, four to a byte), got {bits!r}")


def pack_weights(intweights: torch.Tensor, bits: int = 2) -> torch.Tensor:
    """``intweights`` (K, ...) of -1/0/1 packed four rows to a uint8 byte:
    (ceil(K / 4), ...). The argument is not changed (0.8.5 added 1 to it in place)."""
    _check_bits(bits)
    if not isinstance(intweights, torch.Tensor) or intweights.dim() == 0:
        raise TypeError("intweights must be a tensor of at least one dimension (the packed one is first)")
    if intweights.is_floating_point() or intweights.is_complex():
        raise TypeError(f"intweights must hold integers -1, 0 or 1, got dtype {intweights.dtype}")
    stored = intweights.to(torch.int16) + 1
    if stored.numel() and not bool(((stored >= 0) & (stored <= 2)).all()):
        raise ValueError("intweights must hold only -1, 0 or 1")
    rows = intweights.shape[0]
    packed_rows = -(-rows // VALUES_PER_BYTE)
    padded = torch.zeros(
        (packed_rows * VALUES_PER_BYTE, *intweights.shape[1:]), dtype=torch.uint8, device=intweights.device
    )
    padded[:rows] = stored.to(torch.uint8)
    packed = torch.zeros((packed_rows, *intweights.shape[1:]), dtype=torch.uint8, device=intweights.device)
    for slot, part in enumerate(padded.split(packed_rows)):
        packed |= part << (BITS * slot)
    return packed


def unpack_weights(packed: torch.Tensor, bits: int = 2) -> torch.Tensor:
    """int32 weights (4 * R, ...) of the packed (R, ...) uint8 ``packed``."""
    _check_bits(bits)
    require_tensor("packed", packed, (torch.uint8,))
    if packed.dim() == 0:
        raise ValueError("packed must have at least one dimension (the packed one is first)")
    parts = [((packed >> (BITS * slot)) & 3) for slot in range(VALUES_PER_BYTE)]
    return torch.cat(parts).to(torch.int32) - 1


def check_matmul(a: torch.Tensor, b: torch.Tensor) -> None:
    require_tensor("a", a, (torch.int8,))
    require_tensor("b", b, (torch.uint8,))
    require_ndim("a", a, (2,))
    require_ndim("b", b, (2,))
    if a.shape[1] != VALUES_PER_BYTE * b.shape[0]:
        raise ValueError(
            f"a has {a.shape[1]} columns but b packs {VALUES_PER_BYTE * b.shape[0]} weight rows "
            f"({b.shape[0]} packed rows, four to a byte): pack the (K, N) weights with pack_weights"
        )
    require_same_device("a", {"a": a, "b": b})


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ unpack_weights(b)`` in int32 (see the module docstring for where it runs)."""
    check_matmul(a, b)
    if a.device.type == "cpu":
        return (a.to(torch.int64) @ unpack_weights(b).to(torch.int64)).to(torch.int32)
    if a.device.type != "cuda":
        raise NotImplementedError(
            f"the int8 x int2 matmul has no kernel for {a.device.type} devices: its Triton kernel needs an int8 "
            "tl.dot, verified on CUDA devices (NVIDIA, AMD through ROCm) of compute capability >= 8.0 only"
        )
    capability = torch.cuda.get_device_capability(a.device)
    if capability < MIN_CAPABILITY:
        raise NotImplementedError(
            f"the int8 x int2 matmul needs int8 matrix units (compute capability >= 8.0); "
            f"{torch.cuda.get_device_name(a.device)} has {capability[0]}.{capability[1]}"
        )
    from liger_kernel.triton.mm_int8int2 import int8_int2_matmul

    return int8_int2_matmul(a, b)
