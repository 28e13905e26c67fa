"""Run under torchrun with 2 ranks (gloo): `alexnet-paper` split into its towers, one per
rank, against the single-device network with the same weights, in float64 on the CPU (where the
comparison is well-conditioned: see tests/models/test_towers.py).

Each rank builds the single-device network from the same seed, computes its logits, loss,
gradients and one optimiser step, takes its tower of the initial weights, and does the same
with the pair. Each rank compares its tower's gradients, weights and optimiser state with
its pieces of the single-device ones; the single-device format of the gathered weights and
optimiser state (and loading it back) is checked on rank 0, which writes the results to OUT/result.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F

from alexnet.engine import distributed
from alexnet.engine import model_parallel as mp
from alexnet.models import build_model, tower_exchange, towers

# torchrun runs this file as a script: its folder, not tests/, is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.towers import paper_optimizer, relative  # noqa: E402

CLASSES, BATCH = 10, 2


def main(out: Path) -> None:
    torch.set_num_threads(1)
    info = distributed.setup("cpu", model_parallel=2)
    torch.manual_seed(0)
    full = build_model("alexnet-paper", num_classes=CLASSES, dropout=0.0).double()
    split = mp.build_split(full, "cpu", info)
    initial = {k: v.clone() for k, v in full.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 3, 224, 224, generator=gen, dtype=torch.float64)
    y = torch.randint(0, CLASSES, (BATCH,), generator=gen)

    ref_opt = paper_optimizer(full)
    ref_logits = full(x)
    ref_loss = F.cross_entropy(ref_logits, y)
    ref_loss.backward()
    ref_opt.step()
    ref_params = dict(full.named_parameters())

    opt = paper_optimizer(mp.SingleDeviceNames(split))
    logits = split(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    sent = split.exchange.sent_bytes
    mine = list(towers.tower_parameters(split))
    same_weights = all(torch.equal(p, towers.tower_piece(n, initial[n], t)) for n, t, p in mine)
    gradients = max(relative(p.grad, towers.tower_piece(n, ref_params[n].grad, t))
                    for n, t, p in mine)
    opt.step()
    weights = max(relative(p.detach(), towers.tower_piece(n, ref_params[n].detach(), t))
                  for n, t, p in mine)
    velocity = max(relative(opt.state[p]["velocity"],
                            towers.tower_piece(n, ref_opt.state[ref_params[n]]["velocity"], t))
                   for n, t, p in mine)
    worst = torch.tensor([gradients, weights, velocity, float(same_weights is False)],
                         dtype=torch.float64)
    torch_dist.all_reduce(worst, op=torch_dist.ReduceOp.MAX)

    # The single-device format, gathered on rank 0 (a collective of the pair).
    full_weights = towers.full_state_dict(split)
    state = mp.full_optimizer_state(opt, split)

    if info.rank == 0:
        ref_state = ref_opt.state_dict()
        again = paper_optimizer(mp.SingleDeviceNames(split))   # a resume: rank 0 takes its pieces
        mp.load_full_optimizer_state(again, split, state)
        round_trip = all(torch.equal(again.state[p]["velocity"], opt.state[p]["velocity"])
                         for p in split.parameters())
        result = {
            "same_weights": worst[3].item() == 0,
            "logits": relative(logits.detach(), ref_logits.detach()),
            "loss": abs(loss.item() - ref_loss.item()),
            "gradients": worst[0].item(), "weights_after_step": worst[1].item(),
            "velocity": worst[2].item(),
            "saved_weights": max(relative(v, full.state_dict()[k])
                                 for k, v in full_weights.items()),
            "saved_names": list(full_weights) == list(full.state_dict()),
            "saved_velocity": max(relative(v["velocity"], ref_state["state"][k]["velocity"])
                                  for k, v in state["state"].items()),
            "param_groups_equal": state["param_groups"] == ref_state["param_groups"],
            "state_round_trip": round_trip,
            "sent_bytes": sent,
            "bytes_from_shapes": tower_exchange.bytes_per_step(split, 224, BATCH, itemsize=8),
        }
        (out / "result.json").write_text(json.dumps(result))
    distributed.barrier()
    distributed.cleanup(info)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
