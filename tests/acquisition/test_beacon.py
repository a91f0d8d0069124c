"""BEACON: row A10, masks, vector outcomes, the elite (BEACON-DKL) variant, order invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemjax.acquisition import (
    Context,
    beacon,
    beacon_elite,
    beacon_elite_novelty,
    beacon_novelty,
    elite_mask,
    knn_distance,
)
from stemjax.posterior import Posterior


def test_a10_sum_of_k_nearest_distances(dtype):
    archive = jnp.asarray([0.0, 1.0, 2.0, 3.0], dtype)
    sample = jnp.asarray([1.4], dtype)
    np.testing.assert_allclose(float(beacon_novelty(sample, archive, k=2)[0]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(knn_distance(sample, archive, k=2, reduce="mean")[0]), 0.5,
                               rtol=1e-6)


def test_a10_fewer_observations_than_k_uses_all_of_them():
    archive = jnp.asarray([0.0, 1.0, 2.0, 3.0, 99.0, 99.0])
    mask = jnp.array([True, True, True, True, False, False])
    sample = jnp.asarray([1.4, -1.0])
    # k = 10 > 4 valid observations: all four are used, the masked slots never.
    np.testing.assert_allclose(beacon_novelty(sample, archive, mask), [1.4 + 0.4 + 0.6 + 1.6,
                                                                      1 + 2 + 3 + 4], rtol=1e-6)
    np.testing.assert_allclose(knn_distance(sample, archive, mask, reduce="mean"),
                               [4.0 / 4, 10.0 / 4], rtol=1e-6)
    # An empty archive scores 0 rather than failing.
    assert float(jnp.max(beacon_novelty(sample, archive, jnp.zeros(6, bool)))) == 0.0


def test_k_larger_than_capacity_and_default_k_is_ten():
    archive = jnp.arange(20.0)
    assert float(beacon_novelty(jnp.array([0.0]), archive)[0]) == sum(range(10))
    assert float(beacon_novelty(jnp.array([0.0]), archive[:3], k=50)[0]) == 3.0


def test_vector_outcomes_use_euclidean_distance():
    archive = jnp.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    sample = jnp.array([[0.0, 0.0]])
    np.testing.assert_allclose(beacon_novelty(sample, archive, k=2), [1.0])
    np.testing.assert_allclose(beacon_novelty(sample, archive, k=3), [6.0])
    g = jax.grad(lambda x: beacon_novelty(x, archive, k=3)[0])(sample)
    assert bool(jnp.all(jnp.isfinite(g)))  # zero distance has a finite (sub)gradient


def test_beacon_acquisition_uses_the_thompson_sample():
    post = Posterior(jnp.array([1.4, 10.0]), jnp.zeros(2), jnp.array([[1.4, 10.0]]))
    ctx = Context(outcomes=jnp.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(beacon(k=2)(post, ctx), [1.0, 7.0 + 8.0], rtol=1e-6)
    # With a key instead of samples: a zero-variance draw is the mean.
    ctx_key = Context(outcomes=ctx.outcomes, key=jax.random.key(0))
    np.testing.assert_allclose(beacon(k=2)(Posterior(post.mean, post.variance), ctx_key),
                               [1.0, 15.0], rtol=1e-6)


def test_elite_mask_takes_the_top_fraction_of_valid_entries():
    scores = jnp.array([5.0, 1.0, 9.0, 7.0, 100.0, 3.0])
    mask = jnp.array([True, True, True, True, False, True])
    np.testing.assert_array_equal(elite_mask(scores, mask, fraction=0.4),
                                  [False, False, True, True, False, False])  # ⌈0.4·5⌉ = 2
    np.testing.assert_array_equal(elite_mask(scores, mask, fraction=0.01),
                                  [False, False, True, False, False, False])  # at least one
    assert not bool(jnp.any(elite_mask(scores, jnp.zeros(6, bool))))


def test_elite_variant_closed_form():
    outcomes = jnp.array([0.0, 1.0, 2.0, 3.0, 4.0])
    # Top 40 %: {3, 4}; mean 3.5, population std 0.5; z-scores {−1, 1}.
    sample = jnp.array([3.5, 5.0])  # z = 0 and z = 3
    got = beacon_elite_novelty(sample, outcomes, k=2, elite_fraction=0.4)
    np.testing.assert_allclose(got, [1.0, (2.0 + 4.0) / 2], rtol=1e-6)
    got_k1 = beacon_elite_novelty(sample, outcomes, k=1, elite_fraction=0.4)
    np.testing.assert_allclose(got_k1, [1.0, 2.0], rtol=1e-6)


def test_elite_variant_with_vector_outcomes_and_a_scalarizer():
    outcomes = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    mask = jnp.array([True, True, True, False])
    scalar = outcomes.sum(-1)  # elite by total signal: slots 1 and 2 tie on 2
    ctx = Context(outcomes=outcomes, outcome_mask=mask, elite_scores=scalar)
    post = Posterior(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.array([[[1.0, 1.0]]]))
    # elite {(2,0), (0,2)}: centre (1,1), std (1,1); sample z = (0,0); distances √2 each.
    np.testing.assert_allclose(beacon_elite(k=10, elite_fraction=0.5)(post, ctx), [np.sqrt(2)],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="needs elite_scores"):
        beacon_elite_novelty(jnp.zeros((1, 2)), outcomes)


def test_masked_campaigns_vmap_like_a_loop():
    outcomes = jnp.array([[0.0, 1.0, 2.0, 3.0], [5.0, -1.0, 0.5, 0.0]])
    mask = jnp.array([[True, True, True, True], [True, True, False, False]])
    means = jnp.array([[1.4, 0.2, 2.9], [0.0, 4.0, -3.0]])
    post = Posterior(means, jnp.zeros_like(means), means[:, None, :])
    for acq in (beacon(k=2), beacon_elite(k=2, elite_fraction=0.5)):
        batched = jax.vmap(acq)(post, Context(outcomes=outcomes, outcome_mask=mask))
        for b in range(2):
            n = int(mask[b].sum())
            single = acq(Posterior(means[b], jnp.zeros(3), means[b][None]),
                         Context(outcomes=outcomes[b, :n]))
            np.testing.assert_allclose(batched[b], single, rtol=1e-6)


values = st.floats(-100, 100, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(st.lists(values, min_size=1, max_size=12), st.lists(values, min_size=3, max_size=3),
       st.randoms(use_true_random=False), st.sampled_from([2, 10]))
def test_beacon_is_invariant_to_the_order_of_the_archive(archive, sample, rnd, k):
    n = len(archive)
    padded = np.zeros(12, np.float32)
    padded[:n] = archive
    mask = np.arange(12) < n
    perm = list(range(12))
    rnd.shuffle(perm)
    sample = np.asarray(sample, np.float32)
    for fn in (lambda a, m: beacon_novelty(sample, a, m, k=k),
               lambda a, m: beacon_elite_novelty(sample, a, m, k=k, elite_fraction=0.3)):
        np.testing.assert_allclose(fn(padded[perm], mask[perm]), fn(padded, mask),
                                   rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: beacon(k=0), r"k must be an integer >= 1; got 0"),
        (lambda: beacon_novelty(jnp.zeros(2), jnp.zeros(3), k=0), r"k must be an integer >= 1"),
        (lambda: beacon_elite(elite_fraction=0.0), r"elite_fraction must lie in \(0, 1\]"),
        (lambda: knn_distance(jnp.zeros(2), jnp.zeros((3, 2))), r"matching trailing shapes"),
        (lambda: beacon()(Posterior(jnp.zeros(2), jnp.ones(2)), Context(key=jax.random.key(0))),
         r"beacon needs context.outcomes"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
