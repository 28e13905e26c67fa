"""Distributed data parallel through torchrun's environment (no home-made launcher).

`torchrun --nproc_per_node=N -m alexnet train ...` sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous address; `launched()` is the one reader of them, and `setup()` joins the process
group they name (NCCL on GPUs, gloo on CPU). Without them everything runs as a single
process with rank 0.

With `model_parallel=2` (the paper's towers, one per rank) ranks 2k and 2k+1 form a pair
that runs one network; the pairs are data parallel with each other.

Names: `torch.distributed` is imported as `torch_dist` wherever it is used, and this module
as `distributed` (`from alexnet.engine import distributed`).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import torch
import torch.distributed as torch_dist

from alexnet.errors import UserError


class Launch(NamedTuple):
    """Where torchrun placed this process: its rank among all and on this machine."""

    rank: int
    world_size: int
    local_rank: int


def launched() -> Launch:
    """This process's place as torchrun set it (RANK, WORLD_SIZE, LOCAL_RANK); rank 0 of 1
    when it was not started by torchrun."""
    return Launch(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                  int(os.environ.get("LOCAL_RANK", "0")))


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    towers: int = 1          # ranks per network: 2 when each rank runs one tower
    tower_group: object = None   # the ranks of this rank's network (towers > 1)
    data_group: object = None    # the ranks running the same tower of other pairs (None: all)
    owns_group: bool = False     # setup() created the default process group (cleanup ends it)

    @property
    def is_main(self) -> bool:
        """Only rank 0 logs and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def data_rank(self) -> int:
        """Which shard of each batch this rank's network trains on (the towers of a pair
        see the same images)."""
        return self.rank // self.towers

    @property
    def data_world(self) -> int:
        """How many networks train side by side (data parallelism)."""
        return self.world_size // self.towers

    def sum_over_data(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over the data-parallel networks, counting each network once."""
        return all_reduce_sum(tensor, self.data_group)


def pick_device(name: str | None = "auto", local_rank: int = 0) -> torch.device:
    """The device `name` (auto or None: this rank's GPU when there is one, else the CPU);
    UserError when it is not a device name or is not present on this machine."""
    if name in (None, "auto"):
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() \
            else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r}; valid devices: auto, cpu, cuda, cuda:N, mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} needs a CUDA GPU and none is available here; "
                            f"use --device cpu (or device=cpu)")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
        if device.index >= torch.cuda.device_count():
            raise UserError(f"device {str(device)!r} does not exist: this machine has "
                            f"{torch.cuda.device_count()} CUDA GPUs (cuda:0 to "
                            f"cuda:{torch.cuda.device_count() - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {name!r} needs Apple's MPS and it is not available here")
    return device


def setup(device: str = "auto", model_parallel: int = 1) -> DistInfo:
    """Join the torchrun process group if the environment names one; pick this rank's device.
    model_parallel=2 under torchrun: each rank runs one tower, consecutive ranks pair up."""
    rank, world_size, local_rank = launched()
    towers = model_parallel if world_size > 1 else 1
    if world_size % towers:
        raise UserError(f"model_parallel={model_parallel} runs one tower per process and "
                        f"needs a multiple of {model_parallel} processes, not {world_size}")
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = world_size > 1 and not torch_dist.is_initialized()
    if owns:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend, rank=rank, world_size=world_size,
                                      **({"device_id": dev} if dev.type == "cuda" else {}))
    if towers == 1:
        return DistInfo(rank, world_size, local_rank, dev, owns_group=owns)
    tower_group, data_group = pair_groups(rank, world_size, towers)
    return DistInfo(rank, world_size, local_rank, dev, towers, tower_group, data_group, owns)


def pair_groups(rank: int, world_size: int, towers: int) -> tuple[object, object]:
    """(the ranks of this rank's network, the ranks running its tower in other networks).
    Every rank creates every group, in the same order, as torch.distributed requires."""
    mine = {}
    for first in range(0, world_size, towers):
        group = torch_dist.new_group(list(range(first, first + towers)))
        if first <= rank < first + towers:
            mine["tower"] = group
    for tower in range(towers):
        group = torch_dist.new_group(list(range(tower, world_size, towers)))
        if rank % towers == tower:
            mine["data"] = group
    return mine["tower"], mine["data"]


# How gloo and NCCL word a collective that failed because another process of the group went
# away (killed, crashed): torch raises them as plain RuntimeErrors (DistBackendError).
_PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "remote worker",
              "Broken pipe", "NCCL communicator was aborted", "Socket Timeout",
              "Timed out waiting", "recvBytes")


def lost_peer(err: BaseException) -> str | None:
    """The first line of `err`, without its source location, when it is a collective that
    failed because another process of the run went away; else None."""
    text = str(err)
    if not isinstance(err, RuntimeError) or not any(p in text for p in _PEER_LOST):
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    first = first.split("] ", 1)[-1] if first.startswith("[") else first  # "[pair.cc:561] "
    return first.split(". ")[0].rstrip(".")


def cleanup(info: DistInfo) -> None:
    """End what `setup` created: the default process group when it made it, else only the
    tower pairs' groups (a caller's own process group stays as it was)."""
    if not torch_dist.is_initialized():
        return
    if info.owns_group:
        torch_dist.destroy_process_group()
        return
    for group in {info.tower_group, info.data_group} - {None}:
        torch_dist.destroy_process_group(group)


def all_reduce_sum(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """Sum over ranks (of `group`, default all; in place, returned); a no-op in one process."""
    if torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM, group=group)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on any rank (a stop request must stop every rank at once)."""
    if not (torch_dist.is_initialized() and torch_dist.get_world_size() > 1):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return bool(t.item())


@contextlib.contextmanager
def main_rank_first() -> Iterator[None]:
    """Rank 0 runs the block first (it prepares the data into the shared cache, or downloads
    it); the other ranks wait for it, then run the block themselves (and find the work
    done). The wait has its own gloo group with a long timeout: preparing ImageNet takes
    hours, longer than the default group's 30 minutes. When rank 0 fails, the others stop
    with one sentence instead of waiting."""
    if not (torch_dist.is_initialized() and torch_dist.get_world_size() > 1):
        yield
        return
    group = torch_dist.new_group(backend="gloo", timeout=timedelta(days=7))
    flag = torch.zeros(1)
    if torch_dist.get_rank() == 0:
        try:
            yield
            flag += 1
        finally:
            torch_dist.broadcast(flag, src=0, group=group)
    else:
        torch_dist.broadcast(flag, src=0, group=group)
        if not flag.item():
            raise UserError("rank 0 could not open the training data (its message says why)")
        yield
    torch_dist.destroy_process_group(group)


def barrier() -> None:
    if torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        torch_dist.barrier()


@contextlib.contextmanager
def joined(device: str = "auto", model_parallel: int = 1) -> Iterator[DistInfo]:
    """`setup()` for the block, `cleanup()` after it. A block that ends normally has let go
    of what used the group (a network, its DDP reducer, their pending gloo work): it is
    collected here while the group still exists (freed after it, at exit, it aborted a rank
    now and then), and the ranks wait for each other before the group goes (tearing gloo
    down while a peer still works aborts that peer)."""
    info = setup(device, model_parallel)
    try:
        yield info
        gc.collect()
        barrier()
    finally:
        cleanup(info)


def wrap_model(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DistributedDataParallel around `model` when several networks train side by side (with
    towers: over the ranks that hold the same tower)."""
    if info.data_world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, process_group=info.data_group)
