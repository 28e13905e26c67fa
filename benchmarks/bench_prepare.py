"""`prepare` (parallel decode into the store) against a plain single-process PIL loop that
does the same work (open, convert to RGB, resize the shorter side, centre crop, keep the
uint8 array), on the same files, in the same run.

    python benchmarks/bench_prepare.py [--case imagenet|cifar|both] [--images N]
                                       [--workers W] [--json]

Prints img/s for the PIL loop, prepare with 1 worker and with W workers, the ratios, and
the peak resident memory of all prepare processes together. The PIL loop holds its results
in one array; prepare streams them to the store.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CASES = {"imagenet": (SHARED / "imagenet-samples", 256), "cifar": (SHARED / "cifar10" / "train", 32)}


def pil_loop(files: list[Path], size: int) -> float:
    """img/s of the obvious single-process loop."""
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
    /proc, sampled every 20 ms): what the machine actually had to hold at once."""

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
        while not self._done.wait(0.02):
            self.peak_mb = max(self.peak_mb, self._tree_rss_mb())

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["imagenet", "cifar", "both"], default="both")
    parser.add_argument("--images", type=int, default=None, help="default 750 / 5000")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from alexnet.data import prepare_store

    hardware = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    print(f"# {hardware}; Pillow {Image.__version__}; workers {args.workers}; load average "
          f"before {os.getloadavg()[0]:.2f} (other processes share these cores)")
    results = []
    for case in (["imagenet", "cifar"] if args.case == "both" else [args.case]):
        src, size = CASES[case]
        if not src.is_dir():
            print(f"{case}: skipped, {src} not found")
            continue
        files = sorted(p for p in src.rglob("*") if p.is_file())
        count = args.images or (750 if case == "imagenet" else 5000)
        files = files[::max(1, len(files) // count)][:count]
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "tree"
            for f in files:  # an ImageFolder of symlinks: same files for both
                cls = f.parent.name if f.parent != src else "all"
                (tree / cls).mkdir(parents=True, exist_ok=True)
                (tree / cls / f.name).symlink_to(f)
            pil_loop(files[:50], size)  # warm the page cache
            base = pil_loop(files, size)
            rates, rss = {}, {}
            for workers in sorted({1, args.workers}):
                out = Path(tmp) / f"store{workers}"
                sampler = RSSSampler()
                sampler.start()
                start = time.perf_counter()
                prepare_store(tree, out, size=size, workers=workers, progress=False)
                rates[workers] = len(files) / (time.perf_counter() - start)
                rss[workers] = sampler.stop()
        row = {"case": case, "images": len(files), "size": size, "pil_loop_img_s": round(base, 1),
               **{f"prepare_{w}w_img_s": round(r, 1) for w, r in rates.items()},
               "ratio": round(rates[args.workers] / base, 2),
               "peak_rss_mb_all_processes": round(rss[args.workers]), "hardware": hardware}
        results.append(row)
        per = "   ".join(f"prepare {w}w {r:7,.0f} img/s" for w, r in rates.items())
        print(f"{case:9s} {size}x{size}  PIL loop {base:7,.0f} img/s   {per}   ratio "
              f"{row['ratio']:.2f}x   peak RSS (all prepare processes) {rss[args.workers]:.0f} MB")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
