"""Copy an image-folder tree with every image degraded in one controlled way.

    python tools/degrade_images.py SRC DST --jpeg-quality Q     # re-encode as JPEG (4:2:0)
    python tools/degrade_images.py SRC DST --halve-chroma       # colour at half the resolution, PNG

For measuring what lossy compression costs a network (docs/results/jpeg-quality/). The shared
CIFAR-10 images are already JPEG (quality 75, colour stored at 16x16 by 4:2:0 subsampling),
so each copy adds a known amount of one loss on top of what they have: more quantisation
(a lower quality), or colour at half its resolution again (8x8, written losslessly, so that
nothing else changes). File names stay the same, and so do the held-out images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from alexnet.data.folders import image_files

CHROMA_420 = 2  # PIL's code for 4:2:0 subsampling


def halve_chroma(image: Image.Image) -> Image.Image:
    luma, blue, red = image.convert("YCbCr").split()
    size = image.size
    half = (max(1, size[0] // 4), max(1, size[1] // 4))  # the given 4:2:0 colour is size / 2
    blue, red = (channel.resize(half, Image.BOX).resize(size, Image.BILINEAR)
                 for channel in (blue, red))
    return Image.merge("YCbCr", (luma, blue, red)).convert("RGB")


def degrade_tree(src: Path, dst: Path, jpeg_quality: int | None, chroma: bool) -> int:
    count = 0
    suffix = ".png" if chroma else ".jpg"
    for path in image_files(src):  # the images a training run would read, nothing else
        target = (dst / path.relative_to(src)).with_suffix(suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if chroma:
                halve_chroma(rgb).save(target, "PNG")
            else:
                rgb.save(target, "JPEG", quality=jpeg_quality, subsampling=CHROMA_420)
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--jpeg-quality", type=int, help="re-encode as JPEG at this quality, 1-95")
    how.add_argument("--halve-chroma", action="store_true",
                     help="halve the colour resolution of the given images, write PNG")
    args = parser.parse_args()
    if not args.src.is_dir():
        parser.error(f"{args.src} is not a folder")
    if args.jpeg_quality is not None and not 1 <= args.jpeg_quality <= 95:
        parser.error(f"--jpeg-quality {args.jpeg_quality} is outside 1-95")
    count = degrade_tree(args.src, args.dst, args.jpeg_quality, args.halve_chroma)
    what = "with colour at half resolution" if args.halve_chroma else \
        f"as JPEG quality {args.jpeg_quality}"
    print(f"{count} images written {what} into {args.dst}")


if __name__ == "__main__":
    main()
