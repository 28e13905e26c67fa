"""torch.hub entry points (hubconf.py, loaded with source="local") and
`import-torchvision --download` through torchvision's weights API, without the internet."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from alexnet.cli import main
from alexnet.engine.checkpoint import load_model
from helpers.paths import REPO

PUBLISHED = "alexnet-owt-7be5be79.pth"


def test_hub_entry_points_load_from_a_clone():
    paper = torch.hub.load(str(REPO), "alexnet_paper", source="local", num_classes=10)
    assert paper.model_name == "alexnet-paper" and paper.model_options["num_classes"] == 10
    tv = torch.hub.load(str(REPO), "alexnet_torchvision", source="local")
    tv.load_state_dict(torchvision.models.alexnet().state_dict(), strict=True)
    shipped = torch.hub.load(str(REPO), "cifar10_conv_local", source="local")
    reference = load_model("cifar10-conv-local")
    assert not shipped.training and shipped.classes == reference.classes
    assert shipped.preprocessing.size == reference.preprocessing.size
    for key, value in reference.model.state_dict().items():
        assert torch.equal(shipped.state_dict()[key], value)
    fresh = torch.hub.load(str(REPO), "cifar10_conv_local", source="local", pretrained=False)
    assert fresh.model_options == reference.model.model_options
    with pytest.raises(ValueError, match="no trained weights"):
        torch.hub.load(str(REPO), "alexnet_paper", source="local", pretrained=True)


@pytest.fixture
def hub_home(tmp_path, monkeypatch):
    """torch hub's cache in a temporary TORCH_HOME."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def fake_published_file(path: Path) -> None:
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), path)


def test_download_fetches_into_torch_hubs_cache_and_imports(hub_home, tmp_path, monkeypatch,
                                                            capsys):
    fetched = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        fetched.append((url, hash_prefix))
        fake_published_file(Path(dst))

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    out = tmp_path / "alexnet-tv.safetensors"
    assert main(["import-torchvision", "--download", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)         # stdout holds only the JSON
    assert fetched == [(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url, "7be5be79")]
    assert (hub_home / PUBLISHED).is_file() and summary["weights"] == str(hub_home / PUBLISHED)
    loaded = load_model(out)
    assert loaded.name == "alexnet-torchvision" and len(loaded.classes) == 1000
    assert main(["import-torchvision", "--download", "--out", str(out)]) == 0
    assert len(fetched) == 1                               # cached: fetched once
    tv = torch.hub.load(str(REPO), "alexnet_torchvision", source="local", pretrained=True)
    assert torch.equal(tv.state_dict()["classifier.6.bias"],
                       loaded.model.state_dict()["classifier.6.bias"])


def test_download_offline_says_how_to_pass_a_downloaded_file(hub_home, tmp_path, monkeypatch,
                                                             capsys):
    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    out = tmp_path / "x.safetensors"
    assert main(["import-torchvision", "--download", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()   # after torch.hub's "Downloading: URL to FILE"
    assert "Traceback" not in err
    err = err.splitlines()[-1]
    assert err.startswith("alexnet: error: could not download")
    assert f"alexnet import-torchvision {PUBLISHED} --out" in err
    assert "download.pytorch.org/models/" + PUBLISHED in err
    assert "name resolution" not in err and not out.exists()


def test_download_and_a_file_are_exclusive(tmp_path, capsys):
    assert main(["import-torchvision", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "either a weights file or --download" in capsys.readouterr().err


def test_hub_models_carry_the_transform_the_cli_uses(tmp_path):
    """model(model.transform(image)[None]) gives `alexnet predict`'s probabilities, from a
    file, a PIL image or an array; `kind` names the std too."""
    import numpy as np
    from PIL import Image

    from alexnet.analysis.predictions import predict_files
    from helpers.images import gradient, save

    path = save(tmp_path / "x.png", gradient(50, 37, seed=3))
    model = torch.hub.load(str(REPO), "cifar10_conv_local", source="local")
    assert model.preprocessing.kind == "mean-image-std"
    assert "mean_image=[32, 32, 3]" in repr(model.preprocessing)
    cli = predict_files(load_model("cifar10-conv-local"), [path], top=10)[0]["top"]
    expected = torch.tensor([t["prob"] for t in cli])
    order = [model.classes.index(t["class"]) for t in cli]
    with Image.open(path) as im:
        pil = im.copy()
    for image in (path, pil, np.asarray(pil)):
        x = model.transform(image)
        assert x.shape == (3, 24, 24) and x.dtype == torch.float32
        with torch.no_grad():
            probs = model(x[None]).softmax(1)[0][order]
        assert torch.allclose(probs, expected, atol=2e-6)


def test_hub_download_offline_says_where_the_file_goes(hub_home, monkeypatch):
    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(Exception, match=r"another way into '.*hub/checkpoints/"
                       + PUBLISHED + r"' \(torch hub's cache; TORCH_HOME moves it\) and load "
                       r"again") as info:
        torch.hub.load(str(REPO), "alexnet_torchvision", source="local", pretrained=True)
    assert "import-torchvision" not in str(info.value)
