"""What every contract test does: make inputs, run the public Function and the
float64 oracle, compare outputs and gradients, and check the caller's tensors
survived.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
import torch
from torch import Tensor

from liger_conformance.tolerances import assert_close

#: memory layouts a backend must accept; "padded" rows are a slice of wider
#: rows (last dimension contiguous), "strided" takes every other element.
LAYOUTS = ("contiguous", "padded", "strided")


def make(
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    rng: torch.Generator,
    *,
    scale: float = 1.0,
    shift: float = 0.0,
    layout: str = "contiguous",
) -> Tensor:
    """Normal(shift, scale) values of ``dtype`` on ``device`` in ``layout``."""
    shape = tuple(shape)
    if layout == "contiguous":
        storage_shape = shape
    elif layout == "padded":
        storage_shape = (*shape[:-1], shape[-1] + 3)
    elif layout == "strided":
        storage_shape = (*shape[:-1], shape[-1] * 2)
    else:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    values = torch.randn(storage_shape, generator=rng, dtype=torch.float64) * scale + shift
    stored = values.to(dtype).to(device)
    if layout == "padded":
        stored = stored[..., : shape[-1]]
    elif layout == "strided":
        stored = stored[..., ::2]
    assert tuple(stored.shape) == shape
    if layout != "contiguous" and stored.numel() > 1:
        assert not stored.is_contiguous()
    return stored


def targets(
    rows: int,
    vocab: int,
    device: torch.device,
    rng: torch.Generator,
    *,
    ignore_index: int = -100,
    ignored: str = "some",
    dtype: torch.dtype = torch.int64,
) -> Tensor:
    """Class indices, with none, some (about a third, never all) or all rows
    set to ``ignore_index``; kept rows avoid ``ignore_index`` as a class."""
    values = torch.randint(0, vocab, (rows,), generator=rng)
    if 0 <= ignore_index < vocab:
        values = torch.where(values == ignore_index, (values + 1) % vocab, values)
    if ignored == "all":
        values.fill_(ignore_index)
    elif ignored == "some" and rows > 1:
        mask = torch.rand(rows, generator=rng) < 0.34
        mask[0] = False
        values = torch.where(mask, torch.full_like(values, ignore_index), values)
    elif ignored not in ("none", "some"):
        raise ValueError(f"ignored must be 'none', 'some' or 'all', got {ignored!r}")
    return values.to(dtype).to(device)


def oracle_device(device: torch.device) -> torch.device:
    """Where the float64 oracle runs: on a CUDA device (fast float64, and full
    shapes would be slow on the host), else on the CPU (mocks keep tensors
    there, and other accelerators may lack float64 kernels)."""
    return device if device.type == "cuda" else torch.device("cpu")


def _oracle_copy(value: Any, requires_grad: bool) -> Any:
    if not isinstance(value, Tensor):
        return value
    copy = value.detach().to(oracle_device(value.device))
    if copy.is_floating_point():
        copy = copy.to(torch.float64)
    return copy.requires_grad_(requires_grad)


def _leaf(value: Tensor) -> Tensor:
    # detach keeps the strides, so a non-contiguous view stays non-contiguous
    return value.detach().requires_grad_(True)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def compare_with_oracle(
    function: Callable[..., Any],
    oracle: Callable[[dict[str, Any]], Any],
    args: Mapping[str, Any],
    *,
    dtype: torch.dtype,
    rng: torch.Generator,
    grads: Sequence[str] = (),
    outputs: Sequence[str] = ("output",),
    reduced: Sequence[str] = (),
    output_dtypes: Mapping[str, Sequence[torch.dtype]] | None = None,
    check_unchanged: bool = True,
    non_leaf: Sequence[str] = (),
    overwrites: Sequence[str] = (),
    loss_scale: float = 1.0,
) -> tuple[Any, ...]:
    """Run ``function(*args.values())`` and ``oracle(float64 copies of args)``.

    Outputs are compared by name (``outputs``), floating ones within the
    tolerance of ``dtype``, integer ones exactly, and a None expected means
    None required. Then every floating output the oracle can differentiate is
    given one random cotangent, shared by both, and the gradients of the
    arguments named in ``grads`` are compared. Names in ``reduced`` (outputs
    or argument names) use the "reduced" tolerance. A differentiable output
    must have the input dtype, or one of ``output_dtypes[name]``. With ``check_unchanged``
    every tensor argument must be bitwise what it was before the call.

    Arguments named in ``non_leaf`` (a subset of ``grads``) are passed as a
    clone of a leaf, as an op inside a model sees them: a non-leaf tensor that
    requires grad, whose gradient is checked on the leaf. Of those, the ones
    the op declares in ``overwrites`` (``DispatchedFunction.overwrites``) may
    come back holding anything; every leaf, and every other argument, must
    still be unchanged.

    ``loss_scale`` multiplies every cotangent, as float16 training scales its
    loss (``torch.amp.GradScaler``): a loss averaged over N elements has
    gradients of order 1/N, below float16's normal range once N passes a few
    thousand, and no implementation can return them there. A power of two
    keeps the scaling exact.
    Returns the backend's outputs.
    """
    assert set(non_leaf) <= set(grads), "only arguments with a gradient can be passed as non-leaf tensors"
    leaves = {name: _leaf(value) for name, value in args.items() if name in grads}
    actual_args = {
        name: (leaves[name].clone() if name in non_leaf else leaves[name]) if name in grads else value
        for name, value in args.items()
    }
    # what must survive the call: the leaves, and each argument the op may not overwrite
    watched = {f"{name} (leaf)": leaf for name, leaf in leaves.items() if name in non_leaf}
    watched.update(
        (name, value)
        for name, value in actual_args.items()
        if isinstance(value, Tensor) and not (name in non_leaf and name in overwrites)
    )
    before = {name: value.detach().clone() for name, value in watched.items()}
    oracle_args = {name: _oracle_copy(value, name in grads) for name, value in args.items()}

    actual = _as_tuple(function(*actual_args.values()))
    expected = _as_tuple(oracle(oracle_args))
    assert len(actual) == len(outputs), f"expected {len(outputs)} outputs ({', '.join(outputs)}), got {len(actual)}"

    differentiable: list[tuple[Tensor, Tensor, str]] = []
    for name, got, want in zip(outputs, actual, expected):
        kind = "reduced" if name in reduced else "elementwise"
        if want is None:
            assert got is None, f"{name} was not requested, so it must be None; got {type(got).__name__}"
            continue
        assert isinstance(got, Tensor), f"{name}: expected a tensor, got {type(got).__name__}"
        if want.is_floating_point():
            if want.requires_grad:
                allowed = (output_dtypes or {}).get(name, (dtype,))
                assert got.dtype in allowed, f"{name} has dtype {got.dtype}; expected one of {allowed}"
            assert_close(got, want, dtype, name, kind)
            if want.requires_grad:
                assert got.requires_grad, f"{name} carries no gradient"
                differentiable.append((got, want, name))
        else:
            assert tuple(got.shape) == tuple(want.shape), (
                f"{name}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
            )
            assert torch.equal(got.to("cpu", torch.int64), want.to("cpu", torch.int64)), (
                f"{name}: {got} != expected {want}"
            )

    if grads:
        assert differentiable, "no output carries a gradient"
        cotangents = [
            # exactly representable in the output's dtype, so both sides see the same values
            (torch.randn(want.shape, generator=rng, dtype=torch.float64) * loss_scale)
            .to(got.dtype)
            .to(want.device, torch.float64)
            for got, want, _ in differentiable
        ]
        torch.autograd.backward(
            [got for got, _, _ in differentiable],
            [c.to(got.device, got.dtype) for c, (got, _, _) in zip(cotangents, differentiable)],
        )
        torch.autograd.backward([want for _, want, _ in differentiable], cotangents)
        for name in grads:
            got, want = leaves[name].grad, oracle_args[name].grad
            assert got is not None, f"no gradient reached argument {name}"
            assert got.dtype == leaves[name].dtype, (
                f"gradient of {name} has dtype {got.dtype}; expected {leaves[name].dtype}"
            )
            assert_close(got, want, dtype, f"gradient of {name}", "reduced" if name in reduced else "elementwise")

    if check_unchanged:
        for name, saved in before.items():
            assert torch.equal(watched[name].detach(), saved), (
                f"the call modified the caller's argument {name} (forward or backward wrote into it)"
            )
    return actual


def run_twice_bitwise(function: Callable[[], Sequence[Tensor]], what: str) -> None:
    """``function`` returns tensors (outputs and gradients); two calls must agree bit for bit."""
    first = [_bits(t) for t in function()]
    second = [_bits(t) for t in function()]
    assert len(first) == len(second)
    for index, (a, b) in enumerate(zip(first, second)):
        assert torch.equal(a, b), f"{what}: result {index} differs between two runs on the same input"


def _bits(value: Tensor) -> Tensor:
    value = value.detach().to("cpu").contiguous().reshape(-1)
    return value.view(torch.uint8) if value.is_floating_point() else value


def raises_naming(error: type[Exception] | tuple[type[Exception], ...], argument: str) -> Any:
    """``pytest.raises`` for an error whose message names ``argument``."""
    return pytest.raises(error, match=rf"\b{argument}\b")


def meta_like(value: Tensor) -> Tensor:
    """``value``'s shape and dtype on the meta device: a device mismatch on any machine."""
    return torch.empty(value.shape, dtype=value.dtype, device="meta")


def shape_id(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)
