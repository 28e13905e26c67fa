"""Copy an experiment's small result files into the repository (a maintainer's step).

    python tools/collect_results.py EXPERIMENT_OUT docs/results/NAME

Copies results.json and the figures, and from every run folder its config.json, run.json,
metrics.csv and final.json (never weights or training states), so that every figure the
README quotes is backed by a committed file.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from alexnet.engine import run_layout as layout

RUN_FILES = (layout.CONFIG, layout.RUN, layout.METRICS, layout.FINAL)


def collect(source: Path, target: Path) -> list[Path]:
    copied = []
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted([*source.glob("*.json"), *source.glob("*.png")]):
        copied.append(Path(shutil.copy2(path, target / path.name)))
    for run in sorted(p for p in source.iterdir() if (p / layout.CONFIG).is_file()):
        (target / run.name).mkdir(exist_ok=True)
        for name in RUN_FILES:
            if (run / name).is_file():
                copied.append(Path(shutil.copy2(run / name, target / run.name / name)))
    return copied


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    for path in collect(Path(sys.argv[1]).expanduser(), Path(sys.argv[2])):
        print(path)
