#!/usr/bin/env bash
# Device gate of the nvidia lanes: fails unless nvidia-smi shows at least NEEDED
# healthy devices (named NAME_PREFIX*, when given). The first step of every
# nvidia hardware job; see ci/gates/devices.py for what counts as healthy.
# Usage: bash ci/gates/nvidia.sh NEEDED [NAME_PREFIX]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${LIGER_CI_PYTHON:-python3}" "$here/devices.py" nvidia "$@"
