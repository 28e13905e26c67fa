"""The `alexnet` command line.

Each subcommand lives in its own module of this package and defines
`register(subparsers)`, which adds its parser and sets `run=<function(args) -> int>`.
Modules are found by name, so adding a subcommand means adding one file.
Heavy imports (torch, data code) happen inside `run`, keeping `--help` fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Iterator

from alexnet import __version__
from alexnet.config import Config
from alexnet.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alexnet",
        description="AlexNet (Krizhevsky, Sutskever, Hinton 2012): train, evaluate, inspect.")
    parser.add_argument("--version", action="version", version=f"alexnet {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if not module.startswith("_"):
            importlib.import_module(f"{__name__}.{module}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except UserError as err:          # a number outside its range (cli/_args.py)
        print(f"alexnet: error: {err}", file=sys.stderr)
        return err.exit_code
    # key=value overrides may follow the options (`experiment lrn --seeds 3 epochs=150`):
    # argparse has given the positional list out before it saw them.
    if extra and hasattr(args, "overrides") and all(
            "=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        hint = setting_as_option(extra, argv if argv is not None else sys.argv[1:], args)
        if hint:
            print(f"alexnet: error: {hint}", file=sys.stderr)
            return 2
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        with _configured_process(args):
            return int(args.run(args) or 0)
    except UserError as err:
        print(f"alexnet: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        # What the operating system refused (a full disk, no permission, a name too long...)
        # and no closer code explained: the reason and the file, not a traceback.
        if isinstance(err, BrokenPipeError):
            return _broken_pipe()
        print(f"alexnet: error: {os_error(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("alexnet: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _configured_process(args: argparse.Namespace) -> Iterator[None]:
    """What the command sets for its process, here and nowhere in the library: torch's thread
    count (`--threads`, or what the idle cores allow), glibc's allocator (`keep_freed_memory`:
    a CPU training step 1.3x faster) and subnormal floats flushed to zero (`flush_denormals`:
    a saturated tanh net 1.6-1.9x faster; before the thread count, whose pool inherits it). The
    thread count is given back when the command returns, for callers of `main` inside a
    longer-lived process (tests, notebooks)."""
    # torch-backed modules: imported once a command runs, never for --help (see above)
    from alexnet.engine.fast_path import flush_denormals, keep_freed_memory

    keep_freed_memory()
    flush_denormals()
    if not hasattr(args, "threads"):
        yield
        return
    from alexnet.data.threads import threads_for

    with threads_for(args.threads):
        yield


def setting_as_option(extra: list[str], argv: list[str], args) -> str | None:
    """For `train --epochs 1` (a setting written as an option): the sentence that says how
    settings are written, `epochs=1`; None when no unrecognised option is a setting."""
    if not hasattr(args, "overrides"):
        return None
    import dataclasses
    import difflib

    fields = [f.name for f in dataclasses.fields(Config)]
    for item in extra:
        name, sep, value = item.lstrip("-").partition("=")
        close = difflib.get_close_matches(name.replace("-", "_"), fields, n=1, cutoff=0.8)
        if not item.startswith("--") or not close:
            continue
        key = close[0]
        if not sep and item in argv and argv.index(item) + 1 < len(argv):
            value = argv[argv.index(item) + 1]
        value = value if value and not value.startswith("-") else "VALUE"
        return (f"{item} is not an option of this command; settings are written key=value: "
                f"did you mean {key}={value}?")
    return None


def _broken_pipe() -> int:
    # The reader went away (`alexnet ... --json | head`): stop quietly, and keep Python
    # from complaining again when it flushes stdout at exit.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


def os_error(err: OSError) -> str:
    """An OSError as one sentence: what failed, on which file."""
    reason = err.strerror or str(err) or type(err).__name__
    files = [f for f in (err.filename, err.filename2) if f is not None]
    where = " and ".join(repr(os.fsdecode(f)) for f in files)
    return f"{reason}: {where}" if where else reason
