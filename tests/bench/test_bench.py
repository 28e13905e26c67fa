"""The benchmarks run and report both sides and their ratio (tiny settings: the figures
themselves are meaningless on a test machine and are not asserted)."""

import json
import shutil

import pytest

from alexnet.bench import format_report
from alexnet.bench.evaluate import bench_eval
from alexnet.bench.model import bench_model
from alexnet.bench.prepare import bench_prepare, worker_counts
from alexnet.bench.train import bench_train
from alexnet.cli import main


def check_report(report, variants):
    assert [row["variant"] for row in report["rows"]] == variants
    assert all(row["images_per_s"] > 0 for row in report["rows"])
    assert "torch" in report["environment"] and "cpu_cores" in report["environment"]
    text = format_report(report)
    for name in report["ratios"]:
        assert f"ratio {name}" in text


def test_model_bench_compares_ours_plain_pytorch_no_lrn_and_the_conv_ceiling():
    report = bench_model("cifar-conv-local", batch=4, steps=1, warmup=1, device="cpu")
    check_report(report, ["ours", "plain PyTorch (fp32, NCHW)",
                          "plain PyTorch (ours' dtype and layout)", "no LRN"])
    assert set(report["ratios"]) == {"ours / plain PyTorch", "ours / no LRN",
                                     "ours / plain PyTorch (ours' dtype and layout)",
                                     "ours / conv2 ceiling (GFLOP/s)"}
    assert report["kernels"]["local"] == ["gemm"]         # ours' own forms, not the plain rows'
    assert "instruction_sets" in report["environment"]["cpu_details"]
    assert report["ceiling"]["input"] == [4, 64, 12, 12]
    assert report["ceiling"]["weight"] == [64, 64, 5, 5] and report["ceiling"]["gflops"] > 0
    assert round(report["step_mflop_per_image"]) == 117   # the 11% net: 3 x 39 MFLOP


def test_plain_pytorch_variant_computes_what_ours_computes():
    # The benchmark's rows differ in how, not in what: same weights, same logits.
    import torch

    from alexnet.bench.model import plain_pytorch
    from alexnet.models import build_model

    torch.manual_seed(0)
    ours = build_model("cifar-conv-local").double().eval()
    plain = plain_pytorch(build_model("cifar-conv-local")).double().eval()
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(3, 3, 24, 24, dtype=torch.float64) * 50
    torch.testing.assert_close(plain(x), ours(x))


def test_eval_bench_counts_views():
    report = bench_eval("cifar-conv-local", images=4, batch=2, steps=1, device="cpu")
    check_report(report, ["ours: batched views on the device",
                          "torchvision: per-image TenCrop on the CPU",
                          "forward only (normalised views on the device)"])
    assert report["rows"][0]["unit"] == "views/s"
    assert set(report["ratios"]) == {"ours / torchvision", "ours / forward only"}


def test_train_bench_on_real_images(cifar10_train, tmp_path):
    folder = tmp_path / "images"
    for class_dir in sorted(cifar10_train.iterdir())[:2]:
        (folder / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:8]:
            shutil.copy(image, folder / class_dir.name)
    report = bench_train(str(folder), "cifar-4layer", batch=4, steps=2, warmup=1, workers=0,
                         device="cpu")
    check_report(report, ["model step only (synthetic)", "ours: store + on-device augmentation",
                          "ours: JPEG store, decoded on the device + augmentation",
                          "torchvision: ImageFolder + PIL + DataLoader"])
    assert report["settings"]["images"] == 16 and report["settings"]["store_size"] == 32


def test_prepare_bench_scales_workers_and_writes_a_jpeg_store_too(cifar10_train):
    report = bench_prepare(str(cifar10_train), size=32, workers=2, images=40)
    check_report(report, ["PIL loop, 1 process", "prepare, 1 worker", "prepare, 2 workers",
                          "prepare, 2 workers, JPEG store"])
    assert all(row["peak_rss_mb_all_processes"] > 0 for row in report["rows"][1:])
    assert worker_counts(16) == [1, 2, 4, 8, 16] and worker_counts(6) == [1, 2, 4, 6]


def test_bench_cli_json_and_bad_model(capsys):
    assert main(["bench", "model", "--model", "cifar-4layer", "--batch", "2", "--steps", "1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["model"] == "cifar-4layer"
    assert main(["bench", "model", "--model", "alexnet-xl"]) == 2
    assert "valid models" in capsys.readouterr().err


def test_bench_train_without_images_is_one_sentence(tmp_path, capsys):
    assert main(["bench", "train", "--data", str(tmp_path / "nowhere")]) == 2
    assert "pass --data FOLDER" in capsys.readouterr().err



def test_model_parallel_bench_times_two_gloo_towers_and_counts_their_bytes(capsys):
    assert main(["bench", "model", "--model-parallel", "--batch", "1", "--steps", "1",
                 "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    check_report(report, ["one device (cpu)", "two towers, 2 gloo processes"])
    exchange = report["exchange"]
    # One image: 28,288 gathered values each way per tower, plus 1,000 partial logits, fp32.
    assert exchange["bytes_per_tower_per_step_counted"] == 4 * (2 * 28288 + 1000)
    assert exchange["bytes_per_tower_per_step_from_shapes"] == 4 * (2 * 28288 + 1000)
    assert "two towers / one device" in report["ratios"]
    assert all(row["cpu_s_per_step"] > 0 for row in report["rows"])
    with pytest.raises(SystemExit) as exit_info:   # an option of `bench model` only
        main(["bench", "train", "--model-parallel"])
    assert exit_info.value.code == 2
    assert main(["bench", "model", "--model-parallel", "--model", "cifar-4layer"]) == 2
    assert "needs model=alexnet-paper" in capsys.readouterr().err
