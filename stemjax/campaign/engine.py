"""The autonomous loop of one campaign, as pure functions: state, step, run, run many.

A campaign starts from the world's seed points (or ``seeds`` given), fits its surrogate, then
repeats for a fixed budget of steps:

1. predict every candidate with the current surrogate (and draw joint samples if the policy
   asks for them) and record the step's metrics;
2. score the candidates with the policy's acquisition and measure the best one not yet
   measured (the world reveals its target);
3. append the observation to the fixed-capacity data buffer and refit the surrogate, warm
   started from the previous fit.

``run`` is a ``lax.scan`` over the steps; ``run_many`` is ``vmap`` over campaigns. Metrics of
step t (paper 003, supplements S1 and S2) describe the surrogate that chose the t-th point
(fitted to the seeds and the t points before it) and the coverage after measuring it:

- ``mae``: mean |μ(x) − y(x)| over all candidates of the world (S1 a);
- ``mean``: mean posterior mean over the candidates (S1 b);
- ``uncertainty``: mean posterior variance over the candidates (S1 c);
- ``coverage_target``, ``coverage_patch``, ``coverage_feature``: fractions of the target bins,
  patch clusters and VAE-latent clusters holding at least one measured point (S2), seeds
  included;
- ``index``, ``target``, ``cost_s``: the candidate measured, its target and the cumulative
  measurement cost in seconds.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from stemjax import metrics
from stemjax._validation import check_int_at_least
from stemjax.acquisition import Context
from stemjax.campaign.policy import Policy
from stemjax.models import GPData, GPParams, fit
from stemjax.models.gp import _condition
from stemjax.models.thompson import _pathwise
from stemjax.posterior import Posterior
from stemjax.worlds import World

METRICS = (
    "index", "target", "cost_s", "mae", "mean", "uncertainty",
    "coverage_target", "coverage_patch", "coverage_feature",
)  # fmt: skip
"""Names of the per-step records of :func:`run` (arrays of shape (steps,))."""


class MetricLabels(eqx.Module):
    """Per-candidate labels for the coverage metrics of one world.

    Attributes:
        target: (N,) bin of each ground-truth target (B equal-width bins).
        patch: (N,) k-means cluster of each z-scored, randomly projected patch.
        feature: (N,) k-means cluster of each patch's 2-D VAE latent mean.
        n_bins, n_clusters: B and K (static).
    """

    target: Int[Array, " N"]
    patch: Int[Array, " N"]
    feature: Int[Array, " N"]
    n_bins: int = eqx.field(static=True)
    n_clusters: int = eqx.field(static=True)


def metric_labels(
    key: PRNGKeyArray, world: World, *, n_bins: int = 20, n_clusters: int = 20,
    feature_space: bool = True,
) -> MetricLabels:  # fmt: skip
    """Coverage labels of a world (paper 003, S2). With ``feature_space=False`` the VAE is not
    trained and the feature labels equal the patch labels (for quick runs)."""
    check_int_at_least("n_bins", n_bins, 1)
    check_int_at_least("n_clusters", n_clusters, 1)
    k_patch, k_feature = jax.random.split(key)
    patch = metrics.patch_space_labels(k_patch, world.inputs, n_clusters)
    if feature_space and world.inputs.ndim == 3:
        feature = metrics.feature_space_labels(k_feature, world.inputs, n_clusters)
    else:
        feature = patch
    target = metrics.target_space_labels(world.targets, n_bins)
    return MetricLabels(target, patch, feature, n_bins, n_clusters)


class CampaignState(eqx.Module):
    """Everything one campaign carries from step to step (fixed shapes).

    Attributes:
        key: PRNG key of the next step.
        data: the observations, capacity = seeds + budget.
        order: (capacity,) candidate index of each observation in acquisition order, −1 free.
        visited: (N,) True for measured candidates.
        params: the surrogate's current parameters.
        opt_state: its optimiser state (warm starts).
        cost_s: () cumulative measurement cost, seconds.
        step: () number of steps taken.
    """

    key: PRNGKeyArray
    data: GPData
    order: Int[Array, " capacity"]
    visited: Bool[Array, " N"]
    params: GPParams
    opt_state: optax.OptState
    cost_s: Float[Array, ""]
    step: Int[Array, ""]


def init_state(
    key: PRNGKeyArray, world: World, policy: Policy, budget: int,
    seeds: Int[Array, " s"] | None = None, inputs: Array | None = None,
) -> CampaignState:  # fmt: skip
    """Measure the seeds and fit the surrogate to them (``policy.surrogate.fit_steps``).

    Args:
        key: the campaign's PRNG key.
        world: the candidates and their hidden targets.
        policy: the decision rule.
        budget: number of steps to come (sets the buffer capacity; static).
        seeds: (s,) candidate indices to start from (default ``world.seeds``).
        inputs: the surrogate's view of the candidates, ``policy.surrogate.inputs(world.inputs)``
            (computed when None).
    """
    inputs = policy.surrogate.inputs(world.inputs) if inputs is None else inputs
    seeds = world.seeds if seeds is None else jnp.asarray(seeds)
    n, s = world.targets.shape[0], seeds.shape[0]
    capacity = s + budget
    k_init, k_next = jax.random.split(key)
    slots = jnp.arange(capacity)
    order = jnp.full((capacity,), -1, jnp.int32).at[:s].set(seeds.astype(jnp.int32))
    safe = jnp.maximum(order, 0)
    data = GPData(inputs[safe], world.targets[safe], slots < s)
    surrogate = policy.surrogate
    params = surrogate.init(k_init, data)
    optimizer = surrogate.optimizer
    opt_state = optimizer.init(eqx.filter(params, eqx.is_inexact_array))
    result = fit(params, data, steps=surrogate.fit_steps, optimizer=optimizer, opt_state=opt_state)
    visited = jnp.zeros((n,), bool).at[seeds].set(True)
    cost = jnp.sum(world.costs[seeds])
    return CampaignState(
        k_next, data, order, visited, result.params, result.opt_state, cost, jnp.zeros((), int)
    )


def _posterior(key, policy: Policy, state: CampaignState, inputs: Array) -> Posterior:
    conditioned = _condition(state.params, state.data)
    post = conditioned.predict(inputs)
    n_samples = policy.surrogate.joint_samples
    if n_samples:
        sample = _pathwise(key, conditioned, state.data.y, n_samples, policy.surrogate.num_features)
        post = Posterior(post.mean, post.variance, sample(inputs))
    return post


def step(
    state: CampaignState, world: World, policy: Policy, labels: MetricLabels,
    inputs: Array | None = None,
) -> tuple[CampaignState, dict[str, Array]]:  # fmt: skip
    """One decision: predict, score, measure, refit. Returns the new state and its records.

    ``inputs``: the surrogate's view of the candidates (computed when None; :func:`run`
    computes it once for all steps).
    """
    inputs = policy.surrogate.inputs(world.inputs) if inputs is None else inputs
    key, k_sample, k_acq = jax.random.split(state.key, 3)
    post = _posterior(k_sample, policy, state, inputs)
    data = state.data
    best = jnp.max(jnp.where(data.mask, data.y, -jnp.inf))
    context = Context(
        best=best, key=k_acq, positions=world.positions, costs=world.costs,
        outcomes=data.y, outcome_mask=data.mask,
    )  # fmt: skip
    scores = policy.acquisition(post, context)
    # measured candidates are never chosen again; a NaN score counts as the worst
    scores = jnp.where(state.visited | jnp.isnan(scores), -jnp.inf, scores)
    index = jnp.argmax(scores).astype(jnp.int32)
    slot = jnp.argmin(data.mask)
    target = world.targets[index]
    data = eqx.tree_at(
        lambda d: (d.x, d.y, d.mask), data,
        (data.x.at[slot].set(inputs[index]), data.y.at[slot].set(target),
         data.mask.at[slot].set(True)),
    )  # fmt: skip
    visited = state.visited.at[index].set(True)
    cost = state.cost_s + world.costs[index]
    surrogate = policy.surrogate
    refit = fit(state.params, data, steps=surrogate.refit_steps, optimizer=surrogate.optimizer,
                opt_state=state.opt_state)  # fmt: skip
    records = {
        "index": index,
        "target": target,
        "cost_s": cost,
        "mae": jnp.mean(jnp.abs(post.mean - world.targets)),
        "mean": jnp.mean(post.mean),
        "uncertainty": jnp.mean(post.variance),
        "coverage_target": metrics.label_coverage(labels.target, visited, labels.n_bins),
        "coverage_patch": metrics.label_coverage(labels.patch, visited, labels.n_clusters),
        "coverage_feature": metrics.label_coverage(labels.feature, visited, labels.n_clusters),
    }
    new = CampaignState(
        key, data, state.order.at[slot].set(index), visited, refit.params, refit.opt_state,
        cost, state.step + 1,
    )  # fmt: skip
    return new, records


def _check_budget(n: int, s: int, budget: int) -> None:
    if s + budget > n:
        raise ValueError(
            f"budget must be at most {n - s} (the world's {n} candidates minus {s} seeds); "
            f"got {budget}"
        )


def run(
    key: PRNGKeyArray, world: World, policy: Policy, labels: MetricLabels, budget: int,
    seeds: Int[Array, " s"] | None = None,
) -> tuple[CampaignState, dict[str, Array]]:  # fmt: skip
    """One whole campaign: seeds, then ``budget`` steps under ``lax.scan``.

    Returns the final state and the records, a dict of (budget,) arrays (see :data:`METRICS`).
    Pure: ``jax.vmap`` over keys (and worlds, labels or seeds) runs many campaigns.
    """
    budget = check_int_at_least("budget", budget, 1)
    _check_budget(world.targets.shape[0], world.seeds.shape[0] if seeds is None
                  else jnp.shape(seeds)[0], budget)  # fmt: skip
    return _run(key, world, policy, labels, budget, seeds)


@eqx.filter_jit
def _run(key, world, policy, labels, budget, seeds):
    inputs = policy.surrogate.inputs(world.inputs)
    state = init_state(key, world, policy, budget, seeds, inputs)
    return jax.lax.scan(
        lambda st, _: step(st, world, policy, labels, inputs), state, None, length=budget
    )


def run_many(
    keys: PRNGKeyArray, world: World, policy: Policy, labels: MetricLabels, budget: int,
    seeds: Int[Array, "c s"] | None = None, *, batched_world: bool = False,
) -> tuple[CampaignState, dict[str, Array]]:  # fmt: skip
    """Campaigns in one vectorised call: one per key (C,).

    Args:
        keys: (C,) PRNG keys.
        world, labels: one shared world (default) or, with ``batched_world``, a stack of C
            worlds and their labels (leading axis C).
        policy: the decision rule, shared by all campaigns.
        budget: steps per campaign (static).
        seeds: optional (C, s) seed indices, one row per campaign.

    Returns:
        Final states and records with a leading campaign axis: records are (C, budget).
    """
    budget = check_int_at_least("budget", budget, 1)
    _check_budget(world.targets.shape[-1], world.seeds.shape[-1] if seeds is None
                  else jnp.shape(seeds)[-1], budget)  # fmt: skip
    return _run_many(keys, world, policy, labels, budget, seeds, batched_world)


@eqx.filter_jit
def _run_many(keys, world, policy, labels, budget, seeds, batched_world):
    axis = 0 if batched_world else None
    seed_axis = None if seeds is None else 0
    fn = eqx.filter_vmap(
        lambda k, w, lab, sd: _run(k, w, policy, lab, budget, sd),
        in_axes=(0, axis, axis, seed_axis),
    )
    return fn(keys, world, labels, seeds)


def random_seeds(key: PRNGKeyArray, n_candidates: int, n_seeds: int) -> Int[Array, " s"]:
    """``n_seeds`` distinct candidate indices drawn uniformly from the key."""
    return jax.random.choice(key, n_candidates, (n_seeds,), replace=False).astype(jnp.int32)
