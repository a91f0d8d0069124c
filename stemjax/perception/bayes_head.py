"""A Bayesian last layer for a trained defect classifier, fitted by SVI in numpyro.

The network's last hidden layer φ(x, c) (:meth:`~stemjax.perception.classifier.DefectCNN.embed`)
is kept fixed and the final linear map gets a posterior instead of a point estimate:

    W_jk ~ N(0, σ_w²),  b_k ~ N(0, σ_b²),  y_i | x_i ~ Categorical(softmax(φ(x_i, c_i) W + b)),

fitted by stochastic variational inference with a mean-field Gaussian guide (numpyro's
``AutoNormal``, started at the trained weights; Adam, Trace_ELBO) on simulated patches. The predictive distribution averages
the softmax over S draws of (W, b) from the guide; the draws play the role the members play in
a deep ensemble, so the result is a :class:`~stemjax.perception.classifier.ClassPosterior`
like the ensemble's. The last-layer posterior captures the uncertainty of the final map given
the features (the "neural-linear" model: Snoek et al., ICML 2015; Riquelme et al., ICLR 2018),
not that of the feature network.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray
from numpyro.infer import SVI, Trace_ELBO, init_to_value
from numpyro.infer.autoguide import AutoNormal

from stemjax._validation import check_int_at_least, check_positive
from stemjax.perception.classifier import (
    ClassPosterior,
    DefectCNN,
    Ensemble,
    check_patch_inputs,
)
from stemjax.perception.patches import PatchBatch


class BayesianLastLayer(eqx.Module):
    """A feature network and a Gaussian posterior over its final linear map.

    Attributes:
        network: the (trained) network whose ``embed`` gives the features.
        loc: (hidden + 1, K) posterior means of W (rows 0…hidden−1) and b (last row).
        scale: (hidden + 1, K) posterior standard deviations.
    """

    network: DefectCNN
    loc: Float[Array, "H1 K"]
    scale: Float[Array, "H1 K"]

    @property
    def use_context(self) -> bool:
        return self.network.use_context


def _model(features, labels, n_classes, prior_w, prior_b):
    hidden = features.shape[1]
    w = numpyro.sample("W", dist.Normal(0.0, prior_w).expand([hidden, n_classes]).to_event(2))
    b = numpyro.sample("b", dist.Normal(0.0, prior_b).expand([n_classes]).to_event(1))
    with numpyro.plate("patches", features.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=features @ w + b), obs=labels)


def fit_last_layer(
    key: PRNGKeyArray,
    ensemble: Ensemble,
    batch: PatchBatch,
    member: int = 0,
    steps: int = 2000,
    learning_rate: float = 1e-2,
    prior_w: float = 1.0,
    prior_b: float = 5.0,
) -> BayesianLastLayer:
    """Fit a Bayesian last layer on member ``member`` of a trained ensemble by SVI.

    Args:
        key: PRNG key for SVI.
        ensemble: a trained ensemble (its temperature is not used).
        batch: labelled patches to fit on (held out from the network's training stream).
        member: which member's feature network to use.
        steps: SVI steps (full batch).
        learning_rate: Adam learning rate.
        prior_w, prior_b: prior standard deviations σ_w of W and σ_b of b.
    """
    check_int_at_least("steps", steps, 1)
    check_positive("learning_rate", learning_rate)
    check_positive("prior_w", prior_w)
    check_positive("prior_b", prior_b)
    if not 0 <= member < ensemble.size:
        raise ValueError(f"member must be in [0, {ensemble.size - 1}]; got {member}")
    network = jax.tree.map(lambda x: x[member], ensemble.members)
    images, context = check_patch_inputs(ensemble, batch.images, batch.context)
    features = eqx.filter_jit(DefectCNN.embed)(network, images, context)
    n_classes = network.head.biases[-1].shape[0]
    # start the guide at the trained point estimate of the last layer
    start = {"W": network.head.weights[-1], "b": network.head.biases[-1]}
    guide = AutoNormal(_model, init_loc_fn=init_to_value(values=start), init_scale=0.01)
    svi = SVI(_model, guide, optax.adam(learning_rate), Trace_ELBO())
    result = svi.run(key, steps, features, jnp.asarray(batch.labels), n_classes, prior_w,
                     prior_b, progress_bar=False)  # fmt: skip
    p = result.params
    loc = jnp.concatenate([p["W_auto_loc"], p["b_auto_loc"][None]])
    scale = jnp.concatenate([p["W_auto_scale"], p["b_auto_scale"][None]])
    return BayesianLastLayer(network, loc, scale)


def predict_last_layer(
    key: PRNGKeyArray,
    head: BayesianLastLayer,
    images: ArrayLike,
    context: ArrayLike,
    samples: int = 64,
) -> ClassPosterior:
    """Class posterior of (N, P, P) patches with (N, 8) contexts, averaging the softmax over
    ``samples`` draws of the last layer (inputs checked as in
    :func:`~stemjax.perception.classifier.predict`)."""
    check_int_at_least("samples", samples, 1)
    images, context = check_patch_inputs(head, images, context)
    return _predict(key, head, images, context, samples)


@eqx.filter_jit
def _predict(key, head: BayesianLastLayer, images, context, samples: int) -> ClassPosterior:
    features = head.network.embed(images, context)
    draws = head.loc + head.scale * jax.random.normal(key, (samples, *head.loc.shape),
                                                      head.loc.dtype)  # fmt: skip
    logits = features @ draws[:, :-1] + draws[:, -1:]
    member_probs = jax.nn.softmax(logits, -1)
    return ClassPosterior(member_probs.mean(0), member_probs)
