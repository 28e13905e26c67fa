"""End-to-end training throughput: images to SGD step, the project's path against torchvision's.

ours: the prepared uint8 store -> StoreLoader -> TrainAugment on the device (random crop,
flip, PCA lighting, mean image) -> training step; and the same from the JPEG store, whose
batches are decoded on the device (nvJPEG) before the augmentation.
torchvision: ImageFolder + PIL decoding + RandomResizedCrop + flip + ToTensor + Normalize in
DataLoader worker processes -> copy to the device -> the same training step.
Also the model-step-only rate (synthetic batches already on the device), the ceiling both
pipelines are measured against. Preparing the store is timed too: it is paid once. The rows
take turns in timed rounds (`bench.time_interleaved`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from alexnet.bench import time_interleaved
from alexnet.bench.model import default_batch, synthetic_step, training_step
from alexnet.data import open_store, prepare_store
from alexnet.data.augment import TrainAugment
from alexnet.data.folders import image_files
from alexnet.data.loader import StoreLoader
from alexnet.data.normalization import IMAGENET_CHANNEL_MEAN, IMAGENET_CHANNEL_STD
from alexnet.engine.distributed import pick_device
from alexnet.engine.fast_path import use_channels_last
from alexnet.engine.run_files import machine
from alexnet.models import build_model, model_spec


def image_tree(src: Path, dst: Path, count: int | None = None) -> int:
    """An ImageFolder tree at `dst` of links to the images under `src` (flat files: one
    class), `count` of them evenly spread when given; returns how many it linked."""
    files = image_files(src)
    if count:
        files = files[::max(1, len(files) // count)][:count]
    for f in files:
        cls = f.parent.name if f.parent != src else "all"
        (dst / cls).mkdir(parents=True, exist_ok=True)
        (dst / cls / f.name).symlink_to(f.resolve())
    return len(files)


def cycle(make_iterator):
    """Batches forever, starting a new epoch when one ends."""
    epoch = 0
    while True:
        yield from make_iterator(epoch)
        epoch += 1


def ours(store_path: Path, model, batch: int, device: torch.device, compile_model: bool):
    store = open_store(store_path)
    crop = model_spec(model.model_name).input_size
    augment = TrainAugment(store.preprocessing(crop), store.eigvals, store.eigvecs,
                           lighting_std=0.1, channels_last=use_channels_last(None, device))
    loader = StoreLoader(store.images, store.labels, batch, seed=0, drop_last=True,
                         device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    step = training_step(model, device, compile_model)
    batches = cycle(loader.iterate)

    def one() -> None:
        images, labels = next(batches)
        step(augment(images, generator), labels)

    return one


def torchvision_pipeline(tree: Path, model, batch: int, workers: int, device: torch.device,
                         compile_model: bool):
    from torchvision import datasets, transforms

    crop = model_spec(model.model_name).input_size
    transform = transforms.Compose([
        transforms.RandomResizedCrop(crop), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([m / 255 for m in IMAGENET_CHANNEL_MEAN],
                             [s / 255 for s in IMAGENET_CHANNEL_STD])])
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(tree), transform), batch_size=batch, shuffle=True,
        drop_last=True, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=device.type == "cuda")
    step = training_step(model, device, compile_model)
    batches = cycle(lambda epoch: iter(loader))

    def one() -> None:
        images, labels = next(batches)
        step(images.to(device, non_blocking=True), labels.to(device, non_blocking=True))

    return one


def bench_train(data: str, model_name: str = "alexnet-paper", batch: int | None = None,
                steps: int = 20, warmup: int = 3, workers: int | None = None,
                compile_model: bool = False, device: str | None = None) -> dict:
    device = pick_device(device)
    batch = batch or default_batch(model_name, device)
    workers = workers if workers is not None else os.cpu_count()
    size = 256 if model_spec(model_name).input_size > 32 else 32
    with tempfile.TemporaryDirectory() as tmp:
        tree, store, jpeg = Path(tmp) / "tree", Path(tmp) / "store", Path(tmp) / "jpeg"
        count = image_tree(Path(data), tree)
        start = time.perf_counter()
        prepare_store(tree, store, size=size, workers=workers, progress=False)
        prepare_rate = count / (time.perf_counter() - start)
        prepare_store(tree, jpeg, size=size, workers=workers, progress=False, encoding="jpeg")
        makers = {
            "model step only (synthetic)":
                lambda m: synthetic_step(m, batch, device, compile_model),
            "ours: store + on-device augmentation":
                lambda m: ours(store, m, batch, device, compile_model),
            "ours: JPEG store, decoded on the device + augmentation":
                lambda m: ours(jpeg, m, batch, device, compile_model),
            "torchvision: ImageFolder + PIL + DataLoader":
                lambda m: torchvision_pipeline(tree, m, batch, workers, device, compile_model),
        }
        calls = {variant: make(build_model(model_name, num_classes=1000))
                 for variant, make in makers.items()}
        seconds = time_interleaved(calls, steps, warmup, device)
        rows = [{"variant": variant, "images_per_s": batch / s}
                for variant, s in seconds.items()]
    rate = [row["images_per_s"] for row in rows]
    return {"benchmark": "end-to-end training (images -> SGD step)",
            "settings": {"model": model_name, "batch": batch, "steps": steps,
                         "workers": workers, "compile": compile_model, "device": str(device),
                         "images": count, "store_size": size,
                         "prepare_img_per_s": round(prepare_rate, 1)},
            "environment": machine(), "rows": rows,
            "ratios": {"ours / model step only": rate[1] / rate[0],
                       "ours / torchvision": rate[1] / rate[3],
                       "ours from JPEG / model step only": rate[2] / rate[0]}}
