#!/usr/bin/env bash
# Train every bundled default model from its recipe (two lanes in parallel, one torch thread each),
# then copy the weights into the package and print their measured metrics:
#   bash recipes/train_defaults.sh            # from the repository root, ../shared beside it
# DATA may point elsewhere: DATA=/path/to/datasets bash recipes/train_defaults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/datasets}"
RECIPES="${RECIPES:-recipes}"
export OMP_NUM_THREADS=1
mkdir -p runs
train() {  # name model data...
  local name=$1 model=$2; shift 2
  local flags=()
  for d in "$@"; do flags+=(--data "$DATA/$d"); done
  sresr train "$model" --config "$RECIPES/$name.toml" --out "runs/$name" "${flags[@]}" > "runs/$name.log" 2>&1
  echo "trained $name: $(tail -n 1 "runs/$name.log")"
}
lane_a() {
  train fsrcnn-x2 fsrcnn T91 BSDS200
  train fsrcnn-x2-aug fsrcnn T91 BSDS200   # continues runs/fsrcnn-x2 with scale augmentation
  train fsrcnn-x2-aug2 fsrcnn T91 BSDS200   # a second, lower-rate cycle
  train fsrcnn-x2-aug3 fsrcnn T91 BSDS200   # larger patches, smaller batches
  train fsrcnn-x2-aug4 fsrcnn T91 BSDS200   # the same at half the rate
  train fsrcnn-x2-aug5 fsrcnn T91 BSDS200   # and once more
  train fsrcnn-x2-t91 fsrcnn T91   # a cycle on T91 alone
  train fsrcnn-x2-t91-2 fsrcnn T91   # and another
  train fsrcnn-x2-t91-3 fsrcnn T91   # and more, each restarting at a higher rate
  train fsrcnn-x2-t91-4 fsrcnn T91
  train fsrcnn-x2-t91-5 fsrcnn T91
  train fsrcnn-x2-t91-6 fsrcnn T91
  train fsrcnn-x2-t91-7 fsrcnn T91   # (bundled x2)
  train fsrcnn-x3-aug fsrcnn T91 BSDS200   # fine-tunes runs/fsrcnn-x2-aug
  train fsrcnn-x3-aug2 fsrcnn T91 BSDS200   # larger patches, smaller batches
  train fsrcnn-x3-aug3 fsrcnn T91 BSDS200   # the same at half the rate
  python recipes/center_fsrcnn.py runs/fsrcnn-x3-aug3   # the transposed conv moved to the centred padding
  train fsrcnn-x3-center fsrcnn T91 BSDS200   # fine-tunes it
  train fsrcnn-x3-center2 fsrcnn T91 BSDS200   # the same at half the rate
  train fsrcnn-x3-t91 fsrcnn T91   # a cycle on T91 alone
  train fsrcnn-x3-t91-2 fsrcnn T91   # and more, each restarting at a higher rate from the fourth
  train fsrcnn-x3-t91-3 fsrcnn T91
  train fsrcnn-x3-t91-4 fsrcnn T91
  train fsrcnn-x3-t91-5 fsrcnn T91
  train fsrcnn-x3-t91-6 fsrcnn T91
  train fsrcnn-x3-t91-7 fsrcnn T91
  train fsrcnn-x3-t91-8 fsrcnn T91   # (bundled x3)
}
lane_b() {
  train espcn-x3 espcn T91
  train espcn-x3-polish espcn T91   # starts from runs/espcn-x3
  train espcn-x4 espcn T91
  train espcn-x2 espcn T91
  train srcnn-x3 srcnn T91
  train fsrcnn-x4 fsrcnn T91 BSDS200   # from scratch
  train fsrcnn-x4-aug fsrcnn T91 BSDS200   # continues runs/fsrcnn-x4 with scale augmentation
  train fsrcnn-x4-aug2 fsrcnn T91 BSDS200   # larger patches, smaller batches
  train fsrcnn-x4-aug3 fsrcnn T91 BSDS200   # the same at half the rate
  python recipes/center_fsrcnn.py runs/fsrcnn-x4-aug3   # the transposed conv moved to the centred padding
  train fsrcnn-x4-center fsrcnn T91 BSDS200   # fine-tunes it
  train fsrcnn-x4-center2 fsrcnn T91 BSDS200   # the same at half the rate
  train fsrcnn-x4-center3 fsrcnn T91 BSDS200   # and once more
  train fsrcnn-x4-t91 fsrcnn T91   # a cycle on T91 alone
  train fsrcnn-x4-t91-2 fsrcnn T91   # and more of them
  train fsrcnn-x4-t91-3 fsrcnn T91
  train fsrcnn-x4-t91-4 fsrcnn T91   # (bundled x4)
}
lane_a & a=$!
lane_b & b=$!
wait $a; wait $b
python recipes/bundle.py runs/fsrcnn-x2-t91-7 runs/fsrcnn-x3-t91-8 runs/fsrcnn-x4-t91-4 \
  runs/espcn-x2 runs/espcn-x3-polish runs/espcn-x4 runs/srcnn-x3   # the bundled ones
