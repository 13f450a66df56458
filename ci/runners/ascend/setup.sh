#!/usr/bin/env bash
# Provision the Python environment of an Ascend runner host, as root, once per
# driver/CANN upgrade. Jobs never install torch, torch-npu or triton-ascend: they
# layer their editable installs over this venv (ci/lanes.toml, `venv.layer`).
#
#   sudo TORCH_NPU_VERSION=2.x.y bash ci/runners/ascend/setup.sh
#
# Variables: TORCH_NPU_VERSION (required: the torch-npu release made for the CANN
# installed here), TORCH_VERSION (default: the torch that torch-npu release pins),
# TRITON_ASCEND_VERSION (default 3.2.0), PYTHON (default python3, >= 3.10),
# PREFIX (default /opt/liger-ci), CANN_ENV (default /usr/local/Ascend/ascend-toolkit/set_env.sh).
set -euo pipefail

: "${TORCH_NPU_VERSION:?set TORCH_NPU_VERSION to the torch-npu release made for the CANN release on this host}"
TORCH_VERSION="${TORCH_VERSION:-$(echo "$TORCH_NPU_VERSION" | cut -d. -f1-3)}"
TRITON_ASCEND_VERSION="${TRITON_ASCEND_VERSION:-3.2.0}"
PYTHON="${PYTHON:-python3}"
PREFIX="${PREFIX:-/opt/liger-ci}"
CANN_ENV="${CANN_ENV:-/usr/local/Ascend/ascend-toolkit/set_env.sh}"
VENV="$PREFIX/ascend-venv"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

[ -f "$CANN_ENV" ] || { echo "CANN is not installed ($CANN_ENV missing): install driver, firmware, then CANN first" >&2; exit 1; }
command -v npu-smi >/dev/null || { echo "npu-smi not found: install the Ascend driver first" >&2; exit 1; }
# shellcheck disable=SC1090
source "$CANN_ENV"

echo "== fresh venv $VENV"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --no-cache-dir)
"${pip[@]}" --upgrade pip

# 1. torch from the CPU index: on x86_64 the default torch wheel requires NVIDIA's
#    `triton`, which would take the `triton` module that triton-ascend needs.
echo "== torch $TORCH_VERSION (CPU build)"
"${pip[@]}" "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
# 2. torch-npu, which pins that exact torch.
echo "== torch-npu $TORCH_NPU_VERSION"
"${pip[@]}" "torch-npu==$TORCH_NPU_VERSION"
# 3. triton-ascend, last, into an environment that has no `triton` distribution.
if "$VENV/bin/python" -m pip show triton >/dev/null 2>&1; then
  echo "== removing the NVIDIA triton wheel that something pulled in"
  "$VENV/bin/python" -m pip uninstall -y triton
fi
echo "== triton-ascend $TRITON_ASCEND_VERSION"
"${pip[@]}" "triton-ascend==$TRITON_ASCEND_VERSION"
# 4. the test runner, and tomli for ci/lanes.py on Python 3.10.
"${pip[@]}" "pytest>=8" "pytest-xdist>=3.5" "tomli>=2; python_version < '3.11'"

# Jobs run as an unprivileged user: they can read this venv but never change it,
# so no job can install `triton` over triton-ascend.
chmod -R go-w "$VENV"
install -d "$PREFIX/bin"
install -m 0755 "$here/health.sh" "$here/cleanup.sh" "$here/check_env.py" "$PREFIX/bin/"
install -m 0755 "$here/../../gates/devices.py" "$PREFIX/bin/"

echo "== checking"
"$VENV/bin/python" "$PREFIX/bin/check_env.py" --device
echo "provisioned $VENV"
