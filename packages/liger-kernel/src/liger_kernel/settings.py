"""The ``LIGER_KERNEL_*`` environment variables: the one list of them, and the
check that a name set in the environment is one liger-kernel reads.

A misspelt setting does nothing, which is why it is checked: every
``LIGER_KERNEL_*`` variable that is not in :data:`SETTINGS` (nor a
``LIGER_KERNEL_BACKEND_<OP>`` or ``LIGER_KERNEL_IMPL_<OP>`` of a known op) gets a warning naming the
closest known name, once, when the dispatcher resolves its first route
(``liger-kernel info`` shows the same warnings). A flag read by the dispatcher
whose value is neither on (1, true, yes, on) nor off (0, false, no, off, empty)
is warned about too.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping

PREFIX = "LIGER_KERNEL_"
#: ``LIGER_KERNEL_BACKEND_<OP>``, OP being an op name in upper case (``RMS_NORM``)
PER_OP_BACKEND = "LIGER_KERNEL_BACKEND_"
#: ``LIGER_KERNEL_IMPL_<OP>``: liger-kernel 0.8.5's name of the per-op variable, its alias
PER_OP_IMPL = "LIGER_KERNEL_IMPL_"
PER_OP_PREFIXES = (PER_OP_BACKEND, PER_OP_IMPL)

#: Every LIGER_KERNEL_* variable liger-kernel reads (besides the per-op
#: backend variables), with what it does. Read by the dispatcher
#: (liger_kernel.dispatch) unless said otherwise.
SETTINGS: dict[str, str] = {
    "LIGER_KERNEL_BACKEND": "the backend every op uses (a backend name)",
    "LIGER_KERNEL_IMPL": "alias of LIGER_KERNEL_BACKEND (LIGER_KERNEL_IMPL_<OP>: of LIGER_KERNEL_BACKEND_<OP>)",
    "LIGER_KERNEL_STRICT": "flag: falling back to the 'torch' backend is an error",
    "LIGER_KERNEL_LOG": "flag: print each op's route once",
    "LIGER_KERNEL_CHECK_INDICES": "flag: check target and position-id values on every device (one host sync per call)",
    "LIGER_KERNEL_OPERATORS": "flag: eager calls go through the torch.ops.liger operators (read by liger_kernel.ops at import)",
}
#: the settings that :func:`flag` parses
FLAGS = ("LIGER_KERNEL_STRICT", "LIGER_KERNEL_LOG", "LIGER_KERNEL_CHECK_INDICES", "LIGER_KERNEL_OPERATORS")

_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")


def per_op_variable(op: str, prefix: str = PER_OP_BACKEND) -> str:
    """The variable that picks the backend of one op: ``LIGER_KERNEL_BACKEND_RMS_NORM``
    (with ``prefix=PER_OP_IMPL``, its alias ``LIGER_KERNEL_IMPL_RMS_NORM``)."""
    return prefix + op.upper()


def flag(name: str) -> bool:
    """Whether the flag ``name`` is on in the environment."""
    return os.environ.get(name, "").strip().lower() in _ON


def in_force(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The LIGER_KERNEL_* variables set in ``environ`` (default: this process's)."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in sorted(environ.items()) if name.upper().startswith(PREFIX)}


def problems(ops: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """One message per LIGER_KERNEL_* variable in ``environ`` that does nothing
    (an unknown name, or a per-op variable of an op not in ``ops``) or whose
    flag value means neither on nor off."""
    ops = list(ops)
    per_op = [per_op_variable(op, prefix) for prefix in PER_OP_PREFIXES for op in ops]
    known = [*SETTINGS, *per_op]
    found = []
    for name, value in in_force(environ).items():
        if name in known:
            if name in FLAGS and value.strip().lower() not in _ON + _OFF:
                found.append(
                    f"{name}={value!r} is neither on ({', '.join(_ON)}) nor off ({', '.join(_OFF[1:])}); "
                    "it is treated as off"
                )
            continue
        upper = name.upper()
        if upper in known:
            found.append(f"{name}={value!r} is ignored: setting names are upper case; did you mean {upper}?")
            continue
        # match the part after the common prefix, which would make anything look close
        prefix = next((p for p in PER_OP_PREFIXES if upper.startswith(p)), None)
        if prefix is not None:
            op = name[len(prefix) :].lower()
            pool = [per_op_variable(known_op, prefix) for known_op in ops]
            what, listing = f"there is no op {op!r}", f"ops: {', '.join(ops)}"
        else:
            what, prefix, pool, listing = (
                "liger-kernel reads no such setting",
                PREFIX,
                known,
                f"settings: {', '.join(SETTINGS)}",
            )
        suffixes = {known_name[len(prefix) :]: known_name for known_name in pool}
        close = difflib.get_close_matches(upper[len(prefix) :], list(suffixes), n=1, cutoff=0.6)
        hint = f"did you mean {suffixes[close[0]]}?" if close else listing
        found.append(f"{name}={value!r} is ignored: {what}; {hint}")
    return found
