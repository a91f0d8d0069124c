"""Policies: a surrogate (exact GP or deep-kernel GP) and an acquisition function.

A policy decides where a campaign measures next: it refits its surrogate to the campaign's
data, predicts every candidate of the world and takes the argmax of its acquisition over the
candidates not yet measured. The acquisition may be any ``acq(posterior, context) -> (m,)``
function (:mod:`stemjax.acquisition`), built-in or written by the user.

Named policies (paper 003's three, plus two baselines):

=============  ============================================================================
``ei``         expected improvement of the target (maximised)
``mu``         maximum uncertainty, the posterior standard deviation (paper 003's "MU")
``beacon``     BEACON-DKL: a joint Thompson sample scored by its mean distance to the k = 10
               nearest elite outcomes (top 20 %, z-scored; paper 003 eq. 2)
``thompson``   the argmax of a joint posterior function sample
``random``     uniform random choice among the unmeasured candidates
=============  ============================================================================
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from stemjax import acquisition as acq
from stemjax._validation import check_int_at_least, check_positive
from stemjax.models import GPData, GPParams, init_dkl, init_params
from stemjax.models.fit import adam
from stemjax.posterior import Posterior

SURROGATE_MODELS = ("gp", "dkl")


class Surrogate(eqx.Module):
    """How a campaign models its data (all fields static).

    Attributes:
        model: ``"gp"`` (exact GP on the flattened inputs) or ``"dkl"`` (deep kernel: the
            papers' CNN for patches, an MLP for vectors, with a 2-D latent).
        kernel: base kernel family (see :data:`stemjax.models.KINDS`).
        ard: one lengthscale per input feature (sensible for low-dimensional inputs only).
        fit_steps: Adam steps of the first fit, on the seed points.
        refit_steps: Adam steps of the warm-started refit after each measurement.
        learning_rate: Adam step size.
        joint_samples: number of joint posterior function samples drawn each step (pathwise,
            random Fourier features) and handed to the acquisition as ``posterior.samples``;
            0 for none.
        num_features: random Fourier features per joint sample.
        principal_components: when > 0, the surrogate sees the world's inputs (flattened)
            projected on their first ``principal_components`` principal axes, computed once per
            world from all candidates (no targets involved); 0 for the raw inputs. On the PFM
            patches 16 components hold 95 % of the variance, and an exact GP on them is both
            faster and more accurate than on the 256 raw pixels.
    """

    model: str = eqx.field(static=True, default="gp")
    kernel: str = eqx.field(static=True, default="rbf")
    ard: bool = eqx.field(static=True, default=False)
    fit_steps: int = eqx.field(static=True, default=100)
    refit_steps: int = eqx.field(static=True, default=10)
    learning_rate: float = eqx.field(static=True, default=0.05)
    joint_samples: int = eqx.field(static=True, default=0)
    num_features: int = eqx.field(static=True, default=256)
    principal_components: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if self.model not in SURROGATE_MODELS:
            raise ValueError(f"model must be one of {SURROGATE_MODELS}; got {self.model!r}")
        check_int_at_least("fit_steps", self.fit_steps, 1)
        check_int_at_least("refit_steps", self.refit_steps, 1)
        check_positive("learning_rate", self.learning_rate)
        check_int_at_least("joint_samples", self.joint_samples, 0)
        check_int_at_least("num_features", self.num_features, 1)
        check_int_at_least("principal_components", self.principal_components, 0)

    @property
    def optimizer(self) -> optax.GradientTransformation:
        """Adam at ``learning_rate`` (one object per rate, so compilations are shared)."""
        return adam(float(self.learning_rate))

    def inputs(self, world_inputs: Float[Array, "N *d"]) -> Float[Array, "N *q"]:
        """The surrogate's view of the candidates: the inputs or their principal components."""
        k = self.principal_components
        if not k:
            return world_inputs
        x = world_inputs.reshape(world_inputs.shape[0], -1)
        if k > min(x.shape):
            raise ValueError(
                f"principal_components must be at most {min(x.shape)} for inputs of shape "
                f"{world_inputs.shape}; got {k}"
            )
        x = x - jnp.mean(x, axis=0)
        _, _, vt = jnp.linalg.svd(x, full_matrices=False)
        return x @ vt[:k].T

    def init(self, key: PRNGKeyArray, data: GPData) -> GPParams:
        """Starting parameters for one campaign's (seed) data."""
        if self.model == "dkl":
            return init_dkl(key, data, self.kernel, ard=self.ard)
        return init_params(data, self.kernel, ard=self.ard)


def random_scores(posterior: Posterior, context: acq.Context) -> Float[Array, " m"]:
    """Uniform random scores from ``context.key``: the random policy's acquisition."""
    key = acq.context.require(context, "key", "random_scores")
    return jax.random.uniform(key, jnp.shape(posterior.mean))


class Policy(eqx.Module):
    """A named decision rule: surrogate + acquisition.

    Attributes:
        name: label used in results (static).
        acquisition: ``acq(posterior, context) -> (m,)`` scores, larger is better.
        surrogate: the :class:`Surrogate` settings.
    """

    name: str = eqx.field(static=True)
    acquisition: Callable
    surrogate: Surrogate = Surrogate()


def _named(name: str) -> tuple[Callable, int]:
    """Acquisition and number of joint samples of a named policy."""
    table = {
        "ei": (acq.ei(), 0),
        "mu": (acq.max_uncertainty(), 0),
        "beacon": (acq.beacon_elite(), 1),
        "thompson": (acq.thompson(), 1),
        "random": (random_scores, 0),
    }
    if name not in table:
        raise ValueError(f"policy must be one of {sorted(table)}; got {name!r}")
    return table[name]


POLICY_NAMES = ("ei", "mu", "beacon", "thompson", "random")
"""Names :func:`make_policy` accepts."""


def make_policy(name: str, surrogate: Surrogate | None = None) -> Policy:
    """The named policy (see the module table) with ``surrogate`` (default :class:`Surrogate`).

    Policies that need a joint function sample (``beacon``, ``thompson``) get one per step.
    """
    acquisition, samples = _named(name)
    surrogate = surrogate or Surrogate()
    if samples and surrogate.joint_samples < samples:
        surrogate = dataclasses.replace(surrogate, joint_samples=samples)
    return Policy(name, acquisition, surrogate)
