"""Exported graphs (ONNX via onnxruntime, TorchScript, torch.export) match PyTorch."""

from __future__ import annotations

import json

import pytest
import torch

from alexnet.cli import main
from alexnet.data.normalization import Preprocessing
from alexnet.engine.checkpoint import load_model, save_weights
from alexnet.errors import UserError
from alexnet.interop.export import (
    Preprocessed,
    export_checkpoint,
    read_export_metadata,
    run_exported,
)
from alexnet.models import build_model

GRAPH_FORMATS = ["onnx", "torchscript", "exported-program"]


def needs(fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="ONNX export needs the onnx package")
        pytest.importorskip("onnxscript", reason="torch.onnx's exporter needs onnxscript")
        pytest.importorskip("onnxruntime", reason="checking ONNX output needs onnxruntime")


@pytest.fixture(scope="module")
def conv_local_ckpt(tmp_path_factory):
    """cifar-conv-local (LRN + locally connected layers) with a mean-image preprocessing."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "conv-local.safetensors"
    mean = torch.rand(32, 32, 3) * 255
    save_weights(path, build_model("cifar-conv-local"), classes=[f"c{i}" for i in range(10)],
                 preprocessing=Preprocessing(32, 24, mean_image=mean, channel_std=(60.0,) * 3))
    return path


# Embedded preprocessing is the same wrapper module in every format: two formats suffice.
@pytest.mark.parametrize(("fmt", "embed"), [("onnx", False), ("onnx", True),
                                            ("torchscript", True), ("exported-program", False)])
def test_export_matches_pytorch_with_dynamic_batch(conv_local_ckpt, tmp_path, fmt, embed):
    needs(fmt)
    loaded = load_model(conv_local_ckpt)
    out = tmp_path / f"model.{fmt}"
    summary = export_checkpoint(loaded, fmt, out, embed_preprocessing=embed)
    assert summary["max_abs_diff"] <= 1e-4
    reference = Preprocessed(loaded.model, loaded.preprocessing) if embed else loaded.model
    for batch in (1, 7):  # traced with 2: other sizes prove the batch dimension is dynamic
        x = torch.rand(batch, 3, 24, 24) * 255 if embed else torch.randn(batch, 3, 24, 24)
        with torch.no_grad():
            expected = reference.eval()(x)
        got = run_exported(out, fmt, x)
        assert got.shape == (batch, 10)
        assert (got - expected).abs().max() <= 1e-4
    meta = read_export_metadata(out, fmt)
    assert meta["classes"] == [f"c{i}" for i in range(10)]
    assert meta["model"] == "cifar-conv-local" and meta["preprocessing_embedded"] is embed
    assert meta["preprocessing"]["size"] == 32 and meta["preprocessing"]["crop"] == 24


def test_embedded_preprocessing_uses_the_centre_of_the_mean_image(conv_local_ckpt):
    loaded = load_model(conv_local_ckpt)
    wrapped = Preprocessed(loaded.model, loaded.preprocessing)
    mean = loaded.preprocessing.mean_image.permute(2, 0, 1)
    assert torch.equal(wrapped.mean[0], mean[:, 4:28, 4:28])


@pytest.mark.slow
def test_paper_network_exports_to_onnx(tmp_path):
    """The two-tower network (grouped convolutions, LRN as a band matmul) survives ONNX."""
    needs("onnx")
    torch.manual_seed(0)
    ckpt = tmp_path / "paper.safetensors"
    save_weights(ckpt, build_model("alexnet-paper", num_classes=10, init="pytorch"),
                 classes=list("abcdefghij"), preprocessing=Preprocessing(256, 224))
    summary = export_checkpoint(load_model(ckpt), "onnx", tmp_path / "paper.onnx")
    assert summary["max_abs_diff"] <= 1e-4


def test_cli_export_json_default_name_and_clean_stdout(conv_local_ckpt, tmp_path, capsys):
    """The ONNX exporter's progress lines must not reach stdout, which --json owns."""
    needs("onnx")
    ckpt = tmp_path / "net.safetensors"
    ckpt.write_bytes(conv_local_ckpt.read_bytes())
    assert main(["export", str(ckpt), "--format", "onnx", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == str(tmp_path / "net.onnx")
    assert (tmp_path / "net.onnx").stat().st_size > 1_000_000
    assert summary["max_abs_diff"] <= 1e-4


def test_export_rejects_unknown_format_and_missing_checkpoint(conv_local_ckpt, tmp_path, capsys):
    with pytest.raises(UserError, match="unknown format"):
        export_checkpoint(load_model(conv_local_ckpt), "tflite", tmp_path / "x")
    assert main(["export", str(tmp_path / "nope.safetensors"), "--format", "onnx"]) == 2
    assert "nope.safetensors" in capsys.readouterr().err
