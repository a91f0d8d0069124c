"""Figures of campaign sweeps (stemjax.plots)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from stemjax import plots, stats  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _curves(rng, c=12, t=40):
    steps = np.arange(1, t + 1)
    return {
        "ei": np.minimum(1, steps / 60 + 0.05 * rng.random((c, t))),
        "beacon": np.minimum(1, steps / 30 + 0.05 * rng.random((c, t))),
        "random": np.minimum(1, steps / 45 + 0.05 * rng.random((c + 3, t))),
    }


def test_metric_curves_one_line_and_band_per_policy(tmp_path):
    rng = np.random.default_rng(0)
    curves = _curves(rng)
    fig = plots.plot_metric_curves(curves, ylabel="target coverage")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3
    assert ax.get_ylabel() == "target coverage" and ax.get_xlabel() == "step"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["ei (n=12)", "beacon (n=12)", "random (n=15)"]
    # the drawn line is the mean over campaigns, the band the bootstrap interval
    np.testing.assert_allclose(ax.lines[1].get_ydata(), curves["beacon"].mean(0))
    np.testing.assert_allclose(ax.lines[0].get_xdata(), np.arange(1, 41))
    _, low, high = stats.bootstrap_mean_ci(curves["ei"])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(low.min()) and band.max() == pytest.approx(high.max())
    path = tmp_path / "curves.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_metric_curves_draw_into_given_axes_with_custom_steps():
    rng = np.random.default_rng(1)
    fig, (left, right) = plt.subplots(1, 2)
    out = plots.plot_metric_curves({"a": rng.random((5, 10))}, steps=np.arange(0, 20, 2),
                                   ax=right)  # fmt: skip
    assert out is fig and len(right.lines) == 1 and len(left.lines) == 0
    np.testing.assert_array_equal(right.lines[0].get_xdata(), np.arange(0, 20, 2))


@pytest.mark.parametrize(
    "curves, kwargs, match",
    [
        ({}, {}, "curves must be a non-empty dict"),
        ({"a": np.zeros(5)}, {}, r"curves\['a'\] must have shape \(C, T\)"),
        ({"a": np.zeros((3, 5)), "b": np.zeros((3, 6))}, {}, "share the number of steps"),
        ({"a": np.zeros((3, 5))}, {"steps": np.arange(4)}, r"steps must have shape \(5,\)"),
        ({"a": np.zeros((1, 5))}, {}, "with at least 2 campaigns"),
    ],
)
def test_metric_curves_reject_bad_input(curves, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_metric_curves(curves, **kwargs)
    assert plt.get_fignums() == []  # checked before any figure is made


def test_trajectory_image_points_coloured_by_step_and_white_seeds(tmp_path):
    rng = np.random.default_rng(2)
    image = rng.random((50, 60))
    positions = rng.integers(0, 50, (25, 2))
    seeds = rng.integers(0, 50, (4, 2))
    fig = plots.plot_trajectory(image, positions, seeds=seeds, title="EI, campaign 0")
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the image axes and the colour bar
    assert len(ax.images) == 1 and ax.images[0].get_cmap().name == "gray"
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2
    acquired, seeded = scatters
    assert acquired.get_cmap().name == "viridis"
    np.testing.assert_array_equal(acquired.get_array(), np.arange(1, 26))
    np.testing.assert_array_equal(acquired.get_offsets(), positions[:, ::-1])  # (x, y) = (col, row)
    np.testing.assert_array_equal(seeded.get_offsets(), seeds[:, ::-1])
    np.testing.assert_allclose(seeded.get_facecolor()[0], [1, 1, 1, 1])
    assert ax.get_title() == "EI, campaign 0"
    assert ax.get_ylim() == (49.5, -0.5)  # image orientation: row 0 at the top
    path = tmp_path / "trajectory.png"
    fig.savefig(path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_trajectory_without_seeds_and_bad_input():
    fig = plots.plot_trajectory(np.zeros((8, 8)), np.array([[1, 2], [3, 4]]))
    assert len([c for c in fig.axes[0].collections if isinstance(c, PathCollection)]) == 1
    with pytest.raises(ValueError, match=r"image must have shape \(H, W\)"):
        plots.plot_trajectory(np.zeros((8, 8, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"positions must have shape \(T, 2\)"):
        plots.plot_trajectory(np.zeros((8, 8)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"seeds must have shape \(s, 2\)"):
        plots.plot_trajectory(np.zeros((8, 8)), np.zeros((2, 2)), seeds=np.zeros(2))
    assert plt.get_fignums() == [fig.number]
