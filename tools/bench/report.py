"""Results table, CSV/JSON files and PNG plots."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cases import TARGETS

OP_FIELDS = (
    "op",
    "impl",
    "tokens",
    "shape",
    "dtype",
    "device",
    "backend",
    "fwd_ms",
    "bwd_ms",
    "full_ms",
    "host_ms",
    "graph_ms",
    "mem_mib",
    "error",
)
TRAIN_FIELDS = (
    "impl",
    "compiled",
    "params",
    "batch",
    "seq",
    "optimizer",
    "steps",
    "step_ms",
    "tokens_per_s",
    "peak_mib",
    "loss_first",
    "loss_last",
    "error",
)
IMPL_LABEL = {"torch": "torch", "liger": "ours", "peer": "peer"}
IMPL_COLOR = {"torch": "#8c8c8c", "liger": "#1f77b4", "peer": "#ff7f0e"}


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _count(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"


def _ratio(num: float | None, den: float | None) -> str:
    if not num or not den:
        return "-"
    return f"{num / den:.2f}x"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def index(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["op"], r["impl"]): r for r in records}


#: Full-step times within this fraction of each other count as equal: two
#: runs of one version differ by about that much on a device-bound op.
SAME_TIME = 0.02


def verdict(op: str, ours: dict | None, peer: dict | None, targets_apply: bool) -> str:
    """PASS/FAIL against TARGETS.md (and the peer, when measured), or n/a. A
    time missed by a host-bound step (see bench.measure) says so, with the
    device times of ours and the peer."""
    target = TARGETS.get(op)
    if target is None or not targets_apply:
        return "n/a"
    if ours is None or ours.get("error") or ours.get("full_ms") is None:
        return "FAIL (no result)"
    misses = []
    if ours["full_ms"] > target.ms:
        misses.append("time")
    if ours["mem_mib"] is not None and ours["mem_mib"] > target.mib:
        misses.append("memory")
    peer_ok = peer and not peer.get("error") and peer.get("full_ms")
    if peer_ok:
        if ours["full_ms"] > peer["full_ms"] * (1 + SAME_TIME):
            misses.append("slower than peer")
        if ours["mem_mib"] is not None and peer["mem_mib"] is not None and ours["mem_mib"] > peer["mem_mib"]:
            misses.append("more memory than peer")
    if not misses:
        return "PASS"
    text = "FAIL (" + ", ".join(misses) + ")"
    host, device = ours.get("host_ms"), ours.get("graph_ms")
    if {"time", "slower than peer"} & set(misses) and host is not None and device is not None and host > device:
        peer_device = peer.get("graph_ms") if peer_ok else None
        text += f" host-bound; device {_num(device)} ms" + (f", peer {_num(peer_device)}" if peer_device else "")
    return text


def op_table(records: Sequence[dict[str, Any]], ops: Sequence[str], impls: Sequence[str], targets_apply: bool):
    """(text, rows as dicts): one row per op, full-step ms and MiB per impl."""
    by = index(records)
    headers = ["op", "ours via"]
    headers += [f"{IMPL_LABEL[i]} ms" for i in impls]
    headers += [f"ours vs {IMPL_LABEL[i]}" for i in impls if i != "liger" and "liger" in impls]
    headers += [f"{IMPL_LABEL[i]} MiB" for i in impls]
    headers += ["target ms / MiB", "status"]
    rows, data, errors = [], [], []
    for op in ops:
        cells = {i: by.get((op, i)) for i in impls}
        ours, peer = cells.get("liger"), cells.get("peer")
        row = [op, (ours or {}).get("backend") or "-"]
        for i in impls:
            rec = cells[i]
            row.append("ERR" if rec and rec.get("error") else _num((rec or {}).get("full_ms")))
            if rec and rec.get("error"):
                errors.append(f"{op} / {IMPL_LABEL[i]}: {rec['error']}")
        ours_ms = (ours or {}).get("full_ms")
        for i in impls:
            if i != "liger" and "liger" in impls:
                # speed-up of ours over the other: > 1 means ours is faster
                row.append(_ratio((cells[i] or {}).get("full_ms"), ours_ms))
        for i in impls:
            rec = cells[i] or {}
            row.append(
                "ERR"
                if rec.get("error")
                else ("n/a" if rec and rec.get("mem_mib") is None else _num(rec.get("mem_mib"), 1))
            )
        target = TARGETS.get(op)
        row.append(f"<= {target.ms:g} / {target.mib:g}" if target else "-")
        status = verdict(op, ours, peer, targets_apply)
        row.append(status)
        rows.append(row)
        data.append(
            {
                "op": op,
                **{f"{IMPL_LABEL[i]}_ms": (cells[i] or {}).get("full_ms") for i in impls},
                **{f"{IMPL_LABEL[i]}_mib": (cells[i] or {}).get("mem_mib") for i in impls},
                "target_ms": target.ms if target else None,
                "target_mib": target.mib if target else None,
                # the TARGETS.md reference run (torch 2.11, triton 3.6), for context
                "reference_torch_ms_mib": target.torch_ref if target else None,
                "reference_peer_ms_mib": target.peer_ref if target else None,
                "status": status,
            }
        )
    text = format_table(headers, rows)
    if "liger" in impls and len(impls) > 1:
        text += "\n(ours vs X: X's time / ours; above 1x means ours is faster)"
    if not targets_apply:
        text += "\n(status n/a: TARGETS.md applies to full-size shapes, bf16, on an H100)"
    if errors:
        text += "\nerrors:\n" + "\n".join(f"  {e}" for e in errors)
    return text, data


def split_table(records: Sequence[dict[str, Any]], ops: Sequence[str], impls: Sequence[str]) -> str:
    """Where each full step's time goes: host time to issue it and device time
    (CUDA graph replay), per impl, next to the do_bench time; a step whose
    host time exceeds its device time is bound by the host (see bench.measure)."""
    by = index(records)
    headers = ["op"]
    for i in impls:
        headers += [f"{IMPL_LABEL[i]} full", "host", "device", "bound by"]
    rows = []
    for op in ops:
        row = [op]
        for i in impls:
            rec = by.get((op, i)) or {}
            if rec.get("error"):
                row += ["ERR", "-", "-", "-"]
                continue
            host, dev = rec.get("host_ms"), rec.get("graph_ms")
            bound = "-" if host is None or dev is None else ("host" if host > dev else "device")
            row += [_num(rec.get("full_ms")), _num(host), _num(dev), bound]
        rows.append(row)
    notes = [
        f"  {r['op']} / {IMPL_LABEL[r['impl']]}: {r['graph_error']}"
        for r in records
        if r.get("graph_error") and r["op"] in ops and r["impl"] in impls
    ]
    return (
        format_table(headers, rows)
        + "\n(ms per full step: full = do_bench median; host = time to issue it; device = CUDA graph replay)"
        + ("\nnot captured:\n" + "\n".join(notes) if notes else "")
    )


def sweep_table(records: Sequence[dict[str, Any]]) -> str:
    order = {impl: k for k, impl in enumerate(IMPL_LABEL)}
    rows = [
        [
            str(r.get("tokens")),
            IMPL_LABEL[r["impl"]],
            "ERR" if r.get("error") else _num(r.get("full_ms")),
            "ERR" if r.get("error") else ("n/a" if r.get("mem_mib") is None else _num(r["mem_mib"], 1)),
        ]
        for r in sorted(records, key=lambda r: (r.get("tokens") or 0, order[r["impl"]]))
    ]
    errors = sorted({f"  {IMPL_LABEL[r['impl']]}: {r['error']}" for r in records if r.get("error")})
    return format_table(["tokens", "impl", "full ms", "MiB"], rows) + (
        "\nerrors:\n" + "\n".join(errors) if errors else ""
    )


def _train_label(record: dict[str, Any]) -> str:
    return IMPL_LABEL[record["impl"]] + (" compiled" if record.get("compiled") else "")


def train_table(records: Sequence[dict[str, Any]]) -> str:
    """One row per run; "vs torch" compares with torch run the same way
    (eager with eager, compiled with compiled)."""
    rows = []
    for r in records:
        base = next(
            (
                b
                for b in records
                if b["impl"] == "torch" and b.get("compiled") == r.get("compiled") and b.get("tokens_per_s")
            ),
            None,
        )
        rows.append(
            [
                _train_label(r),
                _count(r.get("params")),
                f"{r['batch']}x{r['seq']}",
                "ERR" if r.get("error") else _num(r.get("step_ms"), 1),
                "ERR" if r.get("error") else _num(r.get("tokens_per_s"), 0),
                _ratio(r.get("tokens_per_s"), base["tokens_per_s"]) if base else "-",
                "n/a" if r.get("peak_mib") is None else _num(r["peak_mib"], 0),
            ]
        )
    text = format_table(["impl", "params", "batch x seq", "step ms", "tokens/s", "vs torch", "peak MiB"], rows)
    errors = [f"  {_train_label(r)}: {r['error']}" for r in records if r.get("error")]
    return text + ("\nerrors:\n" + "\n".join(errors) if errors else "")


def write_csv(path: Path, records: Sequence[dict[str, Any]], fields: Sequence[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in fields})


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=1, default=str))


# -- plots -----------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_op_times(
    path: Path, records: Sequence[dict[str, Any]], ops: Sequence[str], impls: Sequence[str], targets_apply: bool
) -> None:
    """One panel per op: fwd / bwd / full groups, one bar per impl; a black
    tick on a full bar at its device time (CUDA graph replay) where measured;
    the target line only where TARGETS.md applies (full size on the GPU)."""
    plt = _pyplot()
    by = index(records)
    cols = min(4, len(ops))
    rows = math.ceil(len(ops) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    width = 0.8 / max(1, len(impls))
    device_marked = False
    for ax, op in zip(axes.flat, ops):
        for k, impl in enumerate(impls):
            rec = by.get((op, impl)) or {}
            values = [rec.get(f"{m}_ms") or 0.0 for m in ("fwd", "bwd", "full")]
            xs = [x + (k - (len(impls) - 1) / 2) * width for x in range(3)]
            ax.bar(xs, values, width, label=IMPL_LABEL[impl], color=IMPL_COLOR[impl])
            if rec.get("graph_ms"):
                # the full step's device time: the bar above it is host time
                ax.plot(
                    xs[2],
                    rec["graph_ms"],
                    marker="_",
                    markersize=16,
                    markeredgewidth=2,
                    color="black",
                    label="device time (full)" if not device_marked else None,
                )
                device_marked = True
            if rec.get("error"):
                for x in xs:
                    ax.text(x, 0, "ERR", rotation=90, ha="center", va="bottom", fontsize=7, color="red")
        target = TARGETS.get(op)
        if target and targets_apply:
            ax.axhline(target.ms, color="green", linestyle="--", linewidth=1, label="target (full)")
        ax.set_xticks(range(3), ["fwd", "bwd", "full"])
        ax.set_title(op, fontsize=10)
        ax.set_ylabel("ms")
    for ax in list(axes.flat)[len(ops) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("time per op (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_op_memory(path: Path, records: Sequence[dict[str, Any]], ops: Sequence[str], impls: Sequence[str]) -> None:
    """Peak extra memory of one full step, grouped by op, log scale."""
    plt = _pyplot()
    by = index(records)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(ops)), 4))
    width = 0.8 / max(1, len(impls))
    plotted = False
    for k, impl in enumerate(impls):
        values = [(by.get((op, impl)) or {}).get("mem_mib") for op in ops]
        xs = [x + (k - (len(impls) - 1) / 2) * width for x in range(len(ops))]
        ax.bar(xs, [v or 0.0 for v in values], width, label=IMPL_LABEL[impl], color=IMPL_COLOR[impl])
        plotted = plotted or any(v for v in values)
    if plotted:
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "memory n/a on this device", transform=ax.transAxes, ha="center")
    ax.set_xticks(range(len(ops)), ops, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("MiB (peak extra, full step)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(path: Path, records: Sequence[dict[str, Any]], op: str, impls: Sequence[str]) -> None:
    """Full-step time and memory against the token count (batch × seq)."""
    plt = _pyplot()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for impl in impls:
        pts = sorted((r["tokens"], r) for r in records if r["op"] == op and r["impl"] == impl and not r.get("error"))
        if not pts:
            continue
        xs = [t for t, _ in pts]
        ax_t.plot(xs, [r.get("full_ms") for _, r in pts], "o-", label=IMPL_LABEL[impl], color=IMPL_COLOR[impl])
        mem = [r.get("mem_mib") for _, r in pts]
        if any(m is not None for m in mem):
            ax_m.plot(xs, mem, "o-", label=IMPL_LABEL[impl], color=IMPL_COLOR[impl])
    for ax, label in ((ax_t, "full ms"), (ax_m, "peak extra MiB")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("tokens (batch x seq)")
        ax.set_ylabel(label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if not ax_m.lines:
        ax_m.text(0.5, 0.5, "memory n/a on this device", transform=ax_m.transAxes, ha="center")
    fig.suptitle(f"{op}: sequence-length sweep")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_train(path: Path, records: Sequence[dict[str, Any]]) -> None:
    plt = _pyplot()
    ok = [r for r in records if not r.get("error")]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(8, 3.5))
    names = [_train_label(r).replace(" ", "\n") for r in ok]
    colors = [IMPL_COLOR[r["impl"]] for r in ok]
    ax_t.bar(names, [r["tokens_per_s"] for r in ok], color=colors)
    ax_t.set_ylabel("tokens/s")
    ax_m.bar(names, [r["peak_mib"] or 0.0 for r in ok], color=colors)
    ax_m.set_ylabel("peak MiB")
    fig.suptitle("Llama training step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
