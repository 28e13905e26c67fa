"""Checks of what is read back from disk, before anything is built from it.

A checkpoint's metadata (model, options, classes, preprocessing) decides what gets
allocated: a crafted `preprocessing.size` of 100000 would make `predict` decode 30 GB images,
a `num_classes` of 10^9 a 16 TB layer. So every field is checked for type and range first,
and each problem is one sentence naming the file and the field. Model cards (the JSON beside
a shipped model) must carry the SHA-256 the model is checked against.

Training states carry a checksum: `write_checksummed` appends a footer with the SHA-256 of
the bytes before it, and `read_checksummed` refuses a file whose bytes no longer match
(flipped bits, a torn copy), so a resume can fall back to the previous state instead.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

from alexnet.choices import MAX_SIZE
from alexnet.data.store import MAX_CLASSES
from alexnet.errors import UserError
from alexnet.files import file_sha256, sha256_hex
from alexnet.models import list_models, model_spec

FOOTER_TAG = b"\nalexnet-sha256:"
FOOTER_SIZE = len(FOOTER_TAG) + 64 + 1          # tag, 64 hex digits, newline
PREPROCESSING_KINDS = ("mean-image", "per-channel")


class DamagedFile(UserError):
    """A file whose bytes do not match the checksum recorded when it was written."""


def weights_only_reason(err: Exception) -> str:
    """Why `torch.load(weights_only=True)` refused a file, as one whole sentence, without
    PyTorch's advice to load it with weights_only=False (which would run the file's code)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "GLOBAL" in line or "WeightsUnpickler error" in line:
            text = line.split("WeightsUnpickler error:", 1)[-1].strip()
            if not text and i + 1 < len(lines):     # the reason on the next line
                text = lines[i + 1]
            return text.split(". ")[0].rstrip(".")      # not its advice that follows
    advice = ("weights_only", "trust", "documentation", "can still be loaded")
    kept = [line for line in lines if not any(a in line for a in advice)]
    return kept[0].split(". ")[0].rstrip(".") if kept else type(err).__name__


def pickles_code(reason: str) -> bool:
    """Whether a weights_only refusal is about an object it would have to build (a class, a
    function: code), rather than bytes that are no pickle of tensors at all."""
    return "GLOBAL" in reason or "global" in reason


def torch_file_kind(head: bytes) -> str | None:
    """"zip" or "pickle" when `head` (a file's first bytes) starts like something torch.save
    writes (its zip archive, or the legacy format's pickle), else None."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:   # pickle protocol 2-5
        return "pickle"
    return None


NOT_A_TORCH_FILE = "neither a zip archive nor a pickle, as torch.save writes"


# ---- checkpoint metadata -------------------------------------------------------------------

def _json(path: Path, metadata: dict, key: str):
    try:
        return json.loads(metadata[key])
    except KeyError:
        raise UserError(f"{str(path)!r} is a damaged alexnet weights file (no {key!r} "
                        f"entry)") from None
    except (TypeError, ValueError):
        raise UserError(f"{str(path)!r} is a damaged alexnet weights file (its {key!r} entry "
                        f"is not JSON)") from None


def _numbers(value, count: int, positive: bool = False) -> bool:
    return (isinstance(value, list) and len(value) == count
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) and (v > 0 or not positive) for v in value))


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_weights_metadata(path: Path, metadata: dict, tensors: dict) -> dict:
    """The decoded metadata of a weights file {model, options, classes, preprocessing, meta},
    every field checked; UserError naming the file and the field otherwise."""
    def bad(what: str) -> UserError:
        return UserError(f"{str(path)!r} is a damaged alexnet weights file ({what})")

    name = metadata.get("model")
    if name not in list_models():
        raise bad(f"model {name!r} is not one of {', '.join(list_models())}")
    options = _json(path, metadata, "options")
    if not isinstance(options, dict):
        raise bad("options is not a JSON object")
    unknown = [k for k in options if k not in model_spec(name).options()]
    if unknown:
        raise bad(f"option {unknown[0]!r} is not an option of {name}")
    num_classes = options.get("num_classes", model_spec(name).options()["num_classes"])
    if not _whole(num_classes, 1, MAX_CLASSES):
        raise bad(f"num_classes {num_classes!r} is not from 1 to {MAX_CLASSES:,}")
    classes = _json(path, metadata, "classes")
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise bad("classes is not a list of names")
    if len(classes) != num_classes:
        raise bad(f"it names {len(classes)} classes but its model has {num_classes} outputs")
    pre = _json(path, metadata, "preprocessing")
    if not isinstance(pre, dict):
        raise bad("preprocessing is not a JSON object")
    size, crop = pre.get("size"), pre.get("crop")
    if not _whole(size, 1, MAX_SIZE):
        raise bad(f"preprocessing size {size!r} is not from 1 to {MAX_SIZE}")
    if not _whole(crop, 1, size):
        raise bad(f"preprocessing crop {crop!r} is not from 1 to its size {size}")
    if not _numbers(pre.get("channel_mean"), 3):
        raise bad("preprocessing channel_mean is not 3 finite numbers")
    if not _numbers(pre.get("channel_std"), 3, positive=True):
        raise bad(f"preprocessing channel_std {pre.get('channel_std')!r} is not 3 finite "
                  f"numbers greater than 0")
    mean = tensors.get("preprocessing.mean_image")
    if pre.get("kind", "per-channel") not in PREPROCESSING_KINDS:
        raise bad(f"preprocessing kind {pre.get('kind')!r} is not one of "
                  f"{', '.join(PREPROCESSING_KINDS)}")
    if (pre.get("kind") == "mean-image") != (mean is not None):
        raise bad("its preprocessing kind and its mean image disagree")
    if mean is not None and tuple(mean.shape) != (size, size, 3):
        raise bad(f"its mean image is {list(mean.shape)}, not [{size}, {size}, 3]")
    if mean is not None and not bool(mean.isfinite().all()):
        raise bad("its mean image holds NaN or infinite values")
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise bad(f"tensor {key!r} holds NaN or infinite values")
    reserved = {"format", "model", "options", "classes", "preprocessing"}
    meta = {k: _json(path, metadata, k) for k in metadata if k not in reserved}
    return {"model": name, "options": options, "classes": classes, "preprocessing": pre,
            "meta": meta}


def check_model_card(name: str, card_path: Path) -> dict:
    """A shipped model's card: a JSON object with the SHA-256 of the weights file."""
    reinstall = "reinstall the package"
    if not card_path.is_file():
        raise UserError(f"the shipped model {name!r} has no model card ({str(card_path)!r}) "
                        f"with its SHA-256, so it is not trusted; {reinstall}")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"the model card {str(card_path)!r} is not readable JSON ({err}); "
                        f"{reinstall}") from None
    digest = card.get("sha256") if isinstance(card, dict) else None
    if not (isinstance(digest, str) and len(digest) == 64
            and all(c in "0123456789abcdef" for c in digest.lower())):
        raise UserError(f"the model card {str(card_path)!r} holds no SHA-256 of the model, "
                        f"so {name!r} is not trusted; {reinstall}")
    return card


# ---- checksummed files -----------------------------------------------------------------------

def write_checksummed(path: Path, write) -> None:
    """Call write(path), then append a footer holding the SHA-256 of what it wrote."""
    write(path)
    digest = file_sha256(path)
    with open(path, "ab") as f:
        f.write(FOOTER_TAG + digest.encode() + b"\n")


def read_checksummed(path: Path) -> io.BytesIO:
    """The bytes before the footer, checked against it; files written before checksums were
    recorded (no footer) are returned whole. DamagedFile when the bytes do not match."""
    data = Path(path).read_bytes()
    footer = data[-FOOTER_SIZE:]
    if len(data) < FOOTER_SIZE or not footer.startswith(FOOTER_TAG):
        return io.BytesIO(data)
    body = memoryview(data)[:-FOOTER_SIZE]
    recorded = footer[len(FOOTER_TAG):-1].decode(errors="replace")
    if sha256_hex(body) != recorded:
        raise DamagedFile(f"{str(path)!r} is damaged: its bytes do not match the SHA-256 "
                          f"recorded when it was saved")
    return io.BytesIO(body)


# ---- training states ---------------------------------------------------------------------

STATE_FIELDS = {"config": dict, "model": dict, "optimizer": dict, "schedule": dict,
                "epoch": int, "step": int, "global_step": int, "history": list, "sums": dict,
                "classes": list, "rng": dict}


def check_training_state(state: dict, path: os.PathLike) -> dict:
    """A training run's state has every field a resume reads, each of its type."""
    for key, kind in STATE_FIELDS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            found = "missing" if key not in state else f"a {type(state[key]).__name__}"
            raise UserError(f"{str(path)!r} is not a complete training state ({key!r} is "
                            f"{found}, expected a {kind.__name__})")
    best = state.get("best_top1")
    if best is not None and not isinstance(best, float):
        raise UserError(f"{str(path)!r} is not a complete training state ('best_top1' is "
                        f"{best!r})")
    return state
