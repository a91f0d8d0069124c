"""Target-space coverage (row A11)."""

import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.acquisition import occupied_bins, target_coverage


def test_a11_two_of_twenty_five_bins():
    outcomes = jnp.array([0.1, 0.15, 3.9])
    assert float(target_coverage(outcomes, low=-5.0, high=5.0, n_bins=25)) == pytest.approx(2 / 25)


def test_masks_edges_and_reachable_bins():
    outcomes = jnp.array([-5.0, 5.0, 7.0, 0.1])
    mask = jnp.array([True, True, True, False])
    bins = occupied_bins(outcomes, low=-5.0, high=5.0, n_bins=10, mask=mask)
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(bins)), [0, 9])  # 7.0 is outside
    truth = occupied_bins(jnp.linspace(-5.0, 0.0, 50), low=-5.0, high=5.0, n_bins=10)
    # The ground truth reaches bins 0-5 (0.0 opens bin 5); one of those six is visited.
    cov = target_coverage(outcomes, low=-5.0, high=5.0, n_bins=10, mask=mask, reachable=truth)
    assert float(cov) == pytest.approx(1 / 6)


def test_bad_bins_raise():
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
        target_coverage(jnp.zeros(2), low=0.0, high=1.0, n_bins=0)
    with pytest.raises(ValueError, match="low must be smaller than high"):
        target_coverage(jnp.zeros(2), low=1.0, high=1.0, n_bins=3)
