"""Compute reference values of EI, LogEI, PI, LogPI and UCB with BoTorch, and of log h with mpmath.

Run once, from the repository root, with the bench extra installed (torch, botorch, mpmath):

    /tmp/benchvenv/bin/python benchmarks/botorch_reference_values.py

It writes ``tests/acquisition/data/botorch_analytic_reference.json``, which the tests read (they
do not need BoTorch). BoTorch's analytic acquisitions are evaluated in float64 on a grid of
posterior means, standard deviations and incumbents, through a mock model that returns the given
posterior, for both ``maximize=True`` and ``maximize=False``; UCB on a grid of β. The file also
holds log h(z) = log(φ(z) + zΦ(z)) and its derivative Φ(z)/h(z) at 60+ significant digits from
mpmath, over z from −1e15 to 1e3.
"""

from __future__ import annotations

import datetime
import itertools
import json
import platform
import sys
from pathlib import Path

import botorch
import mpmath
import torch
from botorch.acquisition.analytic import (
    ExpectedImprovement,
    LogExpectedImprovement,
    LogProbabilityOfImprovement,
    ProbabilityOfImprovement,
    UpperConfidenceBound,
)
from botorch.utils.testing import MockModel, MockPosterior

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "acquisition" / "data" / "botorch_analytic_reference.json"

MEANS = [-5.0, -2.0, -1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 5.0]
STDS = [1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 10.0]
BESTS = [-1.0, 0.0, 0.5, 3.0]
BETAS = [0.0, 0.1, 1.0, 4.0]
LOG_H_Z = [-1e15, -1e8, -1e4, -1000.0, -300.0, -100.0, -40.0, -20.0, -10.0, -8.0, -6.0, -5.0,
           -4.5, -4.0, -3.5, -3.0, -2.5, -2.13, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0,
           10.0, 100.0, 1000.0]


def _acq_values(cls, mean, std, **kwargs) -> list[float]:
    """Evaluate a BoTorch analytic acquisition on a batch of (mean, std) posteriors."""
    m = torch.tensor(mean, dtype=torch.float64).reshape(-1, 1, 1)
    v = torch.tensor(std, dtype=torch.float64).reshape(-1, 1, 1) ** 2
    model = MockModel(MockPosterior(mean=m, variance=v))
    acq = cls(model=model, **kwargs)
    x = torch.zeros(m.shape[0], 1, 1, dtype=torch.float64)
    with torch.no_grad():
        return acq(x).reshape(-1).tolist()


def botorch_grid() -> dict:
    grid = list(itertools.product(MEANS, STDS, BESTS))
    mean = [g[0] for g in grid]
    std = [g[1] for g in grid]
    best = [g[2] for g in grid]
    values = {}
    for maximize in (True, False):
        tag = "max" if maximize else "min"
        for name, cls in [("ei", ExpectedImprovement), ("log_ei", LogExpectedImprovement),
                          ("pi", ProbabilityOfImprovement),
                          ("log_pi", LogProbabilityOfImprovement)]:
            out = []
            for b in BESTS:  # best_f is a scalar per acquisition object
                idx = [i for i, g in enumerate(grid) if g[2] == b]
                vals = _acq_values(cls, [mean[i] for i in idx], [std[i] for i in idx],
                                   best_f=b, maximize=maximize)
                out.extend(zip(idx, vals))
            values[f"{name}_{tag}"] = [v for _, v in sorted(out)]
    ucb_grid = list(itertools.product(MEANS, STDS, BETAS))
    ucb = {}
    for maximize in (True, False):
        out = []
        for beta in BETAS:
            idx = [i for i, g in enumerate(ucb_grid) if g[2] == beta]
            vals = _acq_values(UpperConfidenceBound, [ucb_grid[i][0] for i in idx],
                               [ucb_grid[i][1] for i in idx], beta=beta, maximize=maximize)
            out.extend(zip(idx, vals))
        ucb[f"ucb_{'max' if maximize else 'min'}"] = [v for _, v in sorted(out)]
    return {
        "grid": {"mean": mean, "std": std, "best": best},
        "values": values,
        "ucb_grid": {"mean": [g[0] for g in ucb_grid], "std": [g[1] for g in ucb_grid],
                     "beta": [g[2] for g in ucb_grid]},
        "ucb_values": ucb,
    }


def log_h_reference() -> dict:
    values, slopes = [], []
    for z in LOG_H_Z:
        # h(z) cancels to about 1/z² relative: carry enough digits for that and 30 more.
        mpmath.mp.dps = 40 + int(2 * max(0.0, float(mpmath.log10(abs(z) + 1))))
        zz = mpmath.mpf(z)
        h = mpmath.npdf(zz) + zz * mpmath.ncdf(zz)
        values.append(float(mpmath.log(h)))
        slopes.append(float(mpmath.ncdf(zz) / h))
    return {"z": LOG_H_Z, "log_h": values, "dlog_h_dz": slopes}


def main() -> None:
    torch.set_default_dtype(torch.float64)
    data = {
        "provenance": {
            "description": "BoTorch analytic acquisitions (float64) on a grid of posterior "
                           "means, standard deviations and incumbents; log h(z) from mpmath.",
            "script": "benchmarks/botorch_reference_values.py",
            "command": "/tmp/benchvenv/bin/python benchmarks/botorch_reference_values.py",
            "botorch_version": botorch.__version__,
            "torch_version": torch.__version__,
            "mpmath_version": mpmath.__version__,
            "python_version": sys.version.split()[0],
            "platform": platform.platform(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "notes": "BoTorch clamps the posterior variance at 1e-12 (sigma >= 1e-6); every "
                     "std on the grid is above that. UCB: mean + sqrt(beta) * std "
                     "(maximize) and -mean + sqrt(beta) * std (minimize).",
        },
        "botorch": botorch_grid(),
        "log_h_mpmath": log_h_reference(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
