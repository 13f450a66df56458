"""Command line of the benchmark tool (``python -m tools.bench --help``)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import peer, report, train
from .cases import CASES, DEFAULT_OPS
from .measure import MODES, SPLIT
from .run_ops import DTYPES, describe, run_ops
from .worker import IMPLS, PEER_VERSION, Progress

DEFAULT_OUT = peer.REPO_ROOT / "bench-results"
SWEEP_TOKENS = (1024, 2048, 4096, 8192, 16384)
QUICK_SWEEP_TOKENS = (2048, 8192)

EPILOG = f"""\
sections: the op table runs by default; --sweep, --train and --dispatch-overhead
run only themselves unless --ops is also given; --all runs every section.

peer (liger-kernel {PEER_VERSION}): never imported in this process. On a machine
with internet, `python -m tools.bench fetch-peer` downloads the wheel into
.peer/wheels (git-ignored); the tool then installs it into .peer/site with
`pip install --no-deps --target` and measures it in a subprocess whose
liger_kernel is checked to come from there. --peer-python runs the peer worker
with another interpreter (a separate virtual environment) instead.

examples:
  python -m tools.bench                              # all ops, torch / ours / peer, bf16
  python -m tools.bench --ops rms_norm,rope --impls torch,liger
  python -m tools.bench --sweep cross_entropy        # time and memory vs tokens
  python -m tools.bench --train                      # 1B Llama training step
  python -m tools.bench --train --train-model qwen3_moe   # 735M Qwen3-MoE training step
  python -m tools.bench --train --train-model qwen2_5_vl  # small Qwen2.5-VL step (one image per row)
  python -m tools.bench --device cpu --scale 0.01 --impls torch,liger --quick
"""


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _choices(allowed: tuple[str, ...]):
    def parse(value: str) -> list[str]:
        items = _csv(value)
        bad = [v for v in items if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(allowed)}")
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Benchmark liger-kernel ops (forward, backward, full; time and peak memory) against "
        f"torch eager and liger-kernel {PEER_VERSION}, and a Llama training step.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ops", type=_choices(tuple(CASES)), help=f"comma-separated ops (default: {','.join(DEFAULT_OPS)})")
    p.add_argument(
        "--impls",
        type=_choices(IMPLS),
        help="comma-separated from torch (eager), liger (this project), peer (liger-kernel "
        f"{PEER_VERSION}); default: torch,liger plus peer when its wheel or --peer-python is there",
    )
    p.add_argument("--dtype", choices=tuple(DTYPES), default="bf16")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="default: %(default)s")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="shrink the TARGETS.md token and width sizes by this factor (CPU smoke runs)",
    )
    p.add_argument(
        "--sweep",
        nargs="?",
        const="cross_entropy",
        choices=tuple(CASES),
        metavar="OP",
        help="sweep the token count (batch x seq) for OP (default op: cross_entropy)",
    )
    p.add_argument("--sweep-tokens", type=lambda v: [int(x) for x in _csv(v)], help="token counts of the sweep")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: bench-results/, git-ignored)")
    p.add_argument("--peer-python", help="interpreter of a separate environment with liger-kernel 0.8.5 installed")
    p.add_argument("--peer-site", type=Path, default=peer.SITE_DIR, help="folder the peer wheel is installed into")
    p.add_argument("--train", action="store_true", help="end-to-end training step of a ~1B Llama")
    p.add_argument(
        "--train-model", choices=train.MODELS, default="llama", help="model of the training step (default: %(default)s)"
    )
    p.add_argument("--train-batch", type=int, default=2)
    p.add_argument("--train-seq", type=int, help="sequence length (default 2048, scaled by --scale)")
    p.add_argument("--train-steps", type=int, default=10)
    p.add_argument("--train-warmup", type=int, default=3)
    p.add_argument("--train-optim", choices=("adamw", "sgd"), default="adamw")
    p.add_argument(
        "--train-compile",
        action="store_true",
        help="also run each impl's training step under torch.compile (fullgraph for torch and ours)",
    )
    p.add_argument("--dispatch-overhead", action="store_true", help="µs per op call added by the dispatcher")
    p.add_argument("--all", action="store_true", help="op table, sweep, training step and dispatch overhead")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and sweep points")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def fetch_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.bench fetch-peer",
        description=f"Download the liger-kernel {PEER_VERSION} wheel into .peer/wheels (needs the package index).",
    )
    p.add_argument("--dest", type=Path, default=peer.WHEELS_DIR)
    args = p.parse_args(argv)
    wheel = peer.fetch(args.dest)
    print(f"peer wheel: {wheel}")
    return 0


def peer_available(args: argparse.Namespace) -> bool:
    if args.peer_python:
        return True
    if (args.peer_site / "liger_kernel" / "__init__.py").exists():
        return True
    return any(peer.WHEELS_DIR.glob(f"liger_kernel-{PEER_VERSION}-*.whl"))


def failed(job: dict[str, Any], error: str) -> list[dict[str, Any]]:
    """Error records for every measurement of a job that could not run."""
    if job["kind"] == "train":
        return [{"impl": job["impl"], "batch": job.get("batch"), "seq": job.get("seq"), "error": error}]
    return [
        {"op": op, "impl": job["impl"], "tokens": t, "dtype": job["dtype"], "device": job["device"], "error": error}
        for op in job["ops"]
        for t in job.get("tokens") or [None]
    ]


class Runner:
    """Runs jobs: torch and ours in this process, the peer, every training step
    (which patches Transformers process-wide) and every op table on a GPU
    (whose CUDA graph captures may spoil a process) in a subprocess."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env: dict[str, Any] = {}
        self._peer_site: Path | None = None

    def peer_site(self) -> Path | None:
        if self._peer_site is None and not self.args.peer_python:
            self._peer_site = peer.ensure_site(self.args.peer_site)
        return self._peer_site

    def run(self, job: dict[str, Any], progress: Progress) -> list[dict[str, Any]]:
        impl = job["impl"]
        try:
            # a failed graph capture (SPLIT) spoils the process for what follows
            if impl != "peer" and job["kind"] == "ops" and SPLIT not in job["modes"]:
                if impl not in self.env:
                    self.env[impl] = describe(impl, torch.device(job["device"]))
                return run_ops(job, progress)
            site = self.peer_site() if impl == "peer" else None
            job = {
                **job,
                "progress_start": progress.done,
                "progress_total": progress.total,
                "progress_elapsed": progress.elapsed(),
            }
            python = self.args.peer_python if impl == "peer" else None
            result = peer.run_in_subprocess(job, python=python, site=site)
            self.env.setdefault(impl, result["env"])
            progress.done += len(result["results"]) if job["kind"] == "ops" else 1
            return result["results"]
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            progress.note(f"{impl}: {message}")
            records = failed(job, message)
            progress.done = min(progress.total, progress.done + len(records))
            return records


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fetch-peer"]:
        return fetch_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.all:
        args.sweep = args.sweep or "cross_entropy"
        args.train = args.dispatch_overhead = True
    run_table = args.all or args.ops is not None or not (args.sweep or args.train or args.dispatch_overhead)
    ops = args.ops or list(DEFAULT_OPS)
    impls = args.impls or ["torch", "liger"] + (["peer"] if peer_available(args) else [])
    device = torch.device(args.device)
    sweep_tokens = args.sweep_tokens or [
        max(2, round(t * args.scale)) for t in (QUICK_SWEEP_TOKENS if args.quick else SWEEP_TOKENS)
    ]
    base = {"device": args.device, "dtype": args.dtype, "scale": args.scale, "quick": args.quick}
    targets_apply = args.scale == 1.0 and device.type == "cuda" and args.dtype == "bf16"

    total = (len(ops) * len(impls) if run_table else 0) + (len(sweep_tokens) * len(impls) if args.sweep else 0)
    total += len(impls) if args.train else 0
    progress = Progress(total)
    runner = Runner(args)
    payload: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": argv,
            "device": args.device,
            "dtype": args.dtype,
            "scale": args.scale,
            "impls": impls,
            "quick": args.quick,
            "targets_apply": targets_apply,
        },
        "env": runner.env,
        "ops": [],
        "table": [],
        "sweep": [],
        "train": [],
        "dispatch_overhead": None,
    }
    run = _Run(args, runner, progress, payload, base, args.out, impls, sweep_tokens)
    run.out.mkdir(parents=True, exist_ok=True)
    if run_table:
        _op_tables(run, ops, targets_apply, device)
    if args.sweep:
        _sweep(run)
    if args.train:
        _train(run)
    if args.dispatch_overhead:
        _dispatch_overhead(run, device)
    _summary(run)
    return 0


@dataclass
class _Run:
    """One invocation's state: what each section adds its results, text and files to."""

    args: argparse.Namespace
    runner: Runner
    progress: Progress
    payload: dict[str, Any]
    base: dict[str, Any]
    out: Path
    impls: list[str]
    sweep_tokens: list[int]
    sections: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def _op_tables(run: _Run, ops: list[str], targets_apply: bool, device: torch.device) -> None:
    for impl in run.impls:
        run.payload["ops"] += run.runner.run(
            {**run.base, "kind": "ops", "impl": impl, "ops": ops, "modes": [*MODES, SPLIT]}, run.progress
        )
    text, run.payload["table"] = report.op_table(run.payload["ops"], ops, run.impls, targets_apply)
    run.sections.append(
        f"ops: full step (forward + backward), {run.args.dtype} on {run.args.device}, scale {run.args.scale:g}\n{text}"
    )
    if device.type == "cuda":
        run.sections.append(
            "ops: host and device time of the full step\n" + report.split_table(run.payload["ops"], ops, run.impls)
        )
    report.write_csv(run.out / "ops.csv", run.payload["ops"], report.OP_FIELDS)
    run.written.append(run.out / "ops.csv")
    if not run.args.no_plots:
        report.plot_op_times(run.out / "ops_time.png", run.payload["ops"], ops, run.impls, targets_apply)
        report.plot_op_memory(run.out / "ops_memory.png", run.payload["ops"], ops, run.impls)
        run.written += [run.out / "ops_time.png", run.out / "ops_memory.png"]


def _sweep(run: _Run) -> None:
    for impl in run.impls:
        job = {
            **run.base,
            "kind": "ops",
            "impl": impl,
            "ops": [run.args.sweep],
            "tokens": run.sweep_tokens,
            "modes": ["full"],
        }
        run.payload["sweep"] += run.runner.run(job, run.progress)
    run.sections.append(f"sweep: {run.args.sweep}, full step\n" + report.sweep_table(run.payload["sweep"]))
    report.write_csv(run.out / "sweep.csv", run.payload["sweep"], report.OP_FIELDS)
    run.written.append(run.out / "sweep.csv")
    if not run.args.no_plots:
        report.plot_sweep(run.out / f"sweep_{run.args.sweep}.png", run.payload["sweep"], run.args.sweep, run.impls)
        run.written.append(run.out / f"sweep_{run.args.sweep}.png")


def _train(run: _Run) -> None:
    for impl, compiled in [(i, False) for i in run.impls] + [(i, True) for i in run.impls if run.args.train_compile]:
        job = {
            **run.base,
            "kind": "train",
            "compile": compiled,
            "impl": impl,
            "model": run.args.train_model,
            "batch": run.args.train_batch,
            "seq": run.args.train_seq,
            "steps": run.args.train_steps,
            "warmup": run.args.train_warmup,
            "optimizer": run.args.train_optim,
        }
        run.payload["train"] += run.runner.run(job, run.progress)
    label = train.LABELS[run.args.train_model]
    run.sections.append(f"training step: {label}, random init\n" + report.train_table(run.payload["train"]))
    report.write_csv(run.out / "train.csv", run.payload["train"], report.TRAIN_FIELDS)
    run.written.append(run.out / "train.csv")
    if not run.args.no_plots and any(not r.get("error") for r in run.payload["train"]):
        report.plot_train(run.out / "train.png", run.payload["train"])
        run.written.append(run.out / "train.png")


def _dispatch_overhead(run: _Run, device: torch.device) -> None:
    from .overhead import dispatch_overhead

    try:
        o = run.payload["dispatch_overhead"] = dispatch_overhead(device, calls=500 if run.args.quick else 2000)
        run.sections.append(
            f"dispatch overhead on {o['device']} (LigerSiLUMulFunction, tiny tensors, best of "
            f"{o['repeats']} x {o['calls']} calls):\n"
            f"  through liger_kernel.ops: {o['dispatched_us']:.2f} us/call\n"
            f"  {o['backend_function']} directly: {o['direct_us']:.2f} us/call\n"
            f"  dispatch layer adds: {o['overhead_us']:.2f} us/call"
            + (
                f"\n  through the liger::swiglu operator (compiled graphs; eager after use_operators()): "
                f"{o['operator_us']:.2f} us/call"
                if o.get("operator_us") is not None
                else ""
            )
        )
    except Exception as exc:
        run.payload["dispatch_overhead"] = {"error": f"{type(exc).__name__}: {exc}"}
        run.sections.append(f"dispatch overhead: ERR {type(exc).__name__}: {exc}")


def _summary(run: _Run) -> None:
    report.write_json(run.out / "results.json", run.payload)
    run.written.insert(0, run.out / "results.json")
    header = ", ".join(
        f"{report.IMPL_LABEL.get(k, k)}: {v.get('liger_kernel_version') or 'eager'}" for k, v in run.runner.env.items()
    )
    env = next(iter(run.runner.env.values()), {})
    versions = f"torch {env.get('torch', torch.__version__)}" + (
        f" · triton {env['triton']}" if env.get("triton") else ""
    )
    print(f"device {env.get('device', run.args.device)} · {versions}")
    if header:
        print(header)
    routes = run.runner.env.get("liger", {}).get("routes", {})
    served: dict[str, list[str]] = {}
    for op, route in routes.items():
        served.setdefault(f"{route['backend']} ({route['distribution']})", []).append(op)
    for backend, names in served.items():
        print(f"ours on {run.args.device}: {backend} serves {', '.join(names)}")
    print("\n\n".join(run.sections))
    print("wrote " + ", ".join(str(p) for p in run.written), file=sys.stderr)
