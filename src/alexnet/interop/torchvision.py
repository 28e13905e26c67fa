"""torchvision interoperability: its AlexNet state-dict files in, project checkpoints out, and back.

`alexnet-torchvision` keeps torchvision's parameter names, so a torchvision state dict
(`torchvision.models.alexnet().state_dict()`, or the published `alexnet-owt-*.pth`) loads into
it with `strict=True`. An imported checkpoint also records what torchvision's weights expect:
the 1000 ImageNet category names and torchvision's preprocessing (shorter side to 256, centre
224 crop, per-channel mean/std), so `alexnet predict` and `alexnet eval` use them correctly.
Files are read with `torch.load(weights_only=True)` only: no pickled code is ever run.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from alexnet.data.normalization import imagenet_preprocessing
from alexnet.engine.checkpoint import save_weights, torch_save
from alexnet.engine.integrity import (
    NOT_A_TORCH_FILE,
    pickles_code,
    torch_file_kind,
    weights_only_reason,
)
from alexnet.errors import UserError
from alexnet.files import atomic_path, file_sha256
from alexnet.models import build_model

MODEL_NAME = "alexnet-torchvision"
# Wrappers that training scripts commonly put around a state dict, and key prefixes added
# by DataParallel / DistributedDataParallel and torch.compile.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_KEY_PREFIXES = ("module.", "_orig_mod.")


def imagenet_categories() -> list[str]:
    """The 1000 ILSVRC-2012 category names in torchvision's label order (shipped, no download)."""
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def download_torchvision_weights(hub: bool = False) -> Path:
    """torchvision's published ImageNet weights for AlexNet (`AlexNet_Weights.IMAGENET1K_V1`),
    fetched through torchvision's own weights API into torch hub's cache
    (`$TORCH_HOME/hub/checkpoints`, by default ~/.cache/torch/hub/checkpoints) and checked
    against the SHA-256 prefix in their name; the cached file. Nothing is fetched when the
    file is already there. hub: the advice for a torch.hub user (put the file in the
    cache) instead of the command line's (import it)."""
    import contextlib
    import sys
    import urllib.error
    from urllib.parse import urlparse

    from torchvision.models import AlexNet_Weights

    weights = AlexNet_Weights.IMAGENET1K_V1
    name = os.path.basename(urlparse(weights.url).path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    instead = (f"download {weights.url} another way and run: alexnet import-torchvision "
               f"{name} --out MODEL.safetensors")
    if hub:      # torch.hub.load(..., pretrained=True): the file is read where it is cached
        instead = (f"download {weights.url} another way into {str(cached)!r} (torch hub's "
                   f"cache; TORCH_HOME moves it) and load again")
    try:
        # torch.hub announces the download on stdout, which --json keeps for its output.
        with contextlib.redirect_stdout(sys.stderr):
            weights.get_state_dict(progress=sys.stderr.isatty(), check_hash=True,
                                   weights_only=True)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        raise UserError(f"could not download torchvision's AlexNet weights (no network "
                        f"connection?); {instead}") from None
    except OSError as err:
        raise UserError(f"could not write torchvision's AlexNet weights into "
                        f"{str(cached.parent)!r} ({err.strerror or type(err).__name__}); set "
                        f"TORCH_HOME to a writable folder, or {instead}") from None
    except (RuntimeError, pickle.UnpicklingError, EOFError) as err:   # a bad hash or file
        raise UserError(f"the downloaded weights in {str(cached)!r} are damaged "
                        f"({plain_reason(str(err))}); delete the file and try again, or "
                        f"{instead}") from None
    return cached


def plain_reason(message: str, limit: int = 200) -> str:
    """The first line of an error message, without terminal colour codes, at most `limit`
    characters (cut at a word, with "…")."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message).strip().splitlines()
    text = text[0].strip() if text else ""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def refused_pickle(path: Path, message: str) -> str:
    """The sentence for a file torch.load(weights_only=True) refused: usually a whole pickled
    model (torch.save(model)), whose class torch names as an unsupported global. Never
    PyTorch's advice to retry with weights_only=False: that would run the file's code."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if found is None and not pickles_code(message):   # bytes that are no pickle of tensors
        return (f"{str(path)!r} is damaged or not a PyTorch file (its pickle does not "
                f"parse: {plain_reason(weights_only_message(message))})")
    what = f"a pickled {found.group(1)} object" if found else "objects other than tensors"
    return (f"{str(path)!r} holds {what}, not a plain state dict, and is refused without "
            f"running it; save model.state_dict() instead of the whole model and import that")


def weights_only_message(message: str) -> str:
    return weights_only_reason(ValueError(message))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a torchvision AlexNet state-dict file, unwrapped and without prefixes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"torchvision weights file {str(path)!r} does not exist")

    with open(path, "rb") as f:
        if torch_file_kind(f.read(4)) is None:
            raise UserError(f"{str(path)!r} is not a PyTorch file: its bytes are "
                            f"{NOT_A_TORCH_FILE}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(refused_pickle(path, str(err))) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, TypeError,
            AttributeError) as err:     # damaged pickle data trips the unpickler anywhere
        raise UserError(f"{str(path)!r} is not a readable PyTorch file "
                        f"({plain_reason(str(err)).split('. ')[0] or type(err).__name__})") from None
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{str(path)!r} does not hold a state dict (a mapping of names to "
                        f"tensors)")
    state = {}
    for key, value in obj.items():
        for prefix in _KEY_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    return state


def model_from_state_dict(state: dict[str, torch.Tensor], source: str = "state dict"):
    """An `alexnet-torchvision` model holding `state` (its class count read from fc8)."""
    if "classifier.6.weight" not in state:
        raise UserError(f"{source} is not a torchvision AlexNet state dict (no "
                        f"'classifier.6.weight'; keys start {sorted(state)[:3]})")
    num_classes = int(state["classifier.6.weight"].shape[0])
    model = build_model(MODEL_NAME, num_classes=num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1:3]
        raise UserError(f"{source} does not fit torchvision's AlexNet: "
                        f"{' '.join(s.strip() for s in first)}") from None
    return model.eval()


def import_torchvision(weights: str | os.PathLike, out: str | os.PathLike,
                       classes: list[str] | None = None,
                       class_names: list[str] | None = None) -> dict:
    """Write a project checkpoint for a torchvision AlexNet state-dict file; return a summary.

    Without `classes`, a 1000-class file gets the ImageNet category names as its classes;
    other class counts need them given (one per class, in label order). `class_names`
    (human-readable, recorded like training does) default to the classes. To evaluate on an
    ImageNet store, whose classes are wnids, take the classes from that store.
    """
    weights = Path(weights)
    model = model_from_state_dict(read_state_dict(weights), repr(str(weights)))
    num_classes = model.classifier[6].out_features
    if classes is None:
        if num_classes != 1000:
            raise UserError(f"{str(weights)!r} has {num_classes} classes, not ImageNet's "
                            f"1000; give their names with --classes FILE (one per line)")
        classes = imagenet_categories()
    if len(classes) != num_classes:
        raise UserError(f"{len(classes)} class names given but {str(weights)!r} has "
                        f"{num_classes} outputs")
    names = list(class_names) if class_names is not None else list(classes)
    if len(names) != len(classes):
        raise UserError(f"{len(names)} class names for {len(classes)} classes")
    sha = file_sha256(weights)
    save_weights(out, model, classes=classes, preprocessing=imagenet_preprocessing(),
                 extra={"source": "torchvision", "imported_from": weights.name,
                        "imported_sha256": sha, "class_names": names})
    return {"weights": str(weights), "out": str(out), "model": MODEL_NAME,
            "classes": num_classes, "sha256": sha}


def torchvision_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict `torchvision.models.alexnet()` loads with strict=True."""
    if getattr(model, "model_name", None) != MODEL_NAME:
        raise UserError(f"only {MODEL_NAME!r} checkpoints have torchvision's layout; this one "
                        f"is {getattr(model, 'model_name', 'unknown')!r} (a different network)")
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def export_torchvision(model: torch.nn.Module, out: str | os.PathLike) -> None:
    """Save `model`'s weights as a torchvision state-dict file (torch.save), atomically."""
    state = torchvision_state_dict(model)
    with atomic_path(out) as tmp:
        torch_save(state, tmp, out)   # a refused write: an OSError naming `out`
