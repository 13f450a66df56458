#!/usr/bin/env bash
# Device gate of the intel lanes: fails unless xpu-smi (or, without XPU Manager,
# sycl-ls) shows at least NEEDED Intel GPUs (named NAME_PREFIX*, when given). The
# first step of every intel hardware job; see ci/gates/devices.py.
# Usage: bash ci/gates/intel.sh NEEDED [NAME_PREFIX]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${LIGER_CI_PYTHON:-python3}" "$here/devices.py" intel "$@"
