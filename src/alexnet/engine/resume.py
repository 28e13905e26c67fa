"""Continuing a run: which run folder, which settings, and the state it continues from.

Re-running `alexnet train` with a run folder that holds a training state continues it: with
the settings it was started with (read from its config.json, not from the half-gigabyte
state), where only the settings that do not change what is computed may be overridden.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from alexnet.config import Config, apply_overrides
from alexnet.engine import checkpoint as ckpt
from alexnet.engine import distributed
from alexnet.engine import run_layout as layout
from alexnet.engine.run_files import read_metrics_rows, read_run_json, resume_command
from alexnet.errors import UserError
from alexnet.recipes import resolve_config

# Settings that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = {"epochs", "checkpoint_minutes", "eval_batch_size", "data", "compile",
                     "device", "deterministic", "model_parallel", "threads"}


def run_folder(out: str | os.PathLike | None, recipe: str | None, resume: bool) -> Path:
    """The run folder: `out`, or for a new single-process run `runs/<recipe>-<time>`."""
    if out:
        return Path(out)
    if resume:
        raise UserError("--resume needs --out RUN_DIR, the run folder to continue")
    if distributed.launched().world_size > 1:
        raise UserError("distributed runs need --out RUN_DIR (every process writes there)")
    return RUNS / f"{recipe or 'cifar10'}-{time.strftime('%Y%m%d-%H%M%S')}"


RUNS = Path("runs")    # where new runs go when no --out is given


def unfinished_runs(recipe: str, root: Path = RUNS) -> list[Path]:
    """The run folders of `recipe` below `root` (the default place of new runs) that hold a
    training state and did not finish, the newest first: stopped (run.json's status), or
    killed (still "running"; or, for runs from before the status, without final.json)."""
    found = []
    try:
        folders = [d for d in root.iterdir() if d.name.startswith(f"{recipe}-") and d.is_dir()]
    except OSError:
        return []
    for folder in folders:
        status = read_run_json(folder).get("status")
        finished = status == "finished" or (status is None and (folder / layout.FINAL).exists())
        if not finished and _has_state(folder):
            found.append(folder)
    return sorted(found, key=lambda d: d.name, reverse=True)


def unfinished_note(recipe: str, root: Path = RUNS) -> str | None:
    """What to tell a user starting a new run of `recipe` without --out while an unfinished
    one waits (the same command after a Ctrl-C starts afresh): where it is and how to
    resume it."""
    found = unfinished_runs(recipe, root)
    if not found:
        return None
    newest = found[0]
    done = len(read_metrics_rows(newest / layout.METRICS))
    epochs = read_run_json(newest).get("epochs")
    if not isinstance(epochs, int):
        try:
            epochs = int(json.loads((newest / layout.CONFIG).read_text())["epochs"])
        except (OSError, ValueError, KeyError, TypeError):
            epochs = None
    progress = f"{done} of {epochs} epochs done" if epochs else f"{done} epochs done"
    others = f" ({len(found) - 1} more unfinished in {root}/)" if len(found) > 1 else ""
    return (f"note: {newest} holds an unfinished {recipe} run ({progress}){others}; this "
            f"starts a new one; to continue that one instead: "
            f"{resume_command(newest)}")


def run_config(out: Path, recipe: str | None, overrides: list[str]) -> Config:
    """The settings of the run in `out`: those it was started with when it holds one to
    continue, else the `recipe`'s; `overrides` applied on top, validated."""
    saved = saved_config(out)
    if saved is None:
        return resolve_config(recipe, overrides)
    if recipe and recipe != saved.recipe:
        raise UserError(f"the run in {str(out)!r} uses recipe {saved.recipe!r}, not "
                        f"{recipe!r}; pass a new --out for a new run")
    return apply_overrides(saved, overrides).validate()


def _has_state(out: Path) -> bool:
    state = Path(out) / layout.STATE
    return state.is_file() or ckpt.previous_state_path(state).is_file()


def saved_config(out: Path) -> Config | None:
    """The config of the run in `out` if it can be resumed (its training state exists):
    its config.json, or where that is missing or unreadable, the state's own."""
    if not _has_state(out):
        return None
    try:
        values, path = json.loads((out / layout.CONFIG).read_text()), out / layout.CONFIG
    except (OSError, ValueError):
        found = ckpt.load_latest_state(Path(out) / layout.STATE, warn=False)   # train() warns
        if found is None:
            return None
        values, path = found[0]["config"], found[1]
    try:
        return Config.from_dict(values)
    except (TypeError, ValueError, AttributeError) as err:
        raise UserError(f"{str(path)!r} holds settings that are not a valid config "
                        f"({err})") from None


def check_resumable(saved: Config, config: Config, out: Path) -> None:
    changed = [k for k, v in config.to_dict().items() if saved.to_dict().get(k) != v]
    fixed = [k for k in changed if k not in RESUMABLE_CHANGES]
    if fixed:
        raise UserError(f"the run in {str(out)!r} was started with other settings "
                        f"({', '.join(f'{k}={saved.to_dict()[k]!r}' for k in fixed)}); resume "
                        f"it without changing them, or pass a new --out")


def load_saved_state(config: Config, out: Path, resume: bool | None,
                     warn: bool) -> tuple[dict, Path] | None:
    """(state, file) that the run in `out` continues from, checked against `config`; None
    for a new run. resume: True requires a saved state, False refuses one, None takes it
    when there is one."""
    saved = _has_state(out)
    if saved and resume is not False:
        state, path = ckpt.load_latest_state(out / layout.STATE, warn=warn)
        check_resumable(Config.from_dict(state["config"]), config, out)
        return state, path
    if resume:
        raise UserError(f"nothing to resume: {str(out)!r} holds no {layout.STATE}")
    if saved:
        raise UserError(f"{str(out)!r} already holds a run; resume it or pass a new --out")
    return None
