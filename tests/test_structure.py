"""The package's shape: which layers import which, and what ships in it."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from helpers.paths import REPO


def imported_after(code: str, tmp_path: Path) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(*sys.modules)"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def alexnet_imports() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, wherever in the file
    (inside functions too: an import put off until a call still ties the two together)."""
    package = REPO / "src"
    names = {}
    for path in (package / "alexnet").rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in names:    # `from pkg import module` or name
                    target = target.rpartition(".")[0]
                if target.startswith("alexnet") and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def test_no_module_of_the_package_imports_itself_in_a_circle():
    try:
        tuple(TopologicalSorter(alexnet_imports()).static_order())
    except CycleError as err:
        raise AssertionError(f"an import circle: {' -> '.join(err.args[1])}") from None


def test_the_settings_import_nothing_from_the_data_or_the_engine():
    """Every layer reads the settings, so they read no layer that reads them (the models
    only, to check model options)."""
    for name in ("alexnet.config", "alexnet.recipes", "alexnet.choices"):
        below = {m for m in alexnet_imports()[name] if m.startswith(("alexnet.data",
                                                                        "alexnet.engine"))}
        assert not below, (name, below)


def test_the_config_imports_nothing_from_the_engine(tmp_path):
    """config -> engine was the one arrow running back up the layers."""
    modules = imported_after("from alexnet.recipes import resolve_config\n"
                             "resolve_config('imagenet-paper', ['model_parallel=2'])", tmp_path)
    assert "alexnet.config" in modules
    assert not {m for m in modules if m.startswith("alexnet.engine")}


def test_the_help_imports_neither_torch_nor_numpy(tmp_path):
    """The reason the command modules import their heavy modules inside functions: `alexnet
    --help` builds every command's parser (cli/__init__.py) and stays fast."""
    modules = imported_after("from alexnet.cli import build_parser\nbuild_parser()", tmp_path)
    assert "alexnet.cli.train" in modules
    assert not {"torch", "numpy", "PIL"} & modules


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
