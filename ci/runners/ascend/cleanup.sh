#!/usr/bin/env bash
# Runs before and after every job on an Ascend runner, as its job hooks
# (ACTIONS_RUNNER_HOOK_JOB_STARTED / _COMPLETED in the runner's .env; register.sh
# sets them). Leaves no state from one job to the next: no stray process holding
# an NPU, no lane venv, no workspace files, no kernel caches from a previous job.
set -uo pipefail

# Processes a previous job left behind in this runner's workspace (a hung pytest
# worker keeps its NPU busy). Matched by working directory, not by name, so that
# runners sharing the host and user keep their own jobs.
if [ -n "${GITHUB_WORKSPACE:-}" ]; then
  for pid in $(pgrep -u "$(id -u)"); do
    [ "$pid" = "$$" ] && continue
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
    case "$cwd" in "$GITHUB_WORKSPACE" | "$GITHUB_WORKSPACE"/*) kill -KILL "$pid" 2>/dev/null || true ;; esac
  done
fi
[ -n "${RUNNER_TEMP:-}" ] && rm -rf "${RUNNER_TEMP:?}/liger-ci"
if [ -n "${GITHUB_WORKSPACE:-}" ] && [ -d "$GITHUB_WORKSPACE" ]; then
  find "$GITHUB_WORKSPACE" -mindepth 1 -delete
fi
# Compiled kernels and Ascend logs of the last job.
rm -rf "${HOME:?}/.triton/cache" "${HOME:?}/ascend/log"
exit 0
