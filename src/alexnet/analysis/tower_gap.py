"""How far apart two towers' conv1 colour specificities are, and how far apart chance puts them.

The score of one kernel is `filters.colour_specificity` (0: the same weights in R, G and B;
1: channels that cancel; about 2/3 for random weights). A run's *tower gap* is
|mean score of tower a - mean score of tower b| over conv1's kernels, tower a being the
first half of them.

The threshold rule (fixed before any arm's result was looked at):

    A run specialises when its tower gap exceeds T, the larger of
    (1) the 99th percentile of the gap between two random halves of the conv1 kernels of
        trained one-tower nets (the same total width, no tower boundary): what the spread of
        the score within one tower gives by chance, and
    (2) the 99th percentile of the same random-halves gap among the initial kernels of every
        run: what different random initialisations give.

Why: the paper's claim is about the tower boundary, so the null is the same network and
training without one, cut in two at random. Random halves of one trained tower differ by the
spread of its kernels' scores over sqrt(half the kernels): trained kernels range from almost
grey to strongly coloured, so this gap is several times the one at initialisation (random
kernels score 2/3 with a spread of about 0.08, a 32-kernel mean about 0.013), and (1) sets
T in practice; (2) guards against a null taken too early in training. The 99th percentile
and not the 95th: an arm has about 8 seeds, and the fraction of them above T is the figure
reported; a network without towers would put a run above the 99th percentile in 8 x 1% =
0.08 runs per arm, so most of 8 cannot come from the within-tower spread alone.

Two more numbers, also fixed before the results, read beside the rule and not instead of it:
per run, `relabel_p`, the fraction of random relabellings of the run's own kernels into two
halves whose gap is at least the run's (a permutation test against its own spread); per arm,
`mean_gap_p`, the fraction of means of as many gaps drawn from the trained null whose mean
is at least the arm's (an arm of runs that each fall short of T can still sit above chance
as a whole: a weaker effect than the paper's "every run").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NULL_QUANTILE = 0.99
PARTITIONS = 2000        # random halvings per run: 16,000 null gaps from 8 one-tower runs
RULE = ("a run specialises when |mean(a) - mean(b)| of its towers' conv1 colour specificity "
        "exceeds T = max(99th percentile of the gap between random halves of trained "
        "one-tower nets' conv1 kernels, 99th percentile of that gap among the initial kernels "
        "of every run)")
JUSTIFICATION = ("the null is the same network and training without a tower boundary, cut "
                 "in two at random: the gap its within-tower spread gives by chance (trained) "
                 "or different initialisations give (initial). At the 99th percentile a net "
                 "without towers passes in 0.08 of 8 runs per arm, so a fraction of most runs "
                 "above T cannot come from that spread.")


def halves(scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The per-kernel scores of tower a (first half of conv1's kernels) and tower b."""
    values = np.asarray(scores, dtype=np.float64)
    if len(values) < 2 or len(values) % 2:
        raise ValueError(f"expected an even number (>= 2) of kernel scores, got {len(values)}")
    return values[: len(values) // 2], values[len(values) // 2:]


def kernel_summary(scores: Sequence[float]) -> dict:
    """Mean and five-number summary (min, quartiles, max) of kernel scores, 4 decimals."""
    values = np.asarray(scores, dtype=np.float64)
    quartiles = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    keys = ("min", "q1", "median", "q3", "max")
    return {"mean": round(float(values.mean()), 4),
            **{k: round(float(v), 4) for k, v in zip(keys, quartiles, strict=True)}}


def tower_gap(scores: Sequence[float]) -> dict:
    """Each tower's summary, the gap |a - b|, the signed b - a and which tower took colour."""
    a, b = halves(scores)
    signed = float(b.mean() - a.mean())
    return {"a": kernel_summary(a), "b": kernel_summary(b), "gap": round(abs(signed), 4),
            "signed_gap": round(signed, 4), "colour_tower": "b" if signed > 0 else "a"}


def random_half_gaps(scores: Sequence[float], rng: np.random.Generator,
                     partitions: int = PARTITIONS) -> np.ndarray:
    """|mean - mean| of `partitions` random splits of the kernels into two equal halves."""
    values = np.asarray(scores, dtype=np.float64)
    half = len(values) // 2
    order = np.argsort(rng.random((partitions, len(values))), axis=1)   # random permutations
    shuffled = values[order]
    return np.abs(shuffled[:, :half].mean(axis=1) - shuffled[:, half:2 * half].mean(axis=1))


def relabel_p(scores: Sequence[float], rng: np.random.Generator,
              partitions: int = PARTITIONS) -> float:
    """The share of random relabellings of the run's kernels into two halves with a gap at
    least the towers' own ((count + 1) / (partitions + 1): never 0 from finitely many)."""
    observed = abs(float(np.subtract(*[h.mean() for h in halves(scores)])))
    null = random_half_gaps(scores, rng, partitions)
    return round((int((null >= observed - 1e-12).sum()) + 1) / (partitions + 1), 5)


def mean_gap_p(gaps: Sequence[float], null: np.ndarray, rng: np.random.Generator,
               draws: int = 10_000) -> float:
    """The share of means of len(gaps) gaps drawn from `null` (with replacement) that are at
    least the mean of `gaps` ((count + 1) / (draws + 1))."""
    means = rng.choice(np.asarray(null), size=(draws, len(gaps))).mean(axis=1)
    observed = float(np.mean(gaps))
    return round((int((means >= observed - 1e-12).sum()) + 1) / (draws + 1), 5)


def null_summary(gaps: np.ndarray, source: str) -> dict:
    """Quantiles of a null distribution of gaps, and where it came from."""
    points = (0.5, 0.9, 0.95, 0.99)
    return {"source": source, "samples": int(len(gaps)),
            "quantiles": {f"{int(100 * q)}": round(float(np.quantile(gaps, q)), 4)
                          for q in points},
            "max": round(float(gaps.max()), 4)}


def threshold(trained: np.ndarray, initial: np.ndarray) -> dict:
    """T of the rule (module docstring) from the two nulls' gap samples."""
    parts = {"trained": float(np.quantile(trained, NULL_QUANTILE)),
             "initial": float(np.quantile(initial, NULL_QUANTILE))}
    source = max(parts, key=parts.get)
    return {"value": round(parts[source], 4), "set_by": source, "quantile": NULL_QUANTILE,
            "trained_quantile": round(parts["trained"], 4),
            "initial_quantile": round(parts["initial"], 4),
            "rule": RULE, "justification": JUSTIFICATION}


def opening_epoch(gaps: dict[int, float], limit: float) -> int | None:
    """The first epoch (0 = the initial weights) from which the gap stays above `limit`
    through the last recorded epoch; None when the last one is not above it."""
    opened = None
    for epoch in sorted(gaps, reverse=True):   # back from the end while it stays above
        if gaps[epoch] <= limit:
            break
        opened = epoch
    return opened
