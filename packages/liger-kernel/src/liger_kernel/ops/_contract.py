"""The public op Functions: input checks once, then the backend's Function.

Each ``liger_kernel.ops.<op>.Liger<Op>Function`` is a :class:`DispatchedFunction`:
``apply`` validates its arguments against the op contract (so every backend
gets the same clear errors), asks the dispatcher which backend serves the first
tensor's device type, and calls that backend's ``torch.autograd.Function``
with the same arguments.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from typing import Any, ClassVar

import torch

from liger_kernel.dispatch import dispatcher
from liger_kernel.ops import _library
from liger_kernel.settings import flag

#: what :meth:`DispatchedFunction.outputs` gives per output: (shape, dtype),
#: or None for an output this call does not return
OutputSpec = tuple[tuple[int, ...] | torch.Size, torch.dtype] | None

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
INDEX_DTYPES = (torch.int64, torch.int32)


class DispatchedFunction:
    """Base of the public op Functions. Subclasses set ``op`` and ``check``."""

    op: ClassVar[str]
    #: Arguments a backend may overwrite with their own gradient when they
    #: require grad and are not leaves (never a parameter or a tensor the user
    #: made), so that the gradient needs no buffer of its own: this is what
    #: keeps cross-entropy within the memory of its logits and the gated
    #: activations within one activation. They are written during the op's
    #: backward, never before, and the backend then moves their version
    #: counter (:func:`mark_overwritten`), so another op that saved them for
    #: its own backward raises "modified by an inplace operation" instead of
    #: reading a gradient. Every other tensor argument is never written.
    overwrites: ClassVar[tuple[str, ...]] = ()
    #: What a backend's backward may read of the call: argument names, and
    #: output positions (ints). A backend may save tensors over these (views
    #: of X, the output S, ...) and tensors of its own (rstd, gradient
    #: buffers), nothing else. Under an operator (torch.compile) these are
    #: what the compiler keeps alive for the backward; see ops/_library.py.
    backward_reads: ClassVar[tuple[str | int, ...]] = ()
    #: Trailing ``check`` arguments the contract consumes itself (0.8.5's
    #: per-call implementation choice, say): backends never get them and they
    #: are not operator arguments. ``call_context(*values)`` turns their
    #: values into the context the call is routed in.
    contract_args: ClassVar[tuple[str, ...]] = ()
    #: Keywords this project accepted before a parameter took liger-kernel
    #: 0.8.5's name, as (old keyword, ``check``'s parameter) pairs, so that
    #: calls written against either name bind.
    keyword_aliases: ClassVar[tuple[tuple[str, str], ...]] = ()

    @staticmethod
    def call_context(*values: Any) -> contextlib.AbstractContextManager[Any]:
        """The context a call runs in, from its ``contract_args`` values."""
        return contextlib.nullcontext()

    @staticmethod
    def check(*args: Any, **kwargs: Any) -> None:
        """Raise ValueError/TypeError naming the offending argument."""

    @staticmethod
    def outputs(*args: Any) -> tuple[OutputSpec, ...]:
        """Shape and dtype of each output for these (checked, positional)
        arguments, in ``apply``'s order: what compile-time tracing of the op's
        operator (:mod:`liger_kernel.ops._library`) produces without running
        a kernel. Every backend must return exactly these."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            # torch's Function.apply does not fill in defaults skipped by a
            # keyword argument, so backends always get the full positional list.
            args = cls._bind(args, kwargs)
        cls.check(*args)
        context = contextlib.nullcontext()
        if cls.contract_args:
            backend_count = len(inspect.signature(cls.check).parameters) - len(cls.contract_args)
            args, consumed = args[:backend_count], args[backend_count:]
            context = cls.call_context(*consumed)
        with context:
            if _library.operators_in_use():
                return _library.call(cls, args)
            function = dispatcher.function(cls.op, args[0].device.type, cls.__name__)
            return function.apply(*args)

    @classmethod
    def _bind(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        signature = cls.__dict__.get("_signature")
        if signature is None:
            signature = inspect.signature(cls.check)
            cls._signature = signature
        for old, new in cls.keyword_aliases:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{cls.__name__}.apply: got both {new!r} and its older name {old!r}")
                kwargs = {(new if k == old else k): v for k, v in kwargs.items()}
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}.apply: {exc}") from None
        bound.apply_defaults()
        return bound.args

    @classmethod
    def route(cls, device_type: str) -> Any:
        """The backend Function this op uses on ``device_type``."""
        return dispatcher.function(cls.op, device_type, cls.__name__)


def overwritable(ctx: Any, tensor: torch.Tensor) -> bool:
    """Whether a backend Function may write a gradient over ``tensor`` under
    :attr:`DispatchedFunction.overwrites`: a backward will happen (``ctx`` is
    the Function's context), and the tensor requires grad and is neither a leaf
    nor a view of one (whose storage is the leaf's). Never inside a PyTorch
    operator (a ``KernelContext`` says so): operators do not write their inputs."""
    if not (
        getattr(ctx, "may_overwrite_inputs", True)
        and bool(ctx.next_functions)
        and tensor.requires_grad
        and tensor.grad_fn is not None
    ):
        return False
    base = tensor._base
    return base is None or base.grad_fn is not None


def mark_overwritten(*tensors: torch.Tensor | None) -> None:
    """Tell autograd that a kernel wrote over these tensors' storage (a write
    through a raw pointer leaves the version counter alone): call it after a
    backend writes a gradient over an argument under
    :attr:`DispatchedFunction.overwrites`."""
    for tensor in tensors:
        if tensor is not None:
            torch.autograd.graph.increment_version(tensor)


#: The kernel variants 0.8.5's ``*_mode`` arguments may name here: each backend
#: has one kernel per op, so only its own (the default) exists.
IMPLEMENTATION_MODES = (None, "default")


def check_implementation_choice(impl_name: str, impl: str | None, mode_name: str, mode: str | None) -> None:
    """0.8.5's per-call implementation choice (``jsd_impl``/``jsd_mode``,
    ``ce_impl``/``ce_mode``): ``impl`` a backend name or None, ``mode`` None or
    "default" (0.8.5's modes pick among kernel variants that do not exist here)."""
    if impl is not None and not isinstance(impl, str):
        raise TypeError(f"{impl_name} must be a backend name (str) or None, got {type(impl).__name__}")
    if mode not in IMPLEMENTATION_MODES:
        raise ValueError(
            f"{mode_name} must be None or 'default': each backend has one kernel for this op (got {mode!r}); "
            f"choose the backend with {impl_name} or LIGER_KERNEL_BACKEND_<OP>"
        )


def implementation_context(impl: str | None = None, mode: str | None = None) -> contextlib.AbstractContextManager[Any]:
    """Route the call to backend ``impl`` (None: the usual selection), by any
    name :func:`liger_kernel.use_backend` takes (the registry's names among
    them); ``mode`` is checked by :func:`check_implementation_choice`."""
    from liger_kernel.dispatch import use_backend

    return contextlib.nullcontext() if impl is None else use_backend(impl)


#: Set to 1 to check index values (targets, position ids) on every device, at
#: the cost of one host synchronization per call; see :func:`require_indices_in_range`.
CHECK_INDICES_ENV = "LIGER_KERNEL_CHECK_INDICES"


def require_indices_in_range(name: str, index: torch.Tensor, size: int, what: str, ignored: int | None = None) -> None:
    """Raise IndexError naming ``name`` when an entry of ``index`` (other than
    ``ignored``) lies outside [0, ``size``).

    Reading the values back costs a host synchronization on an accelerator,
    which an op called ~100 times per training step (or captured into a CUDA
    graph) cannot afford. So the check runs when ``index`` is on the CPU, and
    on other devices only with LIGER_KERNEL_CHECK_INDICES=1 (a debug mode).
    Without it every backend's kernel still never reads out of bounds: the
    row or position of a bad index comes out NaN, which a loss or an output
    makes visible."""
    if index.device.type != "cpu" and not flag(CHECK_INDICES_ENV):
        return
    if index.numel() == 0 or torch.compiler.is_compiling() or _is_fake(index):
        return
    valid = (index >= 0) & (index < size)
    if ignored is not None:
        valid |= index == ignored
    if not bool(valid.all()):
        bad = int(index[~valid].reshape(-1)[0])
        allowed = f"[0, {size})" + (f" or {ignored}" if ignored is not None else "")
        raise IndexError(f"{name} {bad} is out of bounds: {what} must be in {allowed}")


def _is_fake(tensor: torch.Tensor) -> bool:
    """A tensor without data (tracing by torch.compile or the meta device)."""
    return tensor.device.type == "meta" or type(tensor).__name__ == "FakeTensor"


def require_tensor(name: str, value: Any, dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in dtypes:
        allowed = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} has dtype {str(value.dtype).replace('torch.', '')}; expected one of {allowed}")


def require_shape(name: str, value: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(value.shape)}; expected {tuple(shape)} ({what})")


def require_ndim(name: str, value: torch.Tensor, ndims: tuple[int, ...]) -> None:
    if value.dim() not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must be {want}-D, got shape {tuple(value.shape)}")


def require_same_device(reference: str, tensors: dict[str, torch.Tensor | None]) -> None:
    device = tensors[reference].device  # type: ignore[union-attr]
    for name, value in tensors.items():
        if value is not None and value.device != device:
            raise ValueError(f"{name} is on {value.device} but {reference} is on {device}")


def require_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def require_real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    above_minimum: bool = False,
    maximum: float | None = None,
    optional: bool = False,
) -> None:
    """A scalar option that is a finite real number (an int or float, not a
    bool), at least ``minimum`` (strictly above it with ``above_minimum``) and
    at most ``maximum``; None is allowed when ``optional``. Checked here, once,
    so that a bad option is refused by name before any backend computes with it
    (a negative eps under a square root is a silent NaN, a string a TypeError
    from deep inside a kernel launch)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = "a real number or None" if optional else "a real number"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if above_minimum else value < minimum):
        bound = f"> {minimum}" if above_minimum else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")


def require_dtype_choice(name: str, value: Any, dtypes: tuple[torch.dtype, ...], *, optional: bool = True) -> None:
    """An option that names a dtype: one of ``dtypes`` (or None when ``optional``)."""
    if value is None and optional:
        return
    allowed = ", ".join(f"torch.{str(d).replace('torch.', '')}" for d in dtypes)
    if not isinstance(value, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype ({allowed}) or None, got {type(value).__name__} {value!r}")
    if value not in dtypes:
        raise ValueError(f"{name} must be one of {allowed} or None, got {value}")


def require_rows(name: str, value: torch.Tensor, what: str = "the hidden size") -> int:
    """``value`` as rows over its last dimension (``what`` it is): at least 1-D,
    with a non-empty last dimension; returns that width. Zero rows (an empty
    batch) are fine: the op returns empty outputs and zero gradients. An empty
    row is refused: a mean over no elements, as every norm takes, has no value."""
    if value.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension (the last is {what}), got a 0-D tensor")
    width = value.shape[-1]
    if width == 0:
        raise ValueError(
            f"{name} has shape {tuple(value.shape)}: {what} (its last dimension) is 0, "
            "and the op has no value over an empty row"
        )
    return width


def require_no_grad(name: str, value: torch.Tensor, differentiated: str, alternative: str | None = None) -> None:
    """An input the op gives no gradient: one that requires grad while autograd
    records is refused, rather than left silently without its gradient."""
    if value.requires_grad and torch.is_grad_enabled():
        instead = f" (or use {alternative} for a gradient to {name})" if alternative else ""
        raise ValueError(
            f"{name} requires grad, but this op differentiates {differentiated} only; pass {name}.detach(){instead}"
        )


def require_int(name: str, value: Any) -> None:
    """An option that is an int (not a bool, not a float that happens to be whole)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
