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
from typing import TYPE_CHECKING, Any, NamedTuple

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
        #: how the backward operator gets saved_tensors back (set after the forward)
        self.recipe: _Recipe | None = None

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


# -- the state a forward leaves for its backward ---------------------------------

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


def _storage(t: Any) -> int | None:
    return t.untyped_storage().data_ptr() if isinstance(t, torch.Tensor) and t.numel() else None


class _View(NamedTuple):
    """A saved tensor as a view of the backward operator's ``sources[source]``."""

    source: int
    shape: torch.Size
    stride: tuple[int, ...]
    offset: int  # from the source's own storage offset
    source_stride: tuple[int, ...]


class _Recipe:
    """How to get each tensor the backend saved back in the backward operator.

    A tensor over the storage of a ``backward_reads`` source is kept as a
    :class:`_View` and rebuilt over the tensor the backward operator is given
    for that source: a compiler owns those storages, may reuse them once it
    thinks them dead and may recompute them for the backward, so no reference
    to them is kept here. Any other tensor is the backend's own (rstd, a
    gradient buffer) and is kept as it is."""

    def __init__(
        self, saved: Sequence[Any], sources: Sequence[Any], args: Sequence[Any], present: Sequence[Any], function: Any
    ) -> None:
        owned = {_storage(t): i for i, t in enumerate(sources) if _storage(t) is not None}
        others = {_storage(t) for t in (*args, *present)} - {None} - set(owned)
        self.entries: list[Any] = []
        for t in saved:
            key = _storage(t)
            if key in owned:
                source = sources[owned[key]]
                offset = t.storage_offset() - source.storage_offset()
                self.entries.append(_View(owned[key], t.shape, t.stride(), offset, source.stride()))
            elif key in others:
                raise RuntimeError(
                    f"{function.__module__}.{function.__qualname__} saved a tensor over an argument or output its "
                    "op's backward_reads does not name; name it there so that compilers keep it for the backward"
                )
            else:
                self.entries.append(t)

    def rebuild(self, sources: Sequence[Any], cls: type[DispatchedFunction]) -> tuple[Any, ...]:
        return tuple(self._rebuilt(entry, sources, cls) for entry in self.entries)

    @staticmethod
    def _rebuilt(entry: Any, sources: Sequence[Any], cls: type[DispatchedFunction]) -> Any:
        if not isinstance(entry, _View):
            return entry
        source = sources[entry.source]
        if tuple(source.stride()) != tuple(entry.source_stride):
            raise RuntimeError(
                f"{cls.__name__} backward: {cls.backward_reads[entry.source]!r} came back with strides "
                f"{tuple(source.stride())}, not the forward's {tuple(entry.source_stride)}"
            )
        return source.as_strided(entry.shape, entry.stride, source.storage_offset() + entry.offset)


# -- the operator schema, from the op's check() signature ---------------------------


@dataclass(frozen=True)
class _Parameter:
    name: str
    schema_type: str | None  # None: not an operator argument
    default: Any
    is_dtype: bool = False  # crosses the operator by name


def _parameter(cls: type[DispatchedFunction], name: str, param: inspect.Parameter) -> _Parameter:
    annotation = param.annotation if isinstance(param.annotation, str) else inspect.formatannotation(param.annotation)
    if annotation == "Any":
        return _Parameter(name, None, param.default)
    if annotation not in _SCHEMA_TYPES:
        raise TypeError(f"{cls.__name__}.check: argument {name!r} has annotation {annotation!r} with no schema type")
    return _Parameter(name, _SCHEMA_TYPES[annotation], param.default, annotation == "torch.dtype | None")


class Schema:
    """How an op's arguments map onto its forward operator's.

    The operator takes the arguments ``check`` annotates with a schema type (the
    "taken" ones; dtypes by name), then ``needs_input_grad``; the backend gets
    the full positional list back, with the defaults of the others and every
    ``in_place`` turned off."""

    def __init__(self, cls: type[DispatchedFunction]) -> None:
        self.cls = cls
        self.parameters = tuple(
            _parameter(cls, n, p)
            for n, p in inspect.signature(cls.check).parameters.items()
            if n not in cls.contract_args  # consumed by the contract, never a backend's
        )
        self.taken = [i for i, p in enumerate(self.parameters) if p.schema_type is not None]
        self.tensor_positions = [i for i, p in enumerate(self.parameters) if p.schema_type in ("Tensor", "Tensor?")]
        self._in_place = [i for i, p in enumerate(self.parameters) if p.name == "in_place"]
        self._names = [p.name for p in self.parameters]

    @property
    def forward(self) -> str:
        fields = [f"{self.parameters[i].schema_type} {self.parameters[i].name}" for i in self.taken]
        return "(" + ", ".join([*fields, "bool[] needs_input_grad"]) + ") -> Tensor[]"

    def operator_values(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The forward operator's arguments for ``apply``'s (checked, positional) ``args``."""
        args = (*args, *(p.default for p in self.parameters[len(args) :]))
        grad = torch.is_grad_enabled()
        needs = [grad and isinstance(a, torch.Tensor) and a.requires_grad for a in args]
        taken = [
            _DTYPE_NAMES[args[i]] if self.parameters[i].is_dtype and args[i] is not None else args[i]
            for i in self.taken
        ]
        return (*taken, needs)

    def backend_args(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """The backend Function's positional arguments from the forward operator's."""
        given = iter(values[:-1])
        args = []
        for i, p in enumerate(self.parameters):
            # an argument outside the operator with no default (a process group,
            # which the op's apply keeps off the operator route) arrives as None
            outside = None if p.default is inspect.Parameter.empty else p.default
            value = next(given) if p.schema_type is not None else outside
            if p.is_dtype and isinstance(value, str):
                value = getattr(torch, value)
            args.append(False if i in self._in_place else value)
        return tuple(args)

    def sources(self, args: Sequence[Any], outputs: Sequence[Any], present: Sequence[Any]) -> list[Any]:
        """The arguments and outputs named by ``cls.backward_reads``, in that
        order (None where absent). ``outputs`` are the backend's, by position,
        ``present`` the operator's (the backend's less the absent ones)."""
        found = []
        for read in self.cls.backward_reads:
            if isinstance(read, int):
                found.append(None if outputs[read] is None else present[sum(o is not None for o in outputs[:read])])
            else:
                found.append(args[self._names.index(read)])
        return found

    def outputs(self, args: Sequence[Any], present: Sequence[Any]) -> tuple[Any, ...]:
        """The backend's outputs (None where absent) from the operator's ``present`` ones."""
        given = iter(present)
        return tuple(next(given) if spec is not None else None for spec in self.cls.outputs(*args))


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


def _contiguous_new(t: torch.Tensor, inputs: Sequence[Any]) -> torch.Tensor:
    """``t`` contiguous and sharing no storage with ``inputs`` (an operator's
    outputs may not alias its arguments)."""
    t = t.contiguous()
    ptr = _storage(t)
    if ptr is not None and any(_storage(other) == ptr for other in inputs):
        return t.clone()
    return t


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


# -- the two operators of one op ------------------------------------------------------


class Operator:
    """``liger::<op>`` and ``liger::<op>_backward``, registered on construction.

    ``forward`` and ``backward`` are the registered operators; the methods
    below are their implementations, fake implementations and autograd
    formula."""

    def __init__(self, cls: type[DispatchedFunction]) -> None:
        self.cls = cls
        self.schema = Schema(cls)
        name = f"{NAMESPACE}::{cls.op}"
        self.forward = torch.library.custom_op(name, self._forward, mutates_args=(), schema=self.schema.forward)
        self.forward.register_fake(self._forward_fake)
        self.backward = torch.library.custom_op(
            f"{name}_backward", self._backward, mutates_args=(), schema=_BACKWARD_SCHEMA
        )
        self.backward.register_fake(self._backward_fake)
        self.forward.register_autograd(self._autograd_backward, setup_context=self._setup_context)

    def call(self, args: tuple[Any, ...]) -> Any:
        """The op through the forward operator, returned as ``apply`` returns it."""
        values = self.schema.operator_values(args)
        outputs = self.forward(*values)
        backend_outputs = self.schema.outputs(self.schema.backend_args(values), outputs[:-1])
        return outputs[0] if len(backend_outputs) == 1 else backend_outputs

    # forward operator

    def _forward(self, *values: Any) -> list[torch.Tensor]:
        args = self.schema.backend_args(values)
        needs = tuple(values[-1])
        function = dispatcher.function(self.cls.op, args[0].device.type, self.cls.__name__)
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
        ctx.recipe = _Recipe(ctx.saved_tensors, self.schema.sources(args, outputs, present), args, present, function)
        ctx.saved_tensors = ()
        return [*present, _keep(ctx)]

    def _forward_fake(self, *values: Any) -> list[torch.Tensor]:
        args = self.schema.backend_args(values)
        device = args[0].device
        outs = [torch.empty(s[0], dtype=s[1], device=device) for s in self.cls.outputs(*args) if s is not None]
        return [*outs, torch.empty((), dtype=torch.int64, device="cpu")]

    # backward operator

    def _backward(
        self,
        handle: torch.Tensor,
        grads: list[torch.Tensor],
        has_grad: list[bool],
        sources: list[torch.Tensor],
        has_source: list[bool],
        needs: list[bool],
        sizes: list[Any],
        ranks: list[int],
        dtypes: list[int],
    ) -> list[torch.Tensor]:
        given, sources = _unpack(grads, has_grad), _unpack(sources, has_source)
        ctx = _state(handle)
        ctx.needs_input_grad = tuple(needs)
        ctx.saved_tensors = ctx.recipe.rebuild(sources, self.cls)
        with torch.no_grad():
            result = ctx.function.backward(ctx, *self._output_grads(ctx, given))
        result = result if isinstance(result, tuple) else (result,)
        returned: list[torch.Tensor] = []
        needed = [i for i in self.schema.tensor_positions if needs[i]]
        for i, shape, code in zip(needed, _split_sizes(sizes, ranks), dtypes, strict=True):
            dtype = _GRAD_DTYPES[code]
            grad = result[i]
            if grad is None:
                grad = torch.zeros(shape, dtype=dtype, device=ctx.device)
            # fused_add_rms_norm's dX and dR are one tensor: returns may not alias either
            returned.append(_contiguous_new(grad.to(dtype), [*(g for g in given if g is not None), *returned]))
        return returned

    @staticmethod
    def _output_grads(ctx: KernelContext, given: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """The backend backward's gradient per output of its forward (None for
        an absent output; zeros for a missing one, unless it asked otherwise)."""
        grads = iter(given)
        full: list[torch.Tensor | None] = []
        for spec in ctx.output_specs:
            grad = None if spec is None else next(grads)
            if spec is not None and grad is None and ctx.materialize_grads:
                grad = torch.zeros(spec[0], dtype=spec[1], device=ctx.device)
            full.append(grad)
        return full

    def _backward_fake(
        self,
        handle: torch.Tensor,
        grads: list[torch.Tensor],
        has_grad: list[bool],
        sources: list[torch.Tensor],
        has_source: list[bool],
        needs: list[bool],
        sizes: list[Any],
        ranks: list[int],
        dtypes: list[int],
    ) -> list[torch.Tensor]:
        device = grads[0].device  # a backward runs only for an output that has a gradient
        shapes = _split_sizes(sizes, ranks)
        return [torch.empty(s, dtype=_GRAD_DTYPES[d], device=device) for s, d in zip(shapes, dtypes, strict=True)]

    # autograd formula of the forward operator

    def _setup_context(self, ctx: Any, inputs: tuple[Any, ...], output: list[torch.Tensor]) -> None:
        args = self.schema.backend_args(inputs)
        outputs = self.schema.outputs(args, output[:-1])
        # saved, not kept as attributes: autograd frees them after the backward,
        # and a compiler keeps (or recomputes) exactly these for it
        ctx.save_for_backward(output[-1], *self.schema.sources(args, outputs, output[:-1]))
        ctx.n_outputs = len(output) - 1
        ctx.input_meta = [(a.shape, a.dtype) if isinstance(a, torch.Tensor) else None for a in args]

    def _autograd_backward(self, ctx: Any, grads: list[torch.Tensor | None]) -> tuple[Any, ...]:
        taken = self.schema.taken
        # ctx.needs_input_grad covers the operator's arguments (taken ones, then needs_input_grad);
        # an absent optional tensor needs none
        needs = [False] * len(self.schema.parameters)
        for position, i in enumerate(taken):
            needs[i] = bool(ctx.needs_input_grad[position]) and ctx.input_meta[i] is not None
        needed = [i for i in self.schema.tensor_positions if needs[i]]
        if not needed:
            return (*(None for _ in taken), None)
        shapes = [ctx.input_meta[i][0] for i in needed]
        sizes = [size for shape in shapes for size in shape]
        ranks = [len(shape) for shape in shapes]
        dtypes = [_GRAD_DTYPES.index(ctx.input_meta[i][1]) for i in needed]
        handle, *sources = ctx.saved_tensors
        # lists of optional tensors are passed as tensors and a presence mask:
        # Inductor mislays the arguments after a Tensor?[] holding None (torch 2.13)
        packed = (*_pack(grads[: ctx.n_outputs]), *_pack(sources))
        computed = self.backward(handle, *packed, needs, sizes, ranks, dtypes)
        by_position = dict(zip(needed, computed, strict=True))
        return (*(by_position.get(i) for i in taken), None)


_OPERATORS: dict[str, Operator] = {}


def operator(cls: type[DispatchedFunction]) -> Operator:
    """The operators of ``cls.op`` (registered on first use)."""
    found = _OPERATORS.get(cls.op)
    if found is None:
        found = _OPERATORS[cls.op] = Operator(cls)
    return found


def arguments(cls: type[DispatchedFunction], args: tuple[Any, ...]) -> tuple[Operator, tuple[Any, ...]]:
    """``cls``'s operators and the forward operator's arguments for ``apply``'s
    (checked, positional) ``args``: the taken ones, then needs_input_grad."""
    op = operator(cls)
    return op, op.schema.operator_values(args)


def call(cls: type[DispatchedFunction], args: tuple[Any, ...]) -> Any:
    """``cls``'s op through its forward operator, returned as ``apply`` returns it."""
    return operator(cls).call(args)
