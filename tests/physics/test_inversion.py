"""Bayesian inversion of a noisy HAADF image: NUTS covers the truth and learns from the data,
SVI agrees with NUTS, multislice can be the forward model, bad inputs are rejected."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.infer.util import log_density

from stemjax.physics import (
    AnnularDetector,
    IncoherentImaging,
    Multislice,
    MultisliceImaging,
    Probe,
    ScanGrid,
    fit_svi,
    image_model,
    make_specimen,
    perovskite,
    sample_posterior,
    summarise,
)

TRUE = {"defocus_A": 40.0, "dose_scale": 0.8}
INFER = tuple(TRUE)
# an aberration-corrected probe (Cs = 0, known): the image fixes |defocus|, the prior its sign
PRIORS = {"defocus_A": dist.TruncatedNormal(20.0, 30.0, low=0.0)}
PRIOR_SD = {"defocus_A": 30.0, "dose_scale": 0.5}  # dose: sd of log D


@functools.cache
def problem():
    """A 16 × 16 image (0.25 Å pixels) of one SrTiO3 cell, 5 cells thick, at known settings."""
    specimen = perovskite("SrTiO3", cells=(2, 2), thickness=20.0)
    nominal = IncoherentImaging(Probe(200.0, 21.0, aberrations={"defocus": 20.0}), margin=3.0)
    grid = ScanGrid((16, 16), 0.25, origin=(1.95, 1.95))
    electrons = 2e4
    probe = nominal.probe.with_aberrations(defocus=TRUE["defocus_A"])
    truth = eqx.tree_at(lambda m: m.probe, nominal, probe)
    rate = TRUE["dose_scale"] * electrons * truth.render(specimen, grid) + 0.01
    counts = jax.random.poisson(jax.random.key(0), rate).astype(jnp.float32)
    kwargs = dict(forward=nominal, specimen=specimen, grid=grid, electrons=electrons,
                  infer=INFER, priors=PRIORS)  # fmt: skip
    return counts, kwargs


@functools.cache
def nuts():
    counts, kwargs = problem()
    samples = sample_posterior(jax.random.key(1), counts, num_warmup=200, num_samples=200,
                               dense_mass=False, **kwargs)  # fmt: skip
    return summarise(samples), samples


def test_nuts_intervals_cover_the_truth_and_are_narrower_than_the_prior():
    summary, samples = nuts()
    assert set(samples) == set(TRUE)
    assert samples["defocus_A"].shape == (200,)
    for name in ("defocus_A", "dose_scale"):
        low, high = float(summary[name]["low"]), float(summary[name]["high"])
        assert low <= TRUE[name] <= high, (name, low, high)
    assert float(summary["defocus_A"]["sd"]) < PRIOR_SD["defocus_A"] / 3
    assert float(jnp.std(jnp.log(samples["dose_scale"]))) < PRIOR_SD["dose_scale"] / 10


def test_svi_mean_is_near_the_nuts_mean():
    summary, _ = nuts()
    counts, kwargs = problem()
    draws, losses = fit_svi(jax.random.key(2), counts, guide="normal", steps=400, **kwargs)
    assert float(losses[-1]) < float(losses[0])
    approx = summarise(draws)
    for name in ("defocus_A", "dose_scale"):
        gap = abs(float(approx[name]["mean"]) - float(summary[name]["mean"]))
        assert gap < float(summary[name]["sd"]), (name, gap)
        ratio = float(approx[name]["sd"]) / float(summary[name]["sd"])
        assert 0.5 < ratio < 2.0, (name, ratio)


def test_column_scales_and_shifts_enter_the_likelihood():
    counts, kwargs = problem()
    n = kwargs["specimen"].capacity
    infer = ("dose_scale", "column_log_scale", "shift_A")
    base = {"dose_scale": 0.8, "column_log_scale": jnp.zeros(n), "shift_A": jnp.zeros((n, 2))}

    def log_joint(**values):
        return float(log_density(image_model, (counts,), {**kwargs, "infer": infer},
                                 {**base, **values})[0])  # fmt: skip

    reference = log_joint()
    assert np.isfinite(reference)
    # brightening one column or moving it changes the fit; a common log scale does not
    brighter = log_joint(column_log_scale=jnp.zeros(n).at[0].set(0.5))
    moved = log_joint(shift_A=jnp.zeros((n, 2)).at[0, 0].set(0.3))
    common = log_joint(column_log_scale=jnp.full(n, 0.2))
    prior_change = float(dist.Normal(0.0, 0.3).log_prob(0.2) - dist.Normal(0.0, 0.3).log_prob(0.0))
    assert brighter != pytest.approx(reference) and moved != pytest.approx(reference)
    assert common - reference == pytest.approx(n * prior_change, rel=1e-3)


def test_multislice_forward_model_gives_a_finite_posterior_gradient():
    cell = make_specimen([[1.5, 1.5, 0.0]], [79], [3.0, 3.0, 1.0], debye_waller=0.5)
    probe = Probe(200.0, 21.0, aberrations={"defocus": 10.0})
    forward = MultisliceImaging(Multislice(probe, cell, 0.1, 1.0), AnnularDetector(25.0, 80.0))
    grid = ScanGrid((3, 3), 0.5, origin=(1.0, 1.0))
    signal = forward.render(cell, grid)
    counts = jnp.round(1e4 * signal)
    kwargs = dict(forward=forward, specimen=cell, grid=grid, electrons=1e4,
                  infer=("defocus_A", "dose_scale"))  # fmt: skip

    def log_joint(defocus):
        values = {"defocus_A": defocus, "dose_scale": jnp.asarray(1.0)}
        return log_density(image_model, (counts,), kwargs, values)[0]

    value, slope = jax.value_and_grad(log_joint)(jnp.asarray(15.0))
    assert np.isfinite(float(value)) and np.isfinite(float(slope))
    assert float(slope) < 0  # the data were made at 10 Å: the posterior falls towards 15 Å


@pytest.mark.parametrize(
    "change, message",
    [
        ({"infer": ("defocus_A", "C5")}, r"infer must name one or more of"),
        ({"infer": ()}, r"infer must name one or more of"),
        ({"electrons": 0.0}, r"electrons must be > 0"),
        ({"counts": jnp.ones((3, 3))}, r"counts must have the grid's shape \(16, 16\)"),
        ({"counts": -jnp.ones((16, 16))}, r"counts must be >= 0"),
        ({"guide": "flow"}, r"guide must be one of \('normal', 'lowrank'\)"),
    ],
)
def test_bad_inputs_are_rejected(change, message):
    counts, kwargs = problem()
    kwargs = {**kwargs, **change}
    counts = kwargs.pop("counts", counts)
    with pytest.raises(ValueError, match=message):
        fit_svi(jax.random.key(0), counts, steps=1, **kwargs)
    if "guide" not in change:
        with pytest.raises(ValueError, match=message):
            sample_posterior(jax.random.key(0), counts, num_warmup=1, num_samples=1, **kwargs)


def test_summarise_gives_central_intervals():
    draws = {"x": jnp.arange(1001.0)}
    s = summarise(draws, 0.9)["x"]
    assert float(s["mean"]) == pytest.approx(500.0)
    assert float(s["low"]) == pytest.approx(50.0) and float(s["high"]) == pytest.approx(950.0)
    with pytest.raises(ValueError, match=r"probability must lie in \(0, 1\)"):
        summarise(draws, 1.0)
