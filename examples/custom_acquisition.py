"""Write a new acquisition in a few lines, compose it with costs and run it over many campaigns.

The researcher's acquisition: the probability that a particle's response (say an EELS peak
shift, in eV) falls in a target band [0.8, 1.2], which favours particles likely to show the
behaviour of interest. It is a plain function of the posterior; ``chain`` then divides it by the
stage-motion cost of paper 004 (eq. 6) and discourages revisits, exactly as for the built-ins.

    python examples/custom_acquisition.py [--campaigns 64] [--candidates 256]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from stemjax.acquisition import Context, MotionCost, chain, cost_weighting, ei, recency_penalty
from stemjax.posterior import Posterior

BAND_EV = (0.8, 1.2)


def in_band(posterior: Posterior, context: Context) -> jax.Array:
    """P(low ≤ f ≤ high) under the Gaussian posterior: the researcher's new acquisition."""
    low, high = BAND_EV
    std = jnp.maximum(posterior.std, 1e-6)
    return ndtr((high - posterior.mean) / std) - ndtr((low - posterior.mean) / std)


# The custom score, per unit motion cost, with a penalty on recently visited particles.
policy = chain(in_band, cost_weighting(cost=MotionCost()), recency_penalty(length_scale_um=2.0))


def toy_campaigns(campaigns: int, n: int, seed: int = 0) -> tuple[Posterior, Context]:
    """Synthetic campaigns: n particles over 100 × 100 µm and a smooth posterior for each."""
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0.0, 100.0, (campaigns, n, 2)).astype(np.float32)
    mean = 1.0 + 0.6 * np.sin(positions[..., 0] / 15.0) + 0.1 * rng.normal(size=(campaigns, n))
    variance = rng.uniform(0.005, 0.2, (campaigns, n))
    # The beam sits on particle 0; particles 0-3 were the last ones measured.
    context = Context(best=np.full(campaigns, 1.3, np.float32), positions=positions,
                      position=positions[:, 0], visited=positions[:, :4])
    return Posterior(jnp.asarray(mean, jnp.float32), jnp.asarray(variance, jnp.float32)), context


def main(argv: list[str] | None = None) -> jax.Array:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=256)
    args = parser.parse_args(argv)

    posteriors, contexts = toy_campaigns(args.campaigns, args.candidates)

    @jax.jit
    def run(posteriors, contexts):
        scores = jax.vmap(policy)(posteriors, contexts)  # (campaigns, candidates)
        choice = jnp.argmax(scores, axis=-1)
        chosen = jax.vmap(lambda p, c: p[c])(contexts.positions, choice)
        distance = jnp.linalg.norm(chosen - contexts.position, axis=-1)
        band = jax.vmap(in_band)(posteriors, contexts)
        ei_choice = jnp.argmax(jax.vmap(ei())(posteriors, contexts), axis=-1)
        return scores, choice, distance, band, ei_choice

    scores, choice, distance, band, ei_choice = run(posteriors, contexts)
    in_reach = jnp.mean(distance <= MotionCost().beam_shift_range_um)
    print(f"scores: {scores.shape[0]} campaigns x {scores.shape[1]} candidates")
    print(f"chosen particles within beam-shift reach: {float(in_reach):.2f}")
    print(f"mean in-band probability of the choices: "
          f"{float(jnp.mean(jnp.take_along_axis(band, choice[:, None], 1))):.3f} "
          f"(all candidates: {float(jnp.mean(band)):.3f})")
    print(f"choices that EI would also make: {float(jnp.mean(ei_choice == choice)):.2f}")
    return scores


if __name__ == "__main__":
    main()
