"""Training input pipeline: the project's store + StoreLoader + TrainAugment against
torchvision's ImageFolder + PIL + RandomResizedCrop/RandomCrop + flip + ToTensor + Normalize
DataLoader, with the same number of workers, on the same images, in the same run.

    python benchmarks/bench_loader.py [--case imagenet|cifar|both] [--images N] [--workers W]
                                      [--batch 128] [--epochs 5] [--device cpu|cuda] [--json]

imagenet: N (750) files of ../shared/data/imagenet-samples, stored at 256, 224 crops + PCA lighting.
cifar: N (5000) files of ../shared/data/cifar10/train, stored at 32, 24 crops + PCA lighting.
Both pipelines deliver normalised float [B,3,crop,crop] batches; the first epoch of each is a
warm-up (page cache, worker start-up) and is not timed. The prepare step is timed separately
(benchmarks/bench_prepare.py): it is paid once, not every epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from alexnet.bench.train import image_tree

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CASES = {"imagenet": (SHARED / "imagenet-samples", 256, 224),
         "cifar": (SHARED / "cifar10" / "train", 32, 24)}


def time_epochs(make_iter, epochs: int, device: str) -> float:
    """Median img/s of epochs 2..epochs (epoch 1 warms up); with one epoch, that epoch's,
    warm-up included."""
    rate = []
    for epoch in range(epochs):
        start, seen = time.perf_counter(), 0
        for images in make_iter(epoch):
            seen += images.shape[0]
        if device == "cuda":
            torch.cuda.synchronize()
        if epoch or epochs == 1:
            rate.append(seen / (time.perf_counter() - start))
    return sorted(rate)[len(rate) // 2]


def ours(store_path: Path, crop: int, batch: int, epochs: int, device: str,
         augment_too: bool = True) -> float:
    from alexnet.data import open_store
    from alexnet.data.augment import TrainAugment
    from alexnet.data.loader import StoreLoader

    store = open_store(store_path)
    augment = TrainAugment(store.preprocessing(crop), store.eigvals, store.eigvecs)
    loader = StoreLoader(store.images, store.labels, batch, seed=0, device=device)
    generator = torch.Generator(device=device).manual_seed(0)

    def run(epoch):
        for images, _ in loader.iterate(epoch):
            yield augment(images, generator) if augment_too else images
    return time_epochs(run, epochs, device)


def torchvision_pipeline(tree: Path, crop: int, batch: int, workers: int, epochs: int,
                         device: str, small: bool) -> float:
    from torchvision import datasets, transforms

    first = transforms.RandomCrop(crop) if small else transforms.RandomResizedCrop(crop)
    tf = transforms.Compose([first, transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(tree), tf), batch_size=batch, shuffle=True,
        num_workers=workers, persistent_workers=workers > 0, pin_memory=device == "cuda")

    def run(epoch):
        for images, _ in loader:
            yield images.to(device, non_blocking=True)
    return time_epochs(run, epochs, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["imagenet", "cifar", "both"], default="both")
    parser.add_argument("--images", type=int, default=None, help="default 750 / 5000")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5,
                        help="epochs per pipeline; the first warms up and is not timed")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the main process (default: --workers, so both "
                        "pipelines use the same number of cores)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.epochs == 1:
        print("# --epochs 1: the only epoch is timed, warm-up included (pass 2 or more to "
              "leave the warm-up out)")

    from alexnet.data import prepare_store

    hardware = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
                + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""))
    torch.set_num_threads(args.threads or args.workers)
    print(f"# {hardware}; torch {torch.__version__}; device {args.device}; batch {args.batch}; "
          f"workers {args.workers}; torch threads {torch.get_num_threads()}; load average "
          f"before {os.getloadavg()[0]:.2f} (other processes share these cores)")
    results = []
    for case in (["imagenet", "cifar"] if args.case == "both" else [args.case]):
        src, size, crop = CASES[case]
        if not src.is_dir():
            print(f"{case}: skipped, {src} not found")
            continue
        count = args.images or (750 if case == "imagenet" else 5000)
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "tree"
            image_tree(src, tree, count)
            prepare_store(tree, Path(tmp) / "store", size=size, workers=args.workers,
                          progress=False)
            b = torchvision_pipeline(tree, crop, args.batch, args.workers, args.epochs,
                                     args.device, small=case == "cifar")
            a = ours(Path(tmp) / "store", crop, args.batch, args.epochs, args.device)
            u = ours(Path(tmp) / "store", crop, args.batch, args.epochs, args.device, False)
        row = {"case": case, "images": count, "size": size, "crop": crop,
               "ours_img_s": round(a, 1), "torchvision_img_s": round(b, 1),
               "ratio": round(a / b, 2), "ours_loader_only_img_s": round(u, 1),
               "loader_only_ratio": round(u / b, 2), "hardware": hardware,
               "torch": torch.__version__, "device": args.device, "workers": args.workers,
               "batch": args.batch}
        results.append(row)
        print(f"{case:9s} {size}->{crop}  ours loader+augment {a:9,.0f} img/s   torchvision "
              f"{b:8,.0f} img/s   ratio {a / b:5.1f}x   ({count} images)")
        print(f"{'':9s} {'':8s}  ours loader alone   {u:9,.0f} img/s   (uint8 batches; the "
              f"augmentation then runs on the GPU)   ratio {u / b:5.1f}x")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
