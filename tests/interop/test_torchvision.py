"""torchvision AlexNet state dicts import into checkpoints, predict identically, and go back."""

from __future__ import annotations

import pytest
import torch
import torchvision

from alexnet.cli import main
from alexnet.data.normalization import IMAGENET_CHANNEL_MEAN, IMAGENET_CHANNEL_STD
from alexnet.engine.checkpoint import load_model, save_weights
from alexnet.errors import UserError
from alexnet.interop.torchvision import imagenet_categories, import_torchvision
from alexnet.models import build_model


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """(torchvision model with random weights, its state dict saved with torch.save)."""
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path_factory.mktemp("tv") / "alexnet-random.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def three_class_file(torchvision_file, tmp_path_factory):
    """The same weights with fc8 cut to 3 classes, saved with torch.save."""
    model, _ = torchvision_file
    state = dict(model.state_dict())
    state["classifier.6.weight"] = state["classifier.6.weight"][:3].clone()
    state["classifier.6.bias"] = state["classifier.6.bias"][:3].clone()
    path = tmp_path_factory.mktemp("tv3") / "three.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def imported(torchvision_file, tmp_path_factory):
    _, path = torchvision_file
    out = tmp_path_factory.mktemp("ckpt") / "tv.safetensors"
    assert main(["import-torchvision", str(path), "--out", str(out)]) == 0
    return out


def test_import_predicts_identically_to_torchvision(torchvision_file, imported):
    model, _ = torchvision_file
    loaded = load_model(imported)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert loaded.name == "alexnet-torchvision"


def test_import_records_imagenet_classes_and_torchvision_preprocessing(imported):
    loaded = load_model(imported)
    assert len(loaded.classes) == 1000 and loaded.classes[:2] == ["tench", "goldfish"]
    assert loaded.classes == imagenet_categories()
    pre = loaded.preprocessing
    assert (pre.size, pre.crop, pre.kind) == (256, 224, "per-channel")
    assert pre.channel_mean == pytest.approx(IMAGENET_CHANNEL_MEAN)
    assert pre.channel_std == pytest.approx(IMAGENET_CHANNEL_STD)
    assert loaded.meta["source"] == "torchvision" and len(loaded.meta["imported_sha256"]) == 64


def test_export_back_to_torchvision_round_trips(torchvision_file, imported, tmp_path):
    model, _ = torchvision_file
    out = tmp_path / "back.pth"
    assert main(["export", str(imported), "--format", "torchvision", "--out", str(out)]) == 0
    state = torch.load(out, weights_only=True)
    fresh = torchvision.models.alexnet(weights=None)
    fresh.load_state_dict(state, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key


def test_wrapped_and_prefixed_state_dicts_import(torchvision_file, tmp_path):
    model, _ = torchvision_file
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "epoch": 3}, path)
    import_torchvision(path, tmp_path / "w.safetensors")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "w.safetensors").model(x), model(x))


def test_other_class_counts_need_names(three_class_file, tmp_path, capsys):
    path = three_class_file
    out = tmp_path / "three.safetensors"
    assert main(["import-torchvision", str(path), "--out", str(out)]) == 2
    assert "3 classes" in capsys.readouterr().err and not out.exists()
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    assert main(["import-torchvision", str(path), "--out", str(out), "--classes", str(names)]) == 2
    assert "2 class names" in capsys.readouterr().err
    names.write_text("cat\ndog\nbird\n")
    assert main(["import-torchvision", str(path), "--out", str(out), "--classes", str(names)]) == 0
    assert load_model(out).classes == ["cat", "dog", "bird"]


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        import_torchvision(tmp_path / "missing.pth", tmp_path / "o.safetensors")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="junk.pth"):
        import_torchvision(junk, tmp_path / "o.safetensors")
    pickled = tmp_path / "whole-model.pth"
    torch.save(build_model("cifar-4layer"), pickled)  # a pickled module, not a state dict
    with pytest.raises(UserError, match="state dict"):
        import_torchvision(pickled, tmp_path / "o.safetensors")
    other = tmp_path / "other.pth"
    torch.save(build_model("cifar-4layer").state_dict(), other)
    with pytest.raises(UserError, match="not a torchvision AlexNet"):
        import_torchvision(other, tmp_path / "o.safetensors")


def test_only_torchvision_layout_exports_as_torchvision(tmp_path, capsys):
    ckpt = tmp_path / "small.safetensors"
    from alexnet.data.normalization import Preprocessing

    save_weights(ckpt, build_model("cifar-4layer"), classes=list("abcdefghij"),
                 preprocessing=Preprocessing(32, 32))
    assert main(["export", str(ckpt), "--format", "torchvision"]) == 2
    assert "alexnet-torchvision" in capsys.readouterr().err


def test_predict_with_imported_weights_matches_torchvision(torchvision_file, tmp_path,
                                                            imagenet_samples, capsys):
    """`alexnet predict` on real images == torchvision's model on the same preprocessing,
    and agrees with torchvision's own eval transform (top-1 label, probabilities ~1e-3)."""
    import json

    from PIL import Image
    from torchvision.models import AlexNet_Weights

    from alexnet.data.image_file import load_image
    from alexnet.data.normalization import imagenet_preprocessing
    from alexnet.data.views import center_view

    model, _ = torchvision_file
    peaked = torchvision.models.alexnet(weights=None).eval()
    peaked.load_state_dict(model.state_dict())
    with torch.no_grad():  # random weights give near-ties; a sharper fc8 makes ranks stable
        peaked.classifier[6].weight.mul_(200)
    weights = tmp_path / "peaked.pth"
    torch.save(peaked.state_dict(), weights)
    ckpt = tmp_path / "peaked.safetensors"
    import_torchvision(weights, ckpt)
    files = sorted(imagenet_samples.iterdir())[:4]
    # fp32, as torchvision's model below (predict takes bf16 where the CPU has it natively)
    assert main(["predict", str(ckpt), *map(str, files), "--json", "--amp", "none"]) == 0
    results = json.loads(capsys.readouterr().out)
    categories = imagenet_categories()
    transform = AlexNet_Weights.IMAGENET1K_V1.transforms()
    for file, entry in zip(files, results, strict=True):
        ours = center_view(torch.from_numpy(load_image(file, 256))[None],
                           imagenet_preprocessing())
        with torch.no_grad():
            exact = peaked(ours).softmax(1)[0]
            theirs = peaked(transform(Image.open(file).convert("RGB"))[None]).softmax(1)[0]
        labels = [t["label"] for t in entry["top"]]
        assert labels == [categories[i] for i in exact.topk(5).indices]
        for t in entry["top"]:
            i = categories.index(t["label"])
            assert t["prob"] == pytest.approx(float(exact[i]), abs=1e-6)
            assert t["prob"] == pytest.approx(float(theirs[i]), abs=5e-3)
        assert labels[0] == categories[int(theirs.argmax())]


def test_classes_from_a_store_make_eval_work(three_class_file, tmp_path, cifar10_train,
                                              capsys):
    """Classes taken from a store (ids + names) let `alexnet eval` run on that store."""
    import json
    import shutil

    from alexnet.data import prepare_store

    weights = three_class_file
    src = tmp_path / "src"
    for name in ("cat", "dog", "ship"):
        (src / name).mkdir(parents=True)
        for i in range(2):
            shutil.copy(cifar10_train / name / f"000{i}.jpg", src / name / f"{i}.jpg")
    prepare_store(src, tmp_path / "store", size=256, workers=1, progress=False)
    ckpt = tmp_path / "three.safetensors"
    assert main(["import-torchvision", str(weights), "--out", str(ckpt), "--classes-from",
                 str(tmp_path / "store")]) == 0
    assert load_model(ckpt).classes == ["cat", "dog", "ship"]
    assert main(["eval", str(ckpt), "--data", str(tmp_path / "store"), "--json",
                 "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 6 and 0 <= result["top1_error"] <= 1


def test_synset_mapping_file_gives_ids_and_names(three_class_file, tmp_path, capsys,
                                                 imagenet_samples):
    import json

    weights = three_class_file
    mapping = tmp_path / "LOC_synset_mapping.txt"
    mapping.write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
                       "n01484850 great white shark\n")
    ckpt = tmp_path / "three.safetensors"
    assert main(["import-torchvision", str(weights), "--out", str(ckpt), "--classes",
                 str(mapping)]) == 0
    loaded = load_model(ckpt)
    assert loaded.classes == ["n01440764", "n01443537", "n01484850"]
    assert loaded.meta["class_names"] == ["tench, Tinca tinca", "goldfish, Carassius auratus",
                                          "great white shark"]
    image = sorted(imagenet_samples.iterdir())[0]
    capsys.readouterr()
    assert main(["predict", str(ckpt), str(image), "--top", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert {t["class"] for t in top} == set(loaded.classes)
    assert {t["label"] for t in top} == set(loaded.meta["class_names"])
