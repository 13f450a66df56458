"""The compile-ascend lane: capture, set up the Ascend toolchain, compile.

1. capture every kernel configuration liger-ascend launches under the NPU
   mock (``capture.py``, in this, the test environment);
2. create ``build/ascend-toolchain`` (once): a virtual environment holding the
   triton-ascend and ascendnpu-ir wheels. triton-ascend installs its own
   ``triton`` package, so it cannot share the test environment; a ``.pth``
   file appends the test environment's packages (torch, liger) after its own,
   so ``triton`` there is triton-ascend's;
3. compile each configuration there (``compile.py``) and print the UB table:
   compiler's bytes beside the planner's estimate. The lane fails on a
   compile error, a kernel above the planner's budget, a configuration with
   no estimate (a kernel the calibration lacks), an estimate more than 5% off
   the compiler, or a UB calibration that no longer matches the kernels.

    python tools/ascend_compile/run.py

With ``--calibrate`` step 3 is preceded by refitting the planner's UB costs
to the compiler (``calibrate.py``, which rewrites
``packages/liger-ascend/src/liger_kernel_ascend/ub_calibration.json``) and
capturing again with the new costs; run it after changing a kernel or how it
is launched, and commit the table.

    python tools/ascend_compile/run.py --calibrate
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
TOOLCHAIN = BUILD / "ascend-toolchain"
#: the releases the kernels are compiled against (liger_kernel_ascend.safety.DOCUMENTED_STACKS)
WHEELS = ["triton-ascend==3.2.0", "ascendnpu-ir==1.2.0", "pybind11==3.1.0"]


def toolchain_python() -> Path:
    python = TOOLCHAIN / "bin" / "python"
    marker = TOOLCHAIN / "installed.txt"
    if not python.exists() or not marker.exists() or marker.read_text() != "\n".join(WHEELS):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOLCHAIN)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--only-binary=:all:", *WHEELS], check=True)
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        test_env = sysconfig.get_paths()["purelib"]
        Path(purelib, "liger-test-env.pth").write_text(f"import site; site.addsitedir({test_env!r})\n")
        marker.write_text("\n".join(WHEELS))
    return python


def main(calibrate: bool) -> int:
    BUILD.mkdir(exist_ok=True)
    configs = BUILD / "ascend-kernels.json"

    def capture() -> None:
        subprocess.run([sys.executable, str(Path(__file__).with_name("capture.py")), str(configs)], check=True)

    capture()
    python = toolchain_python()
    bin_dir = subprocess.run(
        [
            str(python),
            "-c",
            "import ascendnpuir, os; print(os.path.join(os.path.dirname(ascendnpuir.__file__), 'bin'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("TRITON_INTERPRET", None)
    if calibrate:
        subprocess.run([str(python), str(Path(__file__).with_name("calibrate.py")), str(configs)], env=env, check=True)
        # the planner now sizes tiles by the new costs: the launches (and their estimates) change with them
        capture()
    return subprocess.run([str(python), str(Path(__file__).with_name("compile.py")), str(configs)], env=env).returncode


if __name__ == "__main__":
    site.ENABLE_USER_SITE = False
    if sys.argv[1:] not in ([], ["--calibrate"]):
        sys.exit(f"usage: {sys.argv[0]} [--calibrate]")
    sys.exit(main(calibrate=sys.argv[1:] == ["--calibrate"]))
