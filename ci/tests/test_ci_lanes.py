"""The lane data, its path gating, and the lane runner."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lanes
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

MATRIX = lanes.load()
CPU_LANES = {
    "lint", "unit", "transformers", "conformance-torch", "mock-cuda", "mock-rocm", "mock-ascend", "packaging",
    "workflows", "compile-kernels",
}  # fmt: skip
HARDWARE_LANES = {"gpu-nvidia", "gpu-amd", "gpu-amd-rocm7", "ascend-a2-1card", "ascend-a2-8card"}
GPU_LANES = {"gpu-nvidia", "gpu-amd", "gpu-amd-rocm7"}
ASCEND_LANES = {"ascend-a2-1card", "ascend-a2-8card"}
CORE_LANES = {"lint", "unit", "conformance-torch", "packaging"}


def _selected(changed: list[str] | None) -> set[str]:
    return {lane.name for lane in lanes.select(MATRIX, changed)}


def test_the_matrix_has_every_lane() -> None:
    assert {lane.name for lane in MATRIX.cpu_lanes} >= CPU_LANES
    assert {lane.name for lane in MATRIX.hardware_lanes} >= HARDWARE_LANES


def test_cpu_lanes_name_hatch_environments_that_exist() -> None:
    hatch = tomllib.loads((lanes.ROOT / "hatch.toml").read_text())
    for lane in MATRIX.cpu_lanes:
        assert lane.env in hatch["envs"], f"{lane.name}: no hatch env {lane.env!r}"


def test_hardware_lanes_cannot_skip_or_fall_back() -> None:
    for lane in MATRIX.hardware_lanes:
        assert lane.env_vars.get("LIGER_KERNEL_STRICT") == "1", lane.name
        assert all("--liger-require-device" in command for command in lane.run if "pytest" in command), lane.name
        assert lane.gate_command.startswith(f"bash ci/gates/{lanes.HARDWARE_GATES[lane.hardware]}.sh {lane.devices}")
    assert MATRIX.lane("ascend-a2-8card").devices == 8
    assert "npu-8" in MATRIX.lane("ascend-a2-8card").runs_on


def test_ascend_lanes_never_let_pip_resolve_triton() -> None:
    for name in ASCEND_LANES:
        for command in MATRIX.lane(name).install:
            if command.startswith("pip install"):
                assert "--no-deps" in command and "triton" not in command.split(), command


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("packages/liger-ascend/**", "packages/liger-ascend/src/liger_kernel_ascend/ops/rope.py", True),
        ("packages/liger-ascend/**", "packages/liger-ascend-extra/x.py", False),
        ("packages/liger-ascend/**", "packages/liger-ascend", False),
        ("**", "README.md", True),
        ("**", "a/b/c.py", True),
        ("ci/*.py", "ci/lanes.py", True),
        ("ci/*.py", "ci/tests/test_ci_lanes.py", False),
        ("**/conftest.py", "conftest.py", True),
        ("**/conftest.py", "packages/liger-kernel/tests/conftest.py", True),
        ("**/conftest.py", "packages/liger-kernel/tests/conftest.pyc", False),
        ("ci/gates/nvidia.sh", "ci/gates/nvidia.sh", True),
        ("ci/gates/nvidia.sh", "ci/gates/nvidia_sh", False),
        ("docs/?.md", "docs/a.md", True),
        ("docs/?.md", "docs/ab.md", False),
        ("hatch.toml", "packages/hatch.toml", False),
    ],
)
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert bool(lanes.glob_to_regex(pattern).match(path)) is expected


def test_an_ascend_only_change_runs_core_and_ascend_lanes_but_no_gpu_lane() -> None:
    selected = _selected(
        ["packages/liger-ascend/src/liger_kernel_ascend/ops/rms_norm.py", "packages/liger-ascend/README.md"]
    )
    assert selected >= CORE_LANES | ASCEND_LANES | {"mock-ascend"}
    assert not selected & (GPU_LANES | {"mock-cuda", "mock-rocm", "compile-kernels"})


def test_a_cuda_only_change_runs_no_ascend_lane() -> None:
    selected = _selected(["packages/liger-cuda/src/liger_kernel_cuda/__init__.py"])
    assert selected >= CORE_LANES | {"gpu-nvidia", "mock-cuda"}
    assert not selected & (ASCEND_LANES | {"gpu-amd", "gpu-amd-rocm7", "mock-ascend", "mock-rocm"})


@pytest.mark.parametrize(
    "path",
    [
        "packages/liger-kernel/src/liger_kernel/dispatch.py",
        "tests-common/src/liger_conformance/plugin.py",
        "ci/lanes.toml",
    ],
)
def test_core_and_shared_changes_run_everything(path: str) -> None:
    assert _selected([path, "docs/architecture.md"]) == {lane.name for lane in MATRIX.lanes}


def test_a_docs_change_runs_only_lint() -> None:
    assert _selected(["docs/architecture.md"]) == {"lint"}


def test_a_full_run_runs_everything() -> None:
    assert _selected(None) == {lane.name for lane in MATRIX.lanes}


def test_select_command_on_schedule_and_unknown_base(tmp_path: Path, monkeypatch, capsys) -> None:
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert lanes.main(["select", "--event", "schedule", "--kind", "hardware", "--github-output"]) == 0
    assert json.loads(output.read_text().removeprefix("lanes=")) == [lane.name for lane in MATRIX.hardware_lanes]
    # A new branch has no "before" commit: nothing to diff against, so everything runs.
    assert lanes.main(["select", "--event", "push", "--base", "0" * 40, "--head", "abc"]) == 0
    assert set(capsys.readouterr().out.split()) == {lane.name for lane in MATRIX.lanes}
    assert lanes.main(["select", "--kind", "cpu", "--files", "packages/liger-rocm/pyproject.toml"]) == 0
    # a distribution's metadata is what an upgrade from liger-kernel 0.8.x installs
    assert set(capsys.readouterr().out.split()) == CORE_LANES | {"mock-rocm", "compile-kernels", "upgrade"}


def test_tests_groups_keep_only_directories_with_tests(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "test_x.py").write_text("")
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "b" / "deep" / "thing_test.py").write_text("")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "conftest.py").write_text("")
    assert lanes.expand_tests("pytest {tests: a c b missing} -q", tmp_path) == "pytest a b -q"
    assert lanes.expand_tests("pytest {tests: c missing}", tmp_path) is None
    assert lanes.expand_tests("ruff check .", tmp_path) == "ruff check ."


def _write_lanes(tmp_path: Path, body: str) -> Path:
    settings = (
        '[settings]\npython = "3.11"\nhatch = "1"\nhardware-label = "l"\nnightly = "0 0 * * *"\n'
        'default-branch = "main"\nrun-everything = []\n'
    )
    path = tmp_path / "lanes.toml"
    path.write_text(settings + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[lane]]\nname = "a"\nruns-on = ["x"]\nrun = ["true"]\npaths = ["**"]\n', "names the hatch environment"),
        ('[[lane]]\nname = "A b"\nenv = "t"\nruns-on = ["x"]\nrun = ["true"]\npaths = ["**"]\n', "name must match"),
        (
            '[[lane]]\nname = "a"\nhardware = "nvidia"\ndevices = 1\nruns-on = ["ubuntu-latest"]\n'
            'run = ["true"]\npaths = ["**"]\n',
            "self-hosted",
        ),
        (
            '[[lane]]\nname = "a"\nhardware = "tpu"\ndevices = 1\nruns-on = ["self-hosted"]\nrun = ["t"]\npaths = ["*"]\n',
            "hardware must be",
        ),
        ('[[lane]]\nname = "a"\nenv = "t"\nruns-on = ["x"]\nrun = ["true"]\npaths = ["**"]\nmystery = 1\n', "unknown"),
        ('[[lane]]\nname = "a"\nenv = "t"\nruns-on = ["x"]\nrun = ["t"]\npaths = ["*"]\n' * 2, "duplicate"),
    ],
)
def test_malformed_lanes_are_rejected(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(lanes.LaneError, match=message):
        lanes.load(_write_lanes(tmp_path, body))


def test_run_all_runs_lanes_in_order_and_fails_on_any_failure(tmp_path: Path, monkeypatch, capsys) -> None:
    body = "".join(
        f'[[lane]]\nname = "{name}"\nenv = "here"\nruns-on = ["ubuntu-latest"]\nrun = {json.dumps(run)}\npaths = ["**"]\n'
        for name, run in [
            ("first", ["echo '3 passed, 1 skipped in 0.10s'"]),
            ("broken", ["echo '1 failed, 2 passed in 0.20s'; exit 1", "echo never-runs"]),
            ("last", ["echo '==== 4 passed, 2 warnings in 0.30s (0:00:00) ===='"]),
        ]
    )
    matrix = lanes.load(_write_lanes(tmp_path, body))
    monkeypatch.setenv("HATCH_ENV_ACTIVE", "here")  # run in this process's environment, not through hatch
    assert lanes.run_all(matrix, only=[], skip=[]) == 1
    out = capsys.readouterr().out
    assert out.index("lane first") < out.index("lane broken") < out.index("lane last")
    assert "never-runs" not in out
    assert "lanes run 3, failed 1 (broken)" in out
    assert out.rstrip().splitlines()[-1] == "tests: 9 passed, 1 failed, 1 skipped"

    assert lanes.run_all(matrix, only=[], skip=["broken"]) == 0
    out = capsys.readouterr().out
    assert "lane broken" not in out and "lanes not run here: broken" in out
    assert lanes.run_all(matrix, only=["last"], skip=[]) == 0
    assert "lane first" not in capsys.readouterr().out


def test_hatch_arguments_pass_through(monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(lanes, "run_all", lambda matrix, only, skip, dry_run: seen.update(only=only, skip=skip) or 0)
    assert lanes.main(["all", "--", "--skip", "lint", "--skip", "unit"]) == 0
    assert seen == {"only": [], "skip": ["lint", "unit"]}


def test_unknown_and_hardware_lanes_are_refused_by_all(capsys) -> None:
    assert lanes.main(["all", "--only", "gpu-nvidia"]) == 2
    assert lanes.main(["run", "no-such-lane"]) == 2
    assert "no lane named 'no-such-lane'" in capsys.readouterr().err


def test_hardware_lane_dry_run_shows_the_ci_steps(capsys) -> None:
    assert lanes.main(["run", "ascend-a2-8card", "--dry-run"]) == 0
    out = capsys.readouterr().out
    gate, install, test = out.index("gate: bash ci/gates/ascend.sh 8 910B"), out.index("install:"), out.index("test:")
    assert gate < install < test
    assert "from /opt/liger-ci/ascend-venv/bin/python" in out
