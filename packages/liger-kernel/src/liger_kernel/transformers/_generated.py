"""Functions written out as source and compiled, as ``dataclasses`` writes
``__init__``: the generated patch functions of the family table and the
per-family ``lce_forward`` forwards, whose real parameters and defaults
``inspect.signature``, positional calls and frameworks reading
``__defaults__`` must see."""

from __future__ import annotations

import linecache
from collections.abc import Callable
from typing import Any


def compile_function(source: str, filename: str, name: str, scope: dict[str, Any]) -> Callable[..., Any]:
    """Compile ``source`` with ``scope`` as its globals and return its function
    ``name``; ``filename`` (``<...>``) goes into linecache, so that
    ``inspect.getsource`` and tracebacks show the generated lines."""
    exec(compile(source, filename, "exec"), scope)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return scope[name]
