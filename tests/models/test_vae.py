"""The patch VAE: ELBO pieces, training, encoding (stemjax.models.vae)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.models import vae as vae_lib

STEPS = 300


def _families(n_each=60, noise=0.1, seed=0):
    """Two distinct 8 × 8 patch families (a disk and vertical stripes) plus pixel noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:8, :8]
    disk = ((yy - 3.5) ** 2 + (xx - 3.5) ** 2 < 6).astype(float)
    stripes = (np.sin(xx * 1.6) > 0).astype(float)
    which = np.repeat([0, 1], n_each)
    patches = np.stack([disk, stripes])[which] + noise * rng.normal(size=(2 * n_each, 8, 8))
    return patches, which


@pytest.fixture(scope="module")
def trained():
    patches, which = _families()
    standard = ((patches - patches.mean()) / patches.std()).astype(np.float32)
    model = vae_lib.init_vae(jax.random.key(0), (8, 8))
    fitted, losses = vae_lib.train_vae(jax.random.key(1), model, standard, steps=STEPS)
    return model, fitted, losses, standard, which


def test_loss_decreases_and_is_finite(trained):
    _, _, losses, _, _ = trained
    losses = np.asarray(losses)
    assert losses.shape == (STEPS,) and np.all(np.isfinite(losses))
    assert losses[-30:].mean() < losses[:30].mean() - 20.0  # nats per patch


def test_encode_decode_shapes_and_reconstruction(trained):
    model, fitted, _, standard, _ = trained
    mean, log_var = vae_lib.encode(fitted, standard)
    assert mean.shape == log_var.shape == (120, 2) and mean.dtype == jnp.float32
    recon = vae_lib.decode(fitted, mean)
    assert recon.shape == (120, 8, 8)
    before = np.mean((np.asarray(vae_lib.decode(model, vae_lib.encode(model, standard)[0]))
                      - standard) ** 2)  # fmt: skip
    after = np.mean((np.asarray(recon) - standard) ** 2)
    assert after < 0.5 * before


def test_latent_means_separate_the_two_families(trained):
    _, fitted, _, standard, which = trained
    mean = np.asarray(vae_lib.encode(fitted, standard)[0])
    a, b = mean[which == 0], mean[which == 1]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    spread = max(np.linalg.norm(a - a.mean(0), axis=1).max(),
                 np.linalg.norm(b - b.mean(0), axis=1).max())  # fmt: skip
    assert gap > 2.0 * spread


def test_training_is_reproducible(trained):
    model, fitted, losses, standard, _ = trained
    again, losses_again = vae_lib.train_vae(jax.random.key(1), model, standard, steps=STEPS)
    np.testing.assert_array_equal(losses, losses_again)
    np.testing.assert_array_equal(vae_lib.encode(fitted, standard)[0],
                                  vae_lib.encode(again, standard)[0])  # fmt: skip


def test_elbo_closed_form_at_zero_weights():
    """All-zero weights: μ = 0, log s² = 0 (KL = 0) and decoder output 0 whatever the draw, so
    the ELBO is log N(x; 0, I) (Gaussian, σ² = 1) or d·log ½ (Bernoulli, logits 0)."""
    x = (np.arange(3 * 64, dtype=np.float32).reshape(3, 8, 8) % 7) / 7
    for likelihood in ("gaussian", "bernoulli"):
        model = vae_lib.init_vae(jax.random.key(0), (8, 8), likelihood=likelihood)
        zero = jax.tree.map(jnp.zeros_like, model)
        if likelihood == "gaussian":
            expected = -0.5 * (np.sum(x.reshape(3, -1) ** 2, 1) + 64 * np.log(2 * np.pi))
        else:
            expected = np.full(3, 64 * np.log(0.5))
            recon = vae_lib.decode(model, np.random.default_rng(0).normal(size=(5, 2)) * 10)
            assert np.all((np.asarray(recon) >= 0) & (np.asarray(recon) <= 1))
            with pytest.raises(ValueError, match=r"patches must lie in \[0.0, 1.0\]"):
                vae_lib.encode(model, x * 2)
        np.testing.assert_allclose(vae_lib.elbo(jax.random.key(3), zero, x), expected, rtol=1e-6)


def _model():
    return vae_lib.init_vae(jax.random.key(0), (8, 8))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: vae_lib.init_vae(jax.random.key(0), (8,)), r"patch_shape must be \(h, w\)"),
        (lambda: vae_lib.init_vae(jax.random.key(0), (8, 8), 0), "latent_dim must be"),
        (lambda: vae_lib.init_vae(jax.random.key(0), (8, 8), likelihood="poisson"),
         "likelihood must be one of"),
        (lambda: vae_lib.encode(_model(), np.zeros((3, 4, 4))),
         r"patches must have shape \(N, 8, 8\)"),
        (lambda: vae_lib.decode(_model(), np.zeros((3, 3))), r"latents must have shape \(N, 2\)"),
        (lambda: vae_lib.train_vae(jax.random.key(0), _model(), np.zeros((3, 8, 8)), steps=0),
         "steps must be"),
        (lambda: vae_lib.train_vae(jax.random.key(0), _model(), np.zeros((3, 8, 8)),
                                   learning_rate=0.0), "learning_rate must"),
        (lambda: vae_lib.train_vae(jax.random.key(0), _model(), np.full((3, 8, 8), np.nan)),
         "patches must be finite"),
    ],
)  # fmt: skip
def test_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
