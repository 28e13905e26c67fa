"""Building and loading compiled kernels (`alexnet.kernels.native_build`): broken caches are
rebuilt, a hanging or failing compiler costs one warning once, `$CC` with arguments works,
and loading a kernel leaves the process's floating-point mode alone."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from alexnet.kernels.native_build import NativeLibrary, compiler_command

pytestmark = pytest.mark.skipif(compiler_command() is None, reason="no C compiler here")

ANSWER_C = "int answer(void) { return 42; }\n"


def answer_check(lib: ctypes.CDLL) -> None:
    lib.answer.restype = ctypes.c_int
    assert lib.answer() == 42


@pytest.fixture
def source(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "answer.c"
    path.write_text(ANSWER_C)
    return path


def built_files(tmp_path: Path, suffix: str) -> list[Path]:
    return sorted((tmp_path / "cache" / "kernels").glob(f"*{suffix}"))


def test_builds_once_and_reuses_the_checked_library(source, tmp_path):
    lib = NativeLibrary(source, answer_check, source)
    assert lib.library() is not None and lib.status["built"]
    (so,) = built_files(tmp_path, ".so")
    stamp_time = so.stat().st_mtime_ns
    again = NativeLibrary(source, answer_check, source)
    assert again.library() is not None
    assert so.stat().st_mtime_ns == stamp_time      # loaded from the cache, not rebuilt


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no symbols"])
def test_a_damaged_cached_library_is_rebuilt(source, tmp_path, damage, recwarn):
    # built by another process, as a later run finds it (a library this process had loaded
    # stays mapped: damaging it under a live mapping is not what happens to a cache)
    build = ("import sys; from pathlib import Path; from alexnet.kernels.native_build import "
             "NativeLibrary; assert NativeLibrary(Path(sys.argv[1]), lambda lib: None, Path(sys.argv[1])).library()")
    subprocess.run([sys.executable, "-c", build, str(source)], check=True, timeout=120)
    (so,) = built_files(tmp_path, ".so")
    if damage == "truncated":       # mapped as is, it would end the process with SIGBUS
        so.write_bytes(so.read_bytes()[: so.stat().st_size // 3])
    elif damage == "garbage":
        so.write_bytes(os.urandom(4096))
    else:                           # a real library without the kernel, its stamp matching
        empty = tmp_path / "empty.c"
        empty.write_text("int nothing_here;\n")
        subprocess.run([*compiler_command(), "-shared", "-fPIC", str(empty), "-o", str(so)],
                       check=True)
        from alexnet.files import file_sha256

        stamp = so.with_suffix(".sha256")
        stamp.write_text(f"{file_sha256(so)}\n-O3\n")
    lib = NativeLibrary(source, answer_check, source)
    assert lib.library() is not None
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def gone(pid: int, seconds: float = 5.0) -> bool:
    """Whether process `pid` has ended (a zombie awaiting its reaper counts as ended)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see the processes")
def test_a_hanging_compiler_is_stopped_and_remembered(source, tmp_path, monkeypatch):
    pid_file = tmp_path / "compiler.pid"
    hang = tmp_path / "hang.sh"
    # the compiler and a child of it, both of which must be gone afterwards
    hang.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\nwait\n")
    hang.chmod(0o755)
    monkeypatch.setenv("CC", str(hang))
    monkeypatch.setenv("ALEXNET_KERNEL_BUILD_SECONDS", "2")
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match="did not finish within 2 s") as warned:
        assert NativeLibrary(source, answer_check, source).library() is None
    assert len(warned) == 1 and time.monotonic() - start < 30
    assert gone(int(pid_file.read_text()))
    # the next process does not wait again: it reads the failure and says how to retry
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match=r"delete .*\.failed to try again"):
        assert NativeLibrary(source, answer_check, source).library() is None
    assert time.monotonic() - start < 1.5


def test_a_failing_compiler_warns_once_with_its_message(source, tmp_path, monkeypatch):
    broken = tmp_path / "broken.sh"
    broken.write_text("#!/bin/sh\necho 'fatal error: no such thing' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with pytest.warns(RuntimeWarning, match="fatal error: no such thing") as warned:
        lib = NativeLibrary(source, answer_check, source)
        assert lib.library() is None and lib.library() is None
    assert len(warned) == 1 and lib.status["built"] is False


def test_cc_with_arguments_is_honoured(source, monkeypatch):
    monkeypatch.setenv("CC", f"env {compiler_command()[0]}")
    lib = NativeLibrary(source, answer_check, source)
    assert lib.library() is not None and lib.status["built"]


def test_loading_the_lrn_kernel_keeps_denormals(tmp_path):
    """A -ffast-math library sets flush-to-zero for the whole process when loaded."""
    script = textwrap.dedent("""
        import torch
        from alexnet.kernels import lrn_native
        before = (torch.tensor([1e-38]) * 0.01).item()
        assert lrn_native.library() is not None
        after = (torch.tensor([1e-38]) * 0.01).item()
        print(before, after)
    """)
    env = {**os.environ, "ALEXNET_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    before, after = map(float, done.stdout.split())
    assert before > 0 and after == before


def test_without_a_compiler_lrn_warns_once_and_the_band_form_runs(tmp_path):
    """In a process of its own: an empty PATH also keeps torch's own compiler (and its
    worker processes) away, which must not leak into other tests."""
    script = textwrap.dedent("""
        import warnings
        import torch
        from alexnet.kernels import lrn_native
        from alexnet.models.layers import LocalResponseNorm
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert lrn_native.library() is None and lrn_native.library() is None
        ours = [w for w in caught if "lrn_cpu kernel is unavailable" in str(w.message)]
        assert len(ours) == 1, [str(w.message) for w in caught]
        x = (torch.randn(2, 64, 3, 3) * 30).contiguous(memory_format=torch.channels_last)
        assert not lrn_native.supports(x)
        native = LocalResponseNorm(64, 9, 1e-3, 0.75, 1.0, backend="native")
        reference = LocalResponseNorm(64, 9, 1e-3, 0.75, 1.0, backend="reference")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")    # the fused loops fall back to eager too
            torch.testing.assert_close(native(x), reference(x), rtol=1e-5, atol=1e-6)
        print("ok")
    """)
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "PATH": str(tmp_path),
           "ALEXNET_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_mistake_in_the_check_is_raised_not_remembered(source, tmp_path):
    def broken_check(lib):
        raise NameError("a bug in the wrapper, not in the library")

    with pytest.raises(NameError):
        NativeLibrary(source, broken_check, source).library()
    assert built_files(tmp_path, ".failed") == []


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_the_lrn_kernel_builds_when_first_used_in_an_evaluation(tmp_path, context):
    """The first use may be an evaluation's (no_grad, inference mode, autocast): the
    self-test takes the reference's gradient all the same."""
    script = textwrap.dedent(f"""
        import torch
        from alexnet.kernels import lrn_native
        with torch.{context}(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert lrn_native.library() is not None, lrn_native.build_status()
        print("ok")
    """)
    env = {**os.environ, "ALEXNET_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
