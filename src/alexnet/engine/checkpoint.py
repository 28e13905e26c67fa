"""Checkpoint files: model weights as safetensors with everything needed to use them.

A weights file holds the state dict plus `preprocessing.*` tensors, and string metadata:
`format`, `model` (registry name), `options` (JSON), `classes` (JSON list), `preprocessing`
(JSON) and any extra JSON-able entries. It rebuilds a usable model on its own, and loading
it runs no code: safetensors holds only tensors and strings.

Every write is atomic (`alexnet.files.atomic_path`): a crash mid-write leaves the previous
file intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from alexnet.data.preprocess import Preprocessing
from alexnet.errors import UserError
from alexnet.files import atomic_path

FORMAT = "alexnet-weights/1"
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
RUN_DIR_CANDIDATES = ("best.safetensors", "last.safetensors")


@dataclass
class LoadedModel:
    model: nn.Module
    classes: list[str]
    preprocessing: Preprocessing
    path: Path
    meta: dict = field(default_factory=dict)  # the extra JSON entries, decoded

    @property
    def name(self) -> str:
        return self.model.model_name


def save_weights(path: str | os.PathLike, model: nn.Module, *, classes: list[str],
                 preprocessing: Preprocessing, extra: dict | None = None) -> None:
    """Write `model`'s weights and what is needed to rebuild and use it, atomically."""
    from safetensors.torch import save_file

    if not hasattr(model, "model_name"):
        raise ValueError("only models made by alexnet.models.build_model can be saved")
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    model = getattr(model, "module", model)      # unwrap DistributedDataParallel
    pre_info, pre_tensors = preprocessing.to_checkpoint()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update(pre_tensors)
    metadata = {
        "format": FORMAT,
        "model": model.model_name,
        "options": json.dumps(model.model_options),
        "classes": json.dumps(list(classes)),
        "preprocessing": json.dumps(pre_info),
    }
    for key, value in (extra or {}).items():
        metadata[key] = json.dumps(value)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def shipped_models() -> list[str]:
    """Names of the pretrained models inside the package."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))


def model_card(name: str) -> dict:
    """The card shipped beside a pretrained model ({} when there is none)."""
    card = PRETRAINED_DIR / f"{name}.json"
    return json.loads(card.read_text()) if card.is_file() else {}


def verified_shipped(name: str) -> Path:
    """A shipped model's file, after checking it against the SHA-256 of its card."""
    import hashlib

    path = PRETRAINED_DIR / f"{name}.safetensors"
    expected = model_card(name).get("sha256")
    if expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise UserError(f"the shipped model {name!r} at {str(path)!r} does not match the "
                        f"SHA-256 of its model card; reinstall the package")
    return path


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """A weights file, a run folder (its best, else last, weights) or a shipped model name."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in RUN_DIR_CANDIDATES:
            if (path / candidate).is_file():
                return path / candidate
        raise UserError(f"run folder {str(path)!r} holds no checkpoint "
                        f"({' or '.join(RUN_DIR_CANDIDATES)})")
    if str(spec) in shipped_models():
        return verified_shipped(str(spec))
    names = ", ".join(shipped_models()) or "none yet"
    raise UserError(f"no checkpoint file, run folder or shipped model named {str(spec)!r}; "
                    f"shipped models: {names}")


def read_weights_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a weights file; anything unreadable is a UserError."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{str(path)!r} is not a readable alexnet weights file ({err})") from None
    if metadata.get("format") != FORMAT:
        raise UserError(f"{str(path)!r} is not an alexnet weights file "
                        f"(format {metadata.get('format')!r}, expected {FORMAT!r})")
    return tensors, metadata


def load_model(spec: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model stored at `spec` (see `resolve_checkpoint`), in eval mode."""
    from alexnet.models import build_model

    path = resolve_checkpoint(spec)
    tensors, metadata = read_weights_file(path)
    try:
        options = json.loads(metadata["options"])
        classes = json.loads(metadata["classes"])
        preprocessing = Preprocessing.from_checkpoint(metadata["preprocessing"], tensors)
        model = build_model(metadata["model"], **options)
        weights = {k: v for k, v in tensors.items() if not k.startswith("preprocessing.")}
        model.load_state_dict(weights, strict=True)
    except (KeyError, json.JSONDecodeError, RuntimeError) as err:
        raise UserError(f"{str(path)!r} is a damaged alexnet weights file ({err})") from None
    reserved = {"format", "model", "options", "classes", "preprocessing"}
    meta = {k: json.loads(v) for k, v in metadata.items() if k not in reserved}
    return LoadedModel(model.to(device).eval(), classes, preprocessing, path, meta)


# ---------------------------------------------------------------------------------------------
# Training state: what a run needs to continue exactly where it stopped.
#
# A `<name>.state.pt` file holds plain containers of tensors, numbers and strings (model and
# optimiser state dicts, the schedule, epoch and step, every RNG state, the data position) and
# is read with `torch.load(weights_only=True)`, which refuses any pickle that would build
# arbitrary objects or run code. The model weights are in it too, so weights and optimiser
# state always come from one atomic write.

STATE_SUFFIX = ".state.pt"
STATE_FORMAT = "alexnet-train-state/1"


def save_training_state(path: str | os.PathLike, state: dict) -> None:
    """Write `state` (tensors, numbers, strings, lists, tuples, dicts) atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_state(path: str | os.PathLike) -> dict:
    """Read a training state written by `save_training_state`; never unpickles code."""
    import pickle

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no training state at {str(path)!r}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{str(path)!r} is not a loadable training state, refused "
                        f"({reason[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"{str(path)!r} is not an alexnet training state "
                        f"(expected format {STATE_FORMAT!r})")
    return state



def capture_rng(generator: torch.Generator | None = None) -> dict:
    """Every RNG a training step draws from: python, numpy, torch CPU and CUDA, and the
    augmentation `generator`; as tensors and plain numbers (weights_only-loadable)."""
    import random

    import numpy as np

    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["augment"] = generator.get_state()
    return state


def restore_rng(state: dict, generator: torch.Generator | None = None) -> None:
    """Undo `capture_rng`: put every generator back where it was."""
    import random

    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["key"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "augment" in state:
        generator.set_state(state["augment"])
