"""Range-checked numbers for command-line options.

`type=count("--batch-size")` reads an integer and refuses one outside its range with a
UserError: one sentence naming the option, the value and the allowed range, and exit 2.
"""

from __future__ import annotations

import argparse
import math

from alexnet.choices import AMP_MODES, VIEWS
from alexnet.errors import UserError
from alexnet.files import output_file as check
from alexnet.files import output_path

MAX_COUNT = 2 ** 31 - 1


def count(option: str, low: int = 1, high: int = MAX_COUNT):
    """An argparse type: an integer from `low` to `high`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise UserError(f"{option} must be {_range(low, high)}, got {value}")
        return value

    return parse


def number(option: str, low: float = 0.0, high: float = math.inf, low_open: bool = False):
    """An argparse type: a finite float from `low` (excluded when `low_open`) to `high`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) \
                or value > high:
            bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
            if high != math.inf:
                bound += f" and at most {high:g}"
            raise UserError(f"{option} must be a finite number {bound}, got {text}")
        return value

    return parse


def output_file(option: str):
    """An argparse type: a file to write (not empty, names not too long, not a folder)."""
    return lambda text: check(text, option)


def output_folder(option: str):
    """An argparse type: a folder to write into (not empty, names not too long)."""
    return lambda text: output_path(text, option)


def _range(low: int, high: int) -> str:
    return f"at least {low:,}" if high == MAX_COUNT else f"from {low:,} to {high:,}"


def add_amp_option(parser) -> None:
    """`--amp`, as the training setting `amp=`: how the network computes."""
    parser.add_argument("--amp", default="auto", choices=AMP_MODES,
                        help="bf16 autocast: auto (on CUDA and on CPUs with native bf16), "
                        "bf16, or none (fp32)")


DEVICE_HELP = "auto (default: this machine's CUDA GPU when it has one, else the CPU), cpu, " \
    "cuda, cuda:1, ..."


def add_device_option(parser) -> None:
    """`--device`, worded the same for every command (and as the training setting device=)."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_threads_option(parser) -> None:
    """`--threads N`: torch's CPU threads for the command (see alexnet.data.threads)."""
    parser.add_argument("--threads", type=count("--threads", 1, 4096), metavar="N",
                        help="CPU threads for torch (default: the cores other processes leave "
                        "free, by the load average, or OMP_NUM_THREADS when set)")


def add_views_option(parser, help_text: str) -> None:
    """`--views center|ten`: the centre crop, or the paper's ten patches."""
    parser.add_argument("--views", default="center", choices=VIEWS, help=help_text)


def add_evaluation_data(parser, whose: str, averaged: str) -> None:
    """What `eval` and `ensemble` evaluate on: --data and --views. whose: "checkpoint's" or
    "checkpoints'"; averaged: how the ten views' softmax outputs are averaged."""
    parser.add_argument("--data", required=True, help="a prepared store or an image folder "
                        f"(prepared once into the cache at the {whose} image size)")
    add_views_option(parser, "center: the centre crop (default); ten: the paper's 10 patches, "
                     f"softmax {averaged}")


def add_evaluation_run(parser) -> None:
    """How `eval` and `ensemble` run: --batch-size, --device, --amp, --threads."""
    parser.add_argument("--batch-size", type=count("--batch-size"), default=256,
                        help="network inputs per forward pass (ten views count ten; default 256)")
    add_device_option(parser)
    add_amp_option(parser)
    add_threads_option(parser)
