"""`alexnet predict`: real images in, well-formed normalised top-k out; bad input reported."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from alexnet.cli import main
from alexnet.data.normalization import Preprocessing
from alexnet.engine.checkpoint import save_weights
from alexnet.models import build_model

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """cifar-conv-local with random weights and a CIFAR-like mean image."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "conv-local.safetensors"
    mean = torch.full((32, 32, 3), 120.0) + torch.rand(32, 32, 3) * 10
    save_weights(path, build_model("cifar-conv-local"), classes=CIFAR_CLASSES,
                 preprocessing=Preprocessing(32, 24, mean_image=mean, channel_std=(64.0,) * 3))
    return path


def predict_json(capsys, *argv) -> tuple[int, list[dict], str]:
    code = main(["predict", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def assert_well_formed(entry: dict, k: int, classes: list[str]) -> None:
    top = entry["top"]
    assert len(top) == k
    labels = [t["label"] for t in top]
    assert len(set(labels)) == k and set(labels) <= set(classes)
    probs = [t["prob"] for t in top]
    assert all(0 <= p <= 1 for p in probs) and probs == sorted(probs, reverse=True)
    assert sum(probs) <= 1 + 1e-5


@pytest.mark.parametrize("views", ["center", "ten"])
def test_predict_real_images(ckpt, cifar10_train, imagenet_samples, capsys, views):
    files = [cifar10_train / "cat" / "0000.jpg", cifar10_train / "ship" / "0001.jpg",
             sorted(imagenet_samples.iterdir())[0]]   # a large JPEG, resized like training
    code, results, _ = predict_json(capsys, ckpt, *files, "--top", "10", "--views", views)
    assert code == 0 and [r["file"] for r in results] == [str(f) for f in files]
    for entry in results:
        assert_well_formed(entry, 10, CIFAR_CLASSES)
        assert sum(t["prob"] for t in entry["top"]) == pytest.approx(1, abs=1e-4)  # all classes
    code, top3, _ = predict_json(capsys, ckpt, *files, "--views", views, "--top", "3")
    assert [e["top"] for e in top3] == [e["top"][:3] for e in results]


def test_predict_matches_the_evaluation_path(ckpt, cifar10_train, capsys):
    """Same numbers as decoding with load_image and calling view_probabilities directly."""
    from alexnet.data.image_file import load_image
    from alexnet.engine.checkpoint import load_model
    from alexnet.engine.evaluate import view_probabilities

    file = cifar10_train / "dog" / "0003.jpg"
    # fp32, as the direct call below (predict takes the bf16 fast path where it is native)
    _, results, _ = predict_json(capsys, ckpt, file, "--top", "10", "--views", "ten",
                                 "--amp", "none")
    loaded = load_model(ckpt)
    probs = view_probabilities(loaded.model, load_image(file, 32)[None], loaded.preprocessing,
                               views="ten")[0]
    for t in results[0]["top"]:
        assert t["prob"] == pytest.approx(float(probs[CIFAR_CLASSES.index(t["label"])]),
                                          abs=1e-6)


def test_folder_with_broken_images_predicts_the_rest(ckpt, cifar10_train, tmp_path, capsys):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(cifar10_train / "frog" / "0000.jpg", folder / "a.jpg")
    shutil.copy(cifar10_train / "horse" / "0000.jpg", folder / "sub" / "b.JPG")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image, not reported")
    code, results, err = predict_json(capsys, ckpt, folder, tmp_path / "missing.jpg")
    assert code == 0
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in results}
    assert set(by_name) == {"a.jpg", "b.JPG", "broken.jpg", "empty.png", "missing.jpg"}
    for name in ("a.jpg", "b.JPG"):
        assert_well_formed(by_name[name], 5, CIFAR_CLASSES)
    for name in ("broken.jpg", "empty.png", "missing.jpg"):
        assert by_name[name]["error"] and name in err
    assert "2 could not be read" not in err and "3 could not be read" in err


def test_all_broken_exits_non_zero(ckpt, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    code, results, err = predict_json(capsys, ckpt, bad)
    assert code == 1 and results == [{"file": str(bad), "error": results[0]["error"]}]
    assert "bad.jpg" in err


def test_human_output(ckpt, cifar10_train, capsys):
    assert main(["predict", str(ckpt), str(cifar10_train / "cat" / "0000.jpg"), "--top", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"model: {ckpt} (")           # which model, always
    lines = captured.out.splitlines()
    assert lines[0].endswith("0000.jpg") and len(lines) == 3 and lines[1].strip().endswith(
        tuple(CIFAR_CLASSES))


def test_missing_model_name_lists_the_shipped_ones(cifar10_train, capsys):
    from alexnet.engine.checkpoint import shipped_models

    code = main(["predict", "no-such-model", str(cifar10_train / "cat" / "0000.jpg")])
    err = capsys.readouterr().err
    assert code == 2 and "'no-such-model'" in err and err.count("\n") == 1
    for name in shipped_models():
        assert name in err
    if not shipped_models():
        assert "none" in err


def test_classes_that_do_not_fit(ckpt, cifar10_train, tmp_path, capsys):
    image = str(cifar10_train / "cat" / "0000.jpg")
    assert main(["predict", str(ckpt), image, "--top", "11"]) == 2
    assert "--top 11" in capsys.readouterr().err
    wrong = tmp_path / "wrong-classes.safetensors"
    save_weights(wrong, build_model("cifar-4layer"), classes=["a", "b", "c"],
                 preprocessing=Preprocessing(32, 32))
    assert main(["predict", str(wrong), image]) == 2
    err = capsys.readouterr().err
    assert "3 classes" in err and "10 outputs" in err


def test_run_folder_is_a_model(ckpt, cifar10_train, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ckpt, run / "best.safetensors")
    code, results, _ = predict_json(capsys, run, cifar10_train / "cat" / "0000.jpg")
    assert code == 0 and len(results[0]["top"]) == 5


def test_default_model_when_none_is_given(cifar10_train, capsys):
    from alexnet.cli.predict import DEFAULT_MODEL
    from alexnet.engine.checkpoint import shipped_models

    code = main(["predict", str(cifar10_train / "cat" / "0000.jpg"), "--json"])
    captured = capsys.readouterr()
    if DEFAULT_MODEL in shipped_models():
        assert code == 0 and len(json.loads(captured.out)[0]["top"]) == 5
        assert f"no model named: classifying with the shipped CIFAR-10 model " \
               f"{DEFAULT_MODEL!r} (cifar-conv-local, 10 classes: airplane, " in captured.err
        assert main(["predict", DEFAULT_MODEL, str(cifar10_train / "cat" / "0000.jpg")]) == 0
        assert f"model: {DEFAULT_MODEL} (cifar-conv-local" in capsys.readouterr().err
    else:
        assert code == 2 and DEFAULT_MODEL in captured.err and "no model given" in captured.err


def test_default_top_fits_small_class_counts(cifar10_train, tmp_path, capsys):
    small = tmp_path / "three.safetensors"
    save_weights(small, build_model("cifar-4layer", num_classes=3), classes=["a", "b", "c"],
                 preprocessing=Preprocessing(32, 32))
    code, results, _ = predict_json(capsys, small, cifar10_train / "cat" / "0000.jpg")
    assert code == 0 and len(results[0]["top"]) == 3
    assert sum(t["prob"] for t in results[0]["top"]) == pytest.approx(1, abs=1e-4)


def test_torch_file_as_model_points_to_import(cifar10_train, tmp_path, capsys):
    pth = tmp_path / "alexnet-owt.pth"
    torch.save({"w": torch.zeros(1)}, pth)
    assert main(["predict", str(pth), str(cifar10_train / "cat" / "0000.jpg")]) == 2
    assert "import-torchvision" in capsys.readouterr().err


def test_folders_skip_hidden_files_as_prepare_does(ckpt, tmp_path, capsys):
    """macOS's `._photo.jpg` beside a photo is no image, for predict as for prepare."""
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "photo.jpg")
    (tmp_path / "._photo.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / ".cache").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / ".cache" / "thumb.png")
    code, results, err = predict_json(capsys, ckpt, tmp_path)
    assert code == 0 and [r["file"] for r in results] == [str(tmp_path / "photo.jpg")]
    assert "skipped" not in err
