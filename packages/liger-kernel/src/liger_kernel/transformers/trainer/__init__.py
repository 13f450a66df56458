"""Trainers of TRL whose loss is a Liger chunked loss (TRL needed: ``pip install trl``).

Importing this package needs no TRL; asking for a trainer without TRL raises
liger-kernel 0.8.5's ImportError, so ``try: from liger_kernel.transformers.trainer
import LigerORPOTrainer / except ImportError`` behaves as it did.
"""

from __future__ import annotations

import importlib
from typing import Any

_TRAINERS = {"LigerORPOTrainer": "liger_kernel.transformers.trainer.orpo_trainer"}


def __getattr__(name: str) -> Any:
    if name not in _TRAINERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(_TRAINERS[name])
    except ImportError as exc:
        raise ImportError(f"Please `pip install trl` to use {name}") from exc
    return getattr(module, name)


__all__ = list(_TRAINERS)
