"""Copy an image-folder tree with every image re-encoded as JPEG at one quality.

    python tools/reencode_jpeg.py SRC DST --quality Q [--subsampling 4:2:0]

For measuring what lossy compression costs a network (docs/results/jpeg-quality/): the
shared CIFAR-10 images are already JPEG (quality 75, 4:2:0 chroma), so a tree re-encoded at
a lower quality adds a known amount of quantisation on top, with the same file names (and so
the same held-out images) as the source.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def reencode_tree(src: Path, dst: Path, quality: int, subsampling: str) -> int:
    count = 0
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        target = (dst / path.relative_to(src)).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            image.convert("RGB").save(target, "JPEG", quality=quality,
                                      subsampling=SUBSAMPLING[subsampling])
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--quality", type=int, required=True, help="JPEG quality, 1-95")
    parser.add_argument("--subsampling", choices=sorted(SUBSAMPLING), default="4:2:0")
    args = parser.parse_args()
    if not args.src.is_dir():
        parser.error(f"{args.src} is not a folder")
    if not 1 <= args.quality <= 95:
        parser.error(f"--quality {args.quality} is outside 1-95")
    count = reencode_tree(args.src, args.dst, args.quality, args.subsampling)
    print(f"{count} images re-encoded at quality {args.quality} ({args.subsampling}) "
          f"into {args.dst}")


if __name__ == "__main__":
    main()
