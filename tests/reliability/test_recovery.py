"""Kills, changed sources and damaged state: workers die with prepare, stores follow their
source, compaction and training resume from what is intact (issue 14, items 7, 8 and 10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alexnet.cli import main
from alexnet.data import ensure_store, open_store, prepare_store
from alexnet.data.prepare import compact
from alexnet.engine.checkpoint import load_training_state
from alexnet.errors import UserError
from helpers.images import gradient, image_folder, save
from helpers.messages import one_error_line
from helpers.runs import alexnet_env

# ---- 7. decoding workers die with prepare ----------------------------------------------------

def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _workers(pid: int) -> set[int]:
    """`pid`'s forked children now alive: those running its own command line (a helper that an
    import runs and ends at once, such as `ldconfig -p`, is not a worker)."""
    def cmdline(p: int) -> bytes | None:
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            return None
    own = cmdline(pid)
    return {child for child in _children(pid) if cmdline(child) == own}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_prepare_is_killed(tmp_path):
    save(tmp_path / "one.jpg", gradient(160, 120))
    for c in range(3):                     # 3,000 images: seconds of work for two workers
        (tmp_path / "src" / f"c{c}").mkdir(parents=True)
        for i in range(1000):
            os.link(tmp_path / "one.jpg", tmp_path / "src" / f"c{c}" / f"{i}.jpg")
    proc = subprocess.Popen([sys.executable, "-m", "alexnet", "prepare", str(tmp_path / "src"),
                             str(tmp_path / "store"), "--size", "64", "--workers", "2"],
                            env=alexnet_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        workers = _workers(proc.pid)
        time.sleep(0.005)
    time.sleep(0.2)                        # decoding, with work still queued
    assert len(workers) == 2 and proc.poll() is None, "prepare ended before it was killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:                       # do not leave them behind on a failure
        os.kill(pid, signal.SIGKILL)
    assert not left


# ---- 8. stores follow their source; compaction resumes --------------------------------------

def test_a_store_is_prepared_again_when_its_source_changed(tmp_path, capsys):
    src, out = image_folder(tmp_path / "src", 3), tmp_path / "store"
    args = ["prepare", str(src), str(out), "--size", "16", "--workers", "1", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 9
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "already prepared"
    save(src / "bee" / "new.png", gradient(30, 30, seed=99))               # a file added
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "changed since" in captured.err
    assert json.loads(captured.out)["per_class"] == [3, 4, 3]
    before = np.array(open_store(out).images[0])
    save(src / "ant" / "0.png", 255 - gradient(20, 20))                    # a file replaced
    os.utime(src / "ant" / "0.png", ns=(1, 1))
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["status"] == "prepared"
    assert not np.array_equal(open_store(out).images[0], before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "store"]   # nothing left over


def test_the_train_data_cache_follows_its_folder(tmp_path):
    src = image_folder(tmp_path / "src", 3)
    assert len(ensure_store(src, 16, cache_dir=tmp_path / "cache")) == 9
    (src / "cow" / "2.png").unlink()
    store = ensure_store(src, 16, cache_dir=tmp_path / "cache")
    assert len(store) == 8 and store.manifest["per_class"] == [3, 3, 2]


def test_a_jpeg_store_kept_inside_its_source_is_not_a_class(tmp_path, capsys):
    src = image_folder(tmp_path / "src", 3)
    args = ["prepare", str(src), str(src / "store"), "--size", "16", "--format", "jpeg",
            "--workers", "1", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == ["ant", "bee", "cow"]
    assert main(args) == 0                                       # its own store is no change
    assert json.loads(capsys.readouterr().out)["status"] == "already prepared"
    other = prepare_store(src, tmp_path / "other", size=16, workers=1, progress=False)
    assert other["classes"] == ["ant", "bee", "cow"] and other["images"] == 9
    assert "store: a prepared store, not read as images" in open_store(
        tmp_path / "other").manifest["notes"]


def test_a_kill_during_compaction_continues_it(tmp_path, monkeypatch):
    src = image_folder(tmp_path / "src", per_class=8)
    (src / "ant" / "0-broken.png").write_bytes(b"")       # a hole first: every row moves
    prepare_store(src, tmp_path / "fresh", size=16, workers=1, progress=False)
    row = 16 * 16 * 3
    monkeypatch.setattr(compact, "COMPACT_BLOCK_BYTES", 5 * row)
    real_pwrite, blocks = os.pwrite, []

    def dies_in_the_third_block(fd, data, offset):
        if len(data) == 5 * row:
            blocks.append(offset)
            if len(blocks) == 3:                           # half a block written, then killed
                real_pwrite(fd, data[:len(data) // 2], offset)
                raise KeyboardInterrupt
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(compact.os, "pwrite", dies_in_the_third_block)
    with pytest.raises(KeyboardInterrupt):
        prepare_store(src, tmp_path / "store", size=16, workers=1, progress=False)
    monkeypatch.setattr(compact.os, "pwrite", real_pwrite)
    resumed = prepare_store(src, tmp_path / "store", size=16, workers=1, progress=False)
    assert resumed["resumed_from"] == 25                   # not one image decoded again
    a, b = open_store(tmp_path / "fresh"), open_store(tmp_path / "store")
    assert np.array_equal(a.images, b.images) and a.files == b.files


# ---- 10. a damaged training state ---------------------------------------------------------


def test_a_damaged_state_falls_back_to_the_one_before(tiny_store, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_store), "--out", str(out), "val_per_class=5",
            "batch_size=16", "checkpoint_minutes=0", "eval_views=center"]
    assert main(args + ["epochs=1"]) == 0
    last, previous = out / "last.state.pt", out / "last.state.pt.previous"
    assert load_training_state(previous)["global_step"] == 8       # saved one step before
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0x40                                   # one flipped bit
    last.write_bytes(bytes(data))
    with pytest.raises(UserError, match="do not match the SHA-256 recorded when it was saved"):
        load_training_state(last)
    capsys.readouterr()
    assert main(args + ["epochs=2"]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "is damaged" in err
    assert "resuming from" in err and "last.state.pt.previous' (epoch 1, step 8)" in err
    assert load_training_state(last)["epoch"] == 2


def test_two_damaged_states_are_one_sentence(tiny_store, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("last.state.pt", "last.state.pt.previous"):
        (out / name).write_bytes(b"PK\x03\x04 damaged")
    assert main(["train", "--data", str(tiny_store), "--out", str(out)]) == 2
    err = one_error_line(capsys)
    assert "last.state.pt' is damaged or not a loadable training state, refused (" \
        "PytorchStreamReader failed reading zip archive: not a ZIP archive)" in err
