"""Summaries and figures of library campaigns (paper 004, Figs. 3–4).

Statistics take the records of many campaigns, {name: (C, T, ...)} as returned by
:func:`stemjax.campaign.library.run_many` (NumPy or JAX arrays), and return NumPy arrays with
one row per campaign, ready for :func:`stemjax.stats.bootstrap_mean_ci`. Figures draw one
campaign the way the paper does: its trajectory in real space with the stage path and on the
composition simplex, its uncertainty and error with region changes marked, and the fraction of
particles measured in each region it visited.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stemjax import plots, stats
from stemjax.worlds.library_measurements import ACTIONS

# --------------------------------------------------------------------------------------------
# statistics over campaigns


def _np(records: dict, name: str) -> np.ndarray:
    if name not in records:
        raise ValueError(f"records must hold {name!r}; got {sorted(records)}")
    arr = np.asarray(records[name])
    if arr.ndim < 2:
        raise ValueError(f"records[{name!r}] must have shape (C, T, ...); got {arr.shape}")
    return arr


def visit_fractions(records: dict) -> np.ndarray:
    """Fraction of each visited region's particles measured when the campaign left it.

    Returns (C, V) in visiting order, NaN-padded; the region a campaign ends in is left out
    (it was not left). Paper 004, Fig. 3e: this falls with the visit and levels off.
    """
    switched = _np(records, "switched").astype(bool)
    fraction = _np(records, "region_fraction").astype(float)
    c, t = switched.shape
    rows = []
    for i in range(c):
        steps = np.flatnonzero(switched[i])
        rows.append([fraction[i, s - 1] if s > 0 else np.nan for s in steps])
    width = max([len(r) for r in rows] + [1])
    out = np.full((c, width), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def time_shares(records: dict) -> np.ndarray:
    """(C, 6) share of the campaign's step time spent on each kind of :data:`ACTIONS`
    (seeds and the first region's mapping excluded)."""
    times = np.stack([_np(records, f"time_{k}_s").astype(float).sum(1) for k in ACTIONS], -1)
    total = times.sum(-1, keepdims=True)
    return np.divide(times, total, out=np.zeros_like(times), where=total > 0)


def neighbour_share(records: dict) -> np.ndarray:
    """(C,) fraction of a campaign's region changes that go to a neighbouring field of view
    (NaN for a campaign that never moved)."""
    switched = _np(records, "switched").astype(bool)
    neighbour = _np(records, "neighbour").astype(bool)
    n = switched.sum(1).astype(float)
    return np.where(n > 0, neighbour.sum(1) / np.maximum(n, 1), np.nan)


def regions_visited(records: dict) -> np.ndarray:
    """(C, T) regions visited so far after each step (the start region counts)."""
    return 1 + np.cumsum(_np(records, "switched").astype(int), axis=1)


def final(records: dict, name: str) -> np.ndarray:
    """(C,) a record at the last step (a campaign stopped by its budget keeps its final state)."""
    return _np(records, name)[:, -1].astype(float)


# --------------------------------------------------------------------------------------------
# figures of one campaign


def plot_real_space(
    positions_um, x_um, y_um, *, region_centres_um=None, fov_um=None, seeds_um=None,
    ax: Axes | None = None, title: str = "",
) -> Figure:  # fmt: skip
    """Measured particles on the stage (viridis by step) over all particles (grey), with the
    stage path between fields of view (red) and the seeds (cyan), as paper 004 Fig. 3a.

    Args:
        positions_um: (P, 2) positions of the library's particles (NaN rows are skipped), µm.
        x_um, y_um: (T,) positions measured at each step (NaN where nothing was measured), µm.
        region_centres_um: (T, 2) centre of the field of view after each step, for the stage
            path; fov_um: (2,) its size, to draw the fields of view visited.
        seeds_um: (s, 2) positions of the seed particles.
    """
    ax = plots._axes(ax, (4.8, 4.4))
    p = np.asarray(positions_um, float)
    ax.scatter(p[:, 0], p[:, 1], s=2, c="0.8", edgecolors="none")
    x, y = np.asarray(x_um, float), np.asarray(y_um, float)
    ok = np.isfinite(x)
    pts = ax.scatter(x[ok], y[ok], c=np.flatnonzero(ok) + 1, cmap="viridis", s=10,
                     edgecolors="none")  # fmt: skip
    ax.figure.colorbar(pts, ax=ax, label="step", fraction=0.046, pad=0.04)
    if region_centres_um is not None:
        centres = np.asarray(region_centres_um, float)
        keep = np.r_[True, np.any(np.diff(centres, axis=0) != 0, axis=1)]
        path = centres[keep]
        ax.plot(path[:, 0], path[:, 1], "-", color="red", lw=1.2, label="stage path")
        if fov_um is not None:
            w, h = fov_um
            for cx, cy in path:
                ax.add_patch(plt.Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False,
                                           ec="red", lw=0.4, alpha=0.5))  # fmt: skip
    if seeds_um is not None:
        s = np.asarray(seeds_um, float)
        ax.scatter(s[:, 0], s[:, 1], c="cyan", s=30, edgecolors="black", lw=0.5, label="seeds")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title)
    return ax.figure


def ternary(compositions) -> np.ndarray:
    """(..., 2) plane coordinates of 3-component compositions: (c₁ + c₂/2, c₂√3/2)."""
    c = np.asarray(compositions, float)
    if c.shape[-1] != 3:
        raise ValueError(f"compositions must have 3 components (..., 3); got {c.shape}")
    return np.stack([c[..., 1] + 0.5 * c[..., 2], c[..., 2] * np.sqrt(3) / 2], -1)


def plot_simplex(compositions, *, seeds=None, labels=("A", "B", "C"), ax: Axes | None = None,
                 title: str = "") -> Figure:  # fmt: skip
    """Measured compositions on the ternary simplex, viridis by step (paper 004 Fig. 3b).

    Args:
        compositions: (T, 3) measured compositions (NaN rows skipped).
        seeds: (s, 3) seed compositions, drawn cyan.
        labels: names of the three components, at their corners.
    """
    ax = plots._axes(ax, (4.4, 4.0))
    corners = ternary(np.eye(3))
    ax.plot(*np.vstack([corners, corners[:1]]).T, color="black", lw=0.8)
    for (cx, cy), name in zip(corners, labels):
        ax.annotate(name, (cx, cy), textcoords="offset points", xytext=(0, 4 if cy else -10),
                    ha="center", fontsize=8)  # fmt: skip
    xy = ternary(compositions)
    ok = np.all(np.isfinite(xy), -1)
    pts = ax.scatter(xy[ok, 0], xy[ok, 1], c=np.flatnonzero(ok) + 1, cmap="viridis", s=10,
                     edgecolors="none")  # fmt: skip
    ax.figure.colorbar(pts, ax=ax, label="step", fraction=0.046, pad=0.04)
    if seeds is not None:
        s = ternary(seeds)
        ax.scatter(s[:, 0], s[:, 1], c="cyan", s=30, edgecolors="black", lw=0.5)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def plot_with_switches(values, switched, *, ylabel: str = "", ax: Axes | None = None) -> Figure:
    """One campaign's curve (T,) with dashed lines at its region changes (Fig. 3c, d)."""
    ax = plots._axes(ax, (4.5, 3.0))
    v = np.asarray(values, float)
    steps = np.arange(1, v.shape[0] + 1)
    for s in steps[np.asarray(switched, bool)]:
        ax.axvline(s, color="0.6", ls="--", lw=0.6)
    ax.plot(steps, v, lw=1.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return ax.figure


def plot_visit_fractions(fractions, *, ax: Axes | None = None, label: str = "") -> Figure:
    """Fraction of particles measured per visited region: bars for one campaign (V,), or the
    mean with a 95 % bootstrap band over campaigns (C, V) (Fig. 3e)."""
    ax = plots._axes(ax, (4.5, 3.0))
    f = np.asarray(fractions, float)
    if f.ndim == 1:
        ok = np.isfinite(f)
        ax.bar(np.flatnonzero(ok) + 1, f[ok], color="tab:blue", label=label or None)
    else:
        counts = np.sum(np.isfinite(f), 0)
        keep = counts >= max(2, int(0.5 * f.shape[0]))  # visits most campaigns reach
        cols = np.flatnonzero(keep)
        mean, low, high = (np.full(cols.shape, np.nan) for _ in range(3))
        for j, col in enumerate(cols):
            v = f[np.isfinite(f[:, col]), col]
            mean[j], low[j], high[j] = (float(a) for a in stats.bootstrap_mean_ci(v))
        (line,) = ax.plot(cols + 1, mean, marker="o", ms=3, label=label or None)
        ax.fill_between(cols + 1, low, high, color=line.get_color(), alpha=0.25, lw=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("region (order of visit)")
    ax.set_ylabel("fraction measured")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    if label:
        ax.legend(fontsize=8)
    return ax.figure


def campaign_figure(library, records: dict, campaign: int = 0, *, seeds=None,
                    title: str = "") -> Figure:  # fmt: skip
    """Paper 004's Fig. 3 (or 4 without the simplex) for one campaign of a batch.

    Args:
        library: the stacked libraries of the batch (:class:`ParticleLibrary`, leading axis C).
        records: the batch's records {name: (C, T, ...)}.
        campaign: which campaign to draw.
        seeds: (C, s) seed particle indices (``state.seeds``), or None.
    """
    i = int(campaign)
    rec = {k: np.asarray(v)[i] for k, v in records.items()}
    positions = np.asarray(library.positions_um)[i]
    present = np.asarray(library.present)[i]
    centres = np.asarray(library.region_centres_um)[i]
    q = rec["composition"].shape[-1]
    panels = 5 if q == 3 else 4
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8))
    seed_idx = None if seeds is None else np.asarray(seeds)[i]
    seed_idx = None if seed_idx is None else seed_idx[seed_idx >= 0]
    plot_real_space(positions[present], rec["x_um"], rec["y_um"],
                    region_centres_um=centres[rec["region"]], fov_um=library.config.fov_um,
                    seeds_um=None if seed_idx is None else positions[seed_idx],
                    ax=axes[0], title=title)  # fmt: skip
    k = 1
    if q == 3:
        plot_simplex(rec["composition"], ax=axes[1])
        k = 2
    plot_with_switches(rec["uncertainty"], rec["switched"], ylabel="mean uncertainty σ",
                       ax=axes[k])  # fmt: skip
    plot_with_switches(rec["error"], rec["switched"], ylabel="mean absolute error", ax=axes[k + 1])
    fr = visit_fractions({n: rec[n][None] for n in ("switched", "region_fraction")})[0]
    fr = np.append(fr, rec["region_fraction"][-1])  # the region it ends in, partly measured
    plot_visit_fractions(fr, ax=axes[k + 2])
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# sweep report


def _cell(values) -> str:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return "–"
    mean, low, high = stats.bootstrap_mean_ci(v)
    return f"{float(mean):.3f} [{float(low):.3f}, {float(high):.3f}]"


def _row_mean(values: np.ndarray) -> np.ndarray:
    """Mean of the finite entries of each row (NaN for a row with none)."""
    ok = np.isfinite(values)
    total = np.where(ok, values, 0.0).sum(1)
    n = ok.sum(1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def summary_table(results: dict, config) -> str:
    """Markdown: error, uncertainty, time, regions visited, fraction measured per region and
    neighbour share per policy (mean [95 % bootstrap CI] over campaigns), at the last step."""
    lines = [
        f"Library sweep: {config.campaigns} campaigns × {len(config.policies)} policies × "
        f"{config.steps} steps, options {config.world_options or '{}'}. "
        "Mean over campaigns [95 % bootstrap CI], at the last step.",
        "",
        "| quantity | " + " | ".join(config.policies) + " |",
        "|---|" + "---|" * len(config.policies),
    ]
    per = [{k: v[p] for k, v in results.items()} for p in range(len(config.policies))]
    rows = {
        "mean absolute error": lambda r: final(r, "error"),
        "mean uncertainty σ": lambda r: final(r, "uncertainty"),
        "elapsed time (s)": lambda r: final(r, "elapsed_s"),
        "particles measured": lambda r: np.asarray(r["measured"]).sum(1),
        "regions visited": lambda r: regions_visited(r)[:, -1],
        "fraction measured when leaving a region": lambda r: _row_mean(visit_fractions(r)),
        "share of moves to a neighbouring region": neighbour_share,
        **{f"time share: {k}": (lambda r, i=i: time_shares(r)[:, i]) for i, k in enumerate(ACTIONS)},
    }
    for name, fn in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(fn(r)) for r in per) + " |")
    if len(config.policies) > 1:
        lines += ["", "Paired Wilcoxon tests of the final mean absolute error (same libraries; Holm).", "",
                  "| A | B | median A − B | p |", "|---|---|---:|---:|"]  # fmt: skip
        values = {p: final(r, "error") for p, r in zip(config.policies, per)}
        for row in stats.compare_policies(values):
            lines.append(f"| {row['a']} | {row['b']} | {row['median_difference']:+.4f} | "
                         f"{row['p_holm']:.2g} |")  # fmt: skip
    return "\n".join(lines)


def write_library_report(out: str | os.PathLike, results: dict, config) -> str:
    """Write ``summary.md`` and figures (mean curves, fractions per region) of a library sweep."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    text = summary_table(results, config)
    steps = np.arange(1, config.steps + 1)
    for metric, label in (("error", "mean absolute error"), ("uncertainty", "mean uncertainty σ"),
                          ("elapsed_s", "elapsed time (s)")):  # fmt: skip
        curves = {p: np.asarray(results[metric][i], float) for i, p in enumerate(config.policies)}
        fig = plots.plot_metric_curves(curves, steps=steps, ylabel=label)
        fig.savefig(figures / f"{metric}.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    for i, p in enumerate(config.policies):
        fr = visit_fractions({k: results[k][i] for k in ("switched", "region_fraction")})
        plot_visit_fractions(fr, ax=ax, label=p)
    fig.savefig(figures / "visit_fractions.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    body = "\n\n".join(["# stemjax library sweep summary", text,
                        "Figures: " + ", ".join(sorted(f.name for f in figures.glob("*.png")))])  # fmt: skip
    (out / "summary.md").write_text(body + "\n")
    return body
