"""Time acquisition scoring for 4096 campaigns × 4096 candidates, against BoTorch's analytic ones.

Every stemjax acquisition is scored for all campaigns at once under ``jit(vmap(acq))`` (BEACON
under ``jit(lax.map(vmap(acq), batch_size))``, whose (campaigns, candidates, archive) distance
tensor would not fit in memory in one piece). BoTorch's analytic acquisitions (EI, LogEI, PI,
LogPI, UCB, posterior mean and standard deviation) score the same float32 means, variances and
incumbents through a mock model that returns them as its posterior, with the batch shape
(campaigns, candidates), under ``torch.no_grad()``. Both run in the same process on the same
CPU threads; each time is the best of ``--repeats`` calls after a warm-up call. The largest
difference between the two libraries' scores is reported as a check that they computed the
same thing.

Writes ``benchmarks/results/acquisition.json`` and ``acquisition.md``. Needs the bench extra
(torch, botorch):

    /tmp/benchvenv/bin/python benchmarks/acquisition.py [--campaigns 4096] [--candidates 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from stemjax.acquisition import (
    Context,
    MotionCost,
    beacon,
    beacon_elite,
    chain,
    cost_weighting,
    ei,
    log_ei,
    log_pi,
    max_uncertainty,
    pi,
    posterior_mean,
    recency_penalty,
    thompson,
    ucb,
)
from stemjax.posterior import Posterior

RESULTS = Path(__file__).parent / "results"
NOTES = {
    "posterior mean": "BoTorch returns a view of the mock posterior's mean (no arithmetic); "
                      "stemjax writes a new (campaigns, candidates) array",
    "Thompson (marginal draw)": "one N(μ, σ²) draw per candidate (threefry RNG)",
    "EI": "stemjax evaluates the cancellation-free σ·exp(log h(z)); BoTorch's legacy EI the "
          "direct φ(z) + zΦ(z)",
}
BETA = 2.0
ARCHIVE = 32  # BEACON archive capacity per campaign (24 valid entries)
BEACON_BATCH = 256  # campaigns per lax.map step for BEACON


def make_inputs(campaigns: int, candidates: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return {
        "mean": rng.normal(size=(campaigns, candidates)).astype(f32),
        "variance": rng.uniform(0.01, 2.0, (campaigns, candidates)).astype(f32),
        "best": rng.normal(0.5, 0.5, campaigns).astype(f32),
        "positions": rng.uniform(0.0, 300.0, (campaigns, candidates, 2)).astype(f32),
        "position": rng.uniform(0.0, 300.0, (campaigns, 2)).astype(f32),
        "visited": rng.uniform(0.0, 300.0, (campaigns, 8, 2)).astype(f32),
        "outcomes": rng.normal(size=(campaigns, ARCHIVE)).astype(f32),
        "outcome_mask": np.arange(ARCHIVE)[None, :].repeat(campaigns, 0) < 24,
    }


def best_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # compile and warm up
    _block(out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        _block(out)
        times.append(time.perf_counter() - start)
    return min(times), out


def _block(out) -> None:
    if hasattr(out, "block_until_ready"):
        out.block_until_ready()


def stemjax_functions(inputs: dict) -> dict:
    """name -> (acquisition, posterior, context, use lax.map)."""
    post = Posterior(jnp.asarray(inputs["mean"]), jnp.asarray(inputs["variance"]))
    keys = jax.random.split(jax.random.key(0), inputs["mean"].shape[0])
    best = Context(best=jnp.asarray(inputs["best"]))
    motion = Context(best=best.best, positions=jnp.asarray(inputs["positions"]),
                     position=jnp.asarray(inputs["position"]),
                     visited=jnp.asarray(inputs["visited"]))
    archive = Context(key=keys, outcomes=jnp.asarray(inputs["outcomes"]),
                      outcome_mask=jnp.asarray(inputs["outcome_mask"]))
    return {
        "EI": (ei(), post, best, False),
        "LogEI": (log_ei(), post, best, False),
        "PI": (pi(), post, best, False),
        "LogPI": (log_pi(), post, best, False),
        f"UCB (β = {BETA:g})": (ucb(BETA), post, best, False),
        "posterior mean": (posterior_mean(), post, best, False),
        "max-uncertainty (σ)": (max_uncertainty(), post, best, False),
        "Thompson (marginal draw)": (thompson(), post, Context(key=keys), False),
        "EI / motion cost (eq. 4)": (chain(ei(), cost_weighting(cost=MotionCost())), post,
                                     motion, False),
        "LogEI − log motion cost, recency penalty": (
            chain(log_ei(), cost_weighting(cost=MotionCost()), recency_penalty(5.0)), post,
            motion, False),
        f"BEACON (k = 10, archive {ARCHIVE})": (beacon(), post, archive, True),
        f"BEACON elite (k = 10, archive {ARCHIVE})": (beacon_elite(), post, archive, True),
    }


def stemjax_scorer(acq, post, ctx, use_map: bool):
    if use_map:
        fn = jax.jit(lambda p, c: jax.lax.map(lambda pc: acq(*pc), (p, c),
                                              batch_size=BEACON_BATCH))
    else:
        fn = jax.jit(jax.vmap(acq))
    return lambda: fn(post, ctx)


def botorch_functions(inputs: dict):
    import torch
    from botorch.acquisition.analytic import (
        ExpectedImprovement,
        LogExpectedImprovement,
        LogProbabilityOfImprovement,
        PosteriorMean,
        PosteriorStandardDeviation,
        ProbabilityOfImprovement,
        UpperConfidenceBound,
    )
    from botorch.utils.testing import MockModel, MockPosterior

    mean = torch.from_numpy(inputs["mean"])[..., None, None]
    variance = torch.from_numpy(inputs["variance"])[..., None, None]
    best = torch.from_numpy(inputs["best"])[:, None, None]
    model = MockModel(MockPosterior(mean=mean, variance=variance))
    x = torch.zeros(*inputs["mean"].shape, 1, 1)
    acqs = {
        "EI": ExpectedImprovement(model, best_f=best),
        "LogEI": LogExpectedImprovement(model, best_f=best),
        "PI": ProbabilityOfImprovement(model, best_f=best),
        "LogPI": LogProbabilityOfImprovement(model, best_f=best),
        f"UCB (β = {BETA:g})": UpperConfidenceBound(model, beta=BETA),
        "posterior mean": PosteriorMean(model),
        "max-uncertainty (σ)": PosteriorStandardDeviation(model),
    }

    def scorer(acq):
        def run():
            with torch.no_grad():
                return acq(x)
        return run

    return {name: scorer(acq) for name, acq in acqs.items()}, torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=4096)
    parser.add_argument("--candidates", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-botorch", action="store_true")
    args = parser.parse_args()

    load_start = os.getloadavg()
    inputs = make_inputs(args.campaigns, args.candidates)
    torch_fns, torch = ({}, None) if args.no_botorch else botorch_functions(inputs)
    rows = []
    for name, (acq, post, ctx, use_map) in stemjax_functions(inputs).items():
        t_jax, out = best_time(stemjax_scorer(acq, post, ctx, use_map), args.repeats)
        assert out.shape == (args.campaigns, args.candidates), out.shape
        row = {"function": name, "stemjax_s": t_jax, "botorch_s": None, "ratio": None,
               "max_rel_diff": None, "note": NOTES.get(name, "")}
        if name in torch_fns:
            t_torch, ref = best_time(torch_fns[name], args.repeats)
            ours, theirs = np.asarray(out, np.float64), ref.numpy().astype(np.float64)
            diff = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1.0)
            row.update(botorch_s=t_torch, ratio=t_torch / t_jax, max_rel_diff=float(diff.max()))
        rows.append(row)
        theirs_ms = "—" if row["botorch_s"] is None else f"{row['botorch_s'] * 1e3:9.1f} ms"
        print(f"{name:45s} stemjax {t_jax * 1e3:9.1f} ms   BoTorch {theirs_ms}", flush=True)

    meta = {
        "campaigns": args.campaigns,
        "candidates": args.candidates,
        "scores_per_call": args.campaigns * args.candidates,
        "dtype": "float32 (both libraries)",
        "timing": f"best of {args.repeats} calls after one warm-up (compile) call; "
                  "results blocked until ready",
        "stemjax_driver": "jax.jit(jax.vmap(acq)); BEACON: jax.jit(lax.map(vmap(acq)), "
                          f"batch_size={BEACON_BATCH})",
        "botorch_driver": "analytic acquisition on a MockModel posterior of batch shape "
                          "(campaigns, candidates), torch.no_grad()",
        "device": str(jax.devices()[0]),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "botorch": None,
        "max_rel_diff": "largest |stemjax − BoTorch| / max(|BoTorch|, 1) over all scores",
        "load_average_start": None,
        "load_average_end": None,
        "ratio": "BoTorch time / stemjax time (> 1: stemjax faster)",
    }
    meta["load_average_start"] = [round(x, 2) for x in load_start]
    meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if torch is not None:
        import botorch

        meta["botorch"] = botorch.__version__
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "acquisition.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                         indent=1) + "\n")
    lines = [f"# Acquisition scoring: {args.campaigns} campaigns × {args.candidates} candidates",
             ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "| function | stemjax (ms) | BoTorch (ms) | ratio | max rel diff | note |",
              "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        bt = "—" if r["botorch_s"] is None else f"{r['botorch_s'] * 1e3:.1f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        diff = "—" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        lines.append(f"| {r['function']} | {r['stemjax_s'] * 1e3:.1f} | {bt} | {ratio} | {diff} "
                     f"| {r['note']} |")
    (RESULTS / "acquisition.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'acquisition.json'} and acquisition.md")


if __name__ == "__main__":
    main()
