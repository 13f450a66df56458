"""The portable kernels compile for sm_90 (H100) without spilling, at the launch
configurations the NVIDIA profile gives them; see compile_sm90.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("liger_kernel_cuda")
pytest.importorskip("liger_conformance.mocks.cuda")
triton = pytest.importorskip("triton")
NVIDIA_TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"

KERNELS = {
    "_rms_norm_forward_kernel",
    "_rms_norm_backward_kernel",
    "_layer_norm_forward_kernel",
    "_layer_norm_backward_kernel",
    "_sum_partials_kernel",
    "_silu_mul_forward_kernel",
    "_silu_mul_backward_kernel",
    "_gelu_mul_forward_kernel",
    "_gelu_mul_backward_kernel",
    "_rope_kernel",
}


@pytest.mark.skipif(
    not (NVIDIA_TOOLS / "ptxas").exists() or not (NVIDIA_TOOLS / "cuobjdump").exists(),
    reason="this triton wheel has no NVIDIA ptxas/cuobjdump",
)
def test_every_launch_compiles_for_sm90_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    script = Path(__file__).with_name("compile_sm90.py")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    launches = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert {launch["kernel"] for launch in launches} == KERNELS
    for launch in launches:
        what = f"{launch['kernel']} {launch['constants']}"
        assert launch["local"] == 0, f"{what} spills registers to local memory"
        assert launch["shared"] <= launch["onchip_bytes"], f"{what} needs {launch['shared']} bytes of shared memory"
