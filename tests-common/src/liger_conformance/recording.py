"""Recording mock kernels: a backend whose ops log their calls.

They prove routing without any kernel. Inside :func:`recording_backend` the
dispatcher sees one more installed backend (or one replaced, when the name is
taken, e.g. ``"cuda"``); each of its ops appends a :class:`Call` to the
:class:`Recorder` and then computes the result with the ``torch`` backend, so
outputs and gradients stay real::

    with cuda.active(), recording_backend("cuda") as recorder:
        LigerRopeFunction.apply(q, k, cos, sin)
    assert recorder.ops() == ["rope"]

The backend is added with ``dispatcher.register`` and removed on exit; it
shadows an installed backend of the same name while the block runs, and
survives ``liger_kernel.reset()`` inside it.
"""

from __future__ import annotations

import contextlib
import itertools
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from liger_kernel.backend import API_VERSION, Backend, load_attr
from liger_kernel.dispatch import TORCH, dispatcher

#: ``load_attr`` target of the recording ops: ACTIVE.<slot>.<op>
ACTIVE = types.SimpleNamespace()
DISTRIBUTION = "liger-conformance"
_slots = itertools.count()


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Recorder:
    """The calls the recording backend ``backend`` received, in order."""

    backend: str
    calls: list[Call] = field(default_factory=list)

    def ops(self) -> list[str]:
        return [call.op for call in self.calls]

    def clear(self) -> None:
        self.calls.clear()


class RecordingOp:
    """Stands where a backend's autograd Function would: the dispatcher calls ``apply``."""

    def __init__(self, recorder: Recorder, op: str, delegate: str) -> None:
        self.recorder = recorder
        self.op = op
        self.delegate = delegate

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        self.recorder.calls.append(Call(self.op, args, kwargs))
        return load_attr(self.delegate).apply(*args, **kwargs)


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


@contextlib.contextmanager
def recording_backend(
    name: str = "cuda",
    device_types: Sequence[str] = ("cuda",),
    ops: Sequence[str] | None = None,
    priority: int = 1000,
    probe: Callable[[], tuple[bool, str]] | None = None,
    delegates: dict[str, str] | None = None,
    conformance: str | None = None,
) -> Iterator[Recorder]:
    """Install backend ``name`` serving ``device_types`` whose ``ops`` (default:
    every op of the ``torch`` backend) record their calls; yields the Recorder.

    ``priority`` beats the vendor backends (100) so automatic selection picks
    it; ``probe`` defaults to one that always passes. After recording, an op
    runs the ``torch`` backend's Function, or ``delegates[op]`` (a
    ``"module:attr"`` Function) where given. ``conformance`` is the backend's
    ``"module:attr"`` Conformance declarations.
    """
    installed = dispatcher.installed()
    torch_ops = installed[TORCH].backend.implementations
    ops = list(torch_ops) if ops is None else list(ops)
    unknown = [op for op in ops if op not in torch_ops]
    if unknown:
        raise ValueError(f"unknown ops {unknown}; the torch backend has {sorted(torch_ops)}")
    recorder = Recorder(name)
    slot = f"backend{next(_slots)}"
    delegates = {**torch_ops, **(delegates or {})}
    setattr(ACTIVE, slot, types.SimpleNamespace(**{op: RecordingOp(recorder, op, delegates[op]) for op in ops}))
    backend = Backend(
        name=name,
        device_types=tuple(device_types),
        priority=priority,
        api_version=API_VERSION,
        probe=probe or (lambda: (True, "recording mock backend of liger-conformance")),
        functions={op: f"{__name__}:ACTIVE.{slot}.{op}" for op in ops},
        install_hint="(a recording mock: see liger_conformance.recording)",
        conformance=conformance,
    )
    unregister = dispatcher.register(backend, DISTRIBUTION, _version())
    try:
        yield recorder
    finally:
        unregister()
        delattr(ACTIVE, slot)
