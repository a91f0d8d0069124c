"""Figures of campaign sweeps: metric curves with bootstrap bands, and acquisition trajectories.

Each function draws into ``ax`` when one is given, otherwise into a new pyplot figure, and
returns the :class:`matplotlib.figure.Figure`; nothing is shown. Save with ``fig.savefig`` and
release with ``matplotlib.pyplot.close(fig)``. Headless runs work with any non-interactive
backend (matplotlib falls back to Agg without a display; ``matplotlib.use("Agg")`` forces it).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from stemjax.stats import bootstrap_mean_ci


def _axes(ax: Axes | None, figsize) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_metric_curves(
    curves: dict[str, object],
    *,
    steps=None,
    ylabel: str = "",
    ax: Axes | None = None,
    level: float = 0.95,
) -> Figure:
    """Mean curve and percentile-bootstrap band over campaigns, one colour per policy.

    Args:
        curves: {policy name: (C, T) metric per campaign and step}, C ≥ 2 campaigns; policies may
            differ in C but share T.
        steps: (T,) x values (default 1..T, the number of acquisitions).
        ylabel: label of the y axis (the metric and its unit).
        ax: axes to draw into (default: a new figure).
        level: confidence level of the bands (:func:`stemjax.stats.bootstrap_mean_ci`).

    Returns:
        The figure: one line and one filled band per policy, a legend.
    """
    if not isinstance(curves, dict) or not curves:
        raise ValueError(f"curves must be a non-empty dict {{policy: (C, T) array}}; got "
                         f"{curves!r:.80}")  # fmt: skip
    arrays = {name: np.asarray(v, dtype=float) for name, v in curves.items()}
    for name, v in arrays.items():
        if v.ndim != 2 or v.shape[0] < 2:
            raise ValueError(f"curves[{name!r}] must have shape (C, T) with at least 2 "
                             f"campaigns C; got {v.shape}")  # fmt: skip
    lengths = {v.shape[1] for v in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"curves must share the number of steps T; got "
                         f"{ {n: v.shape for n, v in arrays.items()} }")  # fmt: skip
    t = lengths.pop()
    x = np.arange(1, t + 1) if steps is None else np.asarray(steps)
    if x.shape != (t,):
        raise ValueError(f"steps must have shape ({t},) (T of the curves); got {x.shape}")
    ax = _axes(ax, (5.0, 3.5))
    for name, v in arrays.items():
        mean, low, high = bootstrap_mean_ci(v, axis=0, level=level)
        (line,) = ax.plot(x, mean, lw=1.5, label=f"{name} (n={v.shape[0]})")
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax.figure


def plot_trajectory(
    image,
    positions,
    *,
    seeds=None,
    ax: Axes | None = None,
    title: str = "",
) -> Figure:
    """Acquired positions over the image, coloured by step, as in paper 003 (Fig. 3b–d).

    Args:
        image: (H, W) image shown in grey.
        positions: (T, 2) acquired (row, column) positions in pixels, in acquisition order.
        seeds: (s, 2) (row, column) positions of the seed measurements, drawn white.
        ax: axes to draw into (default: a new figure).
        title: axes title.

    Returns:
        The figure: the image, one scatter of the acquisitions (viridis by step, with a colour
        bar) and, with ``seeds``, one white scatter.
    """
    image = np.asarray(image, dtype=float)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (H, W); got {image.shape}")
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions must have shape (T, 2) (row, column); got "
                         f"{positions.shape}")  # fmt: skip
    if seeds is not None:
        seeds = np.asarray(seeds, dtype=float)
        if seeds.ndim != 2 or seeds.shape[1] != 2:
            raise ValueError(f"seeds must have shape (s, 2) (row, column); got {seeds.shape}")
    ax = _axes(ax, (4.5, 4.0))
    ax.imshow(image, cmap="gray")
    steps = np.arange(1, positions.shape[0] + 1)
    points = ax.scatter(positions[:, 1], positions[:, 0], c=steps, cmap="viridis", s=14,
                        edgecolors="none")  # fmt: skip
    ax.figure.colorbar(points, ax=ax, label="step", fraction=0.046, pad=0.04)
    if seeds is not None:
        ax.scatter(seeds[:, 1], seeds[:, 0], c="white", s=22, marker="o", edgecolors="black",
                   linewidths=0.5, label="seeds")  # fmt: skip
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure
