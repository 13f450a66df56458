"""Run the CI lanes of ci/lanes.toml locally, exactly as the CI jobs run them.

    python ci/lanes.py list                       the lanes, their hardware and triggers
    python ci/lanes.py run NAME [--phase P]       one lane (hardware lanes: gate, install, test)
    python ci/lanes.py all [--skip L] [--only L]  every CPU lane in order, with a summary
    python ci/lanes.py select --files F...        which lanes a change triggers
    python ci/lanes.py select --event E --base SHA --head SHA [--github-output]
    python ci/lanes.py labels NAME                the custom runner labels of a lane (runner setup)

`hatch run ci:lane NAME` is `run`; `hatch run test:all` is `all` (what .ci/run calls).
A CPU lane runs its commands in its hatch environment: directly when that environment
is the active one, else through `hatch run ENV:...`. A hardware lane runs its device
gate, installs its packages into its own virtual environment, then runs its tests.
Only the standard library is used, so that the lint and hardware environments can run it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LANES_FILE = ROOT / "ci" / "lanes.toml"
HARDWARE_GATES = {"nvidia": "nvidia", "amd": "amd", "ascend-a2": "ascend", "intel": "intel"}
PHASES = ("gate", "install", "test")
FULL_RUN_EVENTS = {"schedule", "workflow_dispatch"}
# Labels every self-hosted runner gets by itself: the rest are given at registration.
RUNNER_OWN_LABELS = frozenset({"self-hosted", "linux", "x64", "arm64", "arm", "macos", "windows"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TESTS_GROUP = re.compile(r"\{tests:([^}]*)\}")
_PYTEST_SUMMARY = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+) in [\d.]+s(?: \([^)]*\))?\s*=*$")


class LaneError(Exception):
    """A malformed lane file or a request for a lane that does not exist."""


@dataclass(frozen=True)
class Lane:
    name: str
    hardware: str
    runs_on: tuple[str, ...]
    run: tuple[str, ...]
    paths: tuple[str, ...]
    env: str | None = None
    devices: int = 0
    device_name: str | None = None
    venv_layer: str | None = None
    setup: str | None = None
    install: tuple[str, ...] = ()
    env_vars: dict[str, str] = field(default_factory=dict)
    timeout: int = 30

    @property
    def is_cpu(self) -> bool:
        return self.hardware == "none"

    @property
    def gate_command(self) -> str | None:
        """The device gate's command line, or None for a CPU lane."""
        if self.is_cpu:
            return None
        words = ["bash", f"ci/gates/{HARDWARE_GATES[self.hardware]}.sh", str(self.devices)]
        if self.device_name:
            words.append(self.device_name)
        return shlex.join(words)


@dataclass(frozen=True)
class Matrix:
    settings: dict
    lanes: tuple[Lane, ...]

    def lane(self, name: str) -> Lane:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise LaneError(f"no lane named {name!r}; lanes: {', '.join(lane.name for lane in self.lanes)}")

    @property
    def cpu_lanes(self) -> tuple[Lane, ...]:
        return tuple(lane for lane in self.lanes if lane.is_cpu)

    @property
    def hardware_lanes(self) -> tuple[Lane, ...]:
        return tuple(lane for lane in self.lanes if not lane.is_cpu)


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise LaneError(f"{where} must be a string or a list of strings")
    return tuple(value)


def _lane_from_table(table: dict, index: int) -> Lane:
    known = {
        "name", "hardware", "devices", "device-name", "runs-on", "env", "venv", "setup",
        "install", "run", "env-vars", "paths", "timeout",
    }  # fmt: skip
    name = table.get("name")
    where = f"lane #{index + 1} ({name or 'unnamed'})"
    if not isinstance(name, str) or not _NAME.match(name):
        raise LaneError(f"{where}: name must match {_NAME.pattern}")
    unknown = set(table) - known
    if unknown:
        raise LaneError(f"{where}: unknown keys {sorted(unknown)}")
    hardware = table.get("hardware", "none")
    if hardware != "none" and hardware not in HARDWARE_GATES:
        raise LaneError(f"{where}: hardware must be 'none' or one of {sorted(HARDWARE_GATES)}")
    for key in ("runs-on", "run", "paths"):
        if not table.get(key):
            raise LaneError(f"{where}: '{key}' is required")
    lane = Lane(
        name=name,
        hardware=hardware,
        runs_on=_strings(table["runs-on"], f"{where}: runs-on"),
        run=_strings(table["run"], f"{where}: run"),
        paths=_strings(table["paths"], f"{where}: paths"),
        env=table.get("env"),
        devices=int(table.get("devices", 0)),
        device_name=table.get("device-name"),
        venv_layer=(table.get("venv") or {}).get("layer"),
        setup=table.get("setup"),
        install=_strings(table.get("install", []), f"{where}: install"),
        env_vars={str(key): str(value) for key, value in table.get("env-vars", {}).items()},
        timeout=int(table.get("timeout", 30)),
    )
    if lane.is_cpu:
        if not lane.env:
            raise LaneError(f"{where}: a CPU lane names the hatch environment it runs in ('env')")
        if lane.install or "venv" in table:
            raise LaneError(f"{where}: a CPU lane installs through its hatch environment, not 'install'/'venv'")
    else:
        if lane.devices < 1:
            raise LaneError(f"{where}: a hardware lane needs 'devices' >= 1")
        if lane.env:
            raise LaneError(f"{where}: a hardware lane installs into its own venv, not a hatch env")
        if "self-hosted" not in lane.runs_on:
            raise LaneError(f"{where}: a hardware lane runs on self-hosted runners")
    return lane


def load(path: Path = LANES_FILE) -> Matrix:
    """Read and validate the lane file."""
    data = tomllib.loads(Path(path).read_text())
    settings = data.get("settings", {})
    for key in ("python", "hatch", "hardware-label", "nightly", "default-branch", "run-everything"):
        if key not in settings:
            raise LaneError(f"[settings] lacks '{key}'")
    lanes = tuple(_lane_from_table(table, index) for index, table in enumerate(data.get("lane", [])))
    names = [lane.name for lane in lanes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LaneError(f"duplicate lane names: {duplicates}")
    if not lanes:
        raise LaneError("no [[lane]] tables")
    return Matrix(settings=settings, lanes=lanes)


# ------------------------------------------------------------------ path gating


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob with GitHub's filter semantics.

    `*` matches within one path segment, `**` across segments, `?` one
    character other than `/`; `**/` may also match nothing, so `**/x.py`
    matches `x.py` at the root.
    """
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, patterns: tuple[str, ...] | list[str]) -> bool:
    return any(glob_to_regex(pattern).match(path) for pattern in patterns)


def select(matrix: Matrix, changed: list[str] | None) -> list[Lane]:
    """The lanes a change triggers; `changed=None` means a full run."""
    if changed is None or any(matches(path, matrix.settings["run-everything"]) for path in changed):
        return list(matrix.lanes)
    return [lane for lane in matrix.lanes if any(matches(path, lane.paths) for path in changed)]


def changed_files(base: str, head: str) -> list[str] | None:
    """Files changed between base and head, or None when git cannot tell (then run everything)."""
    if not base or not head or set(base) == {"0"}:
        return None
    result = subprocess.run(
        ["git", "diff", "--name-only", f"{base}...{head}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        print(f"git diff {base}...{head} failed, running every lane:\n{result.stderr}", file=sys.stderr)
        return None
    return [line for line in result.stdout.splitlines() if line]


# ----------------------------------------------------------------- running


def expand_tests(command: str, root: Path = ROOT) -> str | None:
    """Replace each `{tests: DIR ...}` group by the DIRs holding test files; None if one names none."""

    def has_tests(directory: str) -> bool:
        base = root / directory
        return base.is_dir() and any(
            path.name.startswith("test_") or path.stem.endswith("_test") for path in base.rglob("*.py")
        )

    skipped = False

    def replace(match: re.Match[str]) -> str:
        nonlocal skipped
        found = [directory for directory in match.group(1).split() if has_tests(directory)]
        skipped = skipped or not found
        return " ".join(found)

    expanded = _TESTS_GROUP.sub(replace, command)
    return None if skipped else expanded


def _hatch() -> str:
    found = shutil.which("hatch")
    if found:
        return found
    uv = os.environ.get("HATCH_UV")  # set by `hatch run`; hatch lives beside its uv
    if uv and (Path(uv).parent / "hatch").exists():
        return str(Path(uv).parent / "hatch")
    raise LaneError("hatch is not on PATH: install it (pip install hatch) to run lanes in hatch environments")


def venv_dir(lane: Lane) -> Path:
    """A hardware lane's own venv: in the runner's per-job temp folder on CI, else under build/."""
    base = Path(os.environ["RUNNER_TEMP"]) / "liger-ci" if os.environ.get("RUNNER_TEMP") else ROOT / "build" / "ci"
    return base / f"{lane.name}-venv"


@dataclass
class Outcome:
    passed: bool
    tests: dict[str, int] = field(default_factory=dict)
    note: str = ""


def _stream(argv: list[str], env: dict[str, str], outcome: Outcome) -> int:
    """Run argv from the repository root, echoing its output and counting pytest's results."""
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        summary = _PYTEST_SUMMARY.match(line.strip())
        if summary:
            for count, word in re.findall(r"(\d+) ([a-z]+)", summary.group(1)):
                key = {"error": "failed", "errors": "failed", "xfailed": "skipped", "xpassed": "passed"}.get(word, word)
                if key in ("passed", "failed", "skipped"):
                    outcome.tests[key] = outcome.tests.get(key, 0) + int(count)
    return process.wait()


def _shell(lane: Lane, command: str) -> str:
    lines = ["set -eo pipefail"]
    if lane.setup:
        lines.append(lane.setup)
    lines.append(command)
    return "\n".join(lines)


def _command_argv(lane: Lane, command: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, **lane.env_vars}
    script = _shell(lane, command)
    if lane.is_cpu:
        if os.environ.get("HATCH_ENV_ACTIVE") == lane.env:
            return ["bash", "-c", script], env
        return [_hatch(), "run", f"{lane.env}:bash", "-c", script], env
    venv = venv_dir(lane)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONHOME", None)
    return ["bash", "-c", script], env


def prepare_venv(lane: Lane, dry_run: bool = False) -> Path:
    """Create the hardware lane's venv afresh, layered over its provisioned venv when it names one."""
    venv = venv_dir(lane)
    base_python = f"{lane.venv_layer}/bin/python" if lane.venv_layer else sys.executable
    print(f"[{lane.name}] install: fresh venv {venv} from {base_python}", flush=True)
    if dry_run:
        return venv
    if lane.venv_layer and not Path(base_python).exists():
        raise LaneError(f"{lane.name}: the provisioned venv {lane.venv_layer} is missing (see ci/runners/)")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    if lane.venv_layer:
        # A .pth file appends the provisioned site-packages after the venv's own: the job's
        # editable installs win, and torch-npu / triton-ascend stay exactly as provisioned.
        query = "import site, sys; print(*site.getsitepackages(), sep=chr(10))"
        layer_sites = subprocess.run([base_python, "-c", query], check=True, capture_output=True, text=True).stdout
        own_site = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import site; print(site.getsitepackages()[0])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        (Path(own_site) / "_liger_ci_layer.pth").write_text(layer_sites)
    return venv


def lane_commands(lane: Lane, phase: str) -> list[str]:
    """The shell commands of one phase of a lane, as the CI job runs them."""
    if phase == "gate":
        return [lane.gate_command] if lane.gate_command else []
    if phase == "install":
        return list(lane.install)
    return list(lane.run)


def run_lane(lane: Lane, phases: tuple[str, ...] = PHASES, dry_run: bool = False) -> Outcome:
    """Run the given phases of a lane, stopping at the first failing command."""
    outcome = Outcome(passed=True)
    for phase in phases:
        if phase == "install" and not lane.is_cpu:
            prepare_venv(lane, dry_run)
        for raw in lane_commands(lane, phase):
            command = expand_tests(raw)
            if command is None:
                note = f"skipped `{raw}`: no test files there yet"
                print(f"[{lane.name}] {note}", flush=True)
                outcome.note = note
                continue
            print(f"[{lane.name}] {phase}: {command}", flush=True)
            if dry_run:
                continue
            argv, env = _command_argv(lane, command)
            code = _stream(argv, env, outcome)
            if code != 0:
                print(f"[{lane.name}] {phase} failed (exit {code}): {command}", flush=True)
                outcome.passed = False
                outcome.note = f"exit {code} from `{command if len(command) < 60 else command[:57] + '...'}`"
                return outcome
    return outcome


def run_all(matrix: Matrix, only: list[str], skip: list[str], dry_run: bool = False) -> int:
    """Run the CPU lanes in order, print a summary table, return the exit status."""
    for name in [*only, *skip]:
        if not matrix.lane(name).is_cpu:
            raise LaneError(f"{name} is a hardware lane: run it alone with `python ci/lanes.py run {name}`")
    lanes = [lane for lane in matrix.cpu_lanes if (not only or lane.name in only) and lane.name not in skip]
    results: list[tuple[Lane, Outcome, float]] = []
    for lane in lanes:
        print(f"\n{'=' * 20} lane {lane.name} ({lane.env} env) {'=' * 20}", flush=True)
        start = time.monotonic()
        outcome = run_lane(lane, dry_run=dry_run)
        results.append((lane, outcome, time.monotonic() - start))

    print(f"\n{'=' * 20} summary {'=' * 20}")
    print(f"{'lane':<20} {'result':<8} {'time':>8}  tests")
    totals: dict[str, int] = {}
    for lane, outcome, seconds in results:
        for key, count in outcome.tests.items():
            totals[key] = totals.get(key, 0) + count
        counts = ", ".join(f"{count} {key}" for key, count in sorted(outcome.tests.items()))
        result = "ok" if outcome.passed else "FAILED"
        detail = "; ".join(part for part in (counts, outcome.note) if part)
        print(f"{lane.name:<20} {result:<8} {seconds:>7.1f}s  {detail}")
    failed = [lane.name for lane, outcome, _ in results if not outcome.passed]
    skipped_lanes = [lane.name for lane in matrix.cpu_lanes if lane not in lanes]
    print(f"lanes run {len(results)}, failed {len(failed)}" + (f" ({', '.join(failed)})" if failed else ""))
    if skipped_lanes:
        print(f"lanes not run here: {', '.join(skipped_lanes)}")
    if totals:
        extra = f", {totals['skipped']} skipped" if totals.get("skipped") else ""
        print(f"tests: {totals.get('passed', 0)} passed, {totals.get('failed', 0)} failed{extra}")
    return 1 if failed else 0


# ------------------------------------------------------------------ command line


def _list(matrix: Matrix) -> None:
    print(f"{'lane':<18} {'hardware':<10} {'where':<48} paths")
    for lane in matrix.lanes:
        where = f"hatch env {lane.env}" if lane.is_cpu else f"{lane.devices}x on {','.join(lane.runs_on)}"
        print(f"{lane.name:<18} {lane.hardware:<10} {where:<48} {' '.join(lane.paths)}")


def _select_command(matrix: Matrix, args: argparse.Namespace) -> int:
    if args.files is not None:
        changed = args.files
    elif args.event in FULL_RUN_EVENTS:
        changed = None
    else:
        changed = changed_files(args.base or "", args.head or "")
    lanes = select(matrix, changed)
    if args.kind != "all":
        lanes = [lane for lane in lanes if lane.is_cpu == (args.kind == "cpu")]
    names = [lane.name for lane in lanes]
    print("full run" if changed is None else f"{len(changed)} changed files", file=sys.stderr)
    print("\n".join(names))
    if args.github_output:
        with open(os.environ["GITHUB_OUTPUT"], "a") as output:
            output.write(f"lanes={json.dumps(names)}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    # `hatch run test:all -- --skip X` hands the `--` through; it is not a separator here.
    argv = [arg for arg in (sys.argv[1:] if argv is None else argv) if arg != "--"]
    parser = argparse.ArgumentParser(prog="ci/lanes.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the lanes")
    labels = sub.add_parser("labels", help="the runner labels a lane needs beyond the runner's own")
    labels.add_argument("name")
    run = sub.add_parser("run", help="run one lane as its CI job does")
    run.add_argument("name")
    run.add_argument("--phase", choices=PHASES, action="append", help="only these phases (hardware lanes)")
    run.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    every = sub.add_parser("all", help="run every CPU lane in order, with a summary")
    every.add_argument("--only", action="append", default=[], metavar="LANE")
    every.add_argument("--skip", action="append", default=[], metavar="LANE")
    every.add_argument("--dry-run", action="store_true")
    pick = sub.add_parser("select", help="which lanes a change triggers")
    pick.add_argument("--files", nargs="*", help="changed files (instead of asking git)")
    pick.add_argument("--event", default="", help="GitHub event name; schedule and workflow_dispatch run everything")
    pick.add_argument("--base", default="")
    pick.add_argument("--head", default="")
    pick.add_argument("--kind", choices=("cpu", "hardware", "all"), default="all")
    pick.add_argument("--github-output", action="store_true", help="append lanes=<json list> to $GITHUB_OUTPUT")
    args = parser.parse_args(argv)

    try:
        matrix = load()
        if args.command == "list":
            _list(matrix)
            return 0
        if args.command == "labels":
            print(",".join(label for label in matrix.lane(args.name).runs_on if label not in RUNNER_OWN_LABELS))
            return 0
        if args.command == "select":
            return _select_command(matrix, args)
        if args.command == "all":
            return run_all(matrix, args.only, args.skip, dry_run=args.dry_run)
        lane = matrix.lane(args.name)
        phases = tuple(args.phase) if args.phase else PHASES
        start = time.monotonic()
        outcome = run_lane(lane, phases, dry_run=args.dry_run)
        print(f"[{lane.name}] {'ok' if outcome.passed else 'FAILED'} in {time.monotonic() - start:.1f}s", flush=True)
        return 0 if outcome.passed else 1
    except LaneError as error:
        print(f"ci/lanes.py: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
