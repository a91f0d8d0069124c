"""Fully Bayesian GP: NUTS over the kernel hyperparameters, predictions averaged over them.

The model (gpax's default for its ExactGP) places log-normal priors on the lengthscales, the
kernel variance and the noise variance, LogNormal(0, 1) each, and a normal prior on the
constant mean centred on the data, N(ȳ, sd(y)); the likelihood is the marginal likelihood of
the (masked) data, so padded points play no part. numpyro's NUTS (Hoffman & Gelman 2014) draws
the hyperparameters. For small datasets: each NUTS step factors K.

Predictions average over the S draws θₛ: mean = (1/S) Σ μₛ and, by the law of total variance,
variance = (1/S) Σ σ²ₛ + (1/S) Σ (μₛ − mean)².
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import ArrayLike, Float, PRNGKeyArray
from numpyro.infer import MCMC, NUTS

from stemjax._validation import check_int_at_least
from stemjax.models._checks import check_candidates, check_unbatched
from stemjax.models.gp import GPData, GPParams, _condition, _masked_inputs, features_of
from stemjax.models.kernels import Kernel, check_kind, inverse_softplus
from stemjax.posterior import Posterior

_PRIOR_NAMES = ("lengthscale", "variance", "noise", "mean")


def _params(kind, lengthscale, variance, noise, mean) -> GPParams:
    """GPParams from constrained values, without the concrete-value checks (they are traced)."""
    kernel = Kernel(kind, dtype=variance.dtype)
    kernel = eqx.tree_at(
        lambda k: (k.raw_lengthscale, k.raw_variance),
        kernel,
        (inverse_softplus(lengthscale), inverse_softplus(variance)),
    )
    params = GPParams(kernel)
    return eqx.tree_at(lambda p: (p.raw_noise, p.mean), params, (inverse_softplus(noise), mean))


@eqx.filter_jit
def _log_likelihood(kind: str, values: dict, data: GPData):
    """log p(y | X, θ) at constrained values (one compiled call, also when numpyro runs the
    model eagerly to initialise)."""
    return _condition(_params(kind, **values), data).log_marginal_likelihood


def sample_hyperparameters(
    key: PRNGKeyArray,
    data: GPData,
    kind: str = "rbf",
    *,
    ard: bool = True,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    thinning: int = 1,
    priors: dict | None = None,
) -> GPParams:
    """Posterior draws of the hyperparameters of an exact GP by NUTS.

    Args:
        key: PRNG key.
        data: one campaign's :class:`~stemjax.models.gp.GPData` (small: tens to a few hundred
            points).
        kind: kernel family.
        ard: one lengthscale per input feature (inputs are flattened) or one shared.
        num_warmup, num_samples, num_chains, thinning: NUTS settings (static).
        priors: replacements for the defaults, keyed by ``"lengthscale"``, ``"variance"``,
            ``"noise"``, ``"mean"``: a numpyro distribution, or a number (array) to hold that
            hyperparameter fixed.

    Returns:
        :class:`~stemjax.models.gp.GPParams` whose arrays have a leading axis of
        S = num_chains · num_samples / thinning draws.
    """
    check_kind(kind)
    if not isinstance(data, GPData):
        raise TypeError(f"data must be GPData; got {type(data)!r}")
    check_unbatched(data)
    num_warmup = check_int_at_least("num_warmup", num_warmup, 1)
    num_samples = check_int_at_least("num_samples", num_samples, 1)
    num_chains = check_int_at_least("num_chains", num_chains, 1)
    thinning = check_int_at_least("thinning", thinning, 1)
    priors = dict(priors or {})
    unknown = set(priors) - set(_PRIOR_NAMES)
    if unknown:
        raise ValueError(f"priors has unknown names {sorted(unknown)}; allowed: {_PRIOR_NAMES}")
    dtype = data.y.dtype
    mask = np.asarray(data.mask)
    y = np.asarray(data.y)[mask]
    q = features_of(GPParams(Kernel(kind, dtype=dtype)), _masked_inputs(data)).shape[-1]
    scale = float(np.std(y)) if y.size > 1 and np.std(y) > 0 else 1.0
    one = jnp.ones((), dtype)
    defaults = {
        "lengthscale": dist.LogNormal(0.0 * one, one).expand([q] if ard else []).to_event(),
        "variance": dist.LogNormal(0.0 * one, one),
        "noise": dist.LogNormal(0.0 * one, one),
        "mean": dist.Normal(float(np.mean(y)) * one, scale * one),
    }
    prior = {**defaults, **priors}
    fixed = {
        name: jnp.asarray(value, dtype)
        for name, value in prior.items()
        if not isinstance(value, dist.Distribution)
    }
    for name, value in fixed.items():
        if name != "mean" and not np.all(np.asarray(value) > 0):
            raise ValueError(f"priors[{name!r}] must be > 0 when fixed; got {value}")
    if len(fixed) == len(_PRIOR_NAMES):
        raise ValueError("priors fix every hyperparameter: nothing is left to sample")

    def model(data):
        values = {
            name: fixed[name] if name in fixed else numpyro.sample(name, prior[name])
            for name in _PRIOR_NAMES
        }
        numpyro.factor("marginal_likelihood", _log_likelihood(kind, values, data))

    mcmc = MCMC(
        NUTS(model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        thinning=thinning,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(key, data)
    draws = mcmc.get_samples()
    size = next(iter(draws.values())).shape[0]
    for name, value in fixed.items():
        draws[name] = jnp.broadcast_to(value, (size, *value.shape))
    return jax.vmap(lambda v: _params(kind, **v))({k: draws[k] for k in _PRIOR_NAMES})


@eqx.filter_jit
def _averaged(samples, data, candidates, observed):
    posts = jax.vmap(lambda p: _condition(p, data).predict(candidates, observed=observed))(samples)
    mean = jnp.mean(posts.mean, axis=0)
    var = jnp.mean(posts.variance, axis=0) + jnp.mean((posts.mean - mean) ** 2, axis=0)
    return Posterior(mean, var)


def predict_averaged(
    samples: GPParams,
    data: GPData,
    candidates: Float[ArrayLike, "m *d"],
    *,
    observed: bool = False,
) -> Posterior:
    """Prediction averaged over hyperparameter draws (from :func:`sample_hyperparameters`).

    Args:
        samples: GPParams with a leading axis of S draws.
        data: the campaign's :class:`~stemjax.models.gp.GPData`.
        candidates: (m, *d) inputs.
        observed: include the noise variance of a new observation.

    Returns:
        ``Posterior(mean (m,), variance (m,))`` of the hyperparameter mixture.
    """
    check_unbatched(data)
    if samples.mean.ndim != 1:
        raise ValueError(
            f"samples must have one leading axis of draws; got mean of shape {samples.mean.shape}"
        )
    candidates = jnp.asarray(candidates, data.x.dtype)
    check_candidates("candidates", candidates, data.x)
    return _averaged(samples, data, candidates, observed)
