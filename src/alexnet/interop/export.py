"""Export a checkpoint to run elsewhere: ONNX, TorchScript, torch.export, torchvision weights.

Every graph format has a dynamic batch dimension and carries the checkpoint's metadata (model
name, classes, preprocessing, what the input and output are) inside the file: ONNX as
`metadata_props`, TorchScript and ExportedProgram as an extra file `alexnet.json`.

By default the graph is the bare network: normalised float [N, 3, crop, crop] in, logits
[N, classes] out. With `embed_preprocessing` the normalisation moves into the graph and the
input becomes RGB on the 0-255 scale (the central crop of an image whose shorter side was
resized to `preprocessing.size`), so a caller elsewhere needs no statistics.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from alexnet.data.normalization import Preprocessing
from alexnet.data.views import view_offsets
from alexnet.errors import UserError, one_of
from alexnet.files import atomic_path
from alexnet.interop.torchvision import export_torchvision
from alexnet.kernels.choice import use_kernels

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2",
           "torchvision": ".pth"}
GRAPH_FORMATS = ("onnx", "torchscript", "exported-program")
TOLERANCE = 1e-4
METADATA_FILE = "alexnet.json"


class Preprocessed(nn.Module):
    """RGB 0-255 float [N, 3, crop, crop] (the centre view) -> the wrapped model's output."""

    def __init__(self, model: nn.Module, preprocessing: Preprocessing):
        super().__init__()
        self.model = model
        crop, size = preprocessing.crop, preprocessing.size
        mean = preprocessing.mean_tensor()
        if mean.shape[-1] != 1:  # a mean image: the part under the centre crop, as in eval
            top, left = view_offsets(size, crop)[4]
            mean = mean[:, top:top + crop, left:left + crop]
        self.register_buffer("mean", mean.unsqueeze(0).contiguous())
        self.register_buffer("std", preprocessing.std_tensor().unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def default_output(checkpoint: str | os.PathLike, fmt: str) -> Path:
    return Path(checkpoint).with_suffix(FORMATS[fmt])


def export_metadata(loaded, embed_preprocessing: bool) -> dict:
    pre_info, _ = loaded.preprocessing.to_checkpoint()
    crop = loaded.preprocessing.crop
    inputs = (f"float32 [N, 3, {crop}, {crop}] RGB 0-255, the centre crop after resizing the "
              f"shorter side to {loaded.preprocessing.size}" if embed_preprocessing else
              f"float32 [N, 3, {crop}, {crop}] normalised as 'preprocessing' says")
    return {"model": loaded.model.model_name, "options": loaded.model.model_options,
            "classes": loaded.classes, "preprocessing": pre_info,
            "preprocessing_embedded": embed_preprocessing, "input": inputs,
            "output": f"float32 [N, {len(loaded.classes)}] logits"}


def _example_input(model_input: int, batch: int, embed_preprocessing: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    shape = (batch, 3, model_input, model_input)
    if embed_preprocessing:
        return torch.rand(shape, generator=generator) * 255
    return torch.randn(shape, generator=generator)


def _write_onnx(module: nn.Module, example: torch.Tensor, tmp: Path, metadata: dict) -> None:
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install 'alexnet[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=65536)
    # The exporter reports its steps on stdout; keep stdout for --json.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            program = torch.onnx.export(module, (example,), dynamo=True,
                                        dynamic_shapes=({0: batch},),
                                        input_names=["images"], output_names=["logits"],
                                        external_data=False)
        except ImportError as err:
            raise UserError(f"ONNX export needs onnxscript ({err}): pip install "
                            f"'alexnet[export]'") from None
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(tmp))


def _write_torchscript(module: nn.Module, example: torch.Tensor, tmp: Path,
                       metadata: dict) -> None:
    with warnings.catch_warnings():
        # jit.trace is deprecated upstream but still the portable C++/mobile format; the
        # tracer warnings come from static input-size checks, which stay true once traced.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example)
        torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: json.dumps(metadata)})


def _write_exported_program(module: nn.Module, example: torch.Tensor, tmp: Path,
                            metadata: dict) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    with open(tmp, "wb") as f:  # a file object: save() would otherwise insist on a .pt2 name
        torch.export.save(program, f, extra_files={METADATA_FILE: json.dumps(metadata)})


def run_exported(path: str | os.PathLike, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """Run an exported file on `x` with the runtime it is meant for (ONNX: onnxruntime)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # jit.load's deprecation notice
            return torch.jit.load(str(path))(x).detach()
    if fmt == "exported-program":
        with open(path, "rb") as f:
            return torch.export.load(f).module()(x).detach()
    raise one_of("format", fmt, GRAPH_FORMATS)


def read_export_metadata(path: str | os.PathLike, fmt: str) -> dict:
    """The metadata an exported file carries (see `export_metadata`)."""
    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        return {p.key: json.loads(p.value) for p in proto.metadata_props}
    files = {METADATA_FILE: ""}
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.load(str(path), _extra_files=files)
    else:
        with open(path, "rb") as f:
            torch.export.load(f, extra_files=files)
    return json.loads(files[METADATA_FILE])


def export_checkpoint(loaded, fmt: str, out: str | os.PathLike, *,
                      embed_preprocessing: bool = False, check: bool = True) -> dict:
    """Write `loaded` (a `LoadedModel`) as `fmt` to `out`; check it against PyTorch.

    The check runs the exported file on a batch of 3 (the graph is traced with 2, so this
    also proves the batch dimension is dynamic) and compares with the eager model; a
    difference above 1e-4 is an error. Returns a summary with `max_abs_diff`.
    """
    if fmt not in FORMATS:
        raise one_of("format", fmt, FORMATS)
    out = Path(out)
    model = loaded.model.cpu().eval()
    summary = {"checkpoint": str(loaded.path), "format": fmt, "out": str(out),
               "model": model.model_name}
    if fmt == "torchvision":
        export_torchvision(model, out)
        return summary
    module = Preprocessed(model, loaded.preprocessing).eval() if embed_preprocessing else model
    size = loaded.preprocessing.crop
    metadata = export_metadata(loaded, embed_preprocessing)
    writer = {"onnx": _write_onnx, "torchscript": _write_torchscript,
              "exported-program": _write_exported_program}[fmt]
    # The plain formulations of LRN and the locally connected layers: a tracer cannot see
    # into the hand-written kernels, and other runtimes have no such ops.
    with atomic_path(out) as tmp, use_kernels(lrn="reference", local="unfold"):
        writer(module, _example_input(size, 2, embed_preprocessing), tmp, metadata)
    summary.update(embed_preprocessing=embed_preprocessing, input_size=size,
                   bytes=out.stat().st_size)
    if check:
        summary["max_abs_diff"] = check_export(module, out, fmt,
                                               _example_input(size, 3, embed_preprocessing))
    return summary


def check_export(module: nn.Module, path: Path, fmt: str, x: torch.Tensor) -> float | None:
    """Max |exported(x) - module(x)|; None when the runtime for `fmt` is not installed."""
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
    with torch.no_grad():
        expected = module(x)
    got = run_exported(path, fmt, x)
    if got.shape != expected.shape:
        raise UserError(f"exported {str(path)!r} gives shape {tuple(got.shape)} for a batch of "
                        f"{x.shape[0]}, PyTorch {tuple(expected.shape)}")
    diff = float((got - expected).abs().max())
    if diff > TOLERANCE:
        raise UserError(f"exported {str(path)!r} differs from PyTorch by {diff:.2e} "
                        f"(more than {TOLERANCE:g}); do not use it")
    return diff
