#!/usr/bin/env bash
# The CPU figures docs/speed.md quotes, in one run: the model step of the four networks (ours,
# plain PyTorch, no LRN, the conv2 ceiling), 10-view evaluation against the forward-only
# ceiling, and end-to-end training on CIFAR-10 against the model step. Run it on idle cores
# (nothing else CPU-heavy: `cat /proc/loadavg`); each report lands in docs/benchmarks/.
#
#   bash benchmarks/bench_cpu.sh [DATA] [OUT]   # DATA: CIFAR-10 training images
#
# OUT (default docs/benchmarks) is one folder per kind of CPU: each report records the CPU's
# model and instruction sets (environment.cpu_details), and any cap set on them in the
# environment (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/cifar10/train}
OUT=${2:-docs/benchmarks}
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
# alexnet train itself, end to end, against the model step measured just before and just
# after it (this VM's speed drifts by a quarter within minutes, so a step measured minutes
# earlier is no fair yardstick): epochs 2 and 3 (epoch 1 includes building the kernels).
bench cpu-model-cifar-conv-local-before-train model --model cifar-conv-local --device cpu --steps 30 > /dev/null
run=$(mktemp -d)
python3 -m alexnet train --data "$DATA" --out "$run/run" epochs=3 > /dev/null
cp "$run/run/metrics.csv" "$OUT/cpu-train-run-metrics.csv"
rm -rf "$run"
bench cpu-model-cifar-conv-local-after-train model --model cifar-conv-local --device cpu --steps 30 > /dev/null
python3 - "$OUT" <<'PY'
import csv, json, sys
out = sys.argv[1]
epochs = [float(r["images_per_s"]) for r in csv.DictReader(open(f"{out}/cpu-train-run-metrics.csv"))][1:]
steps = [next(r for r in json.load(open(f"{out}/cpu-model-cifar-conv-local-{when}-train.json"))["rows"]
              if r["variant"] == "ours")["images_per_s"] for when in ("before", "after")]
train, step = sum(epochs) / len(epochs), sum(steps) / len(steps)
print(f"alexnet train, epochs 2-3: {', '.join(f'{e:,.0f}' for e in epochs)} img/s; the model step "
      f"just before and after: {', '.join(f'{s:,.0f}' for s in steps)} img/s; "
      f"ratio of the means {train / step:.2f}x")
PY
uptime
