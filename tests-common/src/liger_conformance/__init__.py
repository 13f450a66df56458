"""The shared conformance suite for liger-kernel backends.

Run it with ``pytest --pyargs liger_conformance --liger-backend NAME`` (the
options are described in :mod:`liger_conformance.plugin`). Backend authors'
own tests can use:

- :func:`skip_missing_device` to skip for a missing device in a way
  ``--liger-require-device`` turns into a failure;
- :func:`by_size` to pick small shapes for CPU and mocks, full ones on devices;
- the fixtures ``liger_backend``, ``liger_device``, ``liger_dtype``,
  ``liger_size`` and ``liger_settings`` of the plugin;
- :mod:`liger_conformance.mocks` and :mod:`liger_conformance.recording`.
"""

from __future__ import annotations

from typing import NoReturn, TypeVar

import pytest

#: every skip whose reason contains this is a skip for a missing device
MISSING_DEVICE = "missing device:"
SIZES = ("small", "full")

T = TypeVar("T")

_size = "small"


def _set_size(size: str) -> None:
    global _size
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    _size = size


def current_size() -> str:
    """The session's --liger-size (``"small"`` outside a pytest session)."""
    return _size


def by_size(small: T, full: T) -> T:
    """``small`` or ``full``, whichever --liger-size selects. Test modules call
    it at import, which pytest does after the options are parsed."""
    return full if _size == "full" else small


def skip_missing_device(reason: str) -> NoReturn:
    """Skip the current test because a device is missing; under
    ``--liger-require-device`` the skip is reported as a failure."""
    pytest.skip(f"{MISSING_DEVICE} {reason}")
