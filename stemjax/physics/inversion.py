"""Bayesian inversion of a STEM image with numpyro: probe aberrations, dose and columns.

The recorded image holds detector counts n (h, w), modelled as independent Poisson draws

    n_ij ~ Poisson(D · e · s_ij(θ) + b),

with e the nominal electrons per probe position (current × dwell / e), D the dose scale (the
unknown ratio of the true to the nominal dose, detector efficiency included), s the fraction
of incident electrons that a forward model sends to the detector, for the probe and specimen
parameters θ, and b a small background (counts per pixel). The forward model is the fast
:class:`~stemjax.physics.IncoherentImaging` (optionally calibrated) or, on a tiny cell,
:class:`MultisliceImaging`.

Latent sites of :func:`image_model` (units in the names):

- ``defocus_A``: defocus, Å (positive = underfocus); prior Normal(nominal, 50 Å).
- ``Cs_um``: spherical aberration C30, µm; prior Normal(nominal, 5 µm).
- ``dose_scale``: D; prior LogNormal(0, 0.5).
- ``column_log_scale``: (n,) log brightness of each site relative to the specimen's counts;
  prior Normal(0, 0.3); its mean over present sites is removed, so that D alone sets the
  overall brightness.
- ``shift_A``: (n, 2) displacement of each site from its nominal (x, y), Å; prior
  Normal(0, 0.2 Å).

``image_model(..., infer=...)`` chooses which of them are inferred; the others are held at
their nominal values (the template probe's aberrations, D = 1, no scale change, no shift).
Run it with :func:`sample_posterior` (NUTS) or :func:`fit_svi` (AutoNormal or
AutoLowRankMultivariateNormal guide). HAADF images carry little information on the sign of
defocus when Cs is small (the probe intensity is nearly symmetric about focus): use a prior
that excludes the wrong branch.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO, init_to_median
from numpyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoNormal

from stemjax._validation import check_int_at_least, check_nonnegative, check_positive
from stemjax.physics.detector import AnnularDetector
from stemjax.physics.haadf import IncoherentImaging
from stemjax.physics.multislice import Multislice
from stemjax.physics.probe import Probe
from stemjax.physics.scan import ScanGrid
from stemjax.physics.specimen import Specimen

LATENTS = ("defocus_A", "Cs_um", "dose_scale", "column_log_scale", "shift_A")
"""Names of the latent sites :func:`image_model` can infer."""

DEFAULT_INFER = ("defocus_A", "Cs_um", "dose_scale")
"""The latents :func:`image_model` infers unless told otherwise."""

_ANGSTROM_PER_UM = 1e4


class MultisliceImaging(eqx.Module):
    """A multislice forward model with the interface :func:`image_model` needs.

    Attributes:
        multislice: the simulation (grid, slices, species; its probe is replaced by
            ``probe``).
        probe: the probe whose aberrations are inferred.
        detector: the annular detector.
        key: frozen-phonon key (the same configurations for every evaluation), or None for
            the Debye–Waller-damped potential.
        phonons: configurations averaged (static).
    """

    multislice: Multislice
    probe: Probe
    detector: AnnularDetector
    key: PRNGKeyArray | None
    phonons: int = eqx.field(static=True)

    def __init__(self, multislice: Multislice, detector: AnnularDetector,
                 key: PRNGKeyArray | None = None, phonons: int = 1):  # fmt: skip
        self.multislice = multislice
        self.probe = multislice.probe
        self.detector = detector
        self.key = key
        self.phonons = check_int_at_least("phonons", phonons, 1)

    def render(self, specimen: Specimen, grid: ScanGrid) -> Float[Array, "h w"]:
        """(h, w) fraction of incident electrons reaching the detector at each grid position."""
        model = eqx.tree_at(lambda m: m.probe, self.multislice, self.probe)
        signals = model.scan(specimen, grid.positions(), [self.detector], key=self.key,
                             phonons=self.phonons)  # fmt: skip
        return signals[..., 0]


def default_priors(probe: Probe, capacity: int) -> dict:
    """The default prior of each latent site (see the module docstring) for a template
    ``probe`` and a specimen of ``capacity`` slots."""
    return {
        "defocus_A": dist.Normal(probe.defocus, 50.0),
        "Cs_um": dist.Normal(probe.aberration("Cs") / _ANGSTROM_PER_UM, 5.0),
        "dose_scale": dist.LogNormal(0.0, 0.5),
        "column_log_scale": dist.Normal(jnp.zeros(capacity), 0.3),
        "shift_A": dist.Normal(jnp.zeros((capacity, 2)), 0.2),
    }


def image_model(
    counts: Float[ArrayLike, "h w"] | None,
    *,
    forward: IncoherentImaging | MultisliceImaging,
    specimen: Specimen,
    grid: ScanGrid,
    electrons: float,
    infer: Sequence[str] = DEFAULT_INFER,
    priors: dict | None = None,
    background: float = 0.01,
) -> None:
    """numpyro model of a recorded image: Poisson counts of a forward-modelled detector signal.

    Args:
        counts: (h, w) observed detector counts (None to sample from the prior predictive).
        forward: the forward model; its probe is the template whose defocus and Cs are the
            nominal values.
        specimen: the specimen's nominal sites (positions Å, counts, elements).
        grid: the scan raster of the image.
        electrons: nominal electrons per probe position (> 0).
        infer: which of :data:`LATENTS` to infer.
        priors: replacements for :func:`default_priors`, by site name.
        background: expected background counts per pixel (> 0 keeps the rate positive).

    Sites: the inferred latents and ``counts`` (observed, (h, w) treated as one event).
    """
    probe = forward.probe
    prior = {**default_priors(probe, specimen.capacity), **(priors or {})}

    def latent(name, nominal):
        return numpyro.sample(name, prior[name]) if name in infer else nominal

    defocus = latent("defocus_A", probe.defocus)
    cs_um = latent("Cs_um", probe.aberration("Cs") / _ANGSTROM_PER_UM)
    dose = latent("dose_scale", 1.0)
    moved = specimen
    if "column_log_scale" in infer:
        u = numpyro.sample("column_log_scale", prior["column_log_scale"])
        present = specimen.present.astype(u.dtype)
        u = u - jnp.sum(u * present) / jnp.maximum(jnp.sum(present), 1.0)
        moved = eqx.tree_at(lambda s: s.counts, moved, moved.counts * jnp.exp(u))
    if "shift_A" in infer:
        shift = numpyro.sample("shift_A", prior["shift_A"])
        xy = moved.positions.at[:, :2].add(shift)
        moved = eqx.tree_at(lambda s: s.positions, moved, xy)
    new_probe = probe.with_aberrations(defocus=defocus, Cs=cs_um * _ANGSTROM_PER_UM)
    model = eqx.tree_at(lambda m: m.probe, forward, new_probe)
    rate = dose * electrons * model.render(moved, grid) + background
    numpyro.sample("counts", dist.Poisson(rate).to_event(2), obs=counts)


def _check(counts, *, grid, electrons, infer=DEFAULT_INFER, background=0.01, **_) -> None:
    """Validate the observed counts and :func:`image_model`'s keyword arguments."""
    unknown = [name for name in infer if name not in LATENTS]
    if unknown or not infer:
        raise ValueError(f"infer must name one or more of {LATENTS}; got {tuple(infer)}")
    check_positive("electrons", electrons)
    check_positive("background", background)
    if counts is not None:
        check_nonnegative("counts", counts)
        if tuple(jnp.shape(counts)) != tuple(grid.shape):
            raise ValueError(f"counts must have the grid's shape {tuple(grid.shape)}; got "
                             f"{tuple(jnp.shape(counts))}")  # fmt: skip


def sample_posterior(
    key: PRNGKeyArray,
    counts: Float[ArrayLike, "h w"],
    *,
    num_warmup: int = 300,
    num_samples: int = 300,
    num_chains: int = 1,
    dense_mass: bool = True,
    **model_kwargs,
) -> dict[str, Array]:
    """Posterior draws of the inferred latents of :func:`image_model` by NUTS.

    Args:
        key: PRNG key.
        counts: (h, w) observed counts.
        num_warmup, num_samples, num_chains: NUTS settings (chains run one after another).
        dense_mass: adapt a full mass matrix (defocus and Cs are strongly correlated), or a
            diagonal one (for many latents).
        model_kwargs: keyword arguments of :func:`image_model` (``forward``, ``specimen``,
            ``grid``, ``electrons``, ``infer``, ``priors``, ``background``).

    Returns:
        {site: (num_chains · num_samples, ...) draws} for the inferred latents.
    """
    _check(counts, **model_kwargs)
    check_int_at_least("num_samples", num_samples, 1)
    mcmc = MCMC(
        NUTS(image_model, init_strategy=init_to_median(num_samples=15), dense_mass=dense_mass),
        num_warmup=check_int_at_least("num_warmup", num_warmup, 1),
        num_samples=num_samples,
        num_chains=check_int_at_least("num_chains", num_chains, 1),
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(key, jnp.asarray(counts), **model_kwargs)
    samples = mcmc.get_samples()
    return {name: value for name, value in samples.items() if name in LATENTS}


def fit_svi(
    key: PRNGKeyArray,
    counts: Float[ArrayLike, "h w"],
    *,
    guide: str = "normal",
    steps: int = 1000,
    learning_rate: float = 0.02,
    num_samples: int = 500,
    **model_kwargs,
) -> tuple[dict[str, Array], Float[Array, " steps"]]:
    """Variational posterior of the inferred latents of :func:`image_model`.

    Args:
        key: PRNG key.
        counts: (h, w) observed counts.
        guide: ``"normal"`` (AutoNormal, mean field) or ``"lowrank"``
            (AutoLowRankMultivariateNormal, correlated).
        steps: Adam steps (optax) on the ELBO.
        learning_rate: Adam step size.
        num_samples: draws from the fitted guide.
        model_kwargs: as in :func:`sample_posterior`.

    Returns:
        ({site: (num_samples, ...) draws}, (steps,) loss = −ELBO per step).
    """
    _check(counts, **model_kwargs)
    guides = {"normal": AutoNormal, "lowrank": AutoLowRankMultivariateNormal}
    if guide not in guides:
        raise ValueError(f"guide must be one of {tuple(guides)}; got {guide!r}")
    check_positive("learning_rate", learning_rate)
    auto = guides[guide](image_model, init_loc_fn=init_to_median(num_samples=15))
    optimiser = numpyro.optim.optax_to_numpyro(optax.adam(learning_rate))
    svi = SVI(image_model, auto, optimiser, Trace_ELBO())
    key_fit, key_draw = jax.random.split(key)
    result = svi.run(key_fit, check_int_at_least("steps", steps, 1), jnp.asarray(counts),
                     progress_bar=False, **model_kwargs)  # fmt: skip
    shape = (check_int_at_least("num_samples", num_samples, 1),)
    draws = auto.sample_posterior(key_draw, result.params, sample_shape=shape)
    return {name: value for name, value in draws.items() if name in LATENTS}, result.losses


def summarise(samples: dict[str, ArrayLike], probability: float = 0.95) -> dict[str, dict]:
    """Mean, standard deviation and central ``probability`` interval of each site's draws.

    Returns:
        {site: {"mean", "sd", "low", "high"}}, arrays shaped like one draw.
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must lie in (0, 1); got {probability}")
    tail = 0.5 * (1.0 - probability)
    out = {}
    for name, draws in samples.items():
        draws = jnp.asarray(draws)
        low, high = jnp.quantile(draws, jnp.array([tail, 1.0 - tail]), axis=0)
        out[name] = {"mean": draws.mean(0), "sd": draws.std(0), "low": low, "high": high}
    return out
