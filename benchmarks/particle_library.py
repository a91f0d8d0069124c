"""Random particle libraries (paper 004 §IV.3): region switching over many campaigns.

Every campaign draws its own library with R2's parameters (shared/reference/checks.md: a
300 × 300 µm accessible area at 0.02 particles µm⁻², radii 20 ± 10 nm, 30 × 30 µm fields of
view, stage 10 µm/s, retune 5 s, EDX 10 s per frame, EELS 1 s per particle, α = 1, 3 random
seeds) and runs the paper's policy, cost-weighted maximum uncertainty with region switching by
value (eqs. 4–17), under ``vmap`` of a ``lax.scan``. Reported, with 95 % bootstrap intervals
over campaigns:

1. paper protocol, 150 iterations in 3-D (one call of ``--large`` campaigns, timed; the
   compile is timed separately) and 300 in 4-D and 5-D: mean uncertainty and error against
   iteration, the fraction of each region's particles measured when the campaign leaves it
   (by order of visit), share of time per kind of action, share of region changes that go
   to a neighbouring field of view;
2. the same budget of time (``--budget`` s, 3-D) for region switching by value (``mu``, and
   ``ei``: cost-aware EI) and the two fixed rules (``every``: move after 10 measurements;
   ``exhaust``: move when the region is exhausted), on the same libraries: final error and
   uncertainty, paired Wilcoxon tests (Holm-corrected);
3. a sensitivity run: exact EDX compositions and a GP that knows only the EELS noise.

Writes ``benchmarks/results/particle_library.json``, ``particle_library.md`` and figures
under ``benchmarks/results/particle_library/``:

    python benchmarks/particle_library.py [--campaigns 256] [--large 1024] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stemjax import plots, stats  # noqa: E402
from stemjax.campaign import library_report as rep  # noqa: E402
from stemjax.campaign.library import simulate  # noqa: E402
from stemjax.campaign.library_policy import LibrarySurrogate, library_policy  # noqa: E402
from stemjax.worlds import ACTIONS, Instrument, LibraryConfig  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def ci(values) -> dict:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    mean, low, high = stats.bootstrap_mean_ci(v)
    return {"mean": float(mean), "low": float(low), "high": float(high), "n": int(v.size)}


def fmt(c: dict, digits: int = 3) -> str:
    return f"{c['mean']:.{digits}f} [{c['low']:.{digits}f}, {c['high']:.{digits}f}]"


def run(keys, q: int, policy, steps: int, budget: float = np.inf,
        instrument: Instrument = Instrument()):  # fmt: skip
    """(libraries, states, records as NumPy, seconds of the call, seconds of the compile)."""
    config = LibraryConfig(n_components=q)
    fn = jax.jit(lambda k: simulate(k, config, policy, instrument, steps, time_budget_s=budget))
    compile_start = time.perf_counter()
    compiled = fn.lower(keys).compile()
    begin = time.perf_counter()
    libs, state, records = compiled(keys)
    jax.block_until_ready(records)
    seconds = time.perf_counter() - begin
    print(f"  {q}-D {policy.name}: {keys.shape[0]} campaigns x {steps} steps in {seconds:.1f} s "
          f"(compile {begin - compile_start:.1f} s)", flush=True)  # fmt: skip
    return libs, state, {k: np.asarray(v) for k, v in records.items()}, seconds, begin - compile_start


def protocol_summary(records: dict, checkpoints) -> dict:
    steps = records["error"].shape[1]
    checkpoints = sorted({min(int(s), steps) for s in checkpoints})
    fractions = rep.visit_fractions(records)
    n_visits = min(fractions.shape[1], 20)
    return {
        "uncertainty": {int(s): ci(records["uncertainty"][:, s - 1]) for s in checkpoints},
        "error": {int(s): ci(records["error"][:, s - 1]) for s in checkpoints},
        "fraction_when_leaving_by_visit": [
            ci(fractions[:, v]) for v in range(n_visits)
            if np.sum(np.isfinite(fractions[:, v])) >= max(2, fractions.shape[0] // 2)
        ],  # fmt: skip
        "time_share": {k: ci(rep.time_shares(records)[:, i]) for i, k in enumerate(ACTIONS)},
        "neighbour_share": ci(rep.neighbour_share(records)),
        "regions_visited": ci(rep.regions_visited(records)[:, -1]),
        "elapsed_s": ci(records["elapsed_s"][:, -1]),
    }


def budget_comparison(keys, policies, budget: float, steps: int) -> dict:
    finals, rows = {}, {}
    for name in policies:
        _, _, rec, _, _ = run(keys, 3, library_policy(name), steps, budget)
        rows[name] = {
            "error": ci(rep.final(rec, "error")),
            "uncertainty": ci(rep.final(rec, "uncertainty")),
            "particles_measured": ci(rec["measured"].sum(1)),
            "regions_visited": ci(rep.regions_visited(rec)[:, -1]),
            "elapsed_s": ci(rep.final(rec, "elapsed_s")),
            "fraction_when_leaving": ci(rep._row_mean(rep.visit_fractions(rec))),
            "best_reading": ci(np.nanmax(rec["reading"], axis=1)),
            "stopped_by_budget": float(np.mean(rec["done"][:, -1])),
        }
        finals[name] = {"error": rep.final(rec, "error"),
                        "uncertainty": rep.final(rec, "uncertainty")}  # fmt: skip
    tests = {}
    for metric in ("error", "uncertainty"):
        tests[metric] = stats.compare_policies({p: finals[p][metric] for p in policies})
    return {"rows": rows, "tests": tests}


def figures(out: Path, results3, libs3, state3, per_dim: dict) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    names = []
    fig = rep.campaign_figure(libs3, results3, 0, seeds=state3.seeds, title="3-D, campaign 0")
    fig.savefig(out / "campaign_3d.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    names.append("campaign_3d.png")
    for q, (libs, state, rec) in per_dim.items():
        if q == 3:
            continue
        fig = rep.campaign_figure(libs, rec, 0, seeds=state.seeds, title=f"{q}-D, campaign 0")
        fig.savefig(out / f"campaign_{q}d.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        names.append(f"campaign_{q}d.png")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for q, (_, _, rec) in per_dim.items():
        rep.plot_visit_fractions(rep.visit_fractions(rec), ax=axes[0], label=f"{q}-D")
        for ax, metric, label in ((axes[1], "uncertainty", "mean uncertainty σ"),
                                  (axes[2], "error", "mean absolute error")):  # fmt: skip
            plots.plot_metric_curves({f"{q}-D": rec[metric]}, ylabel=label, ax=ax)
    for ax in axes[1:]:
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(out / "dimensions.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    names.append("dimensions.png")
    return names


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = ["# Random particle libraries (paper 004 §IV.3)", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "## Paper protocol (cost-weighted max-uncertainty, switching by value)", ""]
    for q, block in result["protocol"].items():
        ck = sorted(block["error"], key=int)
        lines += [f"### {q}-D ({block['campaigns']} campaigns, {block['steps']} iterations)", "",
                  "| iteration | mean uncertainty σ | mean absolute error |", "|---:|---|---|"]  # fmt: skip
        lines += [f"| {s} | {fmt(block['uncertainty'][s])} | {fmt(block['error'][s])} |" for s in ck]
        fr = block["fraction_when_leaving_by_visit"]
        lines += ["", "Fraction of a region's particles measured when the campaign leaves it, by "
                  "order of visit: " + ", ".join(f"{c['mean']:.2f}" for c in fr)
                  + (f" (first {fmt(fr[0], 2)}, last shown {fmt(fr[-1], 2)})" if fr else ""), ""]  # fmt: skip
        lines += ["Time share per action: " + ", ".join(
            f"{k} {fmt(v, 3)}" for k, v in block["time_share"].items()),
            f"Region changes to a neighbouring field of view: {fmt(block['neighbour_share'])}; "
            f"regions visited {fmt(block['regions_visited'], 1)}; "
            f"elapsed {fmt(block['elapsed_s'], 0)} s.", ""]  # fmt: skip
    big = result["large"]
    lines += ["## One call of many 3-D campaigns", "",
              f"{big['campaigns']} campaigns × {big['steps']} iterations in one vmapped call: "
              f"{big['seconds']:.1f} s ({big['campaign_steps_per_s']:.0f} campaign-steps/s); "
              f"compile {big['compile_s']:.1f} s (separate).", ""]  # fmt: skip
    comp = result["budget"]
    lines += [f"## Same time budget ({comp['budget_s']:g} s, 3-D, {comp['campaigns']} campaigns, "
              f"at most {comp['steps']} iterations)", "",
              "| policy | final error | final uncertainty σ | best EELS reading | particles "
              "measured | regions | fraction when leaving | stopped by budget |",
              "|---|---|---|---|---|---|---|---:|"]  # fmt: skip
    for name, row in comp["rows"].items():
        lines.append(f"| {name} | {fmt(row['error'])} | {fmt(row['uncertainty'])} | "
                     f"{fmt(row['best_reading'])} | "
                     f"{fmt(row['particles_measured'], 1)} | {fmt(row['regions_visited'], 1)} | "
                     f"{fmt(row['fraction_when_leaving'], 2)} | {row['stopped_by_budget']:.2f} |")  # fmt: skip
    lines += ["", "Paired Wilcoxon signed-rank tests (same libraries and readings; Holm over the "
              "pairs of each metric):", "", "| metric | A | B | median A − B | p (Holm) |",
              "|---|---|---|---:|---:|"]  # fmt: skip
    for metric, rows in comp["tests"].items():
        for r in rows:
            lines.append(f"| {metric} | {r['a']} | {r['b']} | {r['median_difference']:+.4f} | "
                         f"{r['p_holm']:.2g} |")  # fmt: skip
    sens = result["sensitivity"]
    last = max(sens["error"], key=int)
    lines += ["", f"## Sensitivity: exact EDX, GP noise = EELS noise only (3-D, "
              f"{sens['campaigns']} campaigns, {last} iterations)", "",
              "Fraction measured when leaving, by visit: "
              + ", ".join(f"{c['mean']:.2f}" for c in sens["fraction_when_leaving_by_visit"])
              + f"; final error {fmt(sens['error'][last])}, uncertainty "
              f"{fmt(sens['uncertainty'][last])}.", ""]  # fmt: skip
    lines += ["Figures: " + ", ".join(f"particle_library/{n}" for n in result["figures"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=256)
    parser.add_argument("--large", type=int, default=1024, help="3-D campaigns in one call")
    parser.add_argument("--budget", type=float, default=300.0, help="s, for the comparison")
    parser.add_argument("--budget-steps", type=int, default=200)
    parser.add_argument("--policies", nargs="+", default=["mu", "ei", "every", "exhaust"])
    parser.add_argument("--quick", action="store_true", help="16 campaigns, short runs")
    args = parser.parse_args()
    c, large = (16, 32) if args.quick else (args.campaigns, args.large)
    steps = {3: 150, 4: 300, 5: 300} if not args.quick else {3: 30, 4: 30, 5: 30}
    load_start = os.getloadavg()
    started = time.perf_counter()
    mu = library_policy("mu")

    print("paper protocol", flush=True)
    keys_large = jax.random.split(jax.random.key(3), large)
    libs3, state3, rec3, sec3, comp3 = run(keys_large, 3, mu, steps[3])
    per_dim = {3: (libs3, state3, rec3)}
    protocol = {3: protocol_summary(rec3, (1, 25, 50, 100, steps[3]))}
    protocol[3].update(campaigns=large, steps=steps[3])
    for q in (4, 5):
        keys = jax.random.split(jax.random.key(q), c)
        libs, state, rec, _, _ = run(keys, q, mu, steps[q])
        per_dim[q] = (libs, state, rec)
        protocol[q] = protocol_summary(rec, (1, 50, 100, 200, steps[q]))
        protocol[q].update(campaigns=c, steps=steps[q])

    print("same budget", flush=True)
    keys = jax.random.split(jax.random.key(7), c)
    budget = budget_comparison(keys, args.policies, args.budget, args.budget_steps)
    budget.update(budget_s=args.budget, campaigns=c, steps=args.budget_steps)

    print("sensitivity", flush=True)
    ideal = library_policy("mu", surrogate=LibrarySurrogate(noise_variance=None))
    _, _, rec_i, _, _ = run(jax.random.split(jax.random.key(11), c), 3, ideal, steps[3],
                            instrument=Instrument(edx_counts_per_nm3_s=1e3))  # fmt: skip
    sensitivity = protocol_summary(rec_i, (steps[3],))
    sensitivity.update(campaigns=c)

    names = figures(RESULTS / "particle_library", rec3, libs3, state3, per_dim)
    result = {
        "meta": {
            "parameters": "R2 of shared/reference/checks.md (300x300 µm, 0.02 µm^-2, r 20±10 nm, "
                          "FOV 30x30 µm, stage 10 µm/s, retune 5 s, EDX 10 s/frame, EELS 1 s, "
                          "alpha 1, 3 seeds); target: 10 Gaussians of width 0.1; GP: RBF "
                          "l = 0.1, s2 = 0.25, noise 0.01 (fixed); E_gain from a pool of 128",
            "campaigns": c, "large_campaigns": large, "quick": bool(args.quick),
            "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(),
            "jax": jax.__version__, "python": platform.python_version(),
            "load_average_start": [round(v, 2) for v in load_start],
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
            "total_s": round(time.perf_counter() - started, 1),
        },
        "protocol": protocol,
        "large": {"campaigns": large, "steps": steps[3], "seconds": sec3, "compile_s": comp3,
                  "campaign_steps_per_s": large * steps[3] / sec3},
        "budget": budget,
        "sensitivity": sensitivity,
        "figures": names,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "particle_library.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "particle_library.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
