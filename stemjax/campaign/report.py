"""Summaries and figures of a finished sweep: tables with bootstrap intervals, paired tests,
learning and coverage curves, trajectories, and the published runs of paper 003 beside them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stemjax import plots, stats
from stemjax.campaign.sweep import SweepConfig

REPORT_METRICS = ("coverage_target", "coverage_patch", "coverage_feature", "mae")
REPORT_STEPS = (50, 100, 300)
_LABELS = {
    "coverage_target": "target coverage", "coverage_patch": "patch coverage",
    "coverage_feature": "feature coverage", "mae": "MAE", "uncertainty": "mean variance",
    "mean": "mean prediction",
}  # fmt: skip


def report_steps(steps: int) -> list[int]:
    """The steps the tables report: 50, 100, 300 where reached, and the last step."""
    chosen = [s for s in REPORT_STEPS if s <= steps]
    return chosen if chosen and chosen[-1] == steps else [*chosen, steps]


def reference_records(labels, world, n_bins: int, n_clusters: int) -> dict[str, dict]:
    """Coverage and MAE of the published PFM runs (paper 003's EI, MU and BEACON), computed
    with the same labels as the sweep: {policy: {metric: (300,)}}."""
    from stemjax import metrics
    from stemjax.worlds import pfm_reference_runs

    runs = pfm_reference_runs()
    initial = np.zeros(world.targets.shape[0], bool)
    initial[np.asarray(world.seeds)] = True
    out = {}
    for name, run in runs.items():
        order = np.asarray(run["acquired_order"])
        curves = {
            key: np.asarray(metrics.coverage_curve(lab, order, n, initial=initial))
            for key, lab, n in (("coverage_target", labels.target, n_bins),
                                ("coverage_patch", labels.patch, n_clusters),
                                ("coverage_feature", labels.feature, n_clusters))
        }  # fmt: skip
        out[name] = curves | {"mae": np.asarray(run["mae"])}
    return out


def summary_table(results: dict[str, np.ndarray], config: SweepConfig,
                  reference: dict | None = None) -> str:  # fmt: skip
    """Markdown: mean [95 % bootstrap CI] of each metric at the report steps, per policy."""
    steps = report_steps(config.steps)
    lines = [
        f"Sweep on world `{config.world}`: {config.campaigns} campaigns × "
        f"{len(config.policies)} policies × {config.steps} steps, surrogate `{config.surrogate}`, "
        f"{'paper seeds' if config.paper_seeds else f'{config.n_seeds} random seeds per campaign'}. "
        "Mean over campaigns [95 % bootstrap CI].",
        "",
        "| metric | step | " + " | ".join(config.policies)
        + (" | " + " | ".join(f"published {p}" for p in reference) if reference else "") + " |",
        "|---|---:|" + "---|" * len(config.policies) + ("---:|" * len(reference) if reference else ""),
    ]  # fmt: skip
    for metric in REPORT_METRICS:
        for s in steps:
            cells = []
            for p in range(len(config.policies)):
                mean, low, high = stats.bootstrap_mean_ci(results[metric][p, :, s - 1], axis=0)
                cells.append(f"{float(mean):.3f} [{float(low):.3f}, {float(high):.3f}]")
            if reference:
                cells += [
                    f"{ref[metric][s - 1]:.3f}" if s <= len(ref[metric]) else "–"
                    for ref in reference.values()
                ]
            lines.append(f"| {_LABELS[metric]} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(results: dict[str, np.ndarray], config: SweepConfig) -> str:
    """Markdown: paired Wilcoxon tests between policies at the last step (same seeds)."""
    if len(config.policies) < 2:
        return ""
    lines = [
        f"Paired comparisons at step {config.steps} (Wilcoxon signed-rank, same campaigns; "
        "p Holm-corrected over the pairs of each metric).",
        "",
        "| metric | A | B | median A − B | p |",
        "|---|---|---|---:|---:|",
    ]
    for metric in REPORT_METRICS:
        values = {p: results[metric][i, :, -1] for i, p in enumerate(config.policies)}
        for row in stats.compare_policies(values):
            lines.append(
                f"| {_LABELS[metric]} | {row['a']} | {row['b']} | "
                f"{row['median_difference']:+.3f} | {row['p_holm']:.2g} |"
            )
    return "\n".join(lines)


def write_report(out: str | os.PathLike, results: dict[str, np.ndarray], config: SweepConfig,
                 world=None, labels=None) -> str:  # fmt: skip
    """Write ``summary.md`` and the figures under ``<out>/figures``; return the summary text.

    Library sweeps (world ``"library"``) get their own summary
    (:func:`stemjax.campaign.library_report.write_library_report`).
    """
    if config.world == "library":
        from stemjax.campaign.library_report import write_library_report

        return write_library_report(out, results, config)
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    reference = None
    if config.world == "pfm" and world is not None and labels is not None:
        reference = reference_records(labels, world, config.n_bins, config.n_clusters)
    text = summary_table(results, config, reference)
    paired = paired_table(results, config)
    steps = np.arange(1, config.steps + 1)
    for metric in (*REPORT_METRICS, "uncertainty", "mean"):
        curves = {p: results[metric][i] for i, p in enumerate(config.policies)}
        fig = plots.plot_metric_curves(curves, steps=steps, ylabel=_LABELS[metric])
        if reference and metric in REPORT_METRICS:
            ax = fig.axes[0]
            colours = {ln.get_label().split(" ")[0]: ln.get_color() for ln in ax.get_lines()}
            for name, ref in reference.items():
                n = min(len(ref[metric]), config.steps)
                ax.plot(steps[:n], ref[metric][:n], ls=":", lw=1, color=colours.get(name),
                        label=f"published {name}")  # fmt: skip
            ax.legend(fontsize=7)
        fig.savefig(figures / f"{metric}.png", dpi=120, bbox_inches="tight")
        matplotlib.pyplot.close(fig)
    if world is not None:
        positions = np.asarray(world.positions)
        for i, p in enumerate(config.policies):
            order = results["index"][i, 0]
            fig = plots.plot_trajectory(
                np.asarray(world.image), positions[order],
                seeds=positions[results["seeds"][i, 0]], title=f"{p}, campaign 0",
            )  # fmt: skip
            fig.savefig(figures / f"trajectory_{p}.png", dpi=120, bbox_inches="tight")
            matplotlib.pyplot.close(fig)
    body = "\n\n".join(
        ["# stemjax sweep summary", text, paired,
         "Figures: " + ", ".join(sorted(f.name for f in figures.glob("*.png")))]
    )  # fmt: skip
    (out / "summary.md").write_text(body + "\n")
    return body
