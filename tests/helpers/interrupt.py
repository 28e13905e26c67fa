"""Interrupting `prepare_store` part-way, as Ctrl-C would, for the resume tests."""

from __future__ import annotations

import pytest

from alexnet.data.prepare import pool, prepare_store, worker


def interrupt_prepare(monkeypatch, *args, chunks: int = 3, **kwargs) -> None:
    """Run prepare_store(*args, **kwargs) with a checkpoint after every chunk and a
    KeyboardInterrupt when chunk `chunks` + 1 starts; leaves `decode_chunk` as it was."""
    calls = {"n": 0}
    real_work = worker.decode_chunk

    def dying_work(task):
        calls["n"] += 1
        if calls["n"] > chunks:
            raise KeyboardInterrupt
        return real_work(task)

    monkeypatch.setattr(worker, "decode_chunk", dying_work)
    monkeypatch.setattr(pool, "CHECKPOINT_EVERY_S", 0.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            prepare_store(*args, **kwargs)
    finally:
        monkeypatch.setattr(worker, "decode_chunk", real_work)
