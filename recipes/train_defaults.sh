#!/usr/bin/env bash
# Train every bundled default model from its chain file (recipes/chains/*.toml), two lanes in
# parallel with one torch thread each, then copy the weights into the package and print their
# measured metrics:
#   bash recipes/train_defaults.sh            # from the repository root, ../shared beside it
# DATA may point elsewhere: DATA=/path/to/datasets bash recipes/train_defaults.sh
# Running it again continues where it stopped: finished stages are skipped, interrupted ones resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/datasets}"
export OMP_NUM_THREADS=1
mkdir -p runs
chain() {  # name
  sresr train --chain "recipes/chains/$1.toml" --data-dir "$DATA" -q > "runs/chain-$1.log" 2>&1
  echo "trained $1: $(tail -n 1 "runs/chain-$1.log")"
}
lane_a() {
  chain fsrcnn-x2
  chain fsrcnn-x3   # starts with the x2 chain's first two stages (done by then: skipped)
}
lane_b() {
  chain espcn-x3
  chain espcn-x4
  chain espcn-x2
  chain srcnn-x3
  chain fsrcnn-x4
}
lane_a & a=$!
lane_b & b=$!
wait $a; wait $b
python recipes/bundle.py recipes/chains/fsrcnn-x2.toml recipes/chains/fsrcnn-x3.toml recipes/chains/fsrcnn-x4.toml \
  recipes/chains/espcn-x2.toml recipes/chains/espcn-x3.toml recipes/chains/espcn-x4.toml recipes/chains/srcnn-x3.toml
