"""`prepare` (parallel decode into the store) against the obvious single-process PIL loop that
does the same work (open, convert to RGB, resize the shorter side, centre crop, keep the uint8
array), on the same files, in the same run.

Rows: the PIL loop; prepare with 1, 2, 4, ... up to `workers` processes (how it scales with
cores); prepare into a JPEG store with `workers`. Each prepare row also has the peak resident
memory of all its processes together. The PIL loop holds its results in one array; prepare
streams them to the store, so its memory does not grow with the data set.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from alexnet.bench.train import image_tree
from alexnet.data import prepare_store
from alexnet.data.folders import image_files
from alexnet.engine.run_files import machine


def pil_loop(files: list[Path], size: int) -> float:
    """img/s of the plain loop."""
    from PIL import Image

    out = np.empty((len(files), size, size, 3), np.uint8)
    start = time.perf_counter()
    for k, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            new = (max(size, round(w * scale)), max(size, round(h * scale)))
            im = im.resize(new, Image.Resampling.BILINEAR)
            left, top = (new[0] - size) // 2, (new[1] - size) // 2
            out[k] = np.asarray(im.crop((left, top, left + size, top + size)))
    return len(files) / (time.perf_counter() - start)


class RSSSampler(threading.Thread):
    """Peak of the summed resident memory of this process and all its descendants (Linux
    /proc, sampled every 20 ms): what the machine actually had to hold at once. 0 elsewhere."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_mb, self._done = 0.0, threading.Event()

    @staticmethod
    def _tree_rss_mb() -> float:
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                parents[int(stat.parent.name)] = (int(fields[1]), int(fields[21]))
            except (OSError, ValueError, IndexError):
                continue
        tree, grew = {os.getpid()}, True
        while grew:
            new = {pid for pid, (ppid, _) in parents.items() if ppid in tree} - tree
            tree |= new
            grew = bool(new)
        page = os.sysconf("SC_PAGE_SIZE")
        return sum(parents[p][1] for p in tree if p in parents) * page / 2**20

    def run(self):
        while True:   # sample first: a short prepare may end within one interval
            self.peak_mb = max(self.peak_mb, self._tree_rss_mb())
            if self._done.wait(0.02):
                return

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak_mb


def worker_counts(most: int) -> list[int]:
    """1, 2, 4, ... and `most` itself."""
    counts = [1]
    while counts[-1] * 2 < most:
        counts.append(counts[-1] * 2)
    return sorted(set(counts) | {most})


def bench_prepare(data: str, size: int = 256, workers: int | None = None,
                  images: int | None = None) -> dict:
    workers = workers or os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        count = image_tree(Path(data), tree, images)
        files = image_files(tree)
        pil_loop(files[:50], size)   # warm the page cache
        rows.append({"variant": "PIL loop, 1 process", "images_per_s": pil_loop(files, size)})
        runs = [(w, "raw") for w in worker_counts(workers)] + [(workers, "jpeg")]
        for w, encoding in runs:
            sampler = RSSSampler()
            sampler.start()
            start = time.perf_counter()
            prepare_store(tree, Path(tmp) / f"{encoding}{w}", size=size, workers=w,
                          progress=False, encoding=encoding)
            rate = count / (time.perf_counter() - start)
            rows.append({"variant": f"prepare, {w} worker{'s' * (w > 1)}"
                         + (", JPEG store" if encoding == "jpeg" else ""),
                         "images_per_s": rate, "workers": w, "encoding": encoding,
                         "peak_rss_mb_all_processes": round(sampler.stop())})
    raw = {row["workers"]: row["images_per_s"] for row in rows[1:] if row["encoding"] == "raw"}
    return {"benchmark": "prepare (decode once into the store)",
            "settings": {"images": count, "size": size, "workers": workers, "data": data},
            "environment": machine(), "rows": rows,
            "ratios": {f"prepare {workers} workers / PIL loop": raw[workers] / rows[0]["images_per_s"],
                       f"prepare {workers} workers / 1 worker": raw[workers] / raw[1]}}
