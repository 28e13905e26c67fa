"""What a refused command prints: one sentence on stderr, no traceback."""

from __future__ import annotations


def one_error_line(capsys, after_progress: bool = False) -> str:
    """The single `alexnet: error: ...` line a refused command prints, and nothing else
    (after_progress: the last line, after the progress lines of work already done, such as
    preparing a store)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1] if after_progress else err
    assert last.startswith("alexnet: error: ") and "\n" not in last, err
    return last
