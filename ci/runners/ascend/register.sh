#!/usr/bin/env bash
# Register this host as a GitHub Actions runner for one Ascend lane of ci/lanes.toml,
# as the unprivileged runner user, from the unpacked actions-runner folder.
#
#   RUNNER_TOKEN=... bash /path/to/repo/ci/runners/ascend/register.sh OWNER/REPO LANE [VISIBLE_NPUS]
#
# LANE is ascend-a2-1card or ascend-a2-8card; the labels come from the lane data.
# VISIBLE_NPUS (for example 3) pins a 1-card runner to one NPU, so that eight
# 1-card runners can share one 8-card host. RUNNER_TOKEN is the short-lived
# registration token from the repository's Settings > Actions > Runners page:
# pass it in the environment, never store it.
set -euo pipefail
REPO="${1:?usage: register.sh OWNER/REPO LANE [VISIBLE_NPUS]}"
LANE="${2:?usage: register.sh OWNER/REPO LANE [VISIBLE_NPUS]}"
VISIBLE="${3:-}"
: "${RUNNER_TOKEN:?set RUNNER_TOKEN to a registration token}"
PREFIX="${PREFIX:-/opt/liger-ci}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -x ./config.sh ] || { echo "run this from the actions-runner folder" >&2; exit 1; }
[ "$(id -u)" != 0 ] || { echo "register as the runner user, not root" >&2; exit 1; }

labels="$("$PREFIX/ascend-venv/bin/python" "$here/../../lanes.py" labels "$LANE")"
needed="$(echo "$labels" | tr ',' '\n' | sed -n 's/^npu-//p')"
ASCEND_RT_VISIBLE_DEVICES="$VISIBLE" bash "$PREFIX/bin/health.sh" "${needed:-1}"

./config.sh --unattended --url "https://github.com/$REPO" --token "$RUNNER_TOKEN" \
  --name "$(hostname)-$LANE${VISIBLE:+-npu$VISIBLE}" --labels "$labels" --replace
{
  echo "LIGER_CI_PYTHON=$PREFIX/ascend-venv/bin/python"
  echo "ACTIONS_RUNNER_HOOK_JOB_STARTED=$PREFIX/bin/cleanup.sh"
  echo "ACTIONS_RUNNER_HOOK_JOB_COMPLETED=$PREFIX/bin/cleanup.sh"
  [ -z "$VISIBLE" ] || echo "ASCEND_RT_VISIBLE_DEVICES=$VISIBLE"
} >> .env
echo "registered with labels self-hosted,linux,arm64,$labels; start it with: sudo ./svc.sh install \$USER && sudo ./svc.sh start"
