"""`alexnet bench model --model-parallel`: the paper's two towers on two devices against one.

A step is forward, cross-entropy, backward and an SGD update on a fixed synthetic batch, as
in `bench model`. The split runs as training runs it under torchrun: two processes, one
tower each (gloo on the CPU, NCCL on two GPUs), started here; with two GPUs the one-process
form (towers on cuda:0 and cuda:1) is timed as well. On the CPU every process gets the
thread count this one has, so two towers use twice the cores of one device, as two GPUs do.

The bytes each tower sends per step are counted from the tensors the exchanges send
(forward and backward) and set beside the figure worked out from the layer shapes.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F

from alexnet.bench import time_steps
from alexnet.bench.model import synthetic_step
from alexnet.data.threads import use_threads
from alexnet.engine.distributed import pick_device
from alexnet.engine.run_files import machine
from alexnet.errors import UserError
from alexnet.models import build_model, model_spec, tower_exchange, towers


def _network(model_name: str) -> torch.nn.Module:
    torch.manual_seed(0)   # the same weights in every process
    return build_model(model_name)


def _batch(model_name: str, batch: int, device: torch.device):
    gen = torch.Generator().manual_seed(1)   # the same batch in every process
    size = model_spec(model_name).input_size
    x = torch.randn(batch, 3, size, size, generator=gen)
    return x.to(device), torch.randint(0, 10, (batch,), generator=gen).to(device)


def _timed(step, steps: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) per call of `step`, after `warmup` calls.
    CPU time is what a step costs even when other jobs share the cores."""
    for _ in range(warmup):
        step()
    cpu = time.process_time()
    wall = time_steps(step, steps, 0, device)
    return wall, (time.process_time() - cpu) / steps


def _timed_split(model: torch.nn.Module, x, y, steps: int, warmup: int,
                 device: torch.device) -> tuple[float, float, float]:
    """(wall and CPU seconds per step, bytes each tower sent per step) of a split network,
    stepped as `bench model` steps one device (channels_last and bf16 autocast on CUDA)."""
    cuda = device.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(memory_format=fmt).train()   # not .to(device): the towers stay put
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                                momentum=0.9)
    x = x.contiguous(memory_format=fmt)

    def step() -> None:
        with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()   # the first step allocates the optimiser state
    local = len(model.local_towers())
    before = model.exchange.sent_bytes
    wall, cpu = _timed(step, steps, max(warmup - 1, 0), device)
    sent = (model.exchange.sent_bytes - before) / local
    return wall, cpu, sent / (steps + max(warmup - 1, 0))


def _tower_process(rank: int, model_name: str, batch: int, steps: int, warmup: int,
                   backend: str, threads: int, folder: str) -> None:
    """One tower of the pair (spawned): time its steps; rank 0 writes the figures."""
    use_threads(threads)    # a process of its own: its entry point sets its threads
    device = torch.device(f"cuda:{rank}" if backend == "nccl" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch_dist.init_process_group(backend, init_method=f"file://{folder}/rendezvous",
                                  rank=rank, world_size=towers.TOWERS)
    try:
        model = towers.split_model(_network(model_name), group=torch_dist.group.WORLD).to(device)
        x, y = _batch(model_name, batch, device)
        torch_dist.barrier()
        seconds, cpu, sent = _timed_split(model, x, y, steps, warmup, device)
        Path(folder, f"cpu-{rank}.json").write_text(json.dumps(cpu))
        if rank == 0:
            size = model_spec(model_name).input_size
            # bf16 autocast on CUDA makes every exchanged tensor 2 bytes.
            itemsize = 2 if device.type == "cuda" else 4
            result = {"seconds": seconds, "sent": sent, "itemsize": itemsize,
                      "shapes": tower_exchange.bytes_per_step(model, size, batch, itemsize),
                      "per_image": tower_exchange.exchanged_values(model, size)}
            Path(folder, "result.json").write_text(json.dumps(result))
        torch_dist.barrier()
    finally:
        torch_dist.destroy_process_group()


def _two_processes(model_name: str, batch: int, steps: int, warmup: int,
                   device: torch.device) -> dict:
    import torch.multiprocessing as mp

    backend = "nccl" if device.type == "cuda" else "gloo"
    with tempfile.TemporaryDirectory(prefix="alexnet-bench-") as folder:
        mp.start_processes(_tower_process, nprocs=towers.TOWERS, start_method="spawn",
                           args=(model_name, batch, steps, warmup, backend,
                                 torch.get_num_threads(), folder))
        result = json.loads(Path(folder, "result.json").read_text())
        result["cpu"] = max(json.loads(Path(folder, f"cpu-{rank}.json").read_text())
                            for rank in range(towers.TOWERS))
        return result


def bench_model_parallel(model_name: str = "alexnet-paper", batch: int | None = None,
                         steps: int = 20, warmup: int = 3, device: str | None = None) -> dict:
    towers.check_splittable(model_name, {})
    device = pick_device(device)
    cuda = device.type == "cuda"
    if cuda and torch.cuda.device_count() < towers.TOWERS:
        raise UserError(f"--model-parallel on GPUs needs 2 CUDA devices, "
                        f"{torch.cuda.device_count()} visible; pass --device cpu to run the "
                        f"towers in two gloo processes")
    device = torch.device("cuda:0") if cuda else device
    batch = batch or (256 if cuda else 16)
    # The towers step in fp32 NCHW on a CPU (gloo), bf16 channels_last on GPUs: so does the
    # one device they are compared with.
    one_device = synthetic_step(_network(model_name), batch, device, False, fast=cuda)
    one, one_cpu = _timed(one_device, steps, warmup, device)
    rows = [{"variant": f"one device ({device})", "images_per_s": batch / one,
             "step_s": one, "cpu_s_per_step": one_cpu}]
    split = _two_processes(model_name, batch, steps, warmup, device)
    rows.append({"variant": f"two towers, 2 {'NCCL' if cuda else 'gloo'} processes",
                 "images_per_s": batch / split["seconds"], "step_s": split["seconds"],
                 "cpu_s_per_step": split["cpu"],   # the busier tower process
                 "bytes_sent_per_tower_per_step": split["sent"]})
    if cuda:
        devices = [torch.device(f"cuda:{i}") for i in range(towers.TOWERS)]
        model = towers.split_model(_network(model_name), devices=devices)
        x, y = _batch(model_name, batch, devices[0])
        seconds, _, sent = _timed_split(model, x, y, steps, warmup, devices[0])
        rows.append({"variant": "two towers, one process (cuda:0 + cuda:1)",
                     "images_per_s": batch / seconds, "step_s": seconds,
                     "bytes_sent_per_tower_per_step": sent})
    notes = [f"step time: {one:.3f} s on one device, {split['seconds']:.3f} s with two towers",
             *([f"CPU time per step: {one_cpu:.3f} s on one device, {split['cpu']:.3f} s in "
                f"the busier tower process"] if not cuda else []),
             f"bytes each tower sends per step: {split['sent']:,.0f} counted, "
             f"{split['shapes']:,} from the layer shapes ({split['itemsize']}-byte values, "
             f"forward + backward)",
             "values per image and tower: " + ", ".join(f"{k} {v:,}"
                                                       for k, v in split["per_image"].items())]
    return {"benchmark": "model step with the towers on two devices (forward+backward+SGD)",
            "settings": {"model": model_name, "batch": batch, "steps": steps,
                         "device": str(device), "amp": "bf16" if cuda else "fp32",
                         "threads_per_process": torch.get_num_threads()},
            "environment": machine(), "rows": rows,
            "ratios": {"two towers / one device": rows[1]["images_per_s"] /
                       rows[0]["images_per_s"]},
            "exchange": {"bytes_per_tower_per_step_counted": split["sent"],
                         "bytes_per_tower_per_step_from_shapes": split["shapes"],
                         "values_per_image_per_tower": split["per_image"]},
            "notes": notes}
