"""Writing files so that a crash never leaves a half-written one where a good one was.

Every write goes to a temporary file in the same folder, is fsynced, then renamed over the
target, and the folder is fsynced so the rename itself survives a power loss. The file ends
with the permissions a plain `open(path, "w")` would have given it (the temporary file is
created private, 0600): an existing file's mode, else 0666 less the umask. Also here: the
lock that gives an output folder to one process at a time, the free-space check made before
large writes, the check of an output path given by the user, SHA-256 digests, and the root
of the user cache (`cache_root`), which data and kernels both keep files under.

`json_text` is the JSON every output file and `--json` uses: strict (NaN and infinities,
which strict parsers reject, become null); `atomic_write_json` writes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alexnet.errors import UserError


def cache_root() -> Path:
    """The user cache for downloads, prepared stores, features and compiled kernels:
    `$ALEXNET_CACHE`, else `$XDG_CACHE_HOME/alexnet`, else `~/.cache/alexnet`."""
    if os.environ.get("ALEXNET_CACHE"):
        return Path(os.environ["ALEXNET_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "alexnet"


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file or folder to disk (some file systems cannot fsync a folder: ignored)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process's umask (read from /proc on Linux; elsewhere set and restored at once)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_file_mode(path: str | os.PathLike) -> int:
    """The mode `open(path, "w")` leaves `path` with: its own if it exists, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, plain_file_mode(path))   # mkstemp made it 0600
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as err:
        if err.filename is None:    # a refused write() names no file ("File too large")
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, value, **options) -> None:
    """`value` as strict JSON (`json_text(value, **options)`) and a newline, atomically."""
    atomic_write_text(path, json_text(value, **options) + "\n")


def sha256_hex(data: bytes | memoryview | str | Iterable[bytes | str]) -> str:
    """The SHA-256 of `data` (text as UTF-8) in hex; of an iterable of pieces, the SHA-256 of
    their concatenation, hashed as they come (memory stays small)."""
    digest = hashlib.sha256()
    pieces = [data] if isinstance(data, (bytes, bytearray, memoryview, str)) else data
    for piece in pieces:
        digest.update(piece.encode() if isinstance(piece, str) else piece)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes in hex, read in 1 MB blocks."""
    with open(path, "rb") as f:
        return sha256_hex(iter(lambda: f.read(1 << 20), b""))


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output `path`: `<path>.lock`, beside it (the output itself may be
    renamed into place, like a store, or not exist yet)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextmanager
def output_lock(path: str | os.PathLike, what: str = "output folder") -> Iterator[None]:
    """Own the output `path` for the block: an OS lock (flock) on `<path>.lock`, released when
    the block ends or the process dies. A second process is refused (UserError) in one
    sentence naming the holder's pid, which the holder writes into the lock file."""
    try:
        import fcntl  # noqa: F401
    except ImportError:      # no flock (Windows): outputs are not guarded
        yield
        return
    lock = lock_path(path)
    # The folders made for the lock go again if nothing else was put in them (a run that
    # stopped before writing anything leaves no empty runs/ behind).
    made = [p for p in [lock.parent, *lock.parent.parents] if not p.exists()]
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield from _locked(lock, path, what)
    finally:
        for folder in made:                    # deepest first
            try:
                folder.rmdir()
            except OSError:                    # not empty (the output went there), or gone
                break


def _locked(lock: Path, path: Path, what: str) -> Iterator[None]:
    """output_lock's body: the lock file at `lock`, held while the caller's block runs."""
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"the {what} {str(path)!r} is in use by another alexnet process "
                            f"(pid {holder}); wait for it to end or choose another") from None
        # The holder before us may have removed the file after we opened it: lock the file
        # that is at the path now, or we would share the path with a later process.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)    # while still held: nobody else has it open locked
        os.close(fd)


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """UserError when the file system of `folder` (or its nearest existing parent) has less
    than `needed` bytes free for `what`."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return          # cannot tell: the write itself will report a full disk
    if free < needed:
        raise UserError(f"{what} needs about {_size(needed)} free in {str(folder)!r} but only "
                        f"{_size(free)} is; free some space or choose another folder")


def write_refused(err: OSError, target: str | os.PathLike) -> tuple[str, str]:
    """(why, remedy) when writing `target` failed: the system's reason (naming the file it
    concerns when that is not `target`), and what to do about it: a full disk is not fixed
    like a folder in the way."""
    import errno

    reason = err.strerror or type(err).__name__
    named = os.fsdecode(err.filename) if err.filename is not None else os.fspath(target)
    if named != os.fspath(target):
        reason = f"{reason}: {named!r}"
    remedies = {
        errno.ENOSPC: "free some space", errno.EDQUOT: "free some space within your quota",
        errno.EFBIG: "raise the file-size limit (`ulimit -f`) or choose a file system that "
                     "allows larger files",
        errno.EISDIR: f"move the folder {named!r} out of the way",
        errno.EACCES: "make the folder writable", errno.EPERM: "make the folder writable",
        errno.EROFS: "choose a folder on a writable file system",
    }
    return reason, remedies.get(err.errno, "remove the cause")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


MAX_NAME_BYTES = 255     # one file or folder name, on every common Linux/macOS file system


def output_path(path: str | os.PathLike, what: str) -> Path:
    """`path` as an output location, or UserError in one sentence naming it: empty, a name
    longer than the file system allows, or a path to something that cannot hold it."""
    text = os.fspath(path)
    if not str(text).strip():
        raise UserError(f"{what} is empty; give a file or folder name")
    path = Path(text).expanduser()
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > MAX_NAME_BYTES:
            raise UserError(f"{what} {str(path)!r} has a name of {size} bytes; names may be "
                            f"at most {MAX_NAME_BYTES} bytes")
    return path


def output_file(path: str | os.PathLike, what: str) -> Path:
    """`output_path` for a file to write: a folder there is refused, not replaced."""
    path = output_path(path, what)
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a folder; give the name of the file to write")
    return path


def _finite_or_null(value, text=None):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and text is not None:
        return text(value)
    if isinstance(value, dict):
        return {(text(k) if text and isinstance(k, str) else k): _finite_or_null(v, text)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v, text) for v in value]
    return value


def json_text(value, **options) -> str:
    """`json.dumps(value, **options)` that strict parsers accept: NaN and +-inf become null."""
    return json.dumps(_finite_or_null(value), allow_nan=False, **options)


def printable_name(text: str) -> str:
    """A name that may hold bytes that are not UTF-8 (Python keeps them as lone surrogates,
    os.fsdecode's "surrogateescape"), as valid Unicode: each such byte as \\xNN."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def print_json(value, **options) -> None:
    """`--json` output on stdout: `json_text`, with file names that are not UTF-8 written
    with \\xNN escapes (lone surrogates, which json.dumps would pass on as \\udcNN, are not
    Unicode, and strict parsers refuse them)."""
    print(json.dumps(_finite_or_null(value, printable_name), allow_nan=False, **options))
