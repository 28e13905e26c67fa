"""10-view evaluation throughput (views/s): on-device batched views against torchvision's
per-image TenCrop.

ours: uint8 images [N, 256, 256, 3] -> `view_probabilities(views="ten")` (the 10 patches cut
and normalised as one batched op on the device, softmax averaged).
torchvision: per image, `TenCrop(224)` + normalisation on the CPU, stacked, copied to the
device, the same model, softmax averaged. Both start from decoded uint8 images, so this
measures the view pipeline and the model, not JPEG decoding.
"""

from __future__ import annotations

import torch

from alexnet.bench import environment, time_steps
from alexnet.data.preprocess import IMAGENET_CHANNEL_MEAN, IMAGENET_CHANNEL_STD, Preprocessing
from alexnet.models import build_model, model_spec


def bench_eval(model_name: str = "alexnet-paper", images: int | None = None,
               batch: int | None = None, steps: int = 5, warmup: int = 1,
               device: str | None = None) -> dict:
    from torchvision import transforms

    from alexnet.engine.evaluate import view_probabilities

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    images = images or (4000 if cuda else 32)
    batch = batch or (400 if cuda else 16)   # images per model call (x10 views)
    crop = model_spec(model_name).input_size
    size = 256 if crop > 32 else 32
    pre = Preprocessing(size, crop, channel_mean=IMAGENET_CHANNEL_MEAN,
                        channel_std=IMAGENET_CHANNEL_STD)
    model = build_model(model_name).to(device).eval()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    amp = torch.bfloat16 if cuda else None
    data = torch.randint(0, 256, (images, size, size, 3), dtype=torch.uint8)
    on_device = data.to(device)

    def ours() -> None:
        view_probabilities(model, on_device, pre, "ten", batch_size=batch, amp_dtype=amp)

    ten_crop = transforms.TenCrop(crop)
    mean, std = pre.mean_tensor(), pre.std_tensor()

    @torch.no_grad()
    def standard() -> None:
        for start in range(0, images, batch):
            views = torch.stack([torch.stack(ten_crop(image.permute(2, 0, 1)))
                                 for image in data[start:start + batch]])   # [B, 10, 3, c, c]
            x = ((views.float() - mean) / std).flatten(0, 1).to(device, non_blocking=True)
            with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
                probs = model(x).float().softmax(dim=1)
            probs.view(-1, 10, probs.shape[-1]).mean(dim=1)

    rows = []
    for variant, run in [("ours: batched views on the device", ours),
                         ("torchvision: per-image TenCrop on the CPU", standard)]:
        seconds = time_steps(run, steps, warmup, device, label=variant)
        rows.append({"variant": variant, "images_per_s": 10 * images / seconds,
                     "unit": "views/s"})
    return {"benchmark": "10-view evaluation", "environment": environment(),
            "settings": {"model": model_name, "images": images, "batch": batch,
                         "device": str(device), "amp": "bf16" if cuda else "fp32"},
            "rows": rows,
            "ratios": {"ours / torchvision": rows[0]["images_per_s"] / rows[1]["images_per_s"]}}
