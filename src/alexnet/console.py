"""Progress and messages for long work: a rich bar on a terminal, plain lines otherwise.

Everything here writes to stderr, so `--json` output on stdout stays machine-readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plural(count: int, word: str) -> str:
    """"1 epoch", "2 epochs", "45,000 images", "1 class", "10 classes"."""
    if count == 1:
        return f"{count:,} {word}"
    return f"{count:,} {word}{'es' if word.endswith('s') else 's'}"   # class, process


def _rate(per_second: float) -> str:
    """12,345 for fast work; two significant digits (0.12) for slow work, not 0."""
    return f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.2g}"


class Progress:
    """Counts finished units; `advance(n, **fields)` updates the bar or prints a line."""

    def __init__(self, total: int | None, description: str, unit: str, plain_every_s: float,
                 enabled: bool = True):
        self.total, self.description, self.unit = total, description, unit
        self.enabled = enabled
        self.done = 0
        self.fields: dict[str, str] = {}
        self._start = time.perf_counter()
        self._plain_every_s = plain_every_s
        self._last_plain = self._start
        self._bar = None
        self._task = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    @property
    def rate(self) -> float:
        return self.done / max(self.elapsed, 1e-9)

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        self.fields.update({k: str(v) for k, v in fields.items()})
        extra = "  ".join(f"{k} {v}" for k, v in self.fields.items())
        if self._bar is not None:
            extra = f"{_rate(self.rate)} {self.unit}/s  {extra}"
            self._bar.update(self._task, advance=n, extra=extra)
            return
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_plain >= self._plain_every_s or self.done == self.total:
            self._last_plain = now
            of = f"/{self.total}" if self.total else ""
            info(f"{self.description}: {self.done}{of} {self.unit}, "
                 f"{_rate(self.rate)} {self.unit}/s {extra}".rstrip())


@contextmanager
def progress(total: int | None, description: str, unit: str = "img",
             plain_every_s: float = 30.0, enabled: bool = True) -> Iterator[Progress]:
    """A progress display for `total` units (None: unknown). Quiet when not enabled."""
    tracker = Progress(total, description, unit, plain_every_s, enabled)
    if not (enabled and sys.stderr.isatty()):
        yield tracker
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeRemainingColumn(), TextColumn("{task.fields[extra]}")]
    with RichProgress(*columns, console=Console(stderr=True), transient=False) as bar:
        tracker._bar = bar
        tracker._task = bar.add_task(description, total=total, extra="")
        yield tracker
