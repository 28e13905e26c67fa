"""The package's shape: which layers import which, and what ships in it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from helpers.paths import REPO


def imported_after(code: str, tmp_path: Path) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(*sys.modules)"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_config_imports_nothing_from_the_engine(tmp_path):
    """config -> engine was the one arrow running back up the layers."""
    modules = imported_after("from alexnet.recipes import resolve_config\n"
                             "resolve_config('imagenet-paper', ['model_parallel=2'])", tmp_path)
    assert "alexnet.config" in modules
    assert not {m for m in modules if m.startswith("alexnet.engine")}


def test_preparing_a_store_does_not_import_torch(tmp_path):
    """`prepare` and its worker processes never pay for torch (data/__init__.py says so)."""
    code = ("import numpy as np\nfrom PIL import Image\nfrom pathlib import Path\n"
            "for c in 'ab':\n"
            "    Path('src', c).mkdir(parents=True)\n"
            "    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(f'src/{c}/x.png')\n"
            "from alexnet.data import ensure_store, prepare_store\n"
            "prepare_store('src', 'store', size=8, workers=1, progress=False)")
    modules = imported_after(code, tmp_path)
    assert "alexnet.data.prepare.worker" in modules and "torch" not in modules
    assert (tmp_path / "store" / "manifest.json").is_file()


def test_every_package_data_pattern_matches_a_file():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["alexnet"]
    for pattern in patterns:
        assert list((REPO / "src" / "alexnet").glob(pattern)), pattern
