"""Fitting inside lax.scan: evidence rises, masked refits equal unpadded fits (A14), warm starts
continue exactly, and a whole campaign of refits runs under scan."""

import jax
import jax.numpy as jnp
import numpy as np

from stemjax.models import GPData, append, fit, init_params, log_marginal_likelihood, pad_data


def _campaigns(rng, sizes, d=2):
    out = []
    for n in sizes:
        x = rng.uniform(-2, 2, (n, d))
        y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] + 0.05 * rng.normal(size=n)
        out.append((x, y))
    return out


def test_fit_raises_the_evidence_and_warm_starts_continue_it():
    rng = np.random.default_rng(0)
    (x, y), = _campaigns(rng, [22])
    data = pad_data(x, y, 24)
    start = init_params(data, "matern52")
    result = fit(start, data, steps=40, learning_rate=0.05)
    assert result.loss.shape == (40,) and np.all(np.isfinite(result.loss))
    assert result.loss[-1] < result.loss[0] - 0.2
    lml0, lml1 = log_marginal_likelihood(start, data), log_marginal_likelihood(result.params, data)
    assert lml1 > lml0 + 0.2 * 22
    ls = np.asarray(result.params.kernel.lengthscale)
    assert ls[0] < ls[1]  # x₀ enters through sin(2x₀), x₁ linearly: shorter scale along x₀
    # warm start: 20 steps, then 20 more from the returned state, equal 40 straight away
    first = fit(start, data, steps=20, learning_rate=0.05)
    resumed = fit(first.params, data, steps=20, learning_rate=0.05, opt_state=first.opt_state)
    np.testing.assert_allclose(np.concatenate([first.loss, resumed.loss]), result.loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(result.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a14_masked_refits_under_vmap_equal_unpadded_fits(x64):
    """checks.md A14 for the fit; also: a fit on padded data equals one on the unpadded data."""
    rng = np.random.default_rng(1)
    sizes, capacity = [5, 23], 24
    raw = _campaigns(rng, sizes)
    padded = [pad_data(x, y, capacity) for x, y in raw]
    data = jax.tree.map(lambda *a: jnp.stack(a), *padded)
    start = jax.vmap(init_params)(data)
    batched = jax.jit(jax.vmap(lambda p, d: fit(p, d, steps=40)))(start, data)
    for i, (x, y) in enumerate(raw):
        alone = fit(init_params(GPData(x, y)), GPData(x, y), steps=40)
        got = jax.tree.map(lambda a: a[i], batched.params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(alone.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(batched.loss[i], alone.loss, rtol=1e-5)


def test_a_campaign_of_warm_started_refits_runs_under_scan_and_vmap():
    """Each step appends the next observation and refits 10 steps from the previous fit."""
    rng = np.random.default_rng(3)
    pool = [(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)) for x, y in
            _campaigns(rng, [12, 12])]

    def campaign(x, y):
        data = pad_data(x[:4], y[:4], 12)
        params = init_params(data)

        def step(carry, i):
            data, params = carry
            data = append(data, x[i], y[i])
            params = fit(params, data, steps=10).params
            return (data, params), log_marginal_likelihood(params, data)

        (data, params), lml = jax.lax.scan(step, (data, params), jnp.arange(4, 12))
        return params, lml

    xs = jnp.stack([p[0] for p in pool])
    ys = jnp.stack([p[1] for p in pool])
    params, lml = jax.jit(jax.vmap(campaign))(xs, ys)
    assert lml.shape == (2, 8) and np.all(np.isfinite(lml))
    # the last step's fit is the fit of all 12 points, warm-started 8 times
    final = GPData(xs[1], ys[1])
    np.testing.assert_allclose(
        lml[1, -1], log_marginal_likelihood(jax.tree.map(lambda a: a[1], params), final), rtol=1e-5
    )
