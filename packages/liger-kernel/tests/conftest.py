from __future__ import annotations

import os

# Triton kernels in these tests run on CPU tensors under the interpreter, which
# @triton.jit picks when a kernel module is imported: set it before any is.
# LIGER_TEST_DEVICE=cuda (the transformers tests on a GPU) runs the real kernels.
if os.environ.get("LIGER_TEST_DEVICE", "cpu") == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")
if os.environ.get("TRITON_INTERPRET") == "1":
    try:
        from liger_conformance.mocks import prepare_interpreter
    except ImportError:  # an environment without tests-common runs the interpreter as it is
        pass
    else:
        prepare_interpreter()

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import liger_kernel
from liger_kernel.dispatch import dispatcher

FAKE = Path(__file__).parent / "fake_backends"


@pytest.fixture(autouse=True)
def clean_dispatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no routing environment variables and fresh caches."""
    for name in list(os.environ):
        if name.upper().startswith("LIGER_KERNEL_"):
            monkeypatch.delenv(name)
    liger_kernel.set_backend(None)
    liger_kernel.reset()
    yield
    liger_kernel.set_backend(None)
    liger_kernel.reset()


@pytest.fixture
def installed_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Install the fake backend distribution with the given entry points.

    ``installed_backends(fast="liger_fake_backends:FAST", ...)`` writes the
    package and a ``liger-fake-backends`` dist-info into a temporary site
    directory on sys.path, then resets the dispatcher so discovery sees it.
    Called again with ``distribution="liger-other"``, it adds a second
    distribution beside the first.
    """

    def install(distribution: str = "liger-fake-backends", **entry_points: str) -> None:
        site = tmp_path / "site"
        shutil.copytree(FAKE / "liger_fake_backends", site / "liger_fake_backends", dirs_exist_ok=True)
        info = site / f"{distribution.replace('-', '_')}-0.1.0.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n")
        lines = ["[liger_kernel.backends]"] + [f"{name} = {target}" for name, target in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        if str(site) not in sys.path:
            monkeypatch.syspath_prepend(str(site))
        for module in [m for m in sys.modules if m.startswith("liger_fake_backends")]:
            monkeypatch.delitem(sys.modules, module)
        dispatcher.reset()

    return install
