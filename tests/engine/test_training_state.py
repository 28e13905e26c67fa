"""Training-state files: a crash mid-write keeps the previous file, code is never unpickled."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from alexnet.engine.checkpoint import (
    STATE_FORMAT,
    load_model,
    load_training_state,
    save_training_state,
)
from alexnet.errors import UserError


def test_state_round_trips(tmp_path):
    state = {"format": STATE_FORMAT, "w": torch.arange(5.0), "epoch": 3, "best": None,
             "history": [{"epoch": 1, "lr": 0.01}], "rng": (3, [1, 2], None)}
    save_training_state(tmp_path / "s.pt", state)
    back = load_training_state(tmp_path / "s.pt")
    assert torch.equal(back["w"], state["w"]) and back["history"] == state["history"]


CRASH = textwrap.dedent("""
    import os, signal, sys, torch
    from alexnet.engine import checkpoint
    from alexnet.models import build_model
    from alexnet.data.normalization import Preprocessing

    folder, what = sys.argv[1], sys.argv[2]
    model = build_model("cifar-4layer", num_classes=3)
    pre = Preprocessing(size=32, crop=32)
    real_save = torch.save

    def dying_save(obj, f, *a, **k):   # half a file, then the process dies
        real_save(obj, f, *a, **k)        # f: the open temporary file
        f.flush()
        f.truncate(f.tell() // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    if what == "first":
        checkpoint.save_training_state(f"{folder}/last.state.pt",
                                       {"format": checkpoint.STATE_FORMAT, "epoch": 1})
        checkpoint.save_weights(f"{folder}/last.safetensors", model, classes=["a", "b", "c"],
                                preprocessing=pre, extra={"epoch": 1})
    elif what == "state":
        torch.save = dying_save
        checkpoint.save_training_state(f"{folder}/last.state.pt",
                                       {"format": checkpoint.STATE_FORMAT, "epoch": 2})
    else:
        import safetensors.torch as st
        real_file = st.save_file
        def dying_file(tensors, filename, metadata=None):
            real_file(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as fh:
                fh.truncate(100)
            os.kill(os.getpid(), signal.SIGKILL)
        st.save_file = dying_file
        checkpoint.save_weights(f"{folder}/last.safetensors", model, classes=["a", "b", "c"],
                                preprocessing=pre, extra={"epoch": 2})
""")


def test_a_crash_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([sys.executable, str(script), str(tmp_path), "first"], env=env)
    assert first.returncode == 0
    for what in ("state", "weights"):
        crashed = subprocess.run([sys.executable, str(script), str(tmp_path), what], env=env)
        assert crashed.returncode == -9       # killed in the middle of the write
    assert load_training_state(tmp_path / "last.state.pt")["epoch"] == 1
    loaded = load_model(tmp_path / "last.safetensors")
    assert loaded.meta["epoch"] == 1 and loaded.classes == ["a", "b", "c"]


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_state_carrying_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"format": STATE_FORMAT, "payload": RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="refused"):
        load_training_state(tmp_path / "evil.pt")
    assert not marker.exists()


def test_a_corrupt_or_foreign_state_is_one_sentence(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="not a loadable training state"):
        load_training_state(tmp_path / "junk.pt")
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an alexnet training state"):
        load_training_state(tmp_path / "other.pt")
