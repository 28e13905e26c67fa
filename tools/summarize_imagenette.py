"""Summarise docs/results/imagenette/ into its results.json (a maintainer's step).

    python tools/summarize_imagenette.py [RESULTS_FOLDER]

What it reads (every number comes from a committed file; errors are percent, top-1/top-5):
- `paper-lr0.001-s<seed>/`: the baseline runs (config, run, metrics, final.json); final.json
  holds the error on the 500 training photos each run held out (its last weights).
- `ensemble-ten.json`, `ensemble-center.json`: `alexnet ensemble` of the baseline runs on
  Imagenette's val split (3,925 photos, never tuned on); its members' rows are the per-seed
  val-split errors (each run's best.safetensors, chosen on its held-out photos).
- `paper-lr0.001-nodropout-s0/`, `paper-lr0.001-nolrn-s0/`: the dropout-off and LRN-off arms
  (seed 0, paired with the baseline's seed 0), with `val-split-ten.json` and
  `val-split-center.json` (`alexnet eval RUN --json`) where they were evaluated.
- `<run>/train-store-center-last.json`: `alexnet eval RUN/last.safetensors` on the whole
  training store (centre): with final.json's held-out error of the same weights it gives the
  error on the images the run trained on, in eval mode (dropout off), the overfitting measure.
- `paper-lr-s0/`: the stalled run at the paper's own lr.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from alexnet.engine import run_layout as layout
from alexnet.engine.run_files import read_metrics_rows

VIEWS = ("ten", "center")
BASELINE, STALLED = "paper-lr0.001-s", "paper-lr-s0"
ARMS = {"dropout": "paper-lr0.001-nodropout-s0", "lrn": "paper-lr0.001-nolrn-s0"}  # each off
REACH = (60.0, 50.0, 40.0)          # held-out centre top-1 (%) whose first epoch is reported


def pct(fraction: float) -> float:
    return round(100 * fraction, 2)


def errors(result: dict) -> dict:
    return {"top1": pct(result["top1_error"]), "top5": pct(result["top5_error"])}


def spread(values: list[float]) -> dict:
    return {"per_seed": values, "mean": round(statistics.mean(values), 2),
            "sd": round(statistics.stdev(values), 2) if len(values) > 1 else None}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def run_facts(run: Path) -> dict:
    """Held-out errors, length, wall time and convergence of one run, from its files."""
    final, rows = read_json(run / layout.FINAL), read_metrics_rows(run / layout.METRICS)
    held = {v: errors(final["held_out"][v]) for v in VIEWS}
    val = [100 * r["val_top1_error"] for r in rows]
    first = {f"<= {limit:g}%": next((int(r["epoch"]) for r, e in zip(rows, val, strict=True)
                                     if e <= limit), None) for limit in REACH}
    return {"held_out_500": held, "epochs": final["epochs"],
            "wall_minutes": round(final["wall_seconds"] / 60, 1),
            "best_held_out_center_top1": round(min(val), 2),
            "first_epoch_held_out_center_top1": first,
            "last_train_loss": round(rows[-1]["train_loss"], 3),
            "last_train_top1_training_mode": pct(rows[-1]["train_top1_error"])}


def trained_on_error(run: Path) -> float | None:
    """Centre top-1 on the images the run trained on, eval mode: the whole store's error less
    the held-out images' (same last weights). None when the file is missing."""
    path = run / "train-store-center-last.json"
    if not path.is_file():
        return None
    whole, final = read_json(path), read_json(run / layout.FINAL)
    held_n, held_err = final["held_out_images"], final["held_out"]["center"]["top1_error"]
    wrong = whole["top1_error"] * whole["images"] - held_err * held_n
    return pct(wrong / (whole["images"] - held_n))


def by_run(ensemble: dict) -> dict:
    """Member rows of an ensemble result keyed by their run folder's name."""
    return {Path(m["checkpoint"]).parent.name: errors(m) for m in ensemble["members"]}


def ablation(off: Path, baseline: dict | None) -> dict | None:
    """A layer switched off (seed 0) beside the baseline's seed 0; None until it finished."""
    if not (off / layout.FINAL).is_file():
        return None
    without = run_facts(off)
    without["val_split"] = {v: errors(read_json(off / f"val-split-{v}.json")) for v in VIEWS
                            if (off / f"val-split-{v}.json").is_file()}
    without["trained_on_center_top1"] = trained_on_error(off)
    return {"with (seed 0)": baseline, "without (seed 0)": without}


def summarize(root: Path) -> dict:
    seeds = sorted(int(p.name.removeprefix(BASELINE)) for p in root.glob(f"{BASELINE}*")
                   if p.name.removeprefix(BASELINE).isdigit() and (p / layout.FINAL).is_file())
    ensembles = {v: read_json(root / f"ensemble-{v}.json") for v in VIEWS
                 if (root / f"ensemble-{v}.json").is_file()}
    members = {v: by_run(e) for v, e in ensembles.items()}
    runs = {}
    for seed in seeds:
        name = f"{BASELINE}{seed}"
        facts = run_facts(root / name)
        facts["val_split"] = {v: members[v][name] for v in VIEWS if name in members.get(v, {})}
        facts["trained_on_center_top1"] = trained_on_error(root / name)
        runs[f"seed {seed}"] = facts
    val_seeds = [s for s in runs if len(runs[s]["val_split"]) == len(VIEWS)]
    baseline = {
        "val_split": {v: {k: spread([runs[s]["val_split"][v][k] for s in val_seeds])
                          for k in ("top1", "top5")} for v in VIEWS} if val_seeds else {},
        "held_out_500": {v: {k: spread([runs[s]["held_out_500"][v][k] for s in runs])
                             for k in ("top1", "top5")} for v in VIEWS} if runs else {},
    }
    ten_gain = {
        "val_split_top1_points": spread([round(runs[s]["val_split"]["center"]["top1"]
                                               - runs[s]["val_split"]["ten"]["top1"], 2)
                                         for s in val_seeds]) if val_seeds else None,
        "held_out_500_top1_points": spread([round(runs[s]["held_out_500"]["center"]["top1"]
                                                  - runs[s]["held_out_500"]["ten"]["top1"], 2)
                                            for s in runs]) if runs else None,
    }
    ensemble = {}
    for view, result in ensembles.items():
        rows = members[view].values()
        mean = {k: statistics.mean(r[k] for r in rows) for k in ("top1", "top5")}
        together = errors(result["ensemble"])
        ensemble[view] = {"members": sorted(members[view]), "ensemble": together,
                          "mean_member": {k: round(v, 2) for k, v in mean.items()},
                          "best_member_top1": min(r["top1"] for r in rows),
                          "gain_over_mean_member_top1_points": round(
                              mean["top1"] - together["top1"], 2)}
    ablations = {name: ablation(root / folder, runs.get("seed 0"))
                 for name, folder in ARMS.items()}
    stalled = None
    if (root / STALLED / layout.METRICS).is_file():
        rows = read_metrics_rows(root / STALLED / layout.METRICS)
        stalled = {"epochs_run": len(rows),
                   "train_loss": [round(r["train_loss"], 3) for r in rows],
                   "held_out_center_top1": [pct(r["val_top1_error"]) for r in rows],
                   "lr": [r["lr"] for r in rows]}
    config = read_json(root / f"{BASELINE}{seeds[0]}" / layout.CONFIG) if seeds else {}
    return {
        "what": "alexnet-paper with the imagenet-paper recipe on Imagenette (10 ILSVRC-2012 "
                "classes; 9,469 training photos, 500 of them held out for choosing; val split "
                "3,925 photos, never tuned on); top-1/top-5 error in percent",
        "recipe": config.get("recipe"), "model": config.get("model"),
        "lr": config.get("lr"), "epochs": config.get("epochs"), "seeds": seeds,
        "baseline": baseline, "runs": runs,
        "ten_patches_vs_centre": ten_gain, "ensemble": ensemble,
        **ablations, "stalled_at_the_papers_lr": stalled,
    }


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results/imagenette")
    (root / "results.json").write_text(json.dumps(summarize(root), indent=2) + "\n")
    print(root / "results.json")
