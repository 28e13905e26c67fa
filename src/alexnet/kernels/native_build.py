"""Building a C kernel into a shared library once per machine, and loading it safely.

`NativeLibrary(source, check)` compiles `source` with the machine's C compiler into the user
cache (`kernels/`) on first use and loads it with ctypes; `library()` returns it, or None
with one warning where it cannot be had (the caller then runs a slower form of the same
arithmetic). What a library call must never do to its caller is ruled out here:

- **No change to the process's floating-point mode.** `-ffast-math` links `crtfastmath.o`,
  whose constructor sets flush-to-zero and denormals-are-zero for the whole process when the
  library is loaded; only `-fno-math-errno -fno-trapping-math` are used (IEEE results, and
  `sqrtf` still vectorises).
- **A broken cache never breaks a run.** Every built library has a stamp beside it holding
  its SHA-256, written only after it loaded and passed `check` (the caller's self-test on a
  tiny input against the reference). A truncated file (which would end the process with a
  bus error once mapped), garbage, or a library without the expected symbols fails the
  stamp or the check: it is removed and built again, once; then the slower form runs.
- **A compiler that hangs or fails costs one run, not every run.** Each compile runs in its
  own process group with a timeout (`ALEXNET_KERNEL_BUILD_SECONDS`, default 60); on timeout
  the group is killed, children included. A failure is remembered in the cache, per source,
  flags, compiler and processor (the compiler known by the size and time of its files, so
  an upgraded or repaired compiler is tried again): later runs warn and fall back at once.
  Delete the `.failed` file to retry.
- **`$CC` with arguments** (`ccache gcc`, `gcc-13 -m64`) is honoured; else `cc`, `gcc`,
  `clang` from the PATH.
- **Concurrent processes** (torchrun ranks) build once: the build holds a lock file.
- **Toolchains without OpenMP or `-march=native`** (Apple clang, some aarch64 compilers):
  the flags are tried from the fastest set down to plain `-O3`; the first that compiles and
  passes the check is kept. Without OpenMP the kernel runs on one thread.

`ALEXNET_EAGER_KERNELS=1` turns every compiled kernel off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from alexnet.files import atomic_write_text, cache_root, file_sha256

BUILD_SECONDS = 60.0


def processor_description() -> str:
    """What code built with -march=native depends on: the processor's model and features."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    return "\n".join(line for line in info.splitlines()[:40]
                     if line.startswith(("model name", "flags", "Features", "CPU part")))


def compiler_command() -> list[str] | None:
    """The C compiler as an argument list: `$CC` (split like a shell would), else the first
    of cc, gcc, clang on the PATH; None when there is none."""
    given = os.environ.get("CC", "").strip()
    candidates = [shlex.split(given)] if given else [["cc"], ["gcc"], ["clang"]]
    for argv in candidates:
        if argv and shutil.which(argv[0]):
            return argv
    return None


def _identity(argv: list[str]) -> str:
    """The compiler's files (path, size, modification time): they change when it does,
    and nothing needs to be run to know them (a hanging compiler cannot stall this)."""
    parts = []
    for word in argv:
        found = shutil.which(word)
        if found:
            st = os.stat(found)
            parts.append(f"{os.path.realpath(found)}:{st.st_size}:{st.st_mtime_ns}")
        else:
            parts.append(word)
    return "|".join(parts)


def flag_sets() -> list[list[str]]:
    """The flags to try, fastest first. No -ffast-math (see the module docstring)."""
    base = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared"]
    machine = platform.machine().lower()
    native = ["-mcpu=native"] if machine in ("arm64", "aarch64") else ["-march=native"]
    if machine in ("x86_64", "amd64"):
        native.append("-mprefer-vector-width=512")   # gcc otherwise keeps to 256-bit vectors
    return [base + native + ["-fopenmp"], base + native, base + ["-fopenmp"], base]


@contextmanager
def _file_lock(path: Path):
    """An exclusive lock on `path` (POSIX flock); a no-op where there is none."""
    try:
        import fcntl
    except ImportError:       # not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BuildError(Exception):
    """The compiler failed, hung or produced a library that failed its check."""


def _compile(argv: list[str], flags: list[str], source: Path, target: Path,
             seconds: float) -> None:
    """Compile `source` to `target`, in a process group of its own that is killed on
    timeout; BuildError with the compiler's message on failure."""
    command = [*argv, *flags, str(source), "-o", str(target), "-lm"]
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    except OSError as err:
        raise BuildError(f"{argv[0]} could not be run ({err.strerror or err})") from None
    try:
        _, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BuildError(f"{' '.join(argv)} did not finish within {seconds:g} s") from None
    if proc.returncode != 0:
        lines = [line for line in err.splitlines() if "error" in line.lower()] or \
            err.splitlines() or [f"exit status {proc.returncode}"]
        raise BuildError(f"{' '.join(argv)} failed: {lines[0].strip()[:200]}")


class NativeLibrary:
    """A C source built into the cache once per machine and loaded (module docstring).

    `check(lib)` configures the library's functions (argtypes) and runs its self-test; it
    raises AssertionError (wrong results) or AttributeError (a missing symbol) when the
    library is unusable; any other exception is a mistake in the check, not in the library,
    and propagates. `wrapper` is the Python file that calls the library: its text is part of
    the cache key, so code with another check never reads a verdict this code reached (a
    failure is remembered per key)."""

    def __init__(self, source: Path, check: Callable[[ctypes.CDLL], None], wrapper: Path):
        self.source, self.check, self.wrapper = Path(source), check, Path(wrapper)
        self._lock = threading.Lock()
        self._loaded: ctypes.CDLL | None = None
        self._tried = False
        self.status: dict = {"built": False}

    def library(self) -> ctypes.CDLL | None:
        """The loaded library, or None (warned once per process) where it cannot be had."""
        with self._lock:
            if not self._tried:
                self._tried = True
                self._loaded = self._obtain()
            return self._loaded

    def forget(self) -> None:
        """Try again at the next `library()` call (tests change the environment)."""
        with self._lock:
            self._tried, self._loaded, self.status = False, None, {"built": False}

    # -- internals ---------------------------------------------------------------------

    def _obtain(self) -> ctypes.CDLL | None:
        if os.environ.get("ALEXNET_EAGER_KERNELS") == "1":
            self.status = {"built": False, "reason": "ALEXNET_EAGER_KERNELS=1"}
            return None
        argv = compiler_command()
        if argv is None:
            return self._give_up("no C compiler ($CC, cc, gcc or clang) on the PATH")
        folder = cache_root() / "kernels"
        key = hashlib.sha256("\0".join([
            self.source.read_text(), self.wrapper.read_text(), repr(flag_sets()),
            _identity(argv), processor_description()]).encode()).hexdigest()[:16]
        stem = folder / f"{self.source.stem}-{key}"
        failed = stem.with_suffix(".failed")
        if failed.is_file():
            reason = failed.read_text(errors="replace").strip() or "an earlier build failed"
            return self._give_up(f"{reason}; delete {failed} to try again")
        try:
            with _file_lock(stem.with_suffix(".lock")):
                return self._build_and_load(argv, stem)
        except BuildError as err:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                failed.write_text(f"{err}\n")
            except OSError:
                pass       # an unwritable cache: the next run tries again
            return self._give_up(str(err))
        except OSError as err:   # the cache itself cannot be written
            return self._give_up(f"the kernel cache {folder} is unusable "
                                 f"({err.strerror or err})")

    def _build_and_load(self, argv: list[str], stem: Path) -> ctypes.CDLL:
        target, stamp = stem.with_suffix(".so"), stem.with_suffix(".sha256")
        flags = None
        if _stamp_matches(target, stamp):
            lib = self._load_checked(target)
            if lib is not None:
                self.status = {"built": True, "path": str(target), **_read_flags(stamp)}
                return lib
        # Missing, damaged, or failing its check: (re)build, from the fastest flags down.
        target.unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
        seconds = float(os.environ.get("ALEXNET_KERNEL_BUILD_SECONDS", BUILD_SECONDS))
        errors = []
        for flags in flag_sets():
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                built = Path(tmp) / target.name
                try:
                    _compile(argv, flags, self.source, built, seconds)
                except BuildError as err:
                    if "did not finish" in str(err):
                        raise          # a hanging compiler: no other flags either
                    errors.append(str(err))
                    continue
                os.replace(built, target)
            lib = self._load_checked(target)
            if lib is None:
                target.unlink(missing_ok=True)
                errors.append(f"the library built with {' '.join(flags)} failed its self-test")
                continue
            atomic_write_text(stamp, f"{file_sha256(target)}\n{' '.join(flags)}\n")
            self.status = {"built": True, "path": str(target), "flags": flags,
                           "openmp": "-fopenmp" in flags}
            return lib
        raise BuildError(errors[0] if errors else "no flags compiled")

    def _load_checked(self, path: Path) -> ctypes.CDLL | None:
        """The library at `path` if it loads and passes its check, else None (unloaded)."""
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            return None
        try:
            self.check(lib)
        except (AssertionError, AttributeError):    # wrong results, or no such function
            _unload(lib)
            return None
        return lib

    def _give_up(self, reason: str) -> None:
        self.status = {"built": False, "reason": reason}
        warnings.warn(f"the compiled {self.source.stem} kernel is unavailable ({reason}); "
                      f"a slower form of the same arithmetic runs instead", RuntimeWarning,
                      stacklevel=4)
        return None


def _stamp_matches(target: Path, stamp: Path) -> bool:
    try:
        recorded = stamp.read_text().split()
        return bool(recorded) and target.is_file() and file_sha256(target) == recorded[0]
    except OSError:
        return False


def _read_flags(stamp: Path) -> dict:
    lines = stamp.read_text().splitlines()
    flags = lines[1].split() if len(lines) > 1 else []
    return {"flags": flags, "openmp": "-fopenmp" in flags}


def _unload(lib: ctypes.CDLL) -> None:
    """dlclose a library that failed its check, so a rebuilt file of the same name is
    loaded afresh rather than found among the loaded ones."""
    try:
        import _ctypes

        _ctypes.dlclose(lib._handle)
    except (ImportError, AttributeError, OSError):
        pass
