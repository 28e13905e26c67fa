"""torch's CPU threads: a default that leaves busy cores alone, `threads=` / `--threads`."""

from __future__ import annotations

import json
import os

import pytest
import torch

from alexnet.cli import main
from alexnet.data import threads
from alexnet.recipes import resolve_config


@pytest.fixture
def machine(monkeypatch):
    """A machine of `cpus` usable CPUs of which other processes keep `load` busy."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)

    def set_machine(cpus: int, load: float) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
        monkeypatch.setattr(threads, "busy_cpus", lambda: load)
    return set_machine


def test_busy_cpus_reads_the_cpu_time_spent_now(monkeypatch, tmp_path):
    """Two /proc/stat samples: the busy share of the CPU time between them, times the CPUs
    (not the load average, which still counts a job ended a minute ago)."""
    import builtins

    samples = iter(["cpu 100 0 100 800 0 0 0 0 0 0\n", "cpu 250 0 150 900 0 0 0 0 0 0\n"])
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/stat":
            stat = tmp_path / "stat"
            stat.write_text(next(samples))
            return real_open(stat, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.busy_cpus() == pytest.approx(2 * 200 / 300)   # 200 of 300 ticks busy


def test_the_default_takes_the_cores_other_jobs_leave_free(machine, monkeypatch):
    machine(2, 0.1)
    assert threads.default_threads() == 2        # idle: every core
    machine(2, 1.0)
    assert threads.default_threads() == 1        # another job on one core
    machine(2, 6.0)
    assert threads.default_threads() == 1        # busier than the machine: still one
    machine(16, 3.4)
    assert threads.default_threads() == 13
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")   # torchrun: four processes share them
    machine(16, 0.0)
    assert threads.default_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")    # the user's explicit choice wins
    assert threads.default_threads() == 3


def test_use_threads_sets_torch_once_and_refuses_zero():
    before = torch.get_num_threads()
    try:
        assert threads.use_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(Exception, match="threads must be at least 1"):
            threads.use_threads(0)
    finally:
        torch.set_num_threads(before)


def test_threads_is_a_setting():
    assert resolve_config(None, ["threads=3"]).threads == 3
    assert resolve_config(None, ["threads=auto"]).threads is None
    assert resolve_config(None, []).threads is None


def test_train_threads_option_reaches_torch_and_may_change_on_resume(tiny_store, tmp_path,
                                                                     monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_store), "--out", str(out), "val_per_class=2",
            "batch_size=32", "eval_views=center"]
    try:
        assert main([*args, "--threads", "1", "epochs=1"]) == 0
        assert json.loads((out / "config.json").read_text())["threads"] == 1
        assert json.loads((out / "run.json").read_text())["starts"][0]["torch_threads"] == 1
        assert main([*args, "--threads", "2", "epochs=2"]) == 0     # resumed, not refused
        starts = json.loads((out / "run.json").read_text())["starts"]
        assert [s["torch_threads"] for s in starts] == [1, 2]
        assert main([*args, "--threads", "1", "epochs=2"]) == 0     # finished: read, not a start
        assert json.loads((out / "run.json").read_text())["starts"] == starts
        assert json.loads((out / "config.json").read_text())["threads"] == 2
    finally:
        torch.set_num_threads(before)


def test_library_thread_settings_stay_with_the_threads_that_made_them():
    """The pools and single_threaded() change OpenMP's count of their own thread only, and
    threads_for gives the caller's count back (torch.set_num_threads would change the whole
    process)."""
    from alexnet.data.threads import single_threaded, thread_pool, threads_for

    before = torch.get_num_threads()
    with threads_for(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    per_thread = threads._openmp() is not None     # else these set nothing at all
    with single_threaded():
        assert torch.get_num_threads() == (1 if per_thread else before)
    assert torch.get_num_threads() == before
    counts = list(thread_pool(2).map(lambda _: torch.get_num_threads(), range(4)))
    assert torch.get_num_threads() == before
    assert counts == [1] * 4 or not per_thread


def test_a_command_gives_the_callers_thread_count_back(tmp_path):
    """`main` sets torch's threads for the command only: a caller in a longer-lived process
    (a notebook, these tests) keeps its own count, whether the command succeeds or fails."""
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    missing = tmp_path / "missing.png"
    try:
        assert main(["predict", str(missing), "--threads", str(other)]) != 0
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)
