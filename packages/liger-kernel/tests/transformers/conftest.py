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
