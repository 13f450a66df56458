"""The ops as PyTorch operators in the ``liger`` namespace.

``torch.compile`` (and selective activation checkpointing, whose policies name
operators) sees each op as two operators instead of a Python
``autograd.Function`` full of Triton launches:

    liger::<op>(args..., bool[] needs_input_grad) -> Tensor[]
        the op's outputs (those the call returns: an unrequested extra output
        of cross-entropy is absent, not None), then a ``handle``;
    liger::<op>_backward(handle, grads, sources, needs, shapes...) -> Tensor[]
        the gradients of the tensor arguments that need one.

Both run the Function the dispatcher chose for the device, exactly as eager
mode does: the forward operator calls its ``forward(ctx, *args)`` with a
:class:`KernelContext` standing in for autograd's, and the backward operator
calls its ``backward`` with that same context. Backends keep their own
Functions; nothing is written twice. The context crosses from one operator to
the other keyed by ``handle``, a CPU int64 scalar (zero: its storage address
is the key), because PyTorch operators can only pass tensors and a backend's
non-tensor state is its own business; the entry lives as long as the handle
tensor does, so a forward whose backward never runs leaks nothing.

What the context may hold is the one subtle part. A compiler owns the storage
of every argument and output: it reuses a buffer once it thinks it dead, and
may recompute a cheap one for the backward instead of keeping it. So a saved
tensor over an argument or output is not kept; it is rebuilt, as the same
view, over the ``sources`` the backward operator is given: the arguments and
outputs the contract's ``backward_reads`` names, which the compiler therefore
keeps (or recomputes) for it. Tensors the backend made itself (statistics,
gradient buffers) are kept as they are. A backend that saves a tensor over
anything else gets an error here, and the conformance suite's operator
contract finds it.

Compile-time tracing never runs a kernel: the forward's fake implementation
builds its outputs from the op contract's :meth:`~DispatchedFunction.outputs`,
and the backward's from the shapes and dtypes of the arguments it returns
gradients for. Neither operator writes any argument (``mutates_args=()`` is
the truth): under an operator the context allows no overwrite (see
``overwritable``) and ``in_place`` arguments are turned off, because a
compiler plans buffers on the promise that operators are functional; the
memory those overwrites save in eager mode is for the compiler to win back.
Outputs are made contiguous and never alias an argument or one another, as
the fake ones do not.

Eager calls skip all of this (a PyTorch operator costs tens of microseconds of
host time per call, and the norms are bound by host time): ``apply`` routes
through the operators while ``torch.compile`` traces, or always after
:func:`use_operators` (for eager selective activation checkpointing).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from liger_kernel.dispatch import dispatcher
from liger_kernel.settings import flag

if TYPE_CHECKING:
    from liger_kernel.ops._contract import DispatchedFunction

NAMESPACE = "liger"

#: check() annotations -> operator schema types. Arguments annotated ``Any``
#: (rms_norm's row_mode, a kernel hint) are not part of the operator: the
#: backend gets their default.
_SCHEMA_TYPES = {
    "torch.Tensor": "Tensor",
    "torch.Tensor | None": "Tensor?",
    "float": "float",
    "float | None": "float?",
    "int": "int",
    "int | None": "int?",
    "bool": "bool",
    "str": "str",
    "str | None": "str?",
    # by name ("bfloat16"): a ScalarType argument reaches the implementation
    # as a dtype on some torch releases and as its bare enum integer on others
    "torch.dtype | None": "str?",
    "Sequence[int]": "int[]",
    "list[int]": "int[]",
}

_enabled = flag("LIGER_KERNEL_OPERATORS")


def use_operators(enabled: bool = True) -> None:
    """Route eager calls through the ``liger`` operators too (they always are
    under ``torch.compile``). Costs host time per call; use it for eager
    selective activation checkpointing. ``LIGER_KERNEL_OPERATORS=1`` sets it
    at import."""
    global _enabled
    _enabled = enabled


def operators_in_use() -> bool:
    return _enabled or torch.compiler.is_compiling()


class KernelContext:
    """Autograd's ``ctx`` as a backend Function uses it, inside an operator."""

    #: read by ``overwritable``: an operator writes none of its arguments
    may_overwrite_inputs = False

    def __init__(self, function: Any, needs_input_grad: tuple[bool, ...]) -> None:
        self.function = function
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple[Any, ...] = ()
        # autograd's ctx has graph edges exactly when a backward can happen
        self.next_functions: tuple[Any, ...] = ((None, 0),) if any(needs_input_grad) else ()
        self.materialize_grads = True
        self.output_specs: list[tuple[torch.Size, torch.dtype] | None] = []
        self.device: torch.device | None = None

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors: Any) -> None:
        # Under an operator such outputs (cross-entropy's z_loss, accuracy)
        # still require grad when their inputs do; backends ignore the
        # gradients they get, so the results are eager's.
        pass

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = value

    def mark_dirty(self, *tensors: Any) -> None:
        raise RuntimeError("a backend Function may not write its inputs inside a liger operator")


_STATE: dict[int, KernelContext] = {}


def _keep(ctx: KernelContext) -> torch.Tensor:
    # The key is the handle's storage address, not its value: the value is
    # always 0, so that two runs of one call give equal outputs (opcheck and
    # compilers compare them), and an alias of the handle finds the same entry.
    handle = torch.zeros((), dtype=torch.int64)
    key = handle.data_ptr()
    _STATE[key] = ctx
    weakref.finalize(handle, _STATE.pop, key, None)
    return handle


def _state(handle: torch.Tensor) -> KernelContext:
    try:
        return _STATE[handle.data_ptr()]
    except KeyError:
        raise RuntimeError(
            "liger operator backward: the forward state of this call is gone (its handle tensor was freed "
            "before the backward ran)"
        ) from None


@dataclass(frozen=True)
class _Parameter:
    name: str
    schema_type: str | None  # None: not an operator argument
    default: Any
    is_dtype: bool = False  # crosses the operator by name


@dataclass
class Operator:
    """The two operators of one op, and how its arguments map onto them."""

    cls: type[DispatchedFunction]
    parameters: tuple[_Parameter, ...]
    forward: Any = None
    backward: Any = None

    @property
    def taken(self) -> list[int]:
        return [i for i, p in enumerate(self.parameters) if p.schema_type is not None]

    def full_args(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """The backend's positional arguments from the operator's."""
        given = iter(values)
        args = [next(given) if p.schema_type is not None else p.default for p in self.parameters]
        return tuple(
            getattr(torch, a) if p.is_dtype and isinstance(a, str) else a
            for p, a in zip(self.parameters, args, strict=True)
        )

    def sources(self, args: Sequence[Any], outputs: Sequence[Any], present: Sequence[Any]) -> list[Any]:
        """The arguments and outputs named by ``cls.backward_reads``, in that
        order (None where absent). ``outputs`` are the backend's, by position."""
        names = [p.name for p in self.parameters]
        found = []
        for read in self.cls.backward_reads:
            if isinstance(read, int):
                found.append(None if outputs[read] is None else present[sum(o is not None for o in outputs[:read])])
            else:
                found.append(args[names.index(read)])
        return found

    def tensor_positions(self) -> list[int]:
        return [i for i, p in enumerate(self.parameters) if p.schema_type in ("Tensor", "Tensor?")]


def _parameters(cls: type[DispatchedFunction]) -> tuple[_Parameter, ...]:
    found = []
    for name, param in inspect.signature(cls.check).parameters.items():
        annotation = (
            param.annotation if isinstance(param.annotation, str) else inspect.formatannotation(param.annotation)
        )
        if annotation == "Any":
            schema_type = None
        elif annotation in _SCHEMA_TYPES:
            schema_type = _SCHEMA_TYPES[annotation]
        else:
            raise TypeError(
                f"{cls.__name__}.check: argument {name!r} has annotation {annotation!r} with no schema type"
            )
        found.append(_Parameter(name, schema_type, param.default, annotation == "torch.dtype | None"))
    return tuple(found)


def _schema_default(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def _forward_schema(parameters: Sequence[_Parameter]) -> str:
    fields = [f"{p.schema_type} {p.name}" for p in parameters if p.schema_type is not None]
    return "(" + ", ".join([*fields, "bool[] needs_input_grad"]) + ") -> Tensor[]"


_BACKWARD_SCHEMA = (
    "(Tensor handle, Tensor[] grads, bool[] has_grad, Tensor[] sources, bool[] has_source, bool[] needs_input_grad, "
    "SymInt[] sizes, int[] ranks, "
    "int[] dtypes) -> Tensor[]"
)

# Gradient dtypes cross to the backward operator as positions in this tuple,
# not as ScalarType[]: that reaches the implementation as bare enum integers on
# some torch releases (2.11), where ``tensor.to(6)`` reads as a device ordinal.
_GRAD_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.complex64, torch.complex128)
# a dict lookup, not str(): what torch.compile traces through
_DTYPE_NAMES = {dtype: str(dtype).removeprefix("torch.") for dtype in _GRAD_DTYPES}


def _present(specs: Sequence[Any]) -> list[int]:
    return [i for i, spec in enumerate(specs) if spec is not None]


def _contiguous_new(t: torch.Tensor, inputs: Sequence[Any]) -> torch.Tensor:
    """``t`` contiguous and sharing no storage with ``inputs`` (an operator's
    outputs may not alias its arguments)."""
    t = t.contiguous()
    ptr = t.untyped_storage().data_ptr() if t.numel() else None
    for other in inputs:
        if isinstance(other, torch.Tensor) and ptr is not None and other.numel():
            if other.untyped_storage().data_ptr() == ptr:
                return t.clone()
    return t


def _build(cls: type[DispatchedFunction]) -> Operator:
    op = Operator(cls, _parameters(cls))
    name = f"{NAMESPACE}::{cls.op}"
    tensor_positions = op.tensor_positions()
    in_place = [i for i, p in enumerate(op.parameters) if p.name == "in_place"]

    def backend_args(values: Sequence[Any]) -> tuple[Any, ...]:
        args = list(op.full_args(values[:-1]))
        for i in in_place:
            args[i] = False
        return tuple(args)

    def forward_impl(*values: Any) -> list[torch.Tensor]:
        args = backend_args(values)
        needs = tuple(values[-1])
        device_type = args[0].device.type
        function = dispatcher.function(cls.op, device_type, cls.__name__)
        ctx = KernelContext(function, needs)
        ctx.device = args[0].device
        with torch.no_grad():
            outputs = function.forward(ctx, *args)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        present = [_contiguous_new(o, tensors) for o in outputs if o is not None]
        ctx.output_specs = [None if o is None else (o.shape, o.dtype) for o in outputs]
        if not any(needs):
            return [*present, torch.zeros((), dtype=torch.int64)]
        ctx.recipe = _recipe(ctx.saved_tensors, op.sources(args, outputs, present), args, present, function)
        ctx.saved_tensors = ()
        return [*present, _keep(ctx)]

    def forward_fake(*values: Any) -> list[torch.Tensor]:
        args = backend_args(values)
        device = args[0].device
        specs = cls.outputs(*args)
        outs = [torch.empty(spec[0], dtype=spec[1], device=device) for spec in specs if spec is not None]
        return [*outs, torch.empty((), dtype=torch.int64, device="cpu")]

    forward_op = torch.library.custom_op(name, forward_impl, mutates_args=(), schema=_forward_schema(op.parameters))
    forward_op.register_fake(forward_fake)

    def backward_impl(handle, grads, has_grad, sources, has_source, needs, sizes, ranks, dtypes):
        grads, sources = _unpack(grads, has_grad), _unpack(sources, has_source)
        ctx = _state(handle)
        device = ctx.device
        ctx.needs_input_grad = tuple(needs)
        ctx.saved_tensors = _rebuild(ctx.recipe, sources, cls)
        given = iter(grads)
        full_grads = []
        for spec in ctx.output_specs:
            if spec is None:
                full_grads.append(None)
                continue
            grad = next(given)
            if grad is None and ctx.materialize_grads:
                grad = torch.zeros(spec[0], dtype=spec[1], device=device)
            full_grads.append(grad)
        with torch.no_grad():
            result = ctx.function.backward(ctx, *full_grads)
        result = result if isinstance(result, tuple) else (result,)
        returned = []
        shapes = _split_sizes(sizes, ranks)
        needed = [i for i in tensor_positions if needs[i]]
        for i, shape, code in zip(needed, shapes, dtypes, strict=True):
            dtype = _GRAD_DTYPES[code]
            grad = result[i]
            if grad is None:
                grad = torch.zeros(shape, dtype=dtype, device=device)
            # fused_add_rms_norm's dX and dR are one tensor: returns may not alias either
            returned.append(_contiguous_new(grad.to(dtype), [*(g for g in grads if g is not None), *returned]))
        return returned

    def backward_fake(handle, grads, has_grad, sources, has_source, needs, sizes, ranks, dtypes):
        device = grads[0].device  # a backward runs only for an output that has a gradient
        shapes = _split_sizes(sizes, ranks)
        return [torch.empty(s, dtype=_GRAD_DTYPES[d], device=device) for s, d in zip(shapes, dtypes, strict=True)]

    backward_op = torch.library.custom_op(f"{name}_backward", backward_impl, mutates_args=(), schema=_BACKWARD_SCHEMA)
    backward_op.register_fake(backward_fake)

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: list[torch.Tensor]) -> None:
        args = backend_args(inputs)
        specs = cls.outputs(*args)
        present = iter(output[:-1])
        outputs = tuple(next(present) if spec is not None else None for spec in specs)
        # saved, not kept as attributes: autograd frees them after the backward,
        # and a compiler keeps (or recomputes) exactly these for it
        ctx.save_for_backward(output[-1], *op.sources(args, outputs, output[:-1]))
        ctx.n_outputs = len(output) - 1
        ctx.input_meta = [
            (args[i].shape, args[i].dtype) if isinstance(args[i], torch.Tensor) else None for i in range(len(args))
        ]

    def backward_formula(ctx: Any, grads: list[torch.Tensor | None]) -> tuple[Any, ...]:
        # ctx.needs_input_grad covers the operator's arguments (taken ones, then needs_input_grad)
        taken = op.taken
        needs = [False] * len(op.parameters)
        for position, i in enumerate(taken):
            needs[i] = bool(ctx.needs_input_grad[position])
        needed = [i for i in tensor_positions if needs[i] and ctx.input_meta[i] is not None]
        sizes: list[Any] = []
        ranks, dtypes = [], []
        for i in needed:
            shape, dtype = ctx.input_meta[i]
            sizes.extend(shape)
            ranks.append(len(shape))
            dtypes.append(_GRAD_DTYPES.index(dtype))
        for i in tensor_positions:
            if ctx.input_meta[i] is None:
                needs[i] = False
        output_grads = list(grads[: ctx.n_outputs])
        handle, *sources = ctx.saved_tensors
        # lists of optional tensors are passed as tensors and a presence mask:
        # Inductor mislays the arguments after a Tensor?[] holding None (torch 2.13)
        computed = []
        if needed:
            packed = (*_pack(output_grads), *_pack(sources))
            computed = backward_op(handle, *packed, needs, sizes, ranks, dtypes)
        by_position = dict(zip(needed, computed, strict=True))
        return (*(by_position.get(i) for i in taken), None)

    forward_op.register_autograd(backward_formula, setup_context=setup_context)
    op.forward, op.backward = forward_op, backward_op
    return op


def _storage(t: torch.Tensor) -> int | None:
    return t.untyped_storage().data_ptr() if isinstance(t, torch.Tensor) and t.numel() else None


def _recipe(
    saved: Sequence[Any], sources: Sequence[Any], args: Sequence[Any], present: Sequence[Any], function: Any
) -> list[Any]:
    """How to get each tensor the backend saved back in the backward operator.

    A tensor over the storage of a ``backward_reads`` source is kept as (source
    index, size, stride, offset) and rebuilt over the tensor the backward
    operator is given for that source: a compiler owns those storages, may
    reuse them once it thinks them dead and may recompute them for the
    backward, so no reference to them is kept here. Any other tensor is the
    backend's own (rstd, a gradient buffer) and is kept as it is."""
    owned = {_storage(t): i for i, t in enumerate(sources) if _storage(t) is not None}
    others = {_storage(t) for t in (*args, *present)} - {None} - set(owned)
    recipe: list[Any] = []
    for t in saved:
        key = _storage(t)
        if key in owned:
            source = sources[owned[key]]
            recipe.append(
                (owned[key], t.shape, t.stride(), t.storage_offset() - source.storage_offset(), source.stride())
            )
        elif key in others:
            raise RuntimeError(
                f"{function.__module__}.{function.__qualname__} saved a tensor over an argument or output its op's "
                "backward_reads does not name; name it there so that compilers keep it for the backward"
            )
        else:
            recipe.append(t)
    return recipe


def _rebuild(recipe: Sequence[Any], sources: Sequence[Any], cls: Any) -> tuple[Any, ...]:
    saved = []
    for entry in recipe:
        if not isinstance(entry, tuple):
            saved.append(entry)
            continue
        index, shape, stride, offset, source_stride = entry
        source = sources[index]
        if tuple(source.stride()) != tuple(source_stride):
            raise RuntimeError(
                f"{cls.__name__} backward: {cls.backward_reads[index]!r} came back with strides "
                f"{tuple(source.stride())}, not the forward's {tuple(source_stride)}"
            )
        saved.append(source.as_strided(shape, stride, source.storage_offset() + offset))
    return tuple(saved)


def _pack(tensors: Sequence[torch.Tensor | None]) -> tuple[list[torch.Tensor], list[bool]]:
    return [t for t in tensors if t is not None], [t is not None for t in tensors]


def _unpack(tensors: Sequence[torch.Tensor], present: Sequence[bool]) -> list[torch.Tensor | None]:
    given = iter(tensors)
    return [next(given) if here else None for here in present]


def _split_sizes(sizes: Sequence[Any], ranks: Sequence[int]) -> list[list[Any]]:
    shapes, start = [], 0
    for rank in ranks:
        shapes.append(list(sizes[start : start + rank]))
        start += rank
    return shapes


_OPERATORS: dict[str, Operator] = {}


def operator(cls: type[DispatchedFunction]) -> Operator:
    """The operators of ``cls.op`` (registered on first use)."""
    found = _OPERATORS.get(cls.op)
    if found is None:
        found = _OPERATORS[cls.op] = _build(cls)
    return found


def arguments(cls: type[DispatchedFunction], args: tuple[Any, ...]) -> tuple[Operator, tuple[Any, ...]]:
    """``cls``'s operators and the forward operator's arguments for ``apply``'s
    (checked, positional) ``args``: the taken ones, then needs_input_grad."""
    op = operator(cls)
    args = (*args, *(p.default for p in op.parameters[len(args) :]))
    grad = torch.is_grad_enabled()
    needs = [grad and isinstance(a, torch.Tensor) and a.requires_grad for a in args]
    taken = [_DTYPE_NAMES[args[i]] if op.parameters[i].is_dtype and args[i] is not None else args[i] for i in op.taken]
    return op, (*taken, needs)


def call(cls: type[DispatchedFunction], args: tuple[Any, ...]) -> Any:
    """``cls``'s op through its forward operator, returned as ``apply`` returns it."""
    op, values = arguments(cls, args)
    outputs = op.forward(*values)
    specs = cls.outputs(*op.full_args(values[:-1]))
    if len(specs) == 1:
        return outputs[0]
    present = iter(outputs[:-1])
    return tuple(next(present) if spec is not None else None for spec in specs)
