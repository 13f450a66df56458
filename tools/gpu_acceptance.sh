#!/usr/bin/env bash
# Everything only a GPU machine can show, in one run (see tools/README.md):
#   1. the conformance suite on the real `cuda` backend at full sizes, every op,
#      the operator contract (torch.library.opcheck) included;
#   2. the Transformers tests on the GPU (families, causal LM, fullgraph compile);
#   3. the benchmark: op table for torch / ours / peer, the Llama training step
#      eager and compiled, the Qwen3-MoE and Qwen2.5-VL training steps, and the
#      dispatch overhead.
# Usage, from the repository root with liger-kernel, liger-cuda and
# liger-conformance installed (and the peer wheel in .peer/wheels):
#   OUT=gpu-results bash tools/gpu_acceptance.sh
# Each part writes its log under $OUT and the run goes on after a failure; the
# exit status is the number of failed parts.
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
failed=0

part() {
    local name=$1
    shift
    echo "=== $name: $*"
    if "$@" >"$OUT/$name.log" 2>&1; then
        echo "    ok ($(tail -n 1 "$OUT/$name.log"))"
    else
        echo "    FAILED, see $OUT/$name.log:"
        tail -n 15 "$OUT/$name.log" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

export LIGER_KERNEL_STRICT=1
part conformance python -m pytest -q -p no:cacheprovider --pyargs liger_conformance \
    --liger-backend cuda --liger-require-device --liger-size full
part transformers env LIGER_TEST_DEVICE=cuda python -m pytest -q -p no:cacheprovider \
    packages/liger-kernel/tests/transformers -m "not slow"
unset LIGER_KERNEL_STRICT
part bench python -m tools.bench --out "$OUT/bench"
part train python -m tools.bench --train --train-compile --impls torch,liger,peer --out "$OUT/train"
part train_moe python -m tools.bench --train --train-model qwen3_moe --impls torch,liger,peer --out "$OUT/train_moe"
part train_vl python -m tools.bench --train --train-model qwen2_5_vl --impls torch,liger,peer --out "$OUT/train_vl"
part overhead python -m tools.bench --dispatch-overhead --out "$OUT/overhead"
for log in bench train train_moe train_vl overhead; do
    echo "--- $log"
    sed -n '/^device /,$p' "$OUT/$log.log" | grep -v '^wrote '
done
exit "$failed"
