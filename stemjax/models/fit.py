"""Fitting hyperparameters (and deep-kernel networks) by optax inside ``lax.scan``.

The loss is the negative log marginal likelihood per valid observation, −log p(y | X, θ)/n.
A fixed number of optimiser steps runs inside one ``lax.scan``, so a fit is a pure function that
``jit``, ``vmap`` (one fit per campaign) and an outer ``scan`` over campaign steps can hold.
Warm start: pass the previous fit's ``params`` (and, optionally, its ``opt_state``); after one new
observation a few steps usually suffice.

A step whose loss or gradient is not finite (e.g. a Cholesky that failed) is skipped: the
parameters and optimiser state stay as they were and the loss history records NaN there.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from stemjax._validation import check_int_at_least, check_positive
from stemjax.models.gp import GPData, GPParams, _check, _condition


class FitResult(NamedTuple):
    """Output of :func:`fit`.

    Attributes:
        params: the fitted :class:`~stemjax.models.gp.GPParams`.
        opt_state: the optimiser state after the last step (pass it back to continue).
        loss: (steps,) −log p(y | X, θ)/n before each step (NaN where a step was skipped).
    """

    params: GPParams
    opt_state: optax.OptState
    loss: Float[Array, " steps"]


@functools.lru_cache(maxsize=32)
def adam(learning_rate: float) -> optax.GradientTransformation:
    """``optax.adam(learning_rate)``, one object per rate (so compiled fits are reused)."""
    return optax.adam(learning_rate)


def loss(params: GPParams, data: GPData) -> Float[Array, ""]:
    """−log p(y | X, θ) divided by the number of valid observations."""
    n = jnp.maximum(jnp.sum(data.mask), 1).astype(params.mean.dtype)
    return -_condition(params, data).log_marginal_likelihood / n


def _trainable(params: GPParams):
    return eqx.partition(params, eqx.is_inexact_array)


@eqx.filter_jit
def _fit(params, data, steps, optimizer, opt_state):
    dynamic, static = _trainable(params)

    def value(d):
        return loss(eqx.combine(d, static), data)

    def step(carry, _):
        d, state = carry
        value_, grads = jax.value_and_grad(value)(d)
        updates, new_state = optimizer.update(grads, state, d)
        new_d = optax.apply_updates(d, updates)
        leaves = jax.tree_util.tree_leaves((value_, grads))
        ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
        keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        d = jax.tree.map(keep, new_d, d)
        state = jax.tree.map(keep, new_state, state)
        return (d, state), jnp.where(ok, value_, jnp.nan)

    (dynamic, opt_state), losses = jax.lax.scan(step, (dynamic, opt_state), None, length=steps)
    return FitResult(eqx.combine(dynamic, static), opt_state, losses)


def fit(
    params: GPParams,
    data: GPData,
    *,
    steps: int = 100,
    learning_rate: float = 0.05,
    optimizer: optax.GradientTransformation | None = None,
    opt_state: optax.OptState | None = None,
) -> FitResult:
    """Maximise the marginal likelihood of one campaign's data from ``params``.

    Args:
        params: starting point: :func:`~stemjax.models.gp.init_params` (or
            :func:`~stemjax.models.dkl.init_dkl`) for a first fit, the previous fit's params to
            warm-start a refit.
        data: one campaign's :class:`~stemjax.models.gp.GPData`.
        steps: number of optimiser steps (static), ≥ 1.
        learning_rate: Adam step size when ``optimizer`` is None.
        optimizer: any optax transformation (static: reuse one object to avoid recompiling).
        opt_state: the optimiser state to continue from (default: a fresh one).

    Returns:
        :class:`FitResult` (params, opt_state, loss history). For many campaigns:
        ``jax.vmap(lambda p, d: fit(p, d, steps=50))(params, data)`` on stacked pytrees.
    """
    _check(params, data)
    steps = check_int_at_least("steps", steps, 1)
    if optimizer is None:
        check_positive("learning_rate", learning_rate)
        optimizer = adam(float(learning_rate))
    if opt_state is None:  # made here, so fresh and continued fits share one compilation
        opt_state = optimizer.init(_trainable(params)[0])
    return _fit(params, data, steps, optimizer, opt_state)
