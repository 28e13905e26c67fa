"""Interrupting `prepare_store` part-way, as Ctrl-C would, for the resume tests."""

from __future__ import annotations

import pytest

from alexnet.data import prepare as prep


def interrupt_prepare(monkeypatch, *args, chunks: int = 3, **kwargs) -> None:
    """Run prepare_store(*args, **kwargs) with a checkpoint after every chunk and a
    KeyboardInterrupt when chunk `chunks` + 1 starts; leaves `_work` as it was."""
    calls = {"n": 0}
    real_work = prep._work

    def dying_work(task):
        calls["n"] += 1
        if calls["n"] > chunks:
            raise KeyboardInterrupt
        return real_work(task)

    monkeypatch.setattr(prep, "_work", dying_work)
    monkeypatch.setattr(prep, "CHECKPOINT_EVERY_S", 0.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            prep.prepare_store(*args, **kwargs)
    finally:
        monkeypatch.setattr(prep, "_work", real_work)
