"""`prepare` against a single-process PIL loop on the same files, in the same run, with its
scaling over worker processes and the JPEG store (see alexnet/bench/prepare.py).

    python benchmarks/bench_prepare.py [--case imagenet|cifar|both] [--images N]
                                       [--workers W] [--json]

The same as `alexnet bench prepare`, for the two shared data sets at once.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CASES = {"imagenet": (SHARED / "imagenet-samples", 256, 750),
         "cifar": (SHARED / "cifar10" / "train", 32, 5000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["imagenet", "cifar", "both"], default="both")
    parser.add_argument("--images", type=int, default=None, help="default 750 / 5000")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from alexnet.bench import format_report
    from alexnet.bench.prepare import bench_prepare

    print(f"# load average before {os.getloadavg()[0]:.2f} (other processes share these cores)")
    reports = []
    for case in (["imagenet", "cifar"] if args.case == "both" else [args.case]):
        src, size, count = CASES[case]
        if not src.is_dir():
            print(f"{case}: skipped, {src} not found")
            continue
        reports.append(bench_prepare(str(src), size, args.workers, args.images or count))
        print(format_report(reports[-1]))
    if args.json:
        print(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
