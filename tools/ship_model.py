"""Ship a trained run as a pretrained model inside the package (a maintainer's step).

    python tools/ship_model.py RUN_DIR NAME [NOTE]

Copies RUN_DIR/last.safetensors (the weights `final.json` evaluated) to
src/alexnet/pretrained/NAME.safetensors and writes NAME.json beside it: the model card with
the exact `alexnet train` command, the data it trained on (what `prepare` read into the
store), the recipe, the held-out errors, the hardware and wall time of the run, and the
file's SHA-256 (checked whenever the shipped model is loaded).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

from alexnet.data.store import MANIFEST
from alexnet.engine import run_layout as layout
from alexnet.files import atomic_path, atomic_write_json, file_sha256

PRETRAINED = Path(__file__).resolve().parents[1] / "src" / "alexnet" / "pretrained"


def training_data(config: dict | None) -> dict | None:
    """Which images the run trained on: the source its store was prepared from, as the
    store's manifest records it; None when the store is no longer there to ask."""
    store = Path((config or {}).get("data") or "")
    try:
        manifest = json.loads((store / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return {"store": str(store), "images": manifest.get("count"),
            **{k: manifest.get(k) for k in ("source", "source_kind", "encoding")}}


def model_card(run: Path, name: str, digest: str) -> dict:
    from alexnet.engine.checkpoint import load_model

    final = json.loads((run / layout.FINAL).read_text())
    starts = json.loads((run / layout.RUN).read_text())["starts"]
    first = starts[0]
    loaded = load_model(run / layout.LAST_WEIGHTS)
    return {
        "name": name,
        "model": loaded.name,
        "options": loaded.model.model_options,
        "classes": loaded.classes,
        "class_names": loaded.meta.get("class_names"),
        "preprocessing": loaded.preprocessing.to_checkpoint()[0],
        "recipe": loaded.meta.get("recipe"),
        "config": loaded.meta.get("config"),
        "data": training_data(loaded.meta.get("config")),
        "command": shlex.join(["alexnet", *first["argv"][1:]]),
        # A run that was stopped and resumed (possibly with a new epochs=) lists each start.
        "starts": [shlex.join(["alexnet", *start["argv"][1:]])
                   for start in starts],
        "git": first.get("git"),
        "trained_on": {k: first.get(k) for k in ("device", "gpu", "cpu_count", "cpu_details",
                                                 "torch", "platform", "time_utc")},
        "train_images": final.get("train_images"),
        "held_out_images": final.get("held_out_images"),
        "held_out": final.get("held_out"),
        # From this epoch on the held-out images were trained on too: the errors above are
        # then no held-out errors (the note gives the figures measured before).
        "held_out_trained_from_epoch": final.get("held_out_trained_from_epoch"),
        "wall_seconds": final.get("wall_seconds"),
        "sha256": digest,
    }


def main(run_dir: str, name: str, note: str | None = None) -> None:
    run = Path(run_dir)
    PRETRAINED.mkdir(exist_ok=True)
    target = PRETRAINED / f"{name}.safetensors"
    with atomic_path(target) as tmp:    # like every file the project writes
        shutil.copyfile(run / layout.LAST_WEIGHTS, tmp)
    card = model_card(run, name, file_sha256(target))
    if note:    # what the card's fields do not say (how the run relates to the recipes)
        card = {"name": card.pop("name"), "note": note, **card}
    atomic_write_json(PRETRAINED / f"{name}.json", card, indent=2)
    print(json.dumps({k: card[k] for k in ("name", "held_out", "sha256", "command")}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(*sys.argv[1:])
