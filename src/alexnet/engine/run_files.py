"""The files a run writes beside its checkpoints: the resolved config, the environment and
git revision, metrics.csv (and TensorBoard when installed), the final evaluation; and the one
reader of metrics.csv."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from alexnet import __version__
from alexnet.console import info
from alexnet.engine import run_layout as layout
from alexnet.files import atomic_write_json, atomic_write_text
from alexnet.kernels import lrn_native
from alexnet.kernels.choice import kernel_setting, kernels_ran

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_top1_error", "val_top1_error",
                  "val_top5_error", "images_per_s", "epoch_seconds", "lr_dropped")


def git_revision() -> dict:
    """The commit of the source tree this package runs from, and whether it had changes."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return {"commit": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10)
        return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


# The instruction sets that decide which kernels a CPU runs and how fast (x86 and Arm flags).
CPU_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                "avx512_fp16", "amx_tile", "amx_bf16", "asimd", "sve", "bf16")


def cpu_description() -> dict:
    """The CPU's model name, the instruction sets of CPU_FEATURES it has, the kernels torch
    picked for it, and any cap on them set in the environment."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in (platform.machine(), ""):
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    info = {"model": model, "instruction_sets": [f for f in CPU_FEATURES if f in flags],
            "torch_capability": torch.backends.cpu.get_cpu_capability()}
    caps = {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
            if os.environ.get(k)}
    if caps:
        info["capped_by"] = caps
    return info


def machine(device: torch.device | None = None) -> dict:
    """The computer a result comes from: python, torch, the CPU (model, instruction sets)
    and its cores, and the GPU (`device`'s, or with no device the current one when CUDA is
    available)."""
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(),
            "cpu_details": cpu_description()}
    cuda = torch.cuda.is_available() if device is None else device.type == "cuda"
    if cuda:
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def environment(world_size: int, device: torch.device) -> dict:
    """Everything run.json records of one start of a run."""
    import numpy
    import torchvision

    here = machine(device)
    env = {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv,
        "alexnet": __version__,
        "git": git_revision(),
        "python": here["python"],
        "torch": here["torch"],
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": here["cpu_cores"],
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "world_size": world_size,
    }
    env["cpu_details"] = here["cpu_details"]
    if "gpu" in here:
        env["gpu"] = here["gpu"]
        env["cuda"] = torch.version.cuda
    return env


def kernels_in_use() -> dict:
    """Which kernel forms this process's layers ran (`kernels.choice`), the settings that
    chose them, and how the CPU LRN kernel was built (or why it was not)."""
    return {"ran": kernels_ran(),
            "settings": {kind: kernel_setting(kind) for kind in ("lrn", "local")},
            "lrn_native_build": lrn_native.build_status()}


def record_kernels(out: Path, kernels: dict) -> dict | None:
    """Add `kernels` to this start's entry in run.json; returns what the start before it
    ran (None for a first start, or one that recorded nothing)."""
    path = out / layout.RUN
    try:
        record = json.loads(path.read_text())
        starts = record["starts"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
    starts[-1]["kernels"] = kernels
    write_json(path, record)
    earlier = [s.get("kernels") for s in starts[:-1] if isinstance(s, dict) and s.get("kernels")]
    return earlier[-1] if earlier else None


def write_json(path: Path, value) -> None:
    atomic_write_json(path, value, indent=2, sort_keys=True)


def resume_command(out: Path, world_size: int = 1) -> str:
    """The command that continues the run in `out`."""
    import shlex

    launcher = f"torchrun --nproc_per_node={world_size} -m " if world_size > 1 else ""
    return f"{launcher}alexnet train --out {shlex.quote(str(out))}"


def read_run_json(out: Path) -> dict:
    """run.json of the run in `out` ({} when it is missing or unreadable)."""
    try:
        value = json.loads((out / layout.RUN).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def record_start(out: Path, config_dict: dict, env: dict, resumed: bool) -> None:
    """config.json: the settings of this start (a resume may have changed some, such as
    epochs); run.json: the run's status ("running" now; "stopped" or "finished" when this
    start ends, see `record_status`), the command that resumes it, and every start of the
    run (first and resumes)."""
    write_json(out / layout.CONFIG, config_dict)
    starts = read_run_json(out).get("starts", []) if resumed else []
    write_json(out / layout.RUN, {
        "status": "running", "resume": resume_command(out, env.get("world_size", 1)),
        "starts": [*(starts if isinstance(starts, list) else []), {**env, "resumed": resumed}]})


def record_status(out: Path, status: str, epoch: int, epochs: int) -> None:
    """run.json's status when a start of the run ends: "stopped" (a signal, an error: the
    saved state resumes it) or "finished". A run killed outright stays "running"."""
    value = read_run_json(out)
    value.update(status=status, epoch=epoch, epochs=epochs)
    if status == "finished":
        value.pop("resume", None)
    # A full disk, say, leaves the status as it was: the saved state is what counts.
    with contextlib.suppress(OSError):
        write_json(out / layout.RUN, value)


def write_metrics(out: Path, history: list[dict]) -> None:
    """Rewrite metrics.csv from the whole history (kept in the training state), atomically,
    so a crash never leaves a duplicated or missing row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
    atomic_write_text(out / layout.METRICS, buffer.getvalue())


def read_metrics_rows(path: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of a metrics.csv, each column's value a float (NaN where empty or not a
    number); [] when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


TENSORBOARD_HINT = ("TensorBoard logging is off: the tensorboard package is not installed "
                    "(pip install -e \".[tensorboard]\" or pip install tensorboard turns it on; "
                    "metrics.csv holds the same numbers)")
_hinted = False   # the hint is given once per process (an experiment trains many runs)


class TensorBoard:
    """Scalars per epoch in out/tensorboard when the tensorboard package is installed."""

    def __init__(self, out: Path, enabled: bool):
        global _hinted
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                if not _hinted:
                    info(TENSORBOARD_HINT)
                    _hinted = True
                return
            self.writer = SummaryWriter(str(out / layout.TENSORBOARD))

    def log(self, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
