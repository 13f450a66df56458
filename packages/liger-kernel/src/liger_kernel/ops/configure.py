"""liger-kernel 0.8.5's optional native-runtime setup, kept as an API that does nothing.

In 0.8.5, :func:`configure` hands capacities and process groups to a separate
native package (liger-cute-kernels) whose kernels need collective setup
before use, and returns False with a warning when that package or the device
is not there, leaving the other kernels as they are. No kernel of this project
needs such setup: every op is ready when it is imported. So here
:func:`configure` checks its arguments, warns that nothing was configured, and
returns False, which is 0.8.5's answer on a machine without the native package.
The configuration records are the same frozen dataclasses.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["FusedLinearCrossEntropyConfig", "MoEConfig", "configure"]


def _require_positive_ints(record: Any) -> None:
    """Every field a positive int, but ``group``: a name or None."""
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name == "group":
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{type(record).__name__}.group must be a process-group name (str) or None")
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(record).__name__}.{f.name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class FusedLinearCrossEntropyConfig:
    """Capacity of the native fused linear (scaled) cross-entropy: the most
    tokens per call, the hidden size, this rank's share of the vocabulary;
    ``group`` names one of ``configure``'s process groups."""

    max_tokens: int
    hidden_size: int
    local_vocab_size: int
    group: str | None = None
    tiles_per_reduce: int = 1

    def __post_init__(self) -> None:
        _require_positive_ints(self)


@dataclass(frozen=True)
class MoEConfig:
    """Capacity and expert-parallel layout of the native MoE kernels."""

    max_tokens: int
    hidden_size: int
    num_experts: int
    top_k: int
    num_hosts: int
    gpus_per_host: int
    group: str | None = None
    max_inflight: int = 1

    def __post_init__(self) -> None:
        _require_positive_ints(self)


def configure(
    *,
    process_groups: Mapping[str, Any] | None = None,
    bootstrap_group: Any | None = None,
    device: Any | None = None,
    flsce: FusedLinearCrossEntropyConfig | None = None,
    moe: MoEConfig | None = None,
) -> bool:
    """Check the arguments, warn that no native runtime is configured (this
    project's kernels need none), and return False; nothing changes."""
    if process_groups is not None and not isinstance(process_groups, Mapping):
        raise TypeError(f"process_groups must map names to process groups, got {type(process_groups).__name__}")
    if flsce is not None and not isinstance(flsce, FusedLinearCrossEntropyConfig):
        raise TypeError(f"flsce must be a FusedLinearCrossEntropyConfig or None, got {type(flsce).__name__}")
    if moe is not None and not isinstance(moe, MoEConfig):
        raise TypeError(f"moe must be a MoEConfig or None, got {type(moe).__name__}")
    for record in (flsce, moe):
        if record is not None and record.group is not None and record.group not in (process_groups or {}):
            raise ValueError(f"{type(record).__name__}.group {record.group!r} is not a key of process_groups")
    warnings.warn(
        "liger_kernel.ops.configure: this build's kernels need no native runtime setup; nothing was configured",
        UserWarning,
        stacklevel=2,
    )
    return False
