"""With liger-cuda and liger-rocm both installed, each build of torch picks its vendor."""

from __future__ import annotations

import pytest

from liger_kernel.dispatch import dispatcher
from liger_kernel.ops import OPS

mocks = pytest.importorskip("liger_conformance.mocks", reason="liger-conformance provides the mocks")


def routes() -> set[str]:
    return {dispatcher.select(op, "cuda").backend for op in OPS}


def test_cuda_build_picks_cuda():
    from liger_conformance.mocks import cuda

    with cuda.active():
        assert dispatcher.probe("rocm")[0] is False
        assert routes() == {"cuda"}


def test_hip_build_picks_rocm():
    from liger_conformance.mocks import rocm

    with rocm.active():
        assert dispatcher.probe("cuda")[0] is False
        assert routes() == {"rocm"}
