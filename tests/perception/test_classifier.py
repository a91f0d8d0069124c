"""Defect classifiers: the context model beats the image-only model on an ambiguous set,
ensembles under vmap equal their members, temperature scaling, the Bayesian last layer,
evaluation, saving, downstream posteriors, and input errors."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.acquisition import Context, ucb
from stemjax.perception import (
    CLASSES,
    PATCH_SIZE,
    PatchDomain,
    ambiguous_cases,
    compare,
    evaluate,
    fit_last_layer,
    fit_temperature,
    init_ensemble,
    load_ensemble,
    predict,
    predict_last_layer,
    sample_cases,
    sample_patches,
    save_ensemble,
    train_ensemble,
)

# Two hosts whose Se2 columns and metals swap brightness order: under the two detectors the
# metal column of one looks like the chalcogen column of the other.
DOMAIN = PatchDomain(hosts=("MoSe2", "WSe2"), dopants=("V",),
                     imaging=("200keV-HAADF", "200keV-MAADF"), dose_range=(2e4, 5e4))  # fmt: skip
TINY = {"members": 2, "width": 8, "hidden": 32}


@pytest.fixture(scope="module")
def trained():
    out = {}
    for use_context in (True, False):
        ensemble = init_ensemble(jax.random.key(0), DOMAIN, use_context=use_context, **TINY)
        ensemble, log = train_ensemble(jax.random.key(1), ensemble, DOMAIN, steps=200,
                                       batch_per_imaging=16, learning_rate=5e-3)  # fmt: skip
        out[use_context] = (ensemble, log)
    return out


@pytest.fixture(scope="module")
def ambiguous():
    pairs = ambiguous_cases(DOMAIN, 2e4)
    cases = sorted({p.a for p in pairs} | {p.b for p in pairs})
    return sample_cases(jax.random.key(5), DOMAIN, cases, 12, dose=2e4)


def test_training_reduces_the_loss(trained):
    for ensemble, log in trained.values():
        assert log.loss.shape == (200,)
        assert log.loss[-20:].mean() < 0.5 * log.loss[:10].mean()


def test_context_model_beats_image_only_on_the_ambiguous_set(trained, ambiguous):
    with_context = predict(trained[True][0], ambiguous.images, ambiguous.context)
    image_only = predict(trained[False][0], ambiguous.images, ambiguous.context)
    c = compare(image_only, with_context, ambiguous)
    assert c["accuracy_context"] >= c["accuracy_image_only"] + 0.15
    assert c["entropy_context"] < 0.7 * c["entropy_image_only"]
    assert c["entropy_reduction"] == pytest.approx(
        1 - c["entropy_context"] / c["entropy_image_only"])


def test_same_key_same_ensemble(trained):
    a = init_ensemble(jax.random.key(0), DOMAIN, use_context=True, **TINY)
    one, _ = train_ensemble(jax.random.key(1), a, DOMAIN, steps=3, batch_per_imaging=4)
    two, _ = train_ensemble(jax.random.key(1), a, DOMAIN, steps=3, batch_per_imaging=4)
    for x, y in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
        np.testing.assert_array_equal(x, y)


def test_ensemble_equals_its_members_one_by_one(trained):
    ensemble = trained[True][0]
    batch = sample_patches(jax.random.key(2), DOMAIN, 4)
    post = predict(ensemble, batch.images, batch.context)
    for m in range(ensemble.size):
        member = jax.tree.map(lambda x: x[m], ensemble.members)
        probs = jax.nn.softmax(member(batch.images, batch.context), -1)
        np.testing.assert_allclose(post.member_probs[m], probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(post.probs, post.member_probs.mean(0), rtol=1e-6)


def test_image_only_model_ignores_context(trained):
    ensemble = trained[False][0]
    batch = sample_patches(jax.random.key(2), DOMAIN, 4)
    a = predict(ensemble, batch.images, batch.context)
    b = predict(ensemble, batch.images, jnp.zeros_like(batch.context))
    np.testing.assert_array_equal(a.probs, b.probs)


def test_predictions_are_invariant_to_intensity_units(trained):
    ensemble = trained[True][0]
    batch = sample_patches(jax.random.key(2), DOMAIN, 4)
    a = predict(ensemble, batch.images, batch.context).probs
    b = predict(ensemble, 0.01 * batch.images + 3.0, batch.context).probs
    np.testing.assert_allclose(a, b, atol=2e-4)


def test_temperature_minimises_the_validation_nll(trained):
    ensemble = trained[True][0]
    batch = sample_patches(jax.random.key(6), DOMAIN, 64)
    fitted = fit_temperature(ensemble, batch)

    def nll(e):
        p = predict(e, batch.images, batch.context).probs
        return -float(jnp.mean(jnp.log(p[jnp.arange(len(batch)), batch.labels])))

    best = nll(fitted)
    for log_t in (-0.5, 0.5):
        other = fitted.__class__(fitted.members, fitted.log_temperature + log_t)
        assert best <= nll(other) + 1e-6


def test_evaluate_matches_direct_computation(trained):
    ensemble = trained[True][0]
    batch = sample_patches(jax.random.key(7), DOMAIN, 16)
    post = predict(ensemble, batch.images, batch.context)
    report = evaluate(post, batch)
    accuracy = float(np.mean(np.asarray(post.predicted) == np.asarray(batch.labels)))
    assert report["overall"]["accuracy"] == pytest.approx(accuracy)
    assert set(report["host"]) == {"MoSe2", "WSe2"}
    assert set(report["imaging"]) == {"200keV-HAADF", "200keV-MAADF"}
    assert sum(g["count"] for g in report["host"].values()) == len(batch)
    assert np.asarray(report["overall"]["confusion"]).sum() == len(batch)


def test_save_and_load_roundtrip(trained, tmp_path):
    ensemble = fit_temperature(trained[True][0], sample_patches(jax.random.key(8), DOMAIN, 16))
    save_ensemble(tmp_path / "e.eqx", ensemble)
    loaded = load_ensemble(tmp_path / "e.eqx", DOMAIN, use_context=True, **TINY)
    for x, y in zip(jax.tree.leaves(ensemble), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(x, y)


def test_bayesian_last_layer(trained):
    ensemble = trained[True][0]
    head = fit_last_layer(jax.random.key(3), ensemble, sample_patches(jax.random.key(9), DOMAIN,
                                                                      64), steps=300)  # fmt: skip
    assert head.loc.shape == (TINY["hidden"] + 1, len(CLASSES))
    assert np.all(np.asarray(head.scale) > 0)
    test = sample_patches(jax.random.key(10), DOMAIN, 32)
    post = predict_last_layer(jax.random.key(4), head, test.images, test.context, samples=16)
    assert post.member_probs.shape == (16, len(test), len(CLASSES))
    np.testing.assert_allclose(post.probs.sum(-1), 1.0, rtol=1e-5)
    ensemble_acc = float(np.mean(np.asarray(predict(ensemble, test.images, test.context)
                                            .predicted) == np.asarray(test.labels)))  # fmt: skip
    head_acc = float(np.mean(np.asarray(post.predicted) == np.asarray(test.labels)))
    assert head_acc >= ensemble_acc - 0.1
    again = predict_last_layer(jax.random.key(4), head, test.images, test.context, samples=16)
    np.testing.assert_array_equal(post.probs, again.probs)
    with pytest.raises(ValueError, match="member must be in"):
        fit_last_layer(jax.random.key(3), ensemble, test, member=5)


def test_class_posterior_feeds_acquisition(trained):
    ensemble = trained[True][0]
    batch = sample_patches(jax.random.key(11), DOMAIN, 8)
    post = predict(ensemble, batch.images, batch.context)
    target = post.target(CLASSES.index("dopant"))
    np.testing.assert_allclose(target.mean, post.probs[:, 4])
    np.testing.assert_allclose(target.variance, jnp.var(post.member_probs[..., 4], 0), rtol=1e-5)
    assert target.samples.shape == (ensemble.size, len(batch))
    # with no exploration, UCB picks the site most likely to hold a dopant
    scores = ucb(0.0).score(target, Context())
    assert int(jnp.argmax(scores)) == int(jnp.argmax(post.probs[:, 4]))
    with pytest.raises(ValueError, match="class_index"):
        post.target(7)


def test_input_errors_and_extrapolation_warning(trained):
    ensemble = trained[True][0]
    batch = sample_patches(jax.random.key(12), DOMAIN, 2)
    with pytest.raises(ValueError, match=f"images must have shape \\(N, {PATCH_SIZE}"):
        predict(ensemble, batch.images[:, :20, :20], batch.context)
    bad = batch.images.at[1, 3, 3].set(jnp.nan)
    with pytest.raises(ValueError, match="patches \\[1\\] hold NaN"):
        predict(ensemble, bad, batch.context)
    with pytest.raises(ValueError, match="context must have shape"):
        predict(ensemble, batch.images, batch.context[:, :5])
    far = batch.context.at[:, 3].set(60.0)  # a 60 keV beam: outside the trained 200 keV
    with pytest.warns(UserWarning, match="energy_keV.*extrapolation"):
        predict(ensemble, batch.images, far)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(ensemble, batch.images, batch.context)  # in range: no warning
