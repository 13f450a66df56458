"""Smoke test of the benchmark tool (tools/bench) on its CPU path.

Tiny shapes, torch eager and this project's ops (served by the ``torch``
backend on the CPU); what is checked is that the tool runs every section and
writes well-formed CSV, JSON and PNG files, and that the peer really runs in a
separate process whose ``liger_kernel`` is the peer's. Timings are never checked.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TOOLS = REPO / "tools"
if not (TOOLS / "bench" / "cli.py").exists():
    pytest.skip("tools/bench is not in this tree", allow_module_level=True)
sys.path.insert(0, str(TOOLS))

from bench import cli, peer  # noqa: E402
from bench.cases import DEFAULT_OPS  # noqa: E402
from bench.report import OP_FIELDS, TRAIN_FIELDS  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def positive(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--ops",
        "--impls",
        "--dtype",
        "--scale",
        "--sweep",
        "--out",
        "--peer-python",
        "--train",
        "fetch-peer",
    ):
        assert option in text


def test_unknown_op_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--ops", "rms_norm,nonsense", "--device", "cpu"])
    assert exit_info.value.code == 2
    assert "nonsense" in capsys.readouterr().err


def test_cpu_op_table_writes_well_formed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--scale", "0.005", "--impls", "torch,liger", "--quick", "--out", str(out)]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out

    payload = json.loads((out / "results.json").read_text())
    records = payload["ops"]
    assert [(r["op"], r["impl"]) for r in records] == [(op, i) for i in ("torch", "liger") for op in DEFAULT_OPS]
    for r in records:
        assert set(OP_FIELDS) <= set(r)
        assert r["error"] is None, f"{r['op']} / {r['impl']}: {r['error']}"
        assert all(positive(r[k]) for k in ("fwd_ms", "bwd_ms", "full_ms")), r
        assert r["mem_mib"] is None  # no memory counter on the CPU
        # on the CPU this project's ops are served by the pure-PyTorch backend
        assert r["backend"] == ("eager" if r["impl"] == "torch" else "torch")
    assert payload["meta"]["targets_apply"] is False
    assert [row["op"] for row in payload["table"]] == list(DEFAULT_OPS)
    assert {row["status"] for row in payload["table"]} == {"n/a"}

    fields, rows = read_csv(out / "ops.csv")
    assert fields == list(OP_FIELDS)
    assert len(rows) == len(records)
    assert all(float(row["full_ms"]) > 0 for row in rows)

    for png in ("ops_time.png", "ops_memory.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    for op in DEFAULT_OPS:
        assert op in stdout
    assert "torch ms" in stdout and "ours ms" in stdout


def test_cpu_sweep_and_dispatch_overhead(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--scale", "0.005", "--impls", "torch,liger", "--quick", "--out", str(out)]
    assert cli.main([*argv, "--sweep", "rms_norm", "--sweep-tokens", "8,16", "--dispatch-overhead"]) == 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["ops"] == []  # --sweep alone skips the op table

    sweep = payload["sweep"]
    assert sorted((r["impl"], r["tokens"]) for r in sweep) == [("liger", 8), ("liger", 16), ("torch", 8), ("torch", 16)]
    assert all(r["error"] is None and positive(r["full_ms"]) for r in sweep)
    fields, rows = read_csv(out / "sweep.csv")
    assert fields == list(OP_FIELDS) and len(rows) == 4
    assert (out / "sweep_rms_norm.png").read_bytes()[:8] == PNG_MAGIC

    overhead = payload["dispatch_overhead"]
    assert positive(overhead["dispatched_us"]) and positive(overhead["direct_us"])
    assert overhead["backend_function"].startswith("liger_kernel.backends.torch.")


def test_cpu_training_step_patched_with_this_project(tmp_path: Path) -> None:
    # The training step runs in a subprocess (patching is process-wide); the
    # stock model is the same code without the patch, so only ours runs here.
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--scale", "0.005", "--impls", "liger", "--quick", "--no-plots", "--out", str(out)]
    assert cli.main([*argv, "--train"]) == 0
    (record,) = json.loads((out / "results.json").read_text())["train"]
    assert record["error"] is None, record["error"]
    assert record["impl"] == "liger" and record["params"] > 0 and positive(record["tokens_per_s"])
    assert math.isfinite(record["loss_first"]) and math.isfinite(record["loss_last"])
    fields, rows = read_csv(out / "train.csv")
    assert fields == list(TRAIN_FIELDS) and len(rows) == 1


def write_fake_peer(site: Path) -> None:
    """A stand-in for the liger-kernel 0.8.5 wheel: just enough for swiglu."""
    package = site / "liger_kernel"
    (package / "ops").mkdir(parents=True)
    (package / "__init__.py").write_text('"""stand-in peer"""\n')
    (package / "ops" / "__init__.py").write_text("")
    (package / "ops" / "swiglu.py").write_text(
        "import torch\n\n\n"
        "class LigerSiLUMulFunction:\n"
        "    @staticmethod\n"
        "    def apply(a, b):\n"
        "        return torch.nn.functional.silu(a) * b\n"
    )
    info = site / "liger_kernel-0.8.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: liger-kernel\nVersion: 0.8.5\n")


def test_peer_runs_in_a_subprocess_with_its_own_liger_kernel(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_fake_peer(site)
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--scale", "0.005", "--quick", "--no-plots", "--out", str(out)]
    assert cli.main([*argv, "--impls", "peer", "--ops", "swiglu,rms_norm", "--peer-site", str(site)]) == 0
    payload = json.loads((out / "results.json").read_text())
    assert Path(payload["env"]["peer"]["liger_kernel_file"]).is_relative_to(site)
    assert payload["env"]["peer"]["liger_kernel_version"] == "0.8.5"
    swiglu, rms_norm = payload["ops"]
    assert swiglu["error"] is None and positive(swiglu["full_ms"])
    assert swiglu["backend"] == "liger-kernel 0.8.5"
    # the stand-in has no rms_norm: recorded as an error, not a crash, and not
    # answered by this project's liger_kernel
    assert "liger_kernel.ops.rms_norm" in rms_norm["error"]
    assert "liger_kernel" not in sys.modules or Path(sys.modules["liger_kernel"].__file__).is_relative_to(REPO)


def test_peer_worker_refuses_to_measure_without_the_peer(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    job = {"kind": "ops", "impl": "peer", "ops": ["swiglu"], "device": "cpu", "dtype": "bf16", "scale": 0.005}
    with pytest.raises(peer.PeerError, match="peer isolation failed"):
        peer.run_in_subprocess({**job, "quick": True}, site=empty)


def test_verdict_names_a_host_bound_miss_and_treats_near_ties_as_equal() -> None:
    from bench.report import SAME_TIME, verdict

    # rms_norm's targets: 0.25 ms, 66 MiB
    host_bound = {"full_ms": 0.42, "mem_mib": 65.1, "host_ms": 0.70, "graph_ms": 0.108}
    peer_rec = {"full_ms": 0.33, "mem_mib": 66.1, "host_ms": 0.50, "graph_ms": 0.131}
    assert verdict("rms_norm", host_bound, peer_rec, True) == (
        "FAIL (time, slower than peer) host-bound; device 0.108 ms, peer 0.131"
    )
    device_bound = {**host_bound, "host_ms": 0.05, "graph_ms": 0.40, "full_ms": 0.40}
    assert verdict("rms_norm", device_bound, None, True) == "FAIL (time)"
    tie = {"full_ms": 0.20 * (1 + SAME_TIME / 2), "mem_mib": 60.0}
    assert verdict("rms_norm", tie, {"full_ms": 0.20, "mem_mib": 66.0}, True) == "PASS"
    slower = {"full_ms": 0.20 * (1 + 2 * SAME_TIME), "mem_mib": 60.0}
    assert verdict("rms_norm", slower, {"full_ms": 0.20, "mem_mib": 66.0}, True) == "FAIL (slower than peer)"
    assert verdict("rms_norm", {"full_ms": 0.2, "mem_mib": 70.0}, None, True) == "FAIL (memory)"
    assert verdict("rms_norm", host_bound, peer_rec, False) == "n/a"
