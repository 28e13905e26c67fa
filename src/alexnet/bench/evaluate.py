"""10-view evaluation throughput (views/s): on-device batched views against torchvision's
per-image TenCrop, and against the network's forward alone.

ours: uint8 images [N, 256, 256, 3] -> `view_probabilities(views="ten")` (the 10 patches cut
and normalised as one batched op on the device, softmax averaged).
torchvision: per image, `TenCrop(224)` + normalisation on the CPU, stacked, copied to the
device, the same model, softmax averaged. Both start from decoded uint8 images, so this
measures the view pipeline and the model, not JPEG decoding.
forward only: the same model on the first batch's own normalised views, already on the
device and in the same chunks, again and again: the ceiling the evaluation approaches (the
same inputs and the same calls as ours, without cutting the views; an earlier version fed it
random normal tensors, which on an AVX2 CPU ran at half the speed of real views, so ours
measured twice its "ceiling"). Every row runs the fast path (`engine.fast_path`).
"""

from __future__ import annotations

import torch

from alexnet.bench import time_interleaved
from alexnet.data.normalization import imagenet_preprocessing
from alexnet.data.views import ten_views
from alexnet.engine.distributed import pick_device
from alexnet.engine.evaluate import view_probabilities
from alexnet.engine.fast_path import prepare_for_inference, use_channels_last
from alexnet.engine.run_files import machine
from alexnet.models import build_model, model_spec


def bench_eval(model_name: str = "alexnet-paper", images: int | None = None,
               batch: int | None = None, steps: int = 5, warmup: int = 1,
               device: str | None = None) -> dict:
    from torchvision import transforms

    device = pick_device(device)
    cuda = device.type == "cuda"
    crop = model_spec(model_name).input_size
    small = crop <= 32
    images = images or (4000 if cuda else 2000 if small else 32)
    batch = batch or (400 if cuda else 50 if small else 16)  # images per call (x10 views)
    size = 32 if small else 256
    pre = imagenet_preprocessing(size, crop)
    model = build_model(model_name).to(device).eval()
    amp = prepare_for_inference(model)
    fmt = torch.channels_last if use_channels_last(None, device) else torch.contiguous_format
    data = torch.randint(0, 256, (images, size, size, 3), dtype=torch.uint8)
    on_device = data.to(device)

    def ours() -> None:
        view_probabilities(model, on_device, pre, "ten", batch_size=10 * batch, amp_dtype=amp)

    ten_crop = transforms.TenCrop(crop)
    mean, std = pre.mean_tensor(), pre.std_tensor()

    @torch.no_grad()
    def standard() -> None:
        for start in range(0, images, batch):
            views = torch.stack([torch.stack(ten_crop(image.permute(2, 0, 1)))
                                 for image in data[start:start + batch]])   # [B, 10, 3, c, c]
            x = ((views.float() - mean) / std).flatten(0, 1).to(device, non_blocking=True)
            with torch.autocast(device.type, amp or torch.float32, enabled=amp is not None):
                probs = model(x.contiguous(memory_format=fmt)).float().softmax(dim=1)
            probs.view(-1, 10, probs.shape[-1]).mean(dim=1)

    views = ten_views(on_device[:batch], pre).flatten(0, 1).contiguous(memory_format=fmt)

    @torch.no_grad()
    def forward_only() -> None:
        for _ in range(0, images, batch):
            with torch.autocast(device.type, amp or torch.float32, enabled=amp is not None):
                model(views)

    seconds = time_interleaved({"ours: batched views on the device": ours,
                                "torchvision: per-image TenCrop on the CPU": standard,
                                "forward only (normalised views on the device)": forward_only},
                               steps, warmup, device, rounds=min(steps, 5))
    rows = [{"variant": variant, "images_per_s": 10 * images / s, "unit": "views/s"}
            for variant, s in seconds.items()]
    rate = [row["images_per_s"] for row in rows]
    return {"benchmark": "10-view evaluation", "environment": machine(),
            "settings": {"model": model_name, "images": images, "batch": batch,
                         "device": str(device), "amp": "bf16" if amp else "fp32",
                         "channels_last": fmt == torch.channels_last,
                         "threads": torch.get_num_threads()},
            "rows": rows,
            "ratios": {"ours / torchvision": rate[0] / rate[1],
                       "ours / forward only": rate[0] / rate[2]}}
