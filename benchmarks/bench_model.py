"""Model-step throughput: ours vs plain PyTorch vs no LRN, against the conv2 ceiling.

    python benchmarks/bench_model.py [--model NAME] [--compile] [--batch 256] [--json]

Same as `alexnet bench model`; prints each variant's img/s and the ratios.
"""

import sys

from alexnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "model", *sys.argv[1:]]))
