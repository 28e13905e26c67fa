"""Sources: ImageFolder trees, ILSVRC validation layouts, CIFAR-10 python batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from alexnet.data.sources import find_source, names_for
from alexnet.errors import UserError
from helpers.images import gradient, save

WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark


def test_image_folder_ignores_hidden_and_non_images(tmp_path):
    for cls in ("cat", "dog"):
        save(tmp_path / cls / "a.JPG", gradient(8, 8))
        save(tmp_path / cls / "sub" / "b.png", gradient(8, 8))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"x")
    save(tmp_path / "cat" / ".hidden.jpg", gradient(8, 8))
    save(tmp_path / ".ipynb_checkpoints" / "c.jpg", gradient(8, 8))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("no images here")
    source = find_source(tmp_path)
    assert source.kind == "image-folder" and source.classes == ["cat", "dog"]
    assert source.refs == ["cat/a.JPG", "cat/sub/b.png", "dog/a.JPG", "dog/sub/b.png"]
    assert source.labels.tolist() == [0, 0, 1, 1]


def _flat_val(tmp_path: Path, truth: list[str]) -> Path:
    val = tmp_path / "val"
    for i in range(len(truth)):
        save(val / f"ILSVRC2012_val_{i + 1:08d}.JPEG", gradient(8, 8, seed=i))
    return val


def test_devkit_validation_maps_to_sorted_wnid_indices(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    # Devkit ids are NOT in sorted-wnid order: id 1 = goldfish, 2 = great white, 3 = tench;
    # plus a non-leaf synset that must not become a class.
    synsets = np.array([(1, "n01443537", "goldfish, Carassius auratus", 0),
                        (2, "n01484850", "great white shark", 0),
                        (3, "n01440764", "tench, Tinca tinca", 0),
                        (4, "n00000001", "fish", 3)],
                       dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"),
                              ("num_children", "O")])
    devkit = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    scipy_io.savemat(devkit / "meta.mat", {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("3\n1\n2\n1\n")
    val = _flat_val(tmp_path, ["n01440764", "n01443537", "n01484850", "n01443537"])
    source = find_source(val)           # devkit found beside the val folder
    assert source.kind == "ilsvrc-val-devkit"
    assert source.classes == WNIDS
    assert source.class_names[0] == "tench, Tinca tinca"
    assert source.labels.tolist() == [0, 1, 2, 1]   # tench, goldfish, shark, goldfish


def test_devkit_without_meta_mat_says_so(tmp_path):
    val = _flat_val(tmp_path, ["n01440764"])
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n")
    with pytest.raises(UserError, match="meta.mat"):
        find_source(val)


def test_kaggle_validation_csv(tmp_path):
    val = _flat_val(tmp_path, WNIDS)
    save(val / "stray.JPEG", gradient(8, 8))
    rows = ["ImageId,PredictionString",
            "ILSVRC2012_val_00000001,n01484850 1 2 3 4 n01484850 5 6 7 8",
            "ILSVRC2012_val_00000002,n01440764 1 2 3 4",
            "ILSVRC2012_val_00000003,n01443537 1 2 3 4"]
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish\nn01484850 great white shark\n")
    source = find_source(val)
    assert source.kind == "ilsvrc-val-kaggle" and source.classes == WNIDS
    assert source.labels.tolist() == [2, 0, 1]
    assert source.class_names == ["tench, Tinca tinca", "goldfish", "great white shark"]
    assert source.unlabelled == [{"file": "stray.JPEG", "reason": "no label in LOC_val_solution.csv"}]


def test_validation_sorted_into_wnid_folders_is_an_image_folder(tmp_path):
    for i, wnid in enumerate(WNIDS):
        save(tmp_path / wnid / f"ILSVRC2012_val_{i + 1:08d}.JPEG", gradient(8, 8))
    source = find_source(tmp_path)
    assert source.classes == WNIDS and source.labels.tolist() == [0, 1, 2]


def test_names_for_the_1000_imagenet_wnids():
    classes = [f"n{i:08d}" for i in range(1000)]
    names = names_for(classes)
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"
    assert names_for(["cat", "dog"]) == ["cat", "dog"]


def _cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    batch = {b"batch_label": b"fake", b"labels": labels, b"data": data,
             b"filenames": [f"f{i}.png".encode() for i in range(len(labels))]}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar_python_batches_are_read_correctly(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    rows = images.transpose(0, 3, 1, 2).reshape(6, 3072)   # R plane, G plane, B plane
    for i in range(5):
        _cifar_batch(root / f"data_batch_{i + 1}", rows[i:i + 1], [i])
    _cifar_batch(root / "test_batch", rows[5:], [9])
    source = find_source(root)
    assert source.kind == "cifar10-python" and source.classes[0] == "airplane"
    assert source.labels.tolist() == [0, 1, 2, 3, 4] and source.refs[0] == "data_batch_1/00000"
    assert find_source(root, split="test").labels.tolist() == [9]

    from alexnet.data import open_store, prepare_store
    prepare_store(root, tmp_path / "store", size=32, workers=1, progress=False)
    store = open_store(tmp_path / "store")
    assert np.array_equal(store.images, images[:5]) and store.labels.tolist() == [0, 1, 2, 3, 4]


def test_cifar_pickle_with_foreign_objects_is_refused(tmp_path):
    root = tmp_path / "cifar"
    root.mkdir()
    (root / "test_batch").write_bytes(pickle.dumps({b"labels": [0], b"data": Path("/")}))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"]}))
    with pytest.raises(UserError, match="not a readable CIFAR-10"):
        find_source(root, split="test")


def test_wnid_prefixed_flat_folder(tmp_path):
    save(tmp_path / "n01443537_goldfish.JPEG", gradient(8, 8))
    save(tmp_path / "n01440764_tench.JPEG", gradient(8, 8))
    source = find_source(tmp_path)
    assert source.classes == ["n01440764", "n01443537"]
    assert source.class_names == ["tench", "goldfish"]
    assert source.labels.tolist() == [0, 1] and source.refs[0] == "n01440764_tench.JPEG"


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(UserError, match="no such"):
        find_source(tmp_path / "missing")
    with pytest.raises(UserError, match="no images"):
        find_source(tmp_path)


def test_one_class_list_reader_for_prepare_and_import(tmp_path, capsys):
    """A class per line, the whole line its id and name, except `<wnid> <words>` lines
    (LOC_synset_mapping.txt): `prepare --classes` and `import-torchvision --classes` agree."""
    from alexnet.cli import main
    from alexnet.data import open_store
    from alexnet.data.sources import read_class_list

    listing = tmp_path / "classes.txt"
    listing.write_text("n01440764 tench, Tinca tinca\n\nred panda\ncat\n")
    assert read_class_list(listing) == (["n01440764", "red panda", "cat"],
                                        ["tench, Tinca tinca", "red panda", "cat"])
    save(tmp_path / "src" / "red panda" / "a.png", gradient(8, 8))
    save(tmp_path / "src" / "cat" / "b.png", gradient(8, 8))
    assert main(["prepare", str(tmp_path / "src"), str(tmp_path / "store"), "--size", "8",
                 "--classes", str(listing)]) == 0
    store = open_store(tmp_path / "store")
    assert store.classes == ["n01440764", "red panda", "cat"]
    assert store.labels.tolist() == [2, 1]                # cat/b.png, then red panda/a.png
    with pytest.raises(UserError, match="--classes-from .*neither a prepared store"):
        read_class_list(tmp_path / "nowhere", "--classes-from")
