#!/usr/bin/env bash
# The training smoke test of a lent GPU (issue: training that works for every seed recipe):
# every recipe for a few hundred iterations in bf16 and fp16, one resumed, samples/s against the
# synthetic step. Under 5 minutes on one H100. From the repository root:
#   bash recipes/gpu_smoke.sh                # on the GPU machine; the table lands in $OUT/gpu_smoke.md
#   bash recipes/gpu_smoke.sh --dry-run      # tiny, on the CPU (what CI checks)
# Carry .data/train291-webp (a copy of ../shared/datasets/train291-webp: git ignores .data/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import sresr.train" 2>/dev/null; then
  # the GPU machine has torch and the other dependencies: install sresr alone, so its entry points register
  "$PY" -m pip install -q --no-deps --no-build-isolation --target /tmp/sresr-site . >/dev/null
  export PYTHONPATH="/tmp/sresr-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export SRESR_HOME="${SRESR_HOME:-/tmp/sresr-home}" SRESR_OFFLINE=1 PYTHONUNBUFFERED=1
OUT="${OUT:-$(mktemp -d)}"
"$PY" recipes/gpu_smoke.py --data "${DATA:-.data/train291-webp}" --out "$OUT" "$@"
