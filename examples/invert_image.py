"""Infer defocus, Cs, dose and column brightness from one noisy HAADF image, with numpyro.

A 24 × 24 pixel HAADF image (0.25 Å pixels, 200 keV, 21 mrad, 68–200 mrad) of SrTiO3 [001],
5 cells thick, is simulated with the multislice-calibrated fast model at known "true" settings
(defocus 40 Å, Cs 10 µm, 0.8 of the nominal dose of 30 pA × 50 µs, the central Sr column 30 %
brighter than the others) and shot noise. NUTS and SVI then infer those settings from the
image alone, given the nominal specimen and dose and the priors: defocus Normal(20, 30) Å
truncated to ≥ 0 (HAADF cannot tell over- from underfocus by itself), Cs Normal(5, 10) µm,
dose scale LogNormal(0, 0.5), per-column log brightness Normal(0, 0.3). Defocus and Cs trade
off along a ridge (combinations that make similar probes); NUTS follows it, the low-rank SVI
guide only approximates it. Prints, per parameter, the true value and each posterior's mean
and 95 % interval, and whether the interval covers the truth.

    python examples/invert_image.py [--samples 300] [--seed 0] [--svi-steps 1500]
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from stemjax.physics import (
    IncoherentImaging,
    Probe,
    ScanGrid,
    electrons_per_position,
    fit_svi,
    image_model,
    perovskite,
    sample_posterior,
    summarise,
)

TRUE = {"defocus_A": 40.0, "Cs_um": 10.0, "dose_scale": 0.8}
BRIGHTER = (15, 1.3)  # site index (the Sr column at (3.9, 3.9) Å), true brightness factor
PRIORS = {"defocus_A": dist.TruncatedNormal(20.0, 30.0, low=0.0), "Cs_um": dist.Normal(5.0, 10.0)}


def problem(seed: int):
    """The nominal model and data: (counts, keyword arguments of image_model, true log scale)."""
    specimen = perovskite("SrTiO3", cells=(2, 2), thickness=20.0)
    nominal = IncoherentImaging(Probe(200.0, 21.0, aberrations={"defocus": 20.0, "Cs": 5e4}),
                                margin=4.0, calibration="multislice")  # fmt: skip
    grid = ScanGrid((24, 24), 0.25, origin=(0.9, 0.9))
    electrons = float(electrons_per_position(30.0, 50.0))  # 30 pA, 50 µs
    # the truth: another defocus and Cs, less dose, one brighter column
    index, factor = BRIGHTER
    log_scale = jnp.zeros(specimen.capacity).at[index].set(jnp.log(factor))
    log_scale = log_scale - log_scale.mean()
    brighter = eqx.tree_at(lambda s: s.counts, specimen, specimen.counts * jnp.exp(log_scale))
    truth = eqx.tree_at(
        lambda m: m.probe, nominal,
        nominal.probe.with_aberrations(defocus=TRUE["defocus_A"], Cs=TRUE["Cs_um"] * 1e4),
    )  # fmt: skip
    rate = TRUE["dose_scale"] * electrons * truth.render(brighter, grid) + 0.01
    counts = jax.random.poisson(jax.random.key(seed), rate).astype(jnp.float32)
    kwargs = dict(forward=nominal, specimen=specimen, grid=grid, electrons=electrons,
                  priors=PRIORS)  # fmt: skip
    return counts, kwargs, log_scale


def report(name: str, summary: dict, log_scale, seconds: float) -> list[str]:
    lines = [f"{name} ({seconds:.1f} s)"]
    for site, true in TRUE.items():
        s = summary[site]
        covered = float(s["low"]) <= true <= float(s["high"])
        lines.append(f"  {site:12s} true {true:7.3f}  mean {float(s['mean']):7.3f}  "
                     f"95% [{float(s['low']):7.3f}, {float(s['high']):7.3f}]  "
                     f"{'covered' if covered else 'MISSED'}")  # fmt: skip
    if "column_log_scale" in summary:
        s = summary["column_log_scale"]
        i = BRIGHTER[0]
        true, mean = float(jnp.exp(log_scale[i])), float(jnp.exp(s["mean"][i]))
        low, high = float(jnp.exp(s["low"][i])), float(jnp.exp(s["high"][i]))
        lines.append(f"  central Sr column ({i}) brightness: true {true:.3f}, mean {mean:.3f}, "
                     f"95% [{low:.3f}, {high:.3f}]")  # fmt: skip
    return lines


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--svi-steps", type=int, default=1500)
    args = parser.parse_args(argv)
    counts, kwargs, log_scale = problem(args.seed)
    infer = ("defocus_A", "Cs_um", "dose_scale", "column_log_scale")
    print(f"image {counts.shape}, {float(counts.sum()):.0f} counts; inferring {', '.join(infer)}")
    start = time.perf_counter()
    nuts = sample_posterior(jax.random.key(args.seed + 1), counts, num_warmup=args.samples,
                            num_samples=args.samples, infer=infer, **kwargs)  # fmt: skip
    nuts_s = time.perf_counter() - start
    start = time.perf_counter()
    svi, _ = fit_svi(jax.random.key(args.seed + 2), counts, guide="lowrank",
                     steps=args.svi_steps, infer=infer, **kwargs)  # fmt: skip
    svi_s = time.perf_counter() - start
    results = {"NUTS": summarise(nuts), "SVI (low-rank guide)": summarise(svi)}
    for name, seconds in zip(results, (nuts_s, svi_s)):
        print("\n".join(report(name, results[name], log_scale, seconds)))
    return results


if __name__ == "__main__":
    main()
