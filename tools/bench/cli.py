"""Command line of the benchmark tool (``python -m tools.bench --help``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from . import peer, report
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
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    sections: list[str] = []

    if run_table:
        for impl in impls:
            payload["ops"] += runner.run(
                {**base, "kind": "ops", "impl": impl, "ops": ops, "modes": [*MODES, SPLIT]}, progress
            )
        text, payload["table"] = report.op_table(payload["ops"], ops, impls, targets_apply)
        sections.append(
            f"ops: full step (forward + backward), {args.dtype} on {args.device}, scale {args.scale:g}\n{text}"
        )
        if device.type == "cuda":
            sections.append(
                "ops: host and device time of the full step\n" + report.split_table(payload["ops"], ops, impls)
            )
        report.write_csv(out / "ops.csv", payload["ops"], report.OP_FIELDS)
        written.append(out / "ops.csv")
        if not args.no_plots:
            report.plot_op_times(out / "ops_time.png", payload["ops"], ops, impls, targets_apply)
            report.plot_op_memory(out / "ops_memory.png", payload["ops"], ops, impls)
            written += [out / "ops_time.png", out / "ops_memory.png"]

    if args.sweep:
        for impl in impls:
            job = {**base, "kind": "ops", "impl": impl, "ops": [args.sweep], "tokens": sweep_tokens, "modes": ["full"]}
            payload["sweep"] += runner.run(job, progress)
        sections.append(f"sweep: {args.sweep}, full step\n" + report.sweep_table(payload["sweep"]))
        report.write_csv(out / "sweep.csv", payload["sweep"], report.OP_FIELDS)
        written.append(out / "sweep.csv")
        if not args.no_plots:
            report.plot_sweep(out / f"sweep_{args.sweep}.png", payload["sweep"], args.sweep, impls)
            written.append(out / f"sweep_{args.sweep}.png")

    if args.train:
        for impl, compiled in [(i, False) for i in impls] + [(i, True) for i in impls if args.train_compile]:
            job = {
                **base,
                "kind": "train",
                "compile": compiled,
                "impl": impl,
                "batch": args.train_batch,
                "seq": args.train_seq,
                "steps": args.train_steps,
                "warmup": args.train_warmup,
                "optimizer": args.train_optim,
            }
            payload["train"] += runner.run(job, progress)
        sections.append("training step: Llama, random init\n" + report.train_table(payload["train"]))
        report.write_csv(out / "train.csv", payload["train"], report.TRAIN_FIELDS)
        written.append(out / "train.csv")
        if not args.no_plots and any(not r.get("error") for r in payload["train"]):
            report.plot_train(out / "train.png", payload["train"])
            written.append(out / "train.png")

    if args.dispatch_overhead:
        from .overhead import dispatch_overhead

        try:
            o = payload["dispatch_overhead"] = dispatch_overhead(device, calls=500 if args.quick else 2000)
            sections.append(
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
            payload["dispatch_overhead"] = {"error": f"{type(exc).__name__}: {exc}"}
            sections.append(f"dispatch overhead: ERR {type(exc).__name__}: {exc}")

    report.write_json(out / "results.json", payload)
    written.insert(0, out / "results.json")
    header = ", ".join(
        f"{report.IMPL_LABEL.get(k, k)}: {v.get('liger_kernel_version') or 'eager'}" for k, v in runner.env.items()
    )
    env = next(iter(runner.env.values()), {})
    versions = f"torch {env.get('torch', torch.__version__)}" + (
        f" · triton {env['triton']}" if env.get("triton") else ""
    )
    print(f"device {env.get('device', args.device)} · {versions}")
    if header:
        print(header)
    routes = runner.env.get("liger", {}).get("routes", {})
    served: dict[str, list[str]] = {}
    for op, route in routes.items():
        served.setdefault(f"{route['backend']} ({route['distribution']})", []).append(op)
    for backend, names in served.items():
        print(f"ours on {args.device}: {backend} serves {', '.join(names)}")
    print("\n\n".join(sections))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
