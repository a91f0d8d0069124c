"""Deep kernel learning: feature networks, gradients, vmap over campaigns, and the real PFM
patches (shared/data/pfm_pto_beacon): DKL vs a constant and vs an exact GP on raw patches."""

from pathlib import Path

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from stemjax.models import (
    ConvFeatures,
    GPData,
    MLPFeatures,
    append,
    fit,
    init_dkl,
    init_params,
    log_marginal_likelihood,
    pad_data,
    predict,
)

PFM = Path(__file__).resolve().parents[3] / "shared" / "data" / "pfm_pto_beacon" / "pfm_pto_beacon.npz"


def test_conv_features_shapes_and_stacking():
    keys = jax.random.split(jax.random.key(0), 3)
    nets = jax.vmap(lambda k: ConvFeatures(k, (8, 8), (4, 6), 2))(keys)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(5, 8, 8)), jnp.float32)
    out = jax.jit(jax.vmap(lambda net: net(x)))(nets)
    assert out.shape == (3, 5, 2)
    for i in range(3):
        one = jax.tree.map(lambda a: a[i], nets)
        np.testing.assert_allclose(out[i], jax.jit(one.__call__)(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="patch_shape must be two multiples of 4"):
        ConvFeatures(keys[0], (10, 8))
    with pytest.raises(ValueError, match=r"patches must have shape \(n, 8, 8\)"):
        jax.tree.map(lambda a: a[0], nets)(jnp.zeros((2, 4, 4)))


def test_dkl_gradient_matches_finite_differences(x64):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (10, 3))
    data = pad_data(x, np.sin(3 * x[:, 0]) * x[:, 1], 12)
    params = init_dkl(jax.random.key(2), data, "matern52", hidden=(8,), latent_dim=2)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    f = jax.jit(lambda v: log_marginal_likelihood(unravel(v), data))
    direction = jnp.asarray(rng.normal(size=flat.size))
    h = 1e-6
    fd = (f(flat + h * direction) - f(flat - h * direction)) / (2 * h)
    np.testing.assert_allclose(jax.grad(f)(flat) @ direction, fd, rtol=1e-6)


def test_a14_dkl_fits_under_vmap_equal_loop_over_unpadded(x64):
    rng = np.random.default_rng(4)
    sizes, capacity = [7, 7], 12  # one unpadded shape: one compilation for the loop
    raw = [(rng.uniform(size=(n, 3)), rng.normal(size=n)) for n in sizes]
    data = jax.tree.map(lambda *a: jnp.stack(a), *[pad_data(x, y, capacity) for x, y in raw])
    keys = jax.random.split(jax.random.key(5), len(sizes))
    step = lambda k, d: fit(init_dkl(k, d, hidden=(8,)), d, steps=5, learning_rate=0.01)  # noqa: E731
    batched = jax.jit(jax.vmap(step))(keys, data)
    for i, (x, y) in enumerate(raw):
        alone = step(keys[i], GPData(x, y))
        got = jax.tree.map(lambda a: a[i], batched.params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(alone.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


def test_mlp_features_reject_wrong_inputs():
    net = MLPFeatures(jax.random.key(0), 3, (4,), 2)
    with pytest.raises(ValueError, match=r"inputs must have shape \(n, 3\)"):
        net(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPFeatures(jax.random.key(0), 3, activation="sigmoid")


@pytest.mark.skipif(not PFM.exists(), reason="shared/data/pfm_pto_beacon is not available")
def test_dkl_on_real_pfm_patches_beats_a_constant():
    """Train on 100 random patches, predict the loop height of 1115 held out.

    Reported (seed 0, float32): MAE of the constant (training mean), of an exact GP on the
    flattened 256-pixel patches, and of the DKL (the papers' CNN, 2-D latent, RBF).
    """
    npz = np.load(PFM, allow_pickle=False)
    patches, centres = npz["patches"], npz["patch_centers"]
    target = npz["scalarizer_map"][centres[:, 0], centres[:, 1]]
    order = np.random.default_rng(0).permutation(len(target))
    train, test = order[:100], order[110:]
    data = pad_data(patches[train], target[train], 110)

    mae = lambda post: float(np.mean(np.abs(np.asarray(post.mean) - target[test])))  # noqa: E731
    constant = float(np.mean(np.abs(target[train].mean() - target[test])))
    exact = fit(init_params(data, "rbf", ard=False), data, steps=150).params
    adam = optax.adam(0.01)
    dkl = fit(init_dkl(jax.random.key(0), data), data, steps=50, optimizer=adam)
    for _ in range(2):  # 150 steps in all; continued fits reuse one compilation
        dkl = fit(dkl.params, data, steps=50, optimizer=adam, opt_state=dkl.opt_state)
    mae_exact = mae(predict(exact, data, patches[test]))
    mae_dkl = mae(predict(dkl.params, data, patches[test]))
    print(f"\nPFM loop height, 100 training patches: MAE constant {constant:.4f}, "
          f"exact GP on raw patches {mae_exact:.4f}, DKL {mae_dkl:.4f}")
    assert np.all(np.isfinite(dkl.loss)) and dkl.loss[-1] < -1.0
    assert mae_dkl < 0.75 * constant
    assert mae_exact < 0.75 * constant

    # a campaign step: ten more observations, then a warm-started refit of 20 steps
    for i in order[100:110]:
        data = append(data, jnp.asarray(patches[i], jnp.float32), jnp.asarray(target[i], jnp.float32))
    refit = fit(dkl.params, data, steps=50, optimizer=adam)
    mae_refit = mae(predict(refit.params, data, patches[test]))
    print(f"after 10 more points and a 50-step warm refit: DKL MAE {mae_refit:.4f}")
    assert mae_refit < 0.75 * constant
