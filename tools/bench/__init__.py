"""Benchmark tool: per-op time and memory for torch eager, this project and the
liger-kernel 0.8.5 peer, a sequence-length sweep, a Llama training step and the
dispatch overhead. Run ``python -m tools.bench --help`` from the repository root
(or ``python tools/bench --help``); see tools/README.md."""
