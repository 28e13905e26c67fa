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

from alexnet.console import info
from alexnet.data.normalization import Preprocessing
from alexnet.engine import run_layout as layout
from alexnet.engine.integrity import (
    NOT_A_TORCH_FILE,
    check_model_card,
    check_training_state,
    check_weights_metadata,
    pickles_code,
    read_checksummed,
    torch_file_kind,
    weights_only_reason,
    write_checksummed,
)
from alexnet.errors import UserError
from alexnet.files import atomic_path, file_sha256
from alexnet.models import build_model

FORMAT = "alexnet-weights/1"
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


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
    """The card shipped beside a pretrained model: a JSON object holding at least the
    SHA-256 of the weights; UserError when it is missing or malformed."""
    return check_model_card(name, PRETRAINED_DIR / f"{name}.json")


def verified_shipped(name: str) -> Path:
    """A shipped model's file, after checking it against the SHA-256 of its card (a model
    without a card or SHA-256 is refused, not trusted)."""
    path = PRETRAINED_DIR / f"{name}.safetensors"
    expected = model_card(name)["sha256"].lower()
    if file_sha256(path) != expected:
        raise UserError(f"the shipped model {name!r} at {str(path)!r} does not match the "
                        f"SHA-256 of its model card; reinstall the package")
    return path


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """A weights file, a run folder (its best, else last, weights) or a shipped model name."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in layout.WEIGHTS:
            if (path / candidate).is_file():
                return path / candidate
        raise UserError(f"run folder {str(path)!r} holds no checkpoint "
                        f"({' or '.join(layout.WEIGHTS)})")
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
    path = resolve_checkpoint(spec)
    tensors, metadata = read_weights_file(path)
    # Every field checked before anything is built from it (sizes decide allocations).
    checked = check_weights_metadata(path, metadata, tensors)
    preprocessing = Preprocessing.from_checkpoint(checked["preprocessing"], tensors)
    model = build_model(checked["model"], **checked["options"])
    weights = {k: v for k, v in tensors.items() if not k.startswith("preprocessing.")}
    try:
        model.load_state_dict(weights, strict=True)
        with torch.no_grad():    # the crop must fit the network (fixed-size layers)
            model.eval()(torch.zeros(1, 3, preprocessing.crop, preprocessing.crop))
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s)") else lines[0]
        raise UserError(f"{str(path)!r} is a damaged alexnet weights file: its weights or "
                        f"crop do not fit {checked['model']} ({reason})") from None
    return LoadedModel(model.to(device).eval(), checked["classes"], preprocessing, path,
                       checked["meta"])


def start_from_weights(model: nn.Module, spec: str | os.PathLike) -> list[str]:
    """Copy into `model` (a new run's network) the weights stored at `spec` (see
    `resolve_checkpoint`): fine-tuning, or continuing a schedule in a new run. Tensors whose
    shape differs (a classifier for another number of classes) keep `model`'s own
    initialisation; their names are returned. UserError when the stored network is another
    one than `model`."""
    loaded = load_model(spec)
    if loaded.name != model.model_name:
        raise UserError(f"init_weights {str(spec)!r} holds a {loaded.name} network, not the "
                        f"run's {model.model_name}")
    own = model.state_dict()
    stored = loaded.model.state_dict()
    kept = [k for k, v in own.items() if k not in stored or stored[k].shape != v.shape]
    model.load_state_dict({k: v for k, v in stored.items()
                           if k in own and k not in kept}, strict=False)
    return kept


# ---------------------------------------------------------------------------------------------
# Training state: what a run needs to continue exactly where it stopped.
#
# A `<name>.state.pt` file holds plain containers of tensors, numbers and strings (model and
# optimiser state dicts, the schedule, epoch and step, every RNG state, the data position) and
# is read with `torch.load(weights_only=True)`, which refuses any pickle that would build
# arbitrary objects or run code. The model weights are in it too, so weights and optimiser
# state always come from one atomic write. A footer records the SHA-256 of the bytes (see
# integrity.py): a damaged file is detected, and a run falls back to the state saved before
# it (`<name>.previous`, kept by `save_training_state(..., keep_previous=True)`).

STATE_FORMAT = "alexnet-train-state/1"


def previous_state_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + layout.PREVIOUS_SUFFIX)


def save_training_state(path: str | os.PathLike, state: dict,
                        keep_previous: bool = False) -> None:
    """Write `state` (tensors, numbers, strings, lists, tuples, dicts) atomically, with its
    checksum. keep_previous: the file it replaces stays as `<path>.previous` (a hard link,
    so `path` itself is never missing; a copy where links are not supported)."""
    path = Path(path)
    if keep_previous and path.is_file():
        previous = previous_state_path(path)
        previous.unlink(missing_ok=True)
        try:
            os.link(path, previous)
        except OSError:
            import shutil

            shutil.copyfile(path, previous)
    with atomic_path(path) as tmp:
        write_checksummed(tmp, lambda target: torch_save(state, target, path))


def torch_save(value, target: Path, final: Path) -> None:
    """torch.save into `target`, a write the system refuses raised as the OSError it is,
    naming `final` (the file being replaced). torch.save reports a failed write (a full disk,
    a file-size limit) as a RuntimeError ("enforce fail at inline_container.cc"); given an
    open file, it keeps the OSError of the refused write as that error's context."""
    with open(target, "wb") as f:
        try:
            torch.save(value, f)
        except RuntimeError as err:
            refused = err.__context__
            if isinstance(refused, OSError):
                raise OSError(refused.errno, refused.strerror, str(final)) from None
            raise


def load_training_state(path: str | os.PathLike) -> dict:
    """Read a training state written by `save_training_state`; never unpickles code.
    A file whose checksum does not match raises integrity.DamagedFile (a UserError)."""
    import pickle

    path = Path(path)
    try:
        body = read_checksummed(path)
        if torch_file_kind(body.getvalue()[:4]) is None:
            raise UserError(f"{str(path)!r} is not a loadable training state: its bytes are "
                            f"{NOT_A_TORCH_FILE}")
        state = torch.load(body, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no training state at {str(path)!r}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, TypeError, KeyError, IndexError) as err:
        reason = weights_only_reason(err)
        what = "" if pickles_code(reason) else "damaged or "
        raise UserError(f"{str(path)!r} is {what}not a loadable training state, refused "
                        f"({reason})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"{str(path)!r} is not an alexnet training state "
                        f"(expected format {STATE_FORMAT!r})")
    return state


def load_latest_state(path: str | os.PathLike, warn: bool = True) -> tuple[dict, Path] | None:
    """(state, file) of a run's training state at `path`, every field a resume reads
    checked; when that file is damaged or incomplete, the previous one, with a warning
    (when `warn`). None when neither exists; UserError (the newer file's problem) when
    neither loads."""
    path = Path(path)
    candidates = [p for p in (path, previous_state_path(path)) if p.is_file()]
    problems = []
    for candidate in candidates:
        try:
            state = check_training_state(load_training_state(candidate), candidate)
        except UserError as err:
            problems.append(err)
            continue
        if problems and warn:
            info(f"warning: {problems[0]}; resuming from {str(candidate)!r} (epoch "
                 f"{state['epoch'] + 1}, step {state['step']}), the state saved before it")
        return state, candidate
    if problems:
        raise problems[0]
    return None



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
