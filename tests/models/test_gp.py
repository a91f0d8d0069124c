"""Masked exact GP: A8 closed form, masks, float32 vs float64, gradients, vmap (A14), errors."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.models import (
    GPData,
    GPParams,
    Kernel,
    append,
    condition,
    init_params,
    log_marginal_likelihood,
    pad_data,
    predict,
    predict_covariance,
)

# checks.md A8: RBF ℓ = 1, s² = 1, σ² = 0.01, X = [0, 1], y = [0, 1], x* = [0.5, 2.0]
A8_MEAN = [0.5459203, 0.8133920]
A8_VAR = [0.0364541, 0.5546248]
A8_LML = -2.3984688


def _a8(dtype):
    params = GPParams(Kernel("rbf", 1.0, 1.0), noise=0.01, mean=0.0)
    data = GPData(jnp.asarray([[0.0], [1.0]], dtype), jnp.asarray([0.0, 1.0], dtype))
    return params, data, jnp.asarray([[0.5], [2.0]], dtype)


def test_a8_closed_form(dtype):
    tol = 1e-6 if dtype == jnp.float64 else 1e-4
    params, data, xs = _a8(dtype)
    post = predict(params, data, xs)
    assert post.mean.dtype == dtype and post.variance.dtype == dtype
    np.testing.assert_allclose(post.mean, A8_MEAN, atol=tol)
    np.testing.assert_allclose(post.variance, A8_VAR, atol=tol)
    np.testing.assert_allclose(log_marginal_likelihood(params, data), A8_LML, atol=tol)
    observed = predict(params, data, xs, observed=True)
    np.testing.assert_allclose(observed.variance, np.asarray(A8_VAR) + 0.01, atol=tol)
    cov = predict_covariance(params, data, xs)
    np.testing.assert_allclose(np.diag(cov), A8_VAR, atol=tol)
    np.testing.assert_allclose(cov, cov.T)


def test_a8_with_padding_anywhere(dtype):
    """Padded slots, interleaved and holding garbage inputs, change nothing."""
    tol = 1e-6 if dtype == jnp.float64 else 1e-4
    params, _, xs = _a8(dtype)
    x = jnp.asarray([[7.0], [0.0], [-3.0], [1.0], [1e3]], dtype)
    y = jnp.asarray([5.0, 0.0, -2.0, 1.0, 9.0], dtype)
    data = GPData(x, y, jnp.asarray([False, True, False, True, False]))
    post = predict(params, data, xs)
    np.testing.assert_allclose(post.mean, A8_MEAN, atol=tol)
    np.testing.assert_allclose(post.variance, A8_VAR, atol=tol)
    np.testing.assert_allclose(log_marginal_likelihood(params, data), A8_LML, atol=tol)


def _problem(dtype, n=30, d=5, m=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, d))
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2 + 0.05 * rng.normal(size=n)
    xs = rng.uniform(-1.2, 1.2, (m, d))
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype), jnp.asarray(xs, dtype)


KINDS = ("rbf", "matern12", "matern32", "matern52")


def _all_kinds(x, y, xs):
    """Mean, variance and evidence of the four kernels on one padded dataset."""
    ls = jnp.asarray([0.8, 1.0, 1.5, 2.0, 3.0], x.dtype)
    data = pad_data(x, y, 37)
    out = []
    for kind in KINDS:
        params = GPParams(Kernel(kind, ls, 1.3, dtype=x.dtype), noise=0.02, mean=0.1)
        c = condition(params, data)
        post = c.predict(xs)
        out.append((post.mean, post.variance, c.log_marginal_likelihood))
    return out


def test_float32_matches_float64_on_a_well_conditioned_problem():
    out = {}
    for x64 in (False, True):
        with jax.enable_x64(x64):
            out[x64] = jax.jit(_all_kinds)(*_problem(jnp.float64 if x64 else jnp.float32))
    for kind, r32, r64 in zip(KINDS, out[False], out[True]):
        (m32, v32, l32), (m64, v64, l64) = r32, r64
        np.testing.assert_allclose(m32, m64, atol=2e-4, err_msg=kind)
        np.testing.assert_allclose(v32, v64, atol=2e-4, err_msg=kind)
        np.testing.assert_allclose(l32, l64, rtol=1e-4, err_msg=kind)


def test_padded_equals_unpadded(x64):
    x, y, xs = _problem(jnp.float64)
    params = GPParams(Kernel("matern32", jnp.full(5, 0.9), 1.1), noise=0.03, mean=-0.2)
    dense = GPData(x, y)
    padded = pad_data(x, y, 50)
    p1, p2 = predict(params, dense, xs), predict(params, padded, xs)
    np.testing.assert_allclose(p1.mean, p2.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p1.variance, p2.variance, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        log_marginal_likelihood(params, dense), log_marginal_likelihood(params, padded), rtol=1e-12
    )


def test_lml_gradient_matches_finite_differences(x64):
    x, y, _ = _problem(jnp.float64, n=12, d=3)
    data = pad_data(x, y, 16)
    params = [
        GPParams(Kernel(kind, jnp.asarray([0.7, 1.1, 1.9]), 0.8), noise=0.05, mean=0.3)
        for kind in KINDS
    ]
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    f = jax.jit(lambda v: jnp.stack([condition(p, data).log_marginal_likelihood for p in unravel(v)]))
    jac = jax.jit(jax.jacobian(f))(flat)  # (kinds, parameters)
    h = 1e-6
    fd = np.stack([(f(flat + h * e) - f(flat - h * e)) / (2 * h) for e in np.eye(flat.size)], 1)
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-7)


def test_a14_vmap_over_padded_campaigns_equals_loop_over_unpadded():
    """checks.md A14 for prediction and evidence (float32; the fit is in test_fit.py): B
    campaigns of 3 and 20 points, capacity 24."""
    dtype = jnp.float32
    rng = np.random.default_rng(3)
    sizes, capacity, b = [3, 20], 24, 2
    xs = jnp.asarray(rng.uniform(-1, 1, (b, 15, 2)), dtype)
    raw, stacked = [], []
    for i, n in enumerate(sizes):
        x = rng.uniform(-1, 1, (n, 2))
        y = np.cos(2 * x[:, 0]) * x[:, 1] + 0.1 * rng.normal(size=n)
        raw.append((jnp.asarray(x, dtype), jnp.asarray(y, dtype)))
        stacked.append(pad_data(*raw[-1], capacity))
    data = jax.tree.map(lambda *a: jnp.stack(a), *stacked)
    params = jax.vmap(lambda lv: GPParams(Kernel("matern52", jnp.exp(lv), 1.0), noise=0.05))(
        jnp.asarray(rng.normal(0, 0.3, (b, 2)), dtype)
    )

    def one(p, d, c):
        cond = condition(p, d)
        post = cond.predict(c)
        return post.mean, post.variance, cond.log_marginal_likelihood

    batched = jax.jit(jax.vmap(one))(params, data, xs)
    for i in range(b):
        p_i = jax.tree.map(lambda a: a[i], params)
        looped = jax.jit(one)(p_i, GPData(*raw[i]), xs[i])
        for got, want in zip(batched, looped):
            # float32 Cholesky of 20 points at noise 0.05: padding changes the summation
            # order, which moves results by a few ulp × condition (~1e-6); a padding leak
            # would move them by the size of the data (~0.1).
            np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)


def test_condition_reuses_the_factorisation():
    params, data, xs = _a8(jnp.float32)
    c = condition(params, data)
    post = c.predict(xs)
    np.testing.assert_allclose(post.mean, predict(params, data, xs).mean)
    np.testing.assert_allclose(c.log_marginal_likelihood, log_marginal_likelihood(params, data))


def test_append_fills_the_first_free_slot():
    data = pad_data(jnp.asarray([[0.0], [1.0]]), jnp.asarray([0.0, 1.0]), 4)
    data = jax.jit(append)(data, jnp.asarray([2.0]), jnp.asarray(0.5))
    np.testing.assert_array_equal(data.mask, [True, True, True, False])
    np.testing.assert_allclose(data.x[:, 0], [0, 1, 2, 0])
    np.testing.assert_allclose(data.y, [0, 1, 0.5, 0])
    full = append(data, jnp.asarray([3.0]), jnp.asarray(1.0))
    with pytest.raises(Exception, match="full"):
        jax.block_until_ready(append(full, jnp.asarray([4.0]), jnp.asarray(1.0)))


def test_init_params_follow_the_data():
    x, y, _ = _problem(jnp.float32)
    p = init_params(pad_data(x, y, 40), "matern52")
    np.testing.assert_allclose(p.mean, np.mean(y), rtol=1e-5)
    np.testing.assert_allclose(p.kernel.variance, np.var(y), rtol=1e-4)
    assert p.kernel.lengthscale.shape == (5,)
    assert init_params(GPData(x, y), ard=False).kernel.lengthscale.shape == ()


def test_image_patches_are_flattened():
    dtype = jnp.float32
    rng = np.random.default_rng(1)
    patches = jnp.asarray(rng.uniform(size=(12, 4, 4)), dtype)
    y = jnp.asarray(rng.normal(size=12), dtype)
    params = GPParams(Kernel("rbf", 2.0, 1.0), noise=0.1)
    a = predict(params, GPData(patches, y), patches[:3])
    b = predict(params, GPData(patches.reshape(12, 16), y), patches[:3].reshape(3, 16))
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-6)


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_argument():
    x, y = np.zeros((4, 2)), np.arange(4.0)
    with pytest.raises(ValueError, match="x must have shape"):
        GPData(np.zeros((5, 2)), y)
    with pytest.raises(ValueError, match="mask must have the shape of y"):
        GPData(x, y, np.ones(3, bool))
    with pytest.raises(ValueError, match="y must be finite where mask is true"):
        GPData(x, np.array([0.0, np.nan, 1.0, 2.0]))
    with pytest.raises(ValueError, match="at least one true entry"):
        GPData(x, y, np.zeros(4, bool))
    with pytest.raises(ValueError, match="mask must be boolean"):
        GPData(x, y, np.ones(4))
    with pytest.raises(ValueError, match="lengthscale must be > 0"):
        Kernel("rbf", [1.0, 0.0])
    with pytest.raises(ValueError, match="noise must be > 0"):
        GPParams(Kernel(), noise=0.0)
    data, params = GPData(x, y), GPParams(Kernel())
    with pytest.raises(ValueError, match=r"candidates must have shape \(m, 2\)"):
        predict(params, data, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="candidates must be finite"):
        predict(params, data, np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="use jax.vmap"):
        predict(params, GPData(np.zeros((2, 4, 2)), np.zeros((2, 4))), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="capacity must be an integer >= n"):
        pad_data(x, y, 3)
