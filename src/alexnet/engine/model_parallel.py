"""Training with the towers on two devices (`model_parallel=2`): building the split network
and keeping its checkpoints in the single-device format.

Under torchrun each rank holds one tower and ranks 2k, 2k+1 form a pair (one network);
pairs are data parallel with each other (4 ranks = 2 pairs). In one process the towers go
on cuda:0 and cuda:1 (`device=cpu` puts both on the CPU, which only checks the split).
Weights and optimiser state are saved as the single-device network would save them: every
rank of a pair gathers its tower's pieces, rank 0 writes.
"""

from __future__ import annotations

import torch
from torch import nn

from alexnet.engine import distributed
from alexnet.errors import UserError
from alexnet.models import towers


def tower_devices(device: str) -> list[torch.device]:
    """The devices of the two towers in one process, from the `device` setting."""
    if device == "cpu":
        return [torch.device("cpu")] * towers.TOWERS
    first = torch.device("cuda:0" if device in ("auto", "cuda") else device)
    if first.type != "cuda":
        raise UserError(f"model_parallel=2 cannot place the towers on device={device!r}; use "
                        f"auto, cuda, cuda:N or cpu")
    index = first.index or 0
    count = torch.cuda.device_count()
    if index + towers.TOWERS > count:
        raise UserError(f"model_parallel=2 in one process puts the towers on cuda:{index} and "
                        f"cuda:{index + 1}, but {count} CUDA device(s) are visible; run one "
                        f"process per tower with torchrun --nproc_per_node=2 (gloo on CPUs)")
    return [torch.device(f"cuda:{index + i}") for i in range(towers.TOWERS)]


def build_split(full: nn.Module, device: str, ddp: distributed.DistInfo) -> nn.Module:
    """`full` (built with the run's seed, on the CPU) split into towers for this process."""
    if ddp.towers > 1:
        return towers.split_model(full, group=ddp.tower_group).to(ddp.device)
    return towers.split_model(full, devices=tower_devices(device))


class SingleDeviceNames:
    """The towers' parameters under their single-device names, as `parameter_groups` reads
    them, so `layer_decay` prefixes and the group order are those of one device."""

    def __init__(self, model: nn.Module):
        self.model = model

    def named_parameters(self):
        return ((name, p) for name, _, p in towers.tower_parameters(self.model))


def _numbering(optimizer: torch.optim.Optimizer, model: nn.Module):
    """For each local parameter in optimiser order: (name, tower, single-device index)."""
    owner = {id(p): (name, tower) for name, tower, p in towers.tower_parameters(model)}
    numbers: dict[str, int] = {}
    rows = []
    for group in optimizer.param_groups:
        rows.append([])
        for p in group["params"]:
            name, tower = owner[id(p)]
            numbers.setdefault(name, len(numbers))
            rows[-1].append((name, tower, numbers[name]))
    return rows


def full_optimizer_state(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict | None:
    """The optimiser's state dict as on one device: parameters numbered by their
    single-device order, each state tensor (a weight-shaped buffer such as the velocity)
    merged from the towers' pieces. With one tower per rank both ranks of the pair call
    it; the first gets the dict, the other None."""
    saved = optimizer.state_dict()
    rows = _numbering(optimizer, model)
    groups, state, tensors = [], {}, {}
    local = iter(range(sum(len(r) for r in rows)))
    for row, group in zip(rows, saved["param_groups"], strict=True):
        numbers = []
        for name, tower, number in row:
            entry = saved["state"].get(next(local), {})
            if number not in numbers:
                numbers.append(number)
            for key, value in entry.items():
                if isinstance(value, torch.Tensor) and value.ndim > 0:
                    tensors.setdefault((number, key, name), {})[tower] = value
                else:
                    state.setdefault(number, {})[key] = value
        groups.append({**group, "params": numbers})
    gathered = model.gather_pieces([(name, by_tower)
                                    for (_, _, name), by_tower in tensors.items()])
    if gathered is None:
        return None
    for (number, key, name), pieces in zip(tensors, gathered, strict=True):
        state.setdefault(number, {})[key] = towers.merge_pieces(name, pieces)
    return {"state": state, "param_groups": groups}


def load_full_optimizer_state(optimizer: torch.optim.Optimizer, model: nn.Module,
                              full: dict) -> None:
    """Load a single-device optimiser state dict: each local parameter takes its piece."""
    rows = _numbering(optimizer, model)
    if len(rows) != len(full["param_groups"]):
        raise UserError("the saved optimiser state does not match this network's parameter "
                        "groups")
    state, groups, local = {}, [], 0
    for row, group in zip(rows, full["param_groups"], strict=True):
        groups.append({**group, "params": list(range(local, local + len(row)))})
        for name, tower, number in row:
            entry = full["state"].get(number)
            if entry:
                state[local] = {k: towers.tower_piece(name, v, tower)
                                if isinstance(v, torch.Tensor) and v.ndim > 0 else v
                                for k, v in entry.items()}
            local += 1
    optimizer.load_state_dict({"state": state, "param_groups": groups})
