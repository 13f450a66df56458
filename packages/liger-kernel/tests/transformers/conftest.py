from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).parent))  # tiny_models, for spawned processes too


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: multi-process runs; deselect with -m 'not slow'")


@pytest.fixture(autouse=True)
def stock_transformers() -> Iterator[None]:
    """Every test starts and ends with unpatched Transformers classes."""
    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    yield
    revert_liger_kernel_patches()


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The causal-LM forward warns once per process; every test sees its own first time."""
    from liger_kernel.transformers.model import causal_lm

    monkeypatch.setattr(causal_lm, "_warned", set())
