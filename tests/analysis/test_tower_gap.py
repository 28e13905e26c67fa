"""The tower gap, its null distributions and the threshold rule (analysis/tower_gap.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.analysis import tower_gap
from alexnet.analysis.filters import colour_specificity


def test_gap_summaries_and_which_tower_took_colour():
    scores = [0.1] * 16 + [0.3] * 16 + [0.8] * 32
    result = tower_gap.tower_gap(scores)
    assert result["a"]["mean"] == pytest.approx(0.2) and result["b"]["median"] == 0.8
    assert (result["a"]["min"], result["a"]["max"]) == (0.1, 0.3)
    assert result["gap"] == pytest.approx(0.6) and result["signed_gap"] == pytest.approx(0.6)
    assert result["colour_tower"] == "b"
    assert tower_gap.tower_gap(scores[::-1])["colour_tower"] == "a"
    with pytest.raises(ValueError, match="even number"):
        tower_gap.tower_gap([0.5] * 3)


def test_random_halves_and_the_relabelling_test():
    separated = [0.0] * 32 + [1.0] * 32
    gaps = tower_gap.random_half_gaps(separated, np.random.default_rng(0), partitions=500)
    assert gaps.shape == (500,) and gaps.min() >= 0 and gaps.max() <= 1
    assert gaps.mean() < 0.25           # random halves mix the two groups
    again = tower_gap.random_half_gaps(separated, np.random.default_rng(0), partitions=500)
    assert np.array_equal(gaps, again)  # the seed decides
    # The towers' own split is the most extreme one: p at its floor; equal scores: p = 1.
    assert tower_gap.relabel_p(separated, np.random.default_rng(1), 500) == \
        pytest.approx(1 / 501, abs=1e-5)
    assert tower_gap.relabel_p([0.5] * 64, np.random.default_rng(1), 500) == 1.0


def test_random_kernels_spread_as_the_rule_says():
    """The docstring's numbers: random 5x5 RGB kernels score 2/3 with a spread of about
    0.08, so random halves of 64 differ by little (99th percentile near 0.05)."""
    torch.manual_seed(0)
    scores = colour_specificity(torch.randn(64 * 64, 3, 5, 5)).double().numpy()
    assert scores.mean() == pytest.approx(2 / 3, abs=0.01)
    assert scores.std() == pytest.approx(0.076, abs=0.01)
    gaps = np.concatenate([tower_gap.random_half_gaps(chunk, np.random.default_rng(i), 200)
                           for i, chunk in enumerate(scores.reshape(-1, 64))])
    assert 0.03 < np.quantile(gaps, 0.99) < 0.07


def test_an_arm_of_gaps_against_the_null():
    null = np.random.default_rng(0).uniform(0, 0.2, 10_000)        # mean 0.1
    rng = np.random.default_rng(1)
    assert tower_gap.mean_gap_p([0.17] * 8, null, rng, 2000) < 0.005  # each run within T
    assert tower_gap.mean_gap_p([0.1] * 8, null, rng, 2000) == pytest.approx(0.5, abs=0.05)
    assert tower_gap.mean_gap_p([0.0] * 8, null, rng, 2000) == 1.0


def test_threshold_takes_the_larger_99th_percentile():
    rng = np.random.default_rng(0)
    trained, initial = rng.uniform(0, 0.2, 10_000), rng.uniform(0, 0.05, 10_000)
    limit = tower_gap.threshold(trained, initial)
    assert limit["set_by"] == "trained" and limit["value"] == pytest.approx(0.198, abs=0.002)
    assert limit["initial_quantile"] == pytest.approx(0.0495, abs=0.001)
    assert "99th percentile" in limit["rule"]
    assert tower_gap.threshold(initial, trained)["set_by"] == "initial"


def test_the_epoch_the_gap_opens():
    gaps = {0: 0.01, 1: 0.2, 2: 0.05, 3: 0.2, 4: 0.3}
    assert tower_gap.opening_epoch(gaps, 0.1) == 3      # above from 3 to the end
    assert tower_gap.opening_epoch({**gaps, 5: 0.02}, 0.1) is None
    assert tower_gap.opening_epoch({0: 0.5}, 0.1) == 0
