"""Side-by-side measurements: the project's path and the standard one, in the same run.

Each benchmark returns a dict with the settings, the environment (`run_files.machine`) and one
row per variant (`images_per_s`), and the ratios the issues ask about; `format_report` prints
it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from alexnet.console import progress


def time_steps(step: Callable[[], None], steps: int, warmup: int, device: torch.device,
               label: str = "timing") -> float:
    """Seconds per call of `step`, after `warmup` calls (compilation happens there). Shows
    progress under `label` (a CPU call can take many seconds)."""
    with progress(warmup + steps, label, unit="calls") as bar:
        for _ in range(warmup):
            step()
            bar.advance()
        if device.type == "cuda":
            torch.cuda.synchronize()
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                step()
                bar.advance()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1000 / steps
        begin = time.perf_counter()
        for _ in range(steps):
            step()
            bar.advance()
        return (time.perf_counter() - begin) / steps


def time_interleaved(steps: dict[str, Callable[[], None]], calls: int, warmup: int,
                     device: torch.device, rounds: int = 5) -> dict[str, float]:
    """Median seconds per call of each step, timed in `rounds` rounds that take turns
    (`calls` calls per step in all, after `warmup` each). Taking turns puts every variant
    under the same conditions when a shared host's speed drifts during the run, which timing
    one variant after the other does not."""
    per_round = max(1, calls // rounds)
    times: dict[str, list[float]] = {name: [] for name in steps}
    with progress(len(steps) * (warmup + per_round * rounds), "timing (interleaved)",
                  unit="calls") as bar:
        for step in steps.values():
            for _ in range(warmup):
                step()
                bar.advance()
        for _ in range(rounds):
            for name, step in steps.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                begin = time.perf_counter()
                for _ in range(per_round):
                    step()
                    bar.advance()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append((time.perf_counter() - begin) / per_round)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def format_report(report: dict) -> str:
    lines = [f"{report['benchmark']}: " + ", ".join(f"{k}={v}" for k, v in
                                                   report["settings"].items()),
             "environment: " + ", ".join(f"{k}={v}" for k, v in report["environment"].items())]
    width = max(len(row["variant"]) for row in report["rows"])
    for row in report["rows"]:
        lines.append(f"  {row['variant']:<{width}}  {row['images_per_s']:>12,.0f} "
                     f"{row.get('unit', 'img/s')}")
    for name, value in report.get("ratios", {}).items():
        lines.append(f"  ratio {name}: {value:.2f}x")
    lines.extend(f"  {note}" for note in report.get("notes", []))
    return "\n".join(lines)
