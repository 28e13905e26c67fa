#!/usr/bin/env bash
# The CPU figures the README quotes, in one run: the model step of the four networks (ours,
# plain PyTorch, no LRN, the conv2 ceiling), 10-view evaluation against the forward-only
# ceiling, and end-to-end training on CIFAR-10 against the model step. Run it on idle cores
# (nothing else CPU-heavy: `cat /proc/loadavg`); each report lands in docs/benchmarks/.
#
#   bash benchmarks/bench_cpu.sh [DATA]     # DATA: CIFAR-10 training images
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/cifar10/train}
OUT=docs/benchmarks
mkdir -p "$OUT"
bench() { local name=$1; shift; python3 -m alexnet bench "$@" --json > "$OUT/$name.json";
          python3 -c "import json,sys; from alexnet.bench import format_report as f; print(f(json.load(open(sys.argv[1]))))" "$OUT/$name.json"; }
uptime
for model in cifar-conv-local cifar-conv-local-13pct cifar-4layer; do
  bench "cpu-model-$model" model --model "$model" --device cpu --steps 30
done
bench cpu-model-alexnet-paper model --model alexnet-paper --device cpu --steps 5
bench cpu-eval-cifar-conv-local eval --model cifar-conv-local --device cpu
bench cpu-train-cifar-conv-local train --model cifar-conv-local --data "$DATA" --device cpu \
  --steps 100
# alexnet train itself, end to end: epoch 2's img/s (epoch 1 includes compiling the fused
# kernels), against the model step above.
run=$(mktemp -d)
python3 -m alexnet train --data "$DATA" --out "$run/run" epochs=2 > /dev/null
cp "$run/run/metrics.csv" "$OUT/cpu-train-run-metrics.csv"
rm -rf "$run"
python3 -c "import csv; rows=list(csv.DictReader(open('$OUT/cpu-train-run-metrics.csv'))); print(f\"alexnet train, epoch 2: {float(rows[-1]['images_per_s']):,.0f} img/s\")"
uptime
