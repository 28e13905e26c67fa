"""Training from CIFAR-10's python folder also reports the official test split, at the end."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from helpers.runs import alexnet_env, run_alexnet

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"]


def write_cifar_python(folder: Path, rows: int = 20, test_rows: int = 12) -> Path:
    """A miniature cifar-10-batches-py: the same pickles, fewer (generated) images."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name, n in [*[(f"data_batch_{i}", rows) for i in range(1, 6)], ("test_batch", test_rows)]:
        labels = [i % 10 for i in range(n)]
        base = np.array(labels, dtype=np.float64)[:, None] * 20 + 30
        data = np.clip(base + rng.normal(0, 20, (n, 3072)), 0, 255).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in NAMES]}, f, protocol=2)
    return folder


def test_a_cifar_python_folder_gets_its_test_split_evaluated(tmp_path):
    folder = write_cifar_python(tmp_path / "cifar-10-batches-py")
    out = tmp_path / "run"
    done = run_alexnet(["train", "--data", str(folder), "--out", str(out), "epochs=1",
                        "val_per_class=2", "batch_size=16", "eval_views=ten"],
                       alexnet_env(tmp_path))
    assert done.returncode == 0, done.stderr
    final = json.loads((out / "final.json").read_text())
    # 10 images a class: val_per_class=2 is capped at a tenth of each class
    assert final["train_images"] == 90 and final["held_out"]["ten"]["images"] == 10
    assert final["test"]["ten"]["images"] == 12 and final["test"]["center"]["images"] == 12
    assert "test error (12 images, ten views)" in done.stderr
