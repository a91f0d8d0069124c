"""examples/custom_acquisition.py runs and its custom acquisition composes as documented."""

import runpy
from pathlib import Path

import jax
import numpy as np
from jax.scipy.stats import norm

from stemjax.acquisition import motion_cost, recency_factor

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_acquisition.py"


def test_custom_acquisition_example(capsys):
    ns = runpy.run_path(str(EXAMPLE), run_name="example")
    scores = ns["main"](["--campaigns", "4", "--candidates", "32"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "scores: 4 campaigns x 32 candidates"
    assert scores.shape == (4, 32)
    # The same numbers by hand: in-band probability / motion cost (eq. 6) × recency factor.
    post, ctx = ns["toy_campaigns"](4, 32)
    b = 2
    mean, std = np.asarray(post.mean[b], float), np.sqrt(np.asarray(post.variance[b], float))
    band = norm.cdf((1.2 - mean) / std) - norm.cdf((0.8 - mean) / std)
    distance = np.linalg.norm(np.asarray(ctx.positions[b]) - np.asarray(ctx.position[b]), axis=-1)
    factor = recency_factor(ctx.positions[b], ctx.visited[b], length_scale_um=2.0, strength=0.9)
    expected = band / np.asarray(motion_cost(distance)) * np.asarray(factor)
    np.testing.assert_allclose(np.asarray(scores[b]), expected, rtol=2e-4, atol=1e-7)
    assert np.isfinite(np.asarray(jax.device_get(scores))).all()
