"""The user cache: one root for downloads, prepared stores and features."""

from __future__ import annotations

from pathlib import Path

from alexnet.data.cache import cached_store_path, ensure_store
from alexnet.files import cache_root
from helpers.images import gradient, save


def test_one_root_alexnet_cache_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("ALEXNET_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == Path("~/.cache/alexnet").expanduser()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "alexnet"
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_a_folder_is_prepared_under_the_root_once(tmp_path, monkeypatch):
    monkeypatch.delenv("ALEXNET_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for name in ("ant", "bee"):
        save(tmp_path / "src" / name / "a.png", gradient(12, 10))
    store = ensure_store(tmp_path / "src", 8)
    assert store.path == cached_store_path(tmp_path / "src", 8)
    assert store.path.parent == tmp_path / "xdg" / "alexnet" / "stores"
    assert ensure_store(str(tmp_path / "src"), 8).path == store.path
