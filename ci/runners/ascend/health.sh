#!/usr/bin/env bash
# Health check of an Ascend runner host: the driver sees NEEDED healthy 910B NPUs,
# the provisioned venv has torch-npu and triton-ascend (and no `triton`), and a
# small op runs on every NPU. Run it before registering the runner and from a
# timer; take the runner offline (sudo ./svc.sh stop) while it fails.
#
#   bash health.sh NEEDED        (default 1)
set -euo pipefail
NEEDED="${1:-1}"
PREFIX="${PREFIX:-/opt/liger-ci}"
CANN_ENV="${CANN_ENV:-/usr/local/Ascend/ascend-toolkit/set_env.sh}"
VENV="$PREFIX/ascend-venv"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Beside the repository copy, or in $PREFIX/bin where setup.sh installs it.
devices="$here/../../gates/devices.py"
[ -f "$devices" ] || devices="$here/devices.py"

"$VENV/bin/python" "$devices" ascend "$NEEDED" 910B
# shellcheck disable=SC1090
source "$CANN_ENV"
"$VENV/bin/python" "$here/check_env.py" --device
df -h "${RUNNER_WORK:-$HOME}" | awk 'NR == 2 && $5 + 0 > 90 { print "disk " $5 " full"; exit 1 }'
echo "runner host healthy"
