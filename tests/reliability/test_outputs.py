"""Outputs and arguments: one process per output folder, every number range-checked, every
OS error one sentence (issue 14, items 1, 5 and 9)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet.cli import main
from alexnet.data import open_store
from alexnet.data.prepare import prepare_store, publish
from alexnet.engine.checkpoint import load_training_state
from helpers.attack import checkpoint
from helpers.images import gradient, image_folder, save
from helpers.messages import one_error_line
from helpers.runs import alexnet_env, run_alexnet, slowed_alexnet

HOLD = """import sys, time
from alexnet.files import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""



# ---- 1. one process per output folder ----------------------------------------------------

def test_a_second_prepare_into_one_out_is_refused_naming_the_holder(tmp_path, capsys):
    src, out = image_folder(tmp_path / "src", 3), tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE,
                              text=True, env=alexnet_env(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["prepare", str(src), str(out), "--size", "16", "--workers", "1"]) == 2
        err = one_error_line(capsys)
        assert f"pid {holder.pid}" in err and "in use by another alexnet process" in err
        assert not out.exists() and not (tmp_path / "store.partial").exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder died without clean-up: the kernel released its lock.
    assert main(["prepare", str(src), str(out), "--size", "16", "--workers", "1"]) == 0
    assert len(open_store(out)) == 9 and not (tmp_path / "store.lock").exists()


def test_a_second_train_on_one_out_is_refused_naming_the_holder(tiny_store, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_store), "--out", str(out), "epochs=1",
            "val_per_class=5", "batch_size=16"]
    first = slowed_alexnet(args, alexnet_env(tmp_path), step_sleep=1,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock, deadline = tmp_path / "run.lock", time.monotonic() + 60
        while not (lock.is_file() and lock.read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = run_alexnet(args, alexnet_env(tmp_path))
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None            # the first run goes on
    finally:
        first.kill()
        first.wait()


# ---- 5. every number range-checked --------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["eval", "c.safetensors", "--data", "s", "--batch-size", "-1"],
     "--batch-size must be at least 1, got -1"),
    (["eval", "c.safetensors", "--data", "s", "--batch-size", "0"], "--batch-size must be"),
    (["ensemble", "c.safetensors", "--data", "s", "--batch-size", "0"], "--batch-size must be"),
    (["predict", "c.safetensors", "x.png", "--batch-size", "0"], "--batch-size must be"),
    (["predict", "c.safetensors", "x.png", "--top", "0"], "--top must be at least 1, got 0"),
    (["prepare", "{tmp}", "{tmp}/o", "--size", "100000"],
     "--size must be between 1 and 2048, got 100000"),
    (["prepare", "{tmp}", "{tmp}/o", "--size", "0"], "--size must be at least 1, got 0"),
    (["prepare", "{tmp}", "{tmp}/o", "--workers", "0"], "--workers must be from 1 to 1,024"),
    (["prepare", "{tmp}", "{tmp}/o", "--quality", "101"], "--quality must be from 1 to 100"),
    (["bench", "model", "--steps", "0"], "--steps must be at least 1, got 0"),
    (["bench", "prepare", "--size", "100000"], "--size must be from 1 to 2,048, got 100000"),
    (["experiment", "lrn", "--data", "{tmp}", "--seeds", "0"], "--seeds must be from 1 to 1,000"),
    (["experiment", "relu-vs-tanh", "--data", "{tmp}", "--lrs", ""], "--lrs must list one"),
    (["experiment", "relu-vs-tanh", "--data", "{tmp}", "--lrs", "0.1,nan"], "--lrs must list"),
    (["figures", "neighbours", "c.safetensors", "--data", "s", "--query", "q.png", "-k", "0"],
     "-k must be at least 1"),
    (["train", "seed=18446744073709551616"],
     "seed must be a whole number from 0 to 9,223,372,036,854,775,807"),
    (["train", "seed=-1"], "seed must be a whole number from 0"),
    (["train", "momentum=-0.9"], "momentum must be a finite number at least 0"),
    (["train", "weight_decay=-1"], "weight_decay must be a finite number at least 0, got -1"),
    (["train", "lr=nan"], "lr must be a finite number greater than 0, got nan"),
    (["train", "lr=inf"], "lr must be a finite number greater than 0, got inf"),
    (["train", "epochs=0"], "epochs must be a whole number from 1"),
    (["train", "batch_size=-8"], "batch_size must be a whole number from 1"),
    (["train", "data_size=100000"], "data_size must be a whole number from 1 to 2,048"),
    (["train", "gamma=0"], "gamma must be a finite number greater than 0 and at most 1"),
    (["train", "val_per_class=-1"], "val_per_class must be a whole number from 0"),
    (["train", "milestones=0,3"], "milestones must be epochs from 1"),
    (["train", "checkpoint_minutes=-1"], "checkpoint_minutes must be a finite number at least 0"),
    (["train", "warmup_epochs=nan"], "warmup_epochs must be a finite number"),
    (["train", "model.lrn=yes"], "model.lrn='yes' is not a valid bool"),
])
def test_numbers_outside_their_range_are_one_sentence(args, words, tmp_path, capsys):
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    assert words in one_error_line(capsys)


# ---- 9. OS errors, devices, output paths ---------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["train", "--out", ""], "--out is empty"),
    (["train", "--out", "{tmp}/" + "x" * 300], "has a name of 300 bytes"),
    (["train", "--out", "{tmp}/file"], "is a file"),
    (["prepare", "{tmp}", ""], "OUT is empty"),
    (["prepare", "{tmp}", "{tmp}/" + "y" * 256], "names may be at most 255 bytes"),
    (["prepare", "{tmp}", "{tmp}/file"], "exists and is not a store"),
    (["export", "{ckpt}", "--format", "torchscript", "--out", "{tmp}"], "is a folder"),
    (["export", "{ckpt}", "--format", "torchscript", "--out", ""], "--out is empty"),
    (["import-torchvision", "{tmp}/w.pth", "--out", "{tmp}"], "is a folder"),
    (["eval", "{ckpt}", "--data", "{tmp}", "--device", "tpu"], "unknown device 'tpu'"),
    (["predict", "{ckpt}", "{tmp}/x.png", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "device=tpu", "--data", "{tmp}", "--out", "{tmp}/run"], "unknown device 'tpu'"),
    (["figures", "filters", "{ckpt}", "--out", "{tmp}"], "is a folder"),
])
def test_bad_output_paths_and_devices_are_one_sentence(args, words, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    ckpt = checkpoint(tmp_path / "c.safetensors")
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pth")
    save(tmp_path / "x.png", gradient(32, 32))
    code = main([a.format(tmp=tmp_path, ckpt=ckpt) for a in args])
    assert code in (1, 2) and words in one_error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_sentence(tmp_path, capsys):
    ckpt = checkpoint(tmp_path / "c.safetensors")
    assert main(["eval", str(ckpt), "--data", str(tmp_path), "--device", "cuda"]) == 2
    assert "needs a CUDA GPU and none is available" in one_error_line(capsys)


def test_a_folder_the_os_refuses_is_one_sentence(tmp_path, capsys):
    src = image_folder(tmp_path / "src", per_class=1)
    assert main(["prepare", str(src), "/proc/alexnet-no-such/store", "--size", "8"]) == 1
    assert "/proc/alexnet-no-such" in one_error_line(capsys)


def test_non_utf8_file_names_are_prepared(tmp_path, capsys):
    src = image_folder(tmp_path / "src", per_class=1)
    odd = (str(src / "bee").encode() + b"/caf\xe9-\xff.png").decode("utf-8", "surrogateescape")
    save(Path(odd), gradient(24, 24))
    assert main(["prepare", str(src), str(tmp_path / "store"), "--size", "8", "--workers", "1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_class"] == [1, 2, 1]
    store = open_store(tmp_path / "store")
    assert Path(odd).relative_to(src).as_posix() in store.files


def test_a_full_disk_in_prepares_last_phase_loses_nothing(tmp_path, monkeypatch, capsys):
    src = image_folder(tmp_path / "src", per_class=4)
    src.joinpath("bee", "broken.png").write_bytes(b"\x89PNG not really")
    real_save = np.save

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(publish.np, "save", full)
    args = ["prepare", str(src), str(tmp_path / "store"), "--size", "16", "--workers", "1"]
    assert main(args) == 1                          # what the system refused: exit 1
    err = one_error_line(capsys, after_progress=True)
    assert "No space left on device" in err and "run the same command again" in err
    assert "free some space" in err
    monkeypatch.setattr(publish.np, "save", real_save)
    assert main(args + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed_from"] == 13 and summary["images"] == 12   # nothing decoded again
    prepare_store(src, tmp_path / "fresh", size=16, workers=1, progress=False)
    assert np.array_equal(open_store(tmp_path / "store").images,
                          open_store(tmp_path / "fresh").images)


def test_a_full_disk_during_a_checkpoint_save_keeps_the_last_one(tiny_store, tmp_path,
                                                                monkeypatch, capsys):
    from alexnet.engine import checkpoint as ckpt

    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_store), "--out", str(out), "val_per_class=5",
            "batch_size=32", "eval_views=center"]
    assert main(args + ["epochs=1"]) == 0
    before = (out / "last.state.pt").read_bytes()
    capsys.readouterr()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full)
    assert main(args + ["epochs=2"]) == 1
    err = one_error_line(capsys, after_progress=True)
    assert "No space left on device" in err and "last.state.pt" in err
    assert (out / "last.state.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def _file_size_limit(limit: int):
    """A preexec_fn: files the process writes may not grow beyond `limit` bytes (`ulimit -f`;
    Python ignores SIGXFSZ, so a write past it fails with EFBIG)."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_file_size_limit_at_a_checkpoint_save_is_one_sentence_and_resumes(
        tiny_store, tmp_path, monkeypatch, capsys):
    """torch.save reports a failed write as a RuntimeError ("enforce fail at
    inline_container.cc"), not an OSError: still one sentence naming the file, nothing lost;
    and the free-space check of the resume counts the checkpoints it will replace."""
    import shutil

    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_store), "--out", str(out), "val_per_class=5",
            "batch_size=32", "eval_views=center", "threads=1"]
    assert main(args + ["epochs=1"]) == 0
    before = (out / "last.state.pt").read_bytes()
    capsys.readouterr()
    limited = subprocess.run([sys.executable, "-m", "alexnet", *args, "epochs=2"],
                             env=alexnet_env(tmp_path), capture_output=True, text=True,
                             timeout=300, preexec_fn=_file_size_limit(4 * 10 ** 6))
    err = limited.stderr.strip().splitlines()[-1]
    assert limited.returncode == 1 and "Traceback" not in limited.stderr, limited.stderr
    assert err.startswith("alexnet: error: saving the checkpoint") and "File too large" in err
    assert str(out / "last.state.pt") in err and "run the same command" in err
    assert (out / "last.state.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # The disk had room for a whole run (at the peak of a save: two training states, each
    # about two weights files, and three weights files); the run's files hold half of it now,
    # and a resume replaces them rather than adding to them.
    weights = (out / "last.safetensors").stat().st_size
    used = sum(st.st_size for st in {(st.st_ino, st.st_size): st for st in
                                     (p.stat() for p in out.iterdir())}.values())
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(
        10 ** 12, 10 ** 12 - 8 * weights + used, 8 * weights - used))
    assert main(args + ["epochs=2"]) == 0, capsys.readouterr().err
    assert load_training_state(out / "last.state.pt")["epoch"] == 2


def test_free_space_is_checked_before_preparing_and_training(tiny_store, tmp_path,
                                                             monkeypatch, capsys):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(
        10 ** 9, 10 ** 9 - 1000, 1000))
    src = image_folder(tmp_path / "src", per_class=10)
    assert main(["prepare", str(src), str(tmp_path / "store"), "--size", "64"]) == 2
    assert "needs about 368.6 KB free" in one_error_line(capsys)
    assert main(["train", "--data", str(tiny_store), "--out", str(tmp_path / "run")]) == 2
    assert "saving checkpoints in" in one_error_line(capsys)
